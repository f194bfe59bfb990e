"""Run directories: provenance, atomic writes, resume, refusal of a different config."""

import json

import pytest

from mtrl_bench.errors import UsageError
from mtrl_bench.results import EVAL_KEYS, RunDir, collect_eval_records, read_jsonl
from mtrl_bench.runner import RunConfig, run, sweep

CFG = RunConfig(suite="toy/goal-line-v1", agent="random", steps=10, eval_episodes=4)


def snapshot(root):
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_run_writes_config_env_eval_done(tmp_path):
    rd = run(CFG, tmp_path, progress=False)
    assert rd.path == tmp_path / "toy/goal-line-v1/random/0"
    assert rd.done
    config = json.loads(rd.config_path.read_text())
    assert config["suite"] == "toy/goal-line-v1" and config["steps"] == 10
    env = json.loads((rd.path / "env.json").read_text())
    assert {"versions", "git_sha", "device", "python"} <= set(env)
    assert env["versions"]["gymnasium"]
    records = rd.read_eval()
    assert [r["protocol"] for r in records] == ["mt"] * 3 + ["zero_shot"]
    for r in records:
        assert set(EVAL_KEYS) <= set(r)
        assert r["schema"] == 1 and r["protocol_version"] == 1 and r["episodes"] == 4
        assert r["git_sha"] and r["versions"] and r["suite_options"] == {}


def test_rerun_skips_finished_run(tmp_path):
    run(CFG, tmp_path, progress=False)
    before = snapshot(tmp_path)
    run(CFG, tmp_path, progress=False)
    assert snapshot(tmp_path) == before


def test_unfinished_run_resumes_without_duplicating_records(tmp_path):
    rd = run(CFG, tmp_path, progress=False)
    (rd.path / "DONE").unlink()
    run(CFG, tmp_path, progress=False)
    assert len(rd.read_eval()) == 4 and rd.done


def test_run_resumed_between_protocols_writes_the_same_records(tmp_path):
    """A crash after ``mt`` was recorded: the rerun evaluates ``zero_shot`` with a fresh policy,
    and its records equal an uninterrupted run's (the random policy draws from the RNG that
    ``evaluate`` seeds per protocol, not from a generator carried over from ``mt``)."""
    whole = run(CFG, tmp_path / "a", progress=False).read_eval()
    rd = RunDir(tmp_path / "b", CFG.suite, CFG.agent, CFG.seed)
    run(CFG, tmp_path / "b", progress=False)
    lines = rd.eval_path.read_text().splitlines(keepends=True)
    rd.eval_path.write_text("".join(lines[:3]))  # the zero_shot row was never written
    (rd.path / "DONE").unlink()
    resumed = run(CFG, tmp_path / "b", progress=False).read_eval()
    volatile = {"time", "wall_time", "git_sha", "versions"}
    strip = [{k: v for k, v in r.items() if k not in volatile} for r in whole]
    assert [{k: v for k, v in r.items() if k not in volatile} for r in resumed] == strip
    assert strip[-1]["protocol"] == "zero_shot"


def test_different_config_is_refused_and_nothing_written(tmp_path):
    run(CFG, tmp_path, progress=False)
    (tmp_path / "toy/goal-line-v1/random/0/DONE").unlink()
    before = snapshot(tmp_path)
    changed = RunConfig(**{**CFG.__dict__, "eval_episodes": 5})
    with pytest.raises(UsageError, match=r"holds a different config \(keys \['eval_episodes'\]"):
        run(changed, tmp_path, progress=False)
    with pytest.raises(UsageError, match="different config"):
        sweep(changed, ["random"], [1, 0], tmp_path, progress=False)
    assert snapshot(tmp_path) == before  # seed 1 was not started either


@pytest.mark.parametrize(
    "damage", ['{"schema": 1, "suite": "toy/go', "not json at all", '{"schema": 1}']
)
def test_corrupted_or_truncated_eval_jsonl(tmp_path, damage):
    rd = run(CFG, tmp_path, progress=False)
    with open(rd.eval_path, "a") as f:
        f.write(damage + "\n")
    (rd.path / "DONE").unlink()
    before = snapshot(tmp_path)
    with pytest.raises(UsageError, match=r"eval\.jsonl:5 (is corrupted or truncated|is missing)"):
        run(CFG, tmp_path, progress=False)
    with pytest.raises(UsageError, match=r"eval\.jsonl:5"):
        collect_eval_records([tmp_path])
    assert snapshot(tmp_path) == before


def test_schema_version_checked(tmp_path):
    rd = run(CFG, tmp_path, progress=False)
    rows = rd.read_eval()
    rd.eval_path.write_text(json.dumps({**rows[0], "schema": 99}) + "\n")
    with pytest.raises(UsageError, match="schema 99, expected 1"):
        read_jsonl(rd.eval_path, EVAL_KEYS)


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("steps", 0, "steps must be positive, got 0"),
        ("eval_episodes", -2, "eval_episodes must be positive, got -2"),
        ("seed", -1, "seed must be non-negative, got -1"),
        ("suite", "toy/bandit", "unknown suite 'toy/bandit'; closest: toy/bandit-v1"),
        ("agent", "sb3-pop", "unknown agent 'sb3-pop'; closest: sb3-ppo"),
        ("preset", "huge", "unknown preset 'huge' for agent random; allowed: default"),
        ("protocols", ("mt", "few"), "unknown protocol 'few'"),
    ],
)
def test_bad_run_config_writes_nothing(tmp_path, field, value, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        run(RunConfig(**{**CFG.__dict__, field: value}), tmp_path, progress=False)
    assert not any(tmp_path.iterdir())


def test_runs_dir_does_not_exist(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        collect_eval_records([tmp_path / "nope"])


def test_rundir_layout(tmp_path):
    rd = RunDir(tmp_path, "minigrid/mt3-v1", "sb3-ppo", 2)
    assert rd.path == tmp_path / "minigrid" / "mt3-v1" / "sb3-ppo" / "2"
    assert not rd.path.exists()


def test_provenance_records_dirty_tree_frameworks_and_resume_history(tmp_path):
    """env.json: git_dirty and framework / simulator versions; a resume appends to "resumes"
    and leaves the first start's record as it was."""
    from mtrl_bench.results import RunDir, git_dirty

    rd = RunDir(tmp_path, "toy/goal-line-v1", "random", 0)
    rd.open({"a": 1})
    first = json.loads((rd.path / "env.json").read_text())
    assert first["git_dirty"] == git_dirty() and isinstance(first["git_dirty"], bool)
    assert {"jax", "flax", "optax", "mujoco", "scikit-learn", "eclipse-sumo"} <= set(first["versions"])
    rd.open({"a": 1})
    rd.open({"a": 1})
    env = json.loads((rd.path / "env.json").read_text())
    assert {k: v for k, v in env.items() if k != "resumes"} == first
    assert len(env["resumes"]) == 2 and all("git_sha" in r for r in env["resumes"])
