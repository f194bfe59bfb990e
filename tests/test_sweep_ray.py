"""``mtrl sweep --executor ray`` on a real Ray cluster on loopback (no mocks).

The fixture starts a head node and a second node with ``ray start --block``, each in its own
process group, and stops exactly those groups at the end (``ray stop`` would stop every Ray
process of the machine). Each node has one CPU, so two runs are in flight at a time. The
default run has one end-to-end test (a 7-run sweep on the toy suite and JAX MiniGrid MT3 in
which the worker process of a running run is SIGKILLed); node loss and local-vs-Ray equality are
``slow``.
"""

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from mtrl_bench.registry import get_suite
from mtrl_bench.results import read_jsonl
from mtrl_bench.sweep import Grid, run_sweep
from mtrl_bench.sweep_store import Store

ray = pytest.importorskip("ray")
RAY = Path(sys.executable).with_name("ray")
TOY = "toy/goal-line-v1"
LONG = 20_000  # mtppo ci on the toy suite: ~100 updates, a checkpoint every 2 (seconds of work)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout=120.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if (value := predicate()) is not None and value is not False:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Cluster:
    """Ray nodes on 127.0.0.1, each a ``ray start --block`` process leading its own group."""

    def __init__(self, root: Path) -> None:
        self.root, self.port, self.nodes = root, free_port(), []
        self.address = f"127.0.0.1:{self.port}"

    def start_node(self, head: bool = False) -> subprocess.Popen:
        # Every port a node opens is a free one, so two nodes (and other tests) share the host.
        ports = ["--node-manager-port", "--object-manager-port", "--metrics-export-port",
                 "--dashboard-agent-listen-port", "--dashboard-agent-grpc-port",
                 "--runtime-env-agent-port"]  # fmt: skip
        args = [str(RAY), "start", "--block", "--node-ip-address=127.0.0.1", "--num-cpus=1",
                "--object-store-memory=80000000", "--disable-usage-stats",
                "--include-log-monitor=false", f"--temp-dir={self.root / 'ray'}",
                *(f"{p}={free_port()}" for p in ports)]  # fmt: skip
        if head:
            args += ["--head", f"--port={self.port}", "--include-dashboard=false"]
        else:
            args += [f"--address={self.address}"]
        # One compilation cache for every worker: a retried or second run does not recompile.
        env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": str(self.root / "xla"),
               "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}  # fmt: skip
        log = open(self.root / f"node{len(self.nodes)}.log", "w")  # noqa: SIM115 (lives with it)
        node = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
        self.nodes.append(node)
        return node

    def alive(self) -> int:
        return sum(n["Alive"] for n in ray.nodes())

    def kill(self, node: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(node.pid, sig)

    def owns(self, pid: int) -> bool:
        """Whether ``pid`` descends from one of this cluster's nodes (raylets start workers in
        process groups of their own)."""
        return pid in self.processes()

    def processes(self, nodes=None) -> set[int]:
        """Every live process started by these nodes (default: all; from /proc's parent
        links)."""
        parent = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, IndexError):
                parent[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        mine, grew = {n.pid for n in nodes or self.nodes if n.poll() is None}, True
        while grew:
            more = {p for p, pp in parent.items() if pp in mine} - mine
            mine, grew = mine | more, bool(more)
        return mine

    def stop(self) -> None:
        ray.shutdown()
        stragglers = self.processes() - {n.pid for n in self.nodes}
        for node in self.nodes:
            self.kill(node, signal.SIGTERM)
        end = time.monotonic() + 2  # a test cluster needs no graceful exit; its files go
        for node in self.nodes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.wait(max(0.1, end - time.monotonic()))
        for node in self.nodes:  # what SIGTERM left (raylet workers, agents)
            self.kill(node, signal.SIGKILL)
            node.wait()
        for pid in stragglers:  # workers in groups of their own (ours: children of our nodes)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def two_nodes():
    """A head node and a second node, this process connected as the driver."""
    # Not pytest's tmp_path: Ray's socket paths live under --temp-dir and must stay short.
    root = Path(tempfile.mkdtemp(prefix="mtrl-ray-", dir="/tmp"))
    c = Cluster(root)
    # Loopback only: no token authentication, whatever a local Ray left in ~/.ray (Ray >= 2.5x
    # turns it on when it finds a token there); nodes inherit this, the driver reads it here.
    auth = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    try:
        c.start_node(head=True)
        wait_for(lambda: _listening(c.port), 60, "the head node's GCS port")
        c.start_node()
        ray.init(address=c.address, logging_level="warning")
        wait_for(lambda: c.alive() == 2, 60, "two live nodes")
        yield c
    finally:
        c.stop()
        subprocess.run(["rm", "-rf", str(root)], check=False)
        if auth is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = auth


@pytest.fixture(scope="module")
def cluster():
    with two_nodes() as c:
        yield c


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def sweep_in_thread(grids, store, **ray_options):
    """``run_sweep`` on the cluster in a thread (the test acts while it runs); ``join()``
    returns its outcomes."""
    out = {}

    def target():
        out["outcomes"] = run_sweep(grids, store, executor="ray", progress=False,
                                    ray_options=ray_options)  # fmt: skip

    thread = threading.Thread(target=target)
    thread.start()

    def join():
        thread.join(600)
        assert not thread.is_alive(), "the sweep did not finish"
        return out["outcomes"]

    return join


def attempt_pid(run: Path) -> int | None:
    """The pid of the worker running ``run`` once it has written a checkpoint (a metrics row)."""
    if not read_jsonl(run / "metrics.jsonl") or not (run / "sweep.log").exists():
        return None
    return int(re.findall(r"pid (\d+)", (run / "sweep.log").read_text())[-1])


def assert_resumed(run: Path, rows_before: int, steps: int) -> None:
    """The run was retried and went on from its checkpoint: its log says so, and its metrics
    rows' env steps never go back (a restart from step 0 would repeat the first ones)."""
    assert "resumed" in (run / "sweep.log").read_text()
    env_steps = [r["env_steps"] for r in read_jsonl(run / "metrics.jsonl")]
    assert len(env_steps) > rows_before and env_steps[-1] >= steps
    assert env_steps == sorted(set(env_steps)), env_steps


def assert_eval_complete(store: Path, outcomes, protocols=("mt", "zero_shot")) -> None:
    """Every run finished with exactly one eval record per (protocol, task): none lost, none
    duplicated."""
    assert outcomes and all(o.state == "done" for o in outcomes), outcomes
    for outcome in outcomes:
        run = store / outcome.key
        assert (run / "DONE").exists()
        suite = get_suite(run.parts[-4] + "/" + run.parts[-3])
        split = {"mt": "train", "zero_shot": "test"}
        want = Counter((p, suite.tasks[t].name) for p in protocols for t in suite.splits[split[p]])
        got = Counter((r["protocol"], r["task"]) for r in read_jsonl(run / "eval.jsonl"))
        assert got == want, (outcome.key, got)


def toy_grids(random_seeds, mtppo_seeds, steps=LONG):
    common = {"suites": (TOY,), "eval_episodes": 2}
    return [Grid(agents=("mtppo",), presets=("ci",), seeds=mtppo_seeds, steps=steps, **common),
            Grid(agents=("random",), seeds=random_seeds, steps=5, **common)]  # fmt: skip


def test_ray_sweep_retries_a_killed_worker_from_its_checkpoint(cluster, tmp_path):
    """Seven runs on two nodes, on the toy suite and JAX MiniGrid MT3; the worker of the
    running MTPPO run is SIGKILLed after its first checkpoint. Ray retries it, it resumes from
    the checkpoint, and every run ends with all its eval records once."""
    store, run = tmp_path / "runs", tmp_path / "runs" / TOY / "mtppo" / "0"
    minigrid = Grid(agents=("random",), suites=("minigrid-jax/mt3-v1",), seeds=(0,), steps=5,
                    eval_episodes=2)  # fmt: skip
    grids = [*toy_grids((0, 1, 2, 3, 4), (0,)), minigrid]
    join = sweep_in_thread(grids, Store(store), max_retries=2)
    pid = wait_for(lambda: attempt_pid(run), what="the MTPPO run's first checkpoint")
    rows_before = len(read_jsonl(run / "metrics.jsonl"))
    assert cluster.owns(pid) and not (run / "DONE").exists()
    os.kill(pid, signal.SIGKILL)
    outcomes = join()
    assert len(outcomes) == 7
    assert_eval_complete(store, outcomes)
    assert_resumed(run, rows_before, LONG)


@pytest.mark.slow
def test_ray_and_local_write_identical_eval_records(cluster, tmp_path):
    """Six runs on the toy suite and JAX MiniGrid MT3 (MTPPO's ci preset and the random
    policy) on the cluster, and the same grid with the local executor: identical eval records
    but for their timestamps (and git commit, see below)."""
    jax_suite = "minigrid-jax/mt3-v1"
    grids = [Grid(agents=("mtppo",), presets=("ci",), suites=(TOY,), seeds=(0, 1), steps=768,
                  eval_episodes=2),
             Grid(agents=("mtppo",), presets=("ci",), suites=(jax_suite,), steps=384,
                  eval_episodes=2),
             Grid(agents=("random",), suites=(TOY,), steps=5, eval_episodes=2),
             Grid(agents=("random",), suites=(jax_suite,), seeds=(0, 1), steps=5,
                  eval_episodes=2)]  # fmt: skip
    on_ray, local = tmp_path / "ray", tmp_path / "local"
    outcomes = run_sweep(grids, Store(on_ray), executor="ray", progress=False)
    assert len(outcomes) == 6
    assert_eval_complete(on_ray, outcomes)
    run_sweep(grids, Store(local), executor="local", jobs=1, progress=False)
    # Timestamps, and the commit: other work commits to this checkout while the test runs.
    strip = lambda root: {p.parent.relative_to(root): [  # noqa: E731
        {k: v for k, v in r.items() if k not in ("time", "git_sha", "git_dirty")}
        for r in read_jsonl(p)] for p in sorted(root.rglob("eval.jsonl"))}  # fmt: skip
    assert strip(on_ray) == strip(local) and len(strip(local)) == 6


@pytest.mark.slow
def test_ray_sweep_completes_on_the_head_after_losing_a_node(cluster, tmp_path):
    """The second node is killed (its process group and every process it started, as a lost
    machine) while it runs an MTPPO run; Ray retries that run on the head, where it resumes
    from its checkpoint, and the sweep completes. A new second node replaces it afterwards."""
    store, second = tmp_path / "runs", cluster.nodes[-1]
    runs = [store / TOY / "mtppo" / str(s) for s in (0, 1, 2)]
    join = sweep_in_thread(toy_grids((0,), (0, 1, 2)), Store(store), max_retries=3)

    def on_second():
        for run in runs:
            pid = attempt_pid(run)
            if pid is not None and pid in cluster.processes([second]):
                return run
        return None

    run = wait_for(on_second, what="a checkpoint of a run on the second node")
    rows_before = len(read_jsonl(run / "metrics.jsonl"))
    doomed = cluster.processes([second])
    cluster.kill(second)
    for pid in doomed:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    try:
        outcomes = join()  # the retry on the head can finish before Ray's health checks
        wait_for(lambda: cluster.alive() == 1, 60, "the head to list the second node as dead")
        assert len(outcomes) == 4
        assert_eval_complete(store, outcomes)
        assert_resumed(run, rows_before, LONG)
    finally:
        cluster.start_node()
        wait_for(lambda: cluster.alive() == 2, 60, "a new second node")
