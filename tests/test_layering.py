"""Layering: the core (the ``mtrl_bench/`` directory; envs, agents and baselines are separate
folders mapped into the package) never imports ``mtrl_bench.agents``, ``mtrl_bench.envs`` or
``mtrl_bench.baselines``. It reaches them only through the registry's lazy ``"module:attr"``
strings in dict literals, which are data, so a user's package plugs in exactly as ours do.

An AST walk catches every form: module- and function-level imports, imports under
``TYPE_CHECKING``, relative imports, and module paths in string literals outside dict literals
(``importlib.import_module("mtrl_bench.agents.x")``, ``load_attr("mtrl_bench.envs.y:Z")``).
Entry-point group names (``"mtrl_bench.agents"``) are not module paths and are allowed.
"""

import ast
import re
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "mtrl_bench"
FORBIDDEN = ("agents", "envs", "baselines")
#: a module path or ``module:attr`` below agents/envs/baselines; the bare package names are also
#: the registry's entry-point group names (``"mtrl_bench.agents"``), which load nothing
_PATH = re.compile(rf"mtrl_bench\.({'|'.join(FORBIDDEN)})((\.\w+)+(:\w+)?|:\w+)")


def _forbidden(module: str) -> bool:
    parts = module.split(".")
    return parts[0] == "mtrl_bench" and len(parts) > 1 and parts[1] in FORBIDDEN


def violations(source: str, filename: str = "<string>") -> list[tuple[int, str]]:
    """``(line, what)`` of every reach from core code into agents / envs / baselines."""
    tree = ast.parse(source, filename)
    in_dict = {id(n) for d in ast.walk(tree) if isinstance(d, ast.Dict)
               for n in (*d.keys, *d.values) if n is not None}  # fmt: skip
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, f"import {a.name}") for a in node.names if _forbidden(a.name)]
        elif isinstance(node, ast.ImportFrom):
            # ``from mtrl_bench import agents`` / ``from . import envs`` name the package too
            base = "mtrl_bench" if node.level else (node.module or "")
            if node.level and node.module:
                base = f"mtrl_bench.{node.module}"
            names = [base] + [f"{base}.{a.name}" for a in node.names]
            if any(_forbidden(n) for n in names):
                found.append((node.lineno, f"from {'.' * node.level}{node.module or ''} import"))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if _PATH.fullmatch(node.value) and id(node) not in in_dict:
                found.append((node.lineno, f"string {node.value!r}"))
    return sorted(found)


def test_checker_catches_every_form():
    """The walk must see each way in (else the core test below could pass vacuously)."""
    source = '''
import importlib
from typing import TYPE_CHECKING
import mtrl_bench.agents.mtppo
from mtrl_bench.envs.toy import GOAL_LINE
from mtrl_bench import baselines
from .agents import nets
from . import envs
if TYPE_CHECKING:
    from mtrl_bench.agents.mtsac import Config
def f():
    from mtrl_bench.agents import ppo_core
    return importlib.import_module("mtrl_bench.agents.transfer_ppo")
def g():
    return load_attr("mtrl_bench.envs.toy:GOAL_LINE")
TABLE = {"toy/goal-line-v1": "mtrl_bench.envs.toy:GOAL_LINE"}
PLUGINS = entry_points(group="mtrl_bench.agents")
from mtrl_bench import evaluation, registry
from mtrl_bench.registry import get_suite
"""Docstrings may name mtrl_bench.agents in prose."""
'''
    lines = [line for line, _ in violations(source)]
    assert lines == [4, 5, 6, 7, 8, 10, 12, 13, 15]


def test_core_never_imports_agents_envs_or_baselines():
    bad = [
        f"{path.relative_to(CORE.parent)}:{line}: {what}"
        for path in sorted(CORE.rglob("*.py"))
        for line, what in violations(path.read_text(), str(path))
    ]
    assert not bad, "the core reaches into agents/envs/baselines:\n" + "\n".join(bad)


def test_mtrl_list_imports_no_heavy_framework():
    """``mtrl list`` (and the modules it needs) loads neither JAX, torch, MuJoCo nor Meta-World."""
    code = (
        "import sys\n"
        "import mtrl_bench.cli, mtrl_bench.registry, mtrl_bench.types, mtrl_bench.errors\n"
        "assert mtrl_bench.cli.main(['list']) in (0, None)\n"
        "heavy = {'jax', 'torch', 'mujoco', 'metaworld'}\n"
        "print('HEAVY', sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines()[-1] == "HEAVY []"
