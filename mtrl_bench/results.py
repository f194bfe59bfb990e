"""Run directories and the results store (docs/results-store.md).

``runs/<suite family>/<suite name>/<agent>/<seed>/`` holds:

- ``config.json``: the resolved config; resuming with a different one is refused;
- ``env.json``: provenance (package versions, git SHA, device, python);
- ``metrics.jsonl``: append-only training metrics;
- ``eval.jsonl``: append-only evaluation records, one per task, each with ``schema``;
- ``ckpt/``: the agent's checkpoints (written atomically by the agent);
- ``DONE``: written last.

Every write is atomic (temp file, fsync, rename) or an fsynced append of whole lines, so a crash
or kill loses no finished result. Nothing here reads pickle.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from mtrl_bench.errors import UsageError

SCHEMA_VERSION = 1
EVAL_KEYS = (
    "schema", "suite", "protocol", "protocol_version", "split", "task", "task_index", "agent",
    "config_hash", "seed", "env_steps", "episodes", "success", "return", "score",
)  # fmt: skip
#: Versions recorded in every run: the frameworks and simulators a run may import.
_PACKAGES = ("mtrl-bench", "numpy", "scipy", "gymnasium", "minigrid", "torch", "stable-baselines3",
             "jax", "jaxlib", "flax", "optax", "mujoco", "metaworld", "eclipse-sumo", "libsumo",
             "scikit-learn")  # fmt: skip


_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read the process umask (the only way is to set it and set it back)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file in the same directory, fsync, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give what open() would
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def append_jsonl(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    lines = "".join(json.dumps(dict(r), sort_keys=True) + "\n" for r in rows)
    with open(path, "a") as f:
        f.write(lines)
        f.flush()
        os.fsync(f.fileno())


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except UnicodeDecodeError:
        raise UsageError(f"{path} is corrupted (not UTF-8 text)") from None


def read_json(path: Path) -> Any:
    """Read a JSON file; a corrupted, truncated or empty one is a one-line ``UsageError``."""
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError:
        raise UsageError(f"{path} is corrupted, truncated or empty (not valid JSON)") from None


def read_jsonl(path: Path, required: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Read a JSONL file; a corrupted or truncated line is a one-line ``UsageError``."""
    if not path.exists():
        return []
    rows = []
    for n, line in enumerate(_read_text(path).splitlines(), 1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise UsageError(f"{path}:{n} is corrupted or truncated (not valid JSON)") from None
        missing = [k for k in required if not isinstance(row, dict) or k not in row]
        if missing:
            raise UsageError(f"{path}:{n} is missing keys {missing}")
        if "schema" in required and row["schema"] != SCHEMA_VERSION:
            raise UsageError(f"{path}:{n} has schema {row['schema']}, expected {SCHEMA_VERSION}")
        rows.append(row)
    return rows


def config_hash(config: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]


def git_sha() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent,
            capture_output=True, text=True, timeout=5, check=True,
        )  # fmt: skip
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def package_versions() -> dict[str, str]:
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            pass
    return versions


def git_dirty() -> bool | None:
    """Whether tracked files differ from the commit (``None``: not a git checkout)."""
    try:
        out = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=Path(__file__).parent,
            capture_output=True, text=True, timeout=10, check=True,
        )  # fmt: skip
        return bool(out.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return None


def provenance() -> dict[str, Any]:
    return {
        "versions": package_versions(),
        "git_sha": git_sha(),
        "git_dirty": git_dirty(),
        "python": sys.version.split()[0],
        "device": f"cpu ({platform.machine()}, {os.cpu_count()} cores)",
        "platform": platform.platform(),
    }


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def check_writable(path: Path, what: str) -> None:
    """Refuse, before anything is written, a ``what`` directory that cannot be created or written
    into: it or a parent is a file, or its nearest existing parent is read-only."""
    path = Path(path)
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        why = "is a file" if existing == path else f"cannot be created ({existing} is a file)"
        raise UsageError(f"{what} {path} {why}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{what} {path} is not writable ({existing} is read-only)")


def read_run_config(run_dir: Path) -> dict[str, Any]:
    """The saved ``config.json`` of the run directory ``run_dir``, checked enough to use it."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise UsageError(f"{run_dir} is not a run directory (no config.json)")
    config = read_json(path)
    kinds = {"suite": str, "agent": str, "seed": int, "agent_config": dict}
    bad = [k for k, kind in kinds.items() if not isinstance(config, dict)
           or not isinstance(config.get(k), kind)]  # fmt: skip
    if bad:
        raise UsageError(f"{path} is not a run config (bad or missing keys {bad})")
    return config


class RunDir:
    """One (suite, agent, seed) run. ``open`` is the only method that creates files."""

    def __init__(self, root: Path, suite: str, agent: str, seed: int,
                 on_metrics: Callable[[], None] | None = None) -> None:  # fmt: skip
        self.path = Path(root) / suite / agent / str(seed)
        self.on_metrics = on_metrics

    config_path = property(lambda self: self.path / "config.json")
    eval_path = property(lambda self: self.path / "eval.jsonl")
    metrics_path = property(lambda self: self.path / "metrics.jsonl")
    ckpt_dir = property(lambda self: self.path / "ckpt")
    done = property(lambda self: (self.path / "DONE").exists())

    def check_config(self, config: Mapping[str, Any]) -> None:
        """Refuse to resume a run whose saved config differs (before anything is written)."""
        if not self.config_path.exists():
            return
        saved = read_json(self.config_path)
        if saved != json.loads(json.dumps(config)):
            diff = sorted(k for k in {*saved, *config} if saved.get(k) != config.get(k))
            raise UsageError(
                f"run directory {self.path} holds a different config (keys {diff} differ); "
                "use another --runs-dir or delete it"
            )

    def check(self, config: Mapping[str, Any]) -> None:
        """Everything a run with ``config`` will need, before anything is written: a directory
        that can be created, the same saved config and, to resume, readable result files (a
        finished run is only read)."""
        self.check_config(config)
        if not self.done:
            check_writable(self.path, "run directory")
            self.read_eval()
            read_jsonl(self.metrics_path, ("schema",))

    def open(self, config: Mapping[str, Any]) -> None:
        self.check_config(config)
        self.path.mkdir(parents=True, exist_ok=True)
        if not self.config_path.exists():
            atomic_write_json(self.config_path, config)
        # The first start's provenance stays at the top; each resume is appended to "resumes".
        env_path, record = self.path / "env.json", {**provenance(), "time": now()}
        if env_path.exists():
            first = read_json(env_path)
            if not isinstance(first, dict):
                raise UsageError(f"{env_path} must hold a JSON object")
            record = {**first, "resumes": [*first.get("resumes", []), record]}
        atomic_write_json(env_path, record)

    def read_eval(self) -> list[dict[str, Any]]:
        return read_jsonl(self.eval_path, EVAL_KEYS)

    def append_eval(self, records: Iterable[Mapping[str, Any]]) -> None:
        append_jsonl(self.eval_path, records)

    def append_metrics(self, row: Mapping[str, Any]) -> None:
        append_jsonl(self.metrics_path, [{"schema": SCHEMA_VERSION, "time": now(), **row}])
        if self.on_metrics is not None:  # agents write a row after each checkpoint: a sync point
            self.on_metrics()

    def mark_done(self) -> None:
        atomic_write_text(self.path / "DONE", now() + "\n")

    def sub(self, *parts: str) -> RunDir:
        """A directory nested in this run for one part of an evaluation (its own metrics and
        checkpoints; ``meta_test`` uses one per goal)."""
        sub = object.__new__(RunDir)
        sub.path, sub.on_metrics = self.path.joinpath(*parts), self.on_metrics
        sub.path.mkdir(parents=True, exist_ok=True)
        return sub


def collect_eval_records(roots: Iterable[Path]) -> list[dict[str, Any]]:
    """All evaluation records under the given run roots (or single run directories)."""
    records: list[dict[str, Any]] = []
    for root in roots:
        root = Path(root)
        if not root.exists():
            raise UsageError(f"runs directory {root} does not exist")
        if not root.is_dir():
            raise UsageError(f"runs path {root} is a file, not a directory")
        for path in sorted(root.rglob("eval.jsonl")):
            records.extend(read_jsonl(path, EVAL_KEYS))
    return records
