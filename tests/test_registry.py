"""The registry's Meta-World entries are a literal; ``envs/metaworld_tasks.py`` is where the task
lists live. These tests keep the two equal, and that data module free of MuJoCo."""

import subprocess
import sys

from mtrl_bench.envs.metaworld_tasks import metaworld_attr, metaworld_ids
from mtrl_bench.registry import SUITES


def test_registry_metaworld_ids_equal_the_task_lists():
    registered = [i for i in SUITES if i.startswith("metaworld/")]
    assert registered == metaworld_ids()
    assert len(set(registered)) == len(registered) == 5 * 4 + 50 + 1 + 50  # ..., MT1, sub3, ML1
    for suite_id in registered:
        assert SUITES[suite_id] == f"mtrl_bench.envs.metaworld:{metaworld_attr(suite_id)}"


def test_metaworld_tasks_is_pure_data():
    code = (
        "import sys, mtrl_bench.envs.metaworld_tasks; "
        "print(sorted({'mujoco', 'metaworld', 'gymnasium'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
