"""``mtrl sweep`` with the local executor: grids from flags and TOML, skip / resume / dry run,
per-run status lines, a failed run that does not stop the others, the process pool equal to
one process, and a remote (fsspec) run store. The Ray executor: tests/test_sweep_ray.py."""

import dataclasses
import json
import os
from pathlib import Path

import pytest

from mtrl_bench.baselines.random_policy import SPEC as RANDOM
from mtrl_bench.cli import main
from mtrl_bench.cli_sweep import split_agent_config
from mtrl_bench.results import read_jsonl
from mtrl_bench.sweep import Grid, expand, load_grids, run_sweep
from mtrl_bench.sweep_store import Store

TOY, BANDIT = "toy/goal-line-v1", "toy/bandit-v1"
CHEAP = ["--steps", "5", "--eval-episodes", "2"]


def _broken_train(*args, **kwargs):
    raise RuntimeError("this agent cannot train")


#: a plug-in agent (``test_sweep:BROKEN``) whose training raises
BROKEN = dataclasses.replace(RANDOM, id="broken", train=_broken_train)


def records(root: Path) -> dict[str, list[dict]]:
    """Each run's eval records without their timestamps (all that may differ between
    executors on one machine) and git commit (other work commits to this checkout)."""
    return {str(p.parent.relative_to(root)): [
        {k: v for k, v in r.items() if k not in ("time", "git_sha", "git_dirty")}
        for r in read_jsonl(p)] for p in sorted(root.rglob("eval.jsonl"))}  # fmt: skip


def test_sweep_runs_skips_and_dry_runs(tmp_path, capsys):
    runs = tmp_path / "runs"
    argv = ["sweep", "--agents", "random", "--suites", TOY, BANDIT, "--seeds", "0", "1", *CHEAP,
            "--runs-dir", str(runs), "--jobs", "1"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    keys = [f"{s}/random/{seed}" for s in (TOY, BANDIT) for seed in (0, 1)]
    for key in keys:
        assert (runs / key / "DONE").exists()
        assert f"queued   {key}\n" in out and f"done     {key}\n" in out
        assert f"running  {key} on " in out
    assert "4 done, 0 failed, 0 skipped" in out
    assert main(argv) == 0  # everything is DONE: nothing runs
    out = capsys.readouterr().out
    assert "skipped 4 finished runs" in out and "running" not in out
    (runs / keys[0] / "DONE").unlink()
    assert main([*argv[:-2], "--seeds", "0", "1", "2", "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "6 runs: 3 done, 1 to resume, 2 new"
    assert f"resume  {runs / keys[0]}" in lines and f"new     {runs / TOY / 'random/2'}" in lines
    assert not (runs / TOY / "random/2").exists()  # a dry run writes nothing


def test_toml_grids_and_flags(tmp_path):
    path = tmp_path / "sweep.toml"
    path.write_text(f"""
suites = ["{TOY}"]
steps = 64
[[grid]]
agents = ["random"]
seeds = [0, 1, 2]
[[grid]]
agents = ["mtppo"]
presets = ["ci"]
[grid.agent_config]
lr_actor = [1e-3, 3e-4]
mlp_widths = [[32, 32]]
""")
    jobs = expand(load_grids(path, {}))
    assert [j.key for j in jobs] == [
        f"{TOY}/random/0", f"{TOY}/random/1", f"{TOY}/random/2",
        f"ci,lr_actor=0.001,mlp_widths=32x32/{TOY}/mtppo/0",
        f"ci,lr_actor=0.0003,mlp_widths=32x32/{TOY}/mtppo/0",
    ]  # fmt: skip
    assert all(j.cfg.steps == 64 for j in jobs)
    assert jobs[3].cfg.agent_config.lr_actor == 1e-3 and jobs[4].cfg.agent_config.lr_actor == 3e-4
    assert jobs[3].cfg.agent_config.mlp_widths == (32, 32) and jobs[3].cfg.preset == "ci"
    flags = {"seeds": (5,), "steps": 9}  # flags replace the file's values in every grid
    assert [(j.cfg.seed, j.cfg.steps) for j in expand(load_grids(path, flags))][:1] == [(5, 9)]


def test_agent_config_flags_are_a_grid():
    argv = ["--agents", "mtppo", "--agent-config.lr-actor", "1e-3", "3e-4",
            "--agent-config.network=moore", "--agent-config.mlp-widths", "[64, 64]", "--seeds", "1"]
    rest, grid = split_agent_config(argv)
    assert rest == ["--agents", "mtppo", "--seeds", "1"]
    assert grid == {"lr_actor": (1e-3, 3e-4), "network": ("moore",), "mlp_widths": ([64, 64],)}
    jobs = expand([Grid(agents=("mtppo",), suites=(TOY,), presets=("ci",),
                        agent_config=tuple(grid.items()))])  # fmt: skip
    assert [j.cfg.agent_config.lr_actor for j in jobs] == [1e-3, 3e-4]
    assert {(j.cfg.agent_config.network, j.cfg.agent_config.mlp_widths) for j in jobs} == {
        ("moore", (64, 64))}
    # one preset and no values: runs go where `mtrl train` puts them
    assert [j.key for j in expand([Grid(agents=("mtppo",), suites=(TOY,))])] == [f"{TOY}/mtppo/0"]


def test_failed_run_reports_error_and_log_and_others_finish(tmp_path, capsys):
    runs = tmp_path / "runs"
    argv = ["sweep", "--agents", "test_sweep:BROKEN", "random", "--suites", TOY, *CHEAP,
            "--runs-dir", str(runs), "--jobs", "1"]  # fmt: skip
    assert main(argv) == 1
    out = capsys.readouterr().out
    log = runs / TOY / "test_sweep:BROKEN/0/sweep.log"
    assert f"failed   {TOY}/test_sweep:BROKEN/0" in out
    assert "error: RuntimeError: this agent cannot train" in out and f"log: {log}" in out
    assert "Traceback" in log.read_text() and "this agent cannot train" in log.read_text()
    assert (runs / TOY / "random/0/DONE").exists() and "1 done, 1 failed" in out


def test_process_pool_writes_what_one_process_writes(tmp_path, capsys):
    grid = [Grid(agents=("random",), suites=(TOY, BANDIT), seeds=(0, 1), steps=5,
                 eval_episodes=3)]  # fmt: skip
    one, pool = tmp_path / "one", tmp_path / "pool"
    run_sweep(grid, Store(one), jobs=1, progress=False)
    capsys.readouterr()
    outcomes = run_sweep(grid, Store(pool), jobs=2, progress=False)
    assert [o.state for o in outcomes] == ["done"] * 4
    assert records(one) == records(pool) and len(records(one)) == 4
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("running")]
    assert len(lines) == 4 and f"pid {os.getpid()})" not in "".join(lines)  # in the workers


def test_remote_store_stages_uploads_and_resumes(tmp_path, capsys):
    """An fsspec store (``memory://``, in this process): runs work in scratch directories and
    upload; a run whose ``DONE`` and last protocol's records are gone resumes from the store and
    writes only those records again."""
    import fsspec

    url, grid = "memory://sweep-test/runs", [Grid(agents=("random",), suites=(TOY,), steps=5,
                                                  eval_episodes=2)]  # fmt: skip
    fs = fsspec.filesystem("memory")
    fs.rm("/sweep-test", recursive=True) if fs.exists("/sweep-test") else None
    store = Store(url, sync_every=0)
    assert store.remote and run_sweep(grid, store, jobs=1, progress=False)[0].state == "done"
    run = f"/sweep-test/runs/{TOY}/random/0"
    assert {Path(p).name for p in fs.find(run)} >= {"DONE", "config.json", "eval.jsonl", "env.json"}
    first = [json.loads(line) for line in fs.cat(f"{run}/eval.jsonl").decode().splitlines()]
    fs.rm(f"{run}/DONE")
    fs.pipe(f"{run}/eval.jsonl", "".join(json.dumps(r) + "\n" for r in first
                                         if r["protocol"] == "mt").encode())  # fmt: skip
    assert store.state(expand(grid)[0]) == "started"
    assert run_sweep(grid, store, jobs=1, progress=False)[0].state == "done"
    assert "resumed  " in capsys.readouterr().out
    again = [json.loads(line) for line in fs.cat(f"{run}/eval.jsonl").decode().splitlines()]
    assert [r for r in again if r["protocol"] == "mt"] == [r for r in first
                                                           if r["protocol"] == "mt"]  # fmt: skip
    assert [(r["protocol"], r["task"]) for r in again] == [(r["protocol"], r["task"])
                                                           for r in first]  # fmt: skip
    assert fs.exists(f"{run}/DONE") and "resumed" in fs.cat(f"{run}/sweep.log").decode()
    with pytest.raises(Exception, match="different config"):  # checked before anything runs
        run_sweep([dataclasses.replace(grid[0], eval_episodes=3)], store, jobs=1, progress=False)
    fs.rm("/sweep-test", recursive=True)
