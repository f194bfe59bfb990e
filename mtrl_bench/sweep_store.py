"""Where a sweep's run directories live, and one run as a sweep worker executes it.

The store is a path or an fsspec URL. A path, or a URL of a local filesystem (``file://``), is
written in place: on one machine that is the local disk, on a cluster a shared filesystem
mounted at the same path on every node (NFS, EFS, Lustre...), where the runner's atomic renames
and appends keep every file whole. Any other URL (``s3://``, ``gs://``, ``memory://``...) is
reached through fsspec: a run works in a node-local scratch directory, which it fills from the
store first (so a run retried on another node resumes from its last uploaded checkpoint),
uploads after each checkpoint (at most every ``sync_every`` seconds) and again when it ends,
``DONE`` last. Files are whole objects in an object store, so a killed upload leaves the
previous version. fsspec does every copy.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mtrl_bench.results import RunDir, now
from mtrl_bench.runner import RunConfig, resolve
from mtrl_bench.runner import run as run_once

#: ``report(key, state, info)``: a run's state changes (``running``, ``resumed``).
Report = Callable[[str, str, dict[str, Any]], None]


@dataclass(frozen=True)
class Job:
    """One run of a sweep: its config and the sub-root of the store it goes under ("" unless
    runs of the sweep would otherwise share a run directory)."""

    cfg: RunConfig
    root: str = ""

    @property
    def key(self) -> str:
        """The run directory relative to the store: ``[root/]suite/agent/seed``."""
        parts = (self.root, self.cfg.suite, self.cfg.agent, str(self.cfg.seed))
        return "/".join(p for p in parts if p)


@dataclass(frozen=True)
class Outcome:
    key: str
    state: Literal["done", "failed"]
    error: str = ""
    log: str = ""


class Store:
    """The run store at ``url``: a path or an fsspec URL (module docstring)."""

    def __init__(self, url: str | Path, sync_every: float = 60.0) -> None:
        import fsspec
        from fsspec.implementations.local import LocalFileSystem

        self.url, self.sync_every = str(url), sync_every
        self.fs, base = fsspec.core.url_to_fs(self.url)
        self.remote = not isinstance(self.fs, LocalFileSystem)
        self.base = base.rstrip("/") if self.remote else base

    def location(self, job: Job, name: str = "") -> str:
        """Where the run directory of ``job`` (or its file ``name``) is, for messages."""
        path = f"{self.base}/{job.key}" + (f"/{name}" if name else "")
        return self.fs.unstrip_protocol(path) if self.remote else path

    def state(self, job: Job) -> Literal["done", "started", "new"]:
        if self.remote:
            where = f"{self.base}/{job.key}"
            done, started = self.fs.exists(f"{where}/DONE"), self.fs.exists(f"{where}/config.json")
        else:
            run_dir = self._run_dir(Path(self.base), job)
            done, started = run_dir.done, run_dir.config_path.exists()
        return "done" if done else "started" if started else "new"

    def check(self, job: Job) -> None:
        """Refuse, before anything runs, a bad config or a run directory holding another one
        (``results.RunDir.check``)."""
        config = resolve(job.cfg)
        if not self.remote:
            self._run_dir(Path(self.base), job).check(config)
        elif self.fs.exists(saved := f"{self.base}/{job.key}/config.json"):
            with tempfile.TemporaryDirectory() as tmp:
                run_dir = self._run_dir(Path(tmp), job)
                self.fs.get([saved], [str(run_dir.config_path)])
                run_dir.check_config(config)

    @staticmethod
    def _run_dir(root: Path, job: Job) -> RunDir:
        return RunDir(root / job.root, job.cfg.suite, job.cfg.agent, job.cfg.seed)

    @contextlib.contextmanager
    def workspace(self, job: Job) -> Iterator[tuple[Path, Callable[[], None] | None]]:
        """``(runs_dir, on_metrics)`` for ``runner.run``: the store itself, or a scratch copy
        of the run directory and the upload to call after each checkpoint."""
        if not self.remote:
            yield Path(self.base) / job.root, None
            return
        scratch = Path(tempfile.mkdtemp(prefix="mtrl-run-"))
        try:
            local, remote = self._run_dir(scratch, job).path, f"{self.base}/{job.key}"
            files = self.fs.find(remote) if self.fs.exists(remote) else []
            if files:
                self.fs.get(files, [str(local / f[len(remote) + 1 :]) for f in files])
            sync = _Uploader(self.fs, local, remote, self.sync_every)
            try:
                yield scratch / job.root, sync.maybe
            finally:
                sync.push(final=True)  # a failed run's log and checkpoints too
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


class _Uploader:
    """Uploads the files of a scratch run directory that changed since the last upload."""

    def __init__(self, fs: Any, local: Path, remote: str, every: float) -> None:
        self.fs, self.local, self.remote, self.every = fs, local, remote, every
        self.sent: dict[Path, tuple[int, int]] = {}
        self.last = time.monotonic()

    def maybe(self) -> None:
        if time.monotonic() - self.last >= self.every:
            self.push()

    def push(self, final: bool = False) -> None:
        changed = []
        for path in sorted(self.local.rglob("*")):
            stat = path.stat() if path.is_file() and not path.name.startswith(".") else None
            if stat is not None and self.sent.get(path) != (stat.st_mtime_ns, stat.st_size):
                changed.append((path, (stat.st_mtime_ns, stat.st_size)))
        body = [c for c in changed if c[0].name != "DONE"]
        done = [c for c in changed if c[0].name == "DONE"] if final else []
        for group in (body, done):  # DONE last: a store that has it has the whole run
            if group:
                remote = [f"{self.remote}/{p.relative_to(self.local).as_posix()}" for p, _ in group]
                self.fs.put([str(p) for p, _ in group], remote)
                self.sent.update(group)
        self.last = time.monotonic()


def run_job(job: Job, store: Store, report: Report) -> Outcome:
    """Run (or resume) ``job`` in ``store``; every error becomes a ``failed`` outcome with its
    traceback in the run's ``sweep.log``, so one bad run does not stop a sweep."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # one thread per run: runs fill the cores
    os.environ.setdefault(
        "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    )
    log = store.location(job, "sweep.log")
    try:
        with store.workspace(job) as (runs_dir, on_metrics):
            run_dir = Store._run_dir(runs_dir, job)
            resumed = run_dir.config_path.exists()
            info = {"host": socket.gethostname(), "pid": os.getpid()}
            report(job.key, "resumed" if resumed else "running", info)
            run_dir.path.mkdir(parents=True, exist_ok=True)
            with open(run_dir.path / "sweep.log", "a") as f:
                f.write(f"{now()} {'resumed' if resumed else 'started'} on {info['host']} "
                        f"pid {info['pid']}\n")  # fmt: skip
            try:
                run_once(job.cfg, runs_dir, progress=False, on_metrics=on_metrics)
            except Exception as err:
                with open(run_dir.path / "sweep.log", "a") as f:
                    f.write(f"{now()} failed:\n{traceback.format_exc()}")
                return Outcome(job.key, "failed", f"{type(err).__name__}: {err}", log)
    except Exception as err:  # the store itself (unreachable, permissions)
        return Outcome(job.key, "failed", f"{type(err).__name__}: {err}", log)
    return Outcome(job.key, "done", log=log)


@dataclass(frozen=True)
class QueueReport:
    """A ``Report`` that puts events on a queue the driver drains (a ``multiprocessing``
    manager queue for the local pool, a ``ray.util.queue.Queue`` on Ray)."""

    queue: Any

    def __call__(self, key: str, state: str, info: dict[str, Any]) -> None:
        self.queue.put((key, state, info))
