"""Malformed invocations of every subcommand: each is one line on stderr naming the bad value,
exit status 2, no traceback, and the workspace (files, bytes, mtimes) exactly as before.

The workspace holds a real run directory (the runner, toy suite, ``random`` agent, a tiny
budget), a plain file and an empty directory; cases corrupt a copy of it before they run. The
CLI runs in-process in the workspace (so default output paths land in it too), and a handful of
cases also through a real ``mtrl`` process.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mtrl_bench.cli import main
from mtrl_bench.runner import RunConfig, run

RUN = "runs/toy/goal-line-v1/random/0"
TRAIN = ["train", "--suite", "toy/goal-line-v1", "--agent", "random"]
RESUME = [*TRAIN, "--steps", "5", "--eval-episodes", "2"]  # the saved run's config
MTPPO = ["train", "--suite", "toy/goal-line-v1", "--agent", "mtppo", "--preset", "ci"]
TRANSFER = ["transfer", "--suite", "control-jax/cartpole-masscart-v1"]
SUBMIT = ["submit", "--leaderboard", "toy-goal-line/v1"]
SWEEP = ["sweep", "--agents", "random", "--suites", "toy/goal-line-v1", "--steps", "5",
         "--eval-episodes", "2"]  # the saved run's config
SWEEP_MTPPO = ["sweep", "--agents", "mtppo", "--presets", "ci", "--suites", "toy/goal-line-v1"]
READ_ONLY = "read_only/out"  # under a directory made read-only (chmod 0o500) by the test


def write(rel, data):
    def setup(ws):
        (ws / rel).parent.mkdir(parents=True, exist_ok=True)
        (ws / rel).write_bytes(data if isinstance(data, bytes) else data.encode())

    return setup


def truncate(rel):
    def setup(ws):
        data = (ws / rel).read_bytes()
        (ws / rel).write_bytes(data[: len(data) // 2])

    return setup


def unfinished(*setups):
    """The run without its DONE marker (so ``train`` resumes it), then ``setups``."""

    def setup(ws):
        (ws / RUN / "DONE").unlink()
        for s in setups:
            s(ws)

    return setup


def config(**fields):
    base = {"suite": "toy/goal-line-v1", "agent": "random", "seed": 0, "agent_config": {}}
    return write(f"{RUN}/config.json", json.dumps({**base, **fields}))


# (id, argv, a substring that names the bad value, setup of the workspace)
CASES = [
    ("list-bad-kind", ["list", "--kind", "bogus"], "'bogus'", None),
    ("unknown-command", ["lst"], "lst", None),
    ("list-unknown-option", ["list", "--kindd", "agents"], "--kindd", None),
    ("train-unknown-suite", ["train", "--suite", "toy/nope-v1", "--agent", "random"], "toy/nope-v1", None),
    ("train-unknown-agent", ["train", "--suite", "toy/goal-line-v1", "--agent", "nope"], "'nope'", None),
    ("train-unknown-preset", [*TRAIN, "--preset", "turbo"], "'turbo'", None),
    ("train-missing-suite", ["train", "--agent", "random"], "--suite", None),
    ("train-negative-steps", [*TRAIN, "--steps", "-5"], "got -5", None),
    ("train-zero-steps", [*TRAIN, "--steps", "0"], "steps must be positive, got 0", None),
    ("train-non-integer-steps", [*TRAIN, "--steps", "1.5"], "'1.5'", None),
    ("train-nan-steps", [*TRAIN, "--steps", "nan"], "'nan'", None),
    ("train-negative-seed", [*TRAIN, "--seed", "-1"], "got -1", None),
    ("train-negative-in-seeds", [*TRAIN, "--seeds", "0", "-2"], "got -2", None),
    ("train-zero-eval-episodes", [*TRAIN, "--eval-episodes", "0"], "eval_episodes must be positive", None),
    ("train-zero-jobs", [*TRAIN, "--jobs", "0"], "jobs must be positive, got 0", None),
    ("train-unknown-protocol", [*TRAIN, "--protocols", "mt", "nope"], "'nope'", None),
    ("train-runs-dir-is-file", [*TRAIN, "--runs-dir", "a_file.txt"], "a_file.txt", None),
    ("train-runs-dir-under-file", [*TRAIN, "--runs-dir", "a_file.txt/runs"], "a_file.txt is a file", None),
    ("train-runs-dir-read-only", [*TRAIN, "--runs-dir", READ_ONLY], "not writable", None),
    ("train-run-dir-is-file", [*RESUME, "--seed", "1"], "random/1 is a file",
     write("runs/toy/goal-line-v1/random/1", "x")),
    ("train-resume-other-config", [*TRAIN, "--steps", "5", "--eval-episodes", "3"], "different config", None),
    ("train-config-corrupted", RESUME, "config.json is corrupted", write(f"{RUN}/config.json", '{"suite": "toy/go')),
    ("train-config-empty", RESUME, "config.json is corrupted", write(f"{RUN}/config.json", "")),
    ("train-resume-eval-truncated", RESUME, "eval.jsonl:", unfinished(truncate(f"{RUN}/eval.jsonl"))),
    ("train-resume-metrics-corrupted", RESUME, "metrics.jsonl:2 is corrupted",
     unfinished(write(f"{RUN}/metrics.jsonl", '{"schema": 1, "time": "t"}\n{"schema": 1, "ti'))),
    ("train-resume-metrics-not-utf8", RESUME, "metrics.jsonl is corrupted",
     unfinished(write(f"{RUN}/metrics.jsonl", b"\xff\xfe\x00garbage"))),
    ("agent-config-unknown-field", [*MTPPO, "--agent-config.nope", "1"], "--agent-config.nope", None),
    ("agent-config-no-fields", [*TRAIN, "--agent-config.lr", "1e-4"], "--agent-config.lr", None),
    ("agent-config-bad-float", [*MTPPO, "--agent-config.lr-actor", "fast"], "'fast'", None),
    ("agent-config-nan", [*MTPPO, "--agent-config.lr-actor", "nan"], "lr_actor must be finite", None),
    ("agent-config-bad-choice", [*MTPPO, "--agent-config.network", "cnn"], "'cnn'", None),
    ("toml-syntax", [*MTPPO, "--agent-config-file", "bad.toml"], "bad.toml", write("bad.toml", "lr_actor = = 1\n")),
    ("toml-unknown-field", [*MTPPO, "--agent-config-file", "o.toml"], "unknown field 'lr'", write("o.toml", "lr = 1e-4\n")),
    ("toml-wrong-type", [*MTPPO, "--agent-config-file", "o.toml"], "lr_actor must be float", write("o.toml", 'lr_actor = "fast"\n')),
    ("toml-wrong-tuple", [*MTPPO, "--agent-config-file", "o.toml"], "mlp_widths", write("o.toml", 'mlp_widths = [64, "x"]\n')),
    ("toml-nan", [*MTPPO, "--agent-config-file", "o.toml"], "lr_actor must be finite", write("o.toml", "lr_actor = nan\n")),
    ("toml-missing", [*MTPPO, "--agent-config-file", "missing.toml"], "missing.toml", None),
    ("toml-is-directory", [*MTPPO, "--agent-config-file", "empty"], "empty", None),
    ("eval-missing-run-dir", ["eval", "--run-dir", "runs/nope"], "runs/nope", None),
    ("eval-dir-without-config", ["eval", "--run-dir", "empty"], "empty is not a run directory", None),
    ("eval-run-dir-is-file", ["eval", "--run-dir", "a_file.txt"], "a_file.txt is not a run directory", None),
    ("eval-config-corrupted", ["eval", "--run-dir", RUN], "config.json is corrupted", write(f"{RUN}/config.json", '{"suite": "toy/go')),
    ("eval-config-truncated", ["eval", "--run-dir", RUN], "config.json is corrupted", truncate(f"{RUN}/config.json")),
    ("eval-config-empty", ["eval", "--run-dir", RUN], "config.json is corrupted", write(f"{RUN}/config.json", "")),
    ("eval-config-not-utf8", ["eval", "--run-dir", RUN], "config.json is corrupted", write(f"{RUN}/config.json", b"\xff\xfe\x00")),
    ("eval-config-not-object", ["eval", "--run-dir", RUN], "config.json is not a run config", write(f"{RUN}/config.json", "[1, 2]")),
    ("eval-config-no-suite", ["eval", "--run-dir", RUN], "'suite'", write(f"{RUN}/config.json", '{"agent": "random"}')),
    ("eval-config-unknown-agent", ["eval", "--run-dir", RUN], "'nope'", config(agent="nope")),
    ("eval-config-unknown-suite", ["eval", "--run-dir", RUN], "'toy/nope-v1'", config(suite="toy/nope-v1")),
    ("eval-bad-split", ["eval", "--run-dir", RUN, "--split", "val"], "'val'", None),
    ("eval-zero-episodes", ["eval", "--run-dir", RUN, "--episodes", "0"], "episodes must be positive", None),
    ("eval-non-integer-episodes", ["eval", "--run-dir", RUN, "--episodes", "two"], "'two'", None),
    ("eval-negative-seed", ["eval", "--run-dir", RUN, "--seed", "-1"], "got -1", None),
    ("report-missing-runs", ["report", "--runs", "runs/nope"], "runs/nope", None),
    ("report-runs-is-file", ["report", "--runs", "a_file.txt"], "a_file.txt is a file", None),
    ("report-runs-empty-dir", ["report", "--runs", "empty"], "no evaluation records to report under empty", None),
    ("report-eval-truncated", ["report", "--runs", "runs"], "eval.jsonl:", truncate(f"{RUN}/eval.jsonl")),
    ("report-eval-empty", ["report", "--runs", "runs"], "no evaluation records to report under runs", write(f"{RUN}/eval.jsonl", "")),
    ("report-eval-missing-keys", ["report", "--runs", "runs"], "eval.jsonl:1 is missing keys", write(f"{RUN}/eval.jsonl", '{"schema": 1}\n')),
    ("report-eval-not-utf8", ["report", "--runs", "runs"], "eval.jsonl is corrupted", write(f"{RUN}/eval.jsonl", b"\xff\xfe\x00")),
    ("report-zero-reps", ["report", "--runs", "runs", "--reps", "0"], "reps must be positive, got 0", None),
    ("report-nan-reps", ["report", "--runs", "runs", "--reps", "nan"], "'nan'", None),
    ("report-out-is-file", ["report", "--runs", "runs", "--out", "a_file.txt"], "a_file.txt is a file", None),
    ("report-out-under-file", ["report", "--runs", "runs", "--out", "a_file.txt/out"], "a_file.txt is a file", None),
    ("report-out-read-only", ["report", "--runs", "runs", "--out", READ_ONLY], "not writable", None),
    ("check-unknown-suite", ["check", "toy/nope-v1"], "toy/nope-v1", None),
    ("check-missing-suite", ["check"], "suite", None),
    ("check-zero-steps", ["check", "toy/bandit-v1", "--steps", "0"], "steps must be positive, got 0", None),
    ("check-non-integer-steps", ["check", "toy/bandit-v1", "--steps", "x"], "'x'", None),
    ("demo-unknown-leaderboard", ["demo", "--leaderboard", "atari/v1"], "unknown leaderboard 'atari/v1'", None),
    ("demo-negative-seed", ["demo", "--seeds", "-1", "0", "1"], "got -1", None),
    ("demo-no-seeds", ["demo", "--seeds"], "seeds", None),
    ("demo-zero-jobs", ["demo", "--jobs", "0"], "jobs must be positive, got 0", None),
    ("demo-out-is-file", ["demo", "--out", "a_file.txt"], "a_file.txt is a file", None),
    ("demo-runs-dir-is-file", ["demo", "--runs-dir", "a_file.txt"], "a_file.txt", None),
    ("transfer-not-jax-suite", ["transfer", "--suite", "toy/goal-line-v1"], "toy/goal-line-v1", None),
    ("transfer-unknown-suite", ["transfer", "--suite", "control-jax/nope-v1"], "control-jax/nope-v1", None),
    ("transfer-zero-steps", [*TRANSFER, "--steps", "0"], "steps must be positive, got 0", None),
    ("transfer-unknown-preset", [*TRANSFER, "--preset", "turbo"], "'turbo'", None),
    ("transfer-bad-task", [*TRANSFER, "--tasks", "999"], "999", None),
    ("transfer-negative-seed", [*TRANSFER, "--seeds", "-1"], "-1", None),
    ("transfer-non-integer-chunk", [*TRANSFER, "--chunk", "abc"], "'abc'", None),
    ("transfer-out-is-file", [*TRANSFER, "--out", "a_file.txt"], "a_file.txt is a file", None),
    ("submit-unknown-leaderboard", [*SUBMIT[:1], "--leaderboard", "nope/v1", "--agent", "random"], "'nope/v1'", None),
    ("submit-missing-leaderboard", ["submit", "--agent", "random"], "--leaderboard", None),
    ("submit-neither-agent-nor-runs", SUBMIT, "--from-runs", None),
    ("submit-unknown-agent", [*SUBMIT, "--agent", "nope"], "'nope'", None),
    ("submit-zero-jobs", [*SUBMIT, "--agent", "random", "--jobs", "0"], "jobs must be positive, got 0", None),
    ("submit-from-runs-empty", [*SUBMIT, "--from-runs", "empty"], "empty", None),
    ("submit-from-runs-is-file", [*SUBMIT, "--from-runs", "a_file.txt"], "a_file.txt", None),
    ("submit-from-run-config-corrupted", [*SUBMIT, "--from-runs", RUN], "config.json", write(f"{RUN}/config.json", '{"suite": "toy/go')),
    ("submit-out-under-file", [*SUBMIT, "--agent", "random", "--out", "a_file.txt/b.json"], "a_file.txt is a file", None),
    ("compare-unknown-leaderboard", ["compare", "--leaderboard", "nope/v1", "--agent", "random"], "'nope/v1'", None),
    ("compare-bundle-not-json", ["compare", *SUBMIT[1:], "--bundle", "a_file.txt"], "a_file.txt", None),
    ("compare-bundle-missing", ["compare", *SUBMIT[1:], "--bundle", "missing.json"], "missing.json", None),
    ("verify-bundle-missing", ["verify", "missing.json", "--checkpoints", "empty"], "missing.json", None),
    ("verify-nan-tolerance", ["verify", "a_file.txt", "--checkpoints", "empty", "--tolerance", "nan"], "got nan", None),
    ("leaderboard-bundles-missing", ["leaderboard", "--bundles", "missing"], "missing", None),
    ("leaderboard-out-is-file", ["leaderboard", "--bundles", "empty", "--out", "a_file.txt"], "a_file.txt", None),
    ("datasets-unknown-suite", ["datasets", "make", "toy/nope-v1"], "toy/nope-v1", None),
    ("datasets-numpy-suite", ["datasets", "make", "toy/goal-line-v1"], "toy/goal-line-v1", None),
    ("datasets-unknown-preset", ["datasets", "make", "darkroom/dpt-v1", "--preset", "turbo"], "'turbo'", None),
    ("datasets-zero-updates", ["datasets", "make", "darkroom/dpt-v1", "--updates", "0"], "updates must be positive, got 0", None),
    ("datasets-out-under-file", ["datasets", "make", "darkroom/dpt-v1", "--out", "a_file.txt/d.npz"], "a_file.txt is a file", None),
    ("datasets-info-missing", ["datasets", "info", "missing.npz"], "missing.npz", None),
    ("datasets-info-not-npz", ["datasets", "info", "a_file.txt"], "a_file.txt", None),
    ("sweep-no-agents", ["sweep", "--suites", "toy/goal-line-v1"], "at least one agent", None),
    ("sweep-no-suites", ["sweep", "--agents", "random"], "suites or leaderboards", None),
    ("sweep-unknown-agent", [*SWEEP, "--agents", "nope"], "'nope'", None),
    ("sweep-unknown-suite", [*SWEEP, "--suites", "toy/goal-line-v1", "toy/nope-v1"], "toy/nope-v1", None),
    ("sweep-unknown-preset", [*SWEEP, "--presets", "turbo"], "'turbo'", None),
    ("sweep-negative-seed", [*SWEEP, "--seeds", "0", "-1"], "got [0, -1]", None),
    ("sweep-zero-steps", [*SWEEP, "--steps", "0"], "steps must be positive, got 0", None),
    ("sweep-unknown-protocol", [*SWEEP, "--protocols", "nope"], "'nope'", None),
    ("sweep-negative-jobs", [*SWEEP, "--jobs", "-1"], "jobs must be >= 0", None),
    ("sweep-zero-num-cpus", [*SWEEP, "--num-cpus", "0"], "num_cpus must be positive, got 0.0", None),
    ("sweep-bad-executor", [*SWEEP, "--executor", "slurm"], "'slurm'", None),
    ("sweep-runs-dir-is-file", [*SWEEP, "--runs-dir", "a_file.txt"], "a_file.txt", None),
    ("sweep-resume-other-config", [*SWEEP[:-1], "3"], "different config", None),
    ("sweep-leaderboard-and-steps", ["sweep", "--agents", "random", "--leaderboards", "toy-goal-line/v1", "--steps", "5"], "cannot be set with leaderboards", None),
    ("sweep-agent-config-unknown-field", [*SWEEP_MTPPO, "--agent-config.nope", "1"], "agent_config.nope", None),
    ("sweep-agent-config-bad-float", [*SWEEP_MTPPO, "--agent-config.lr-actor", "1e-3", "fast"], "'fast'", None),
    ("sweep-agent-config-no-value", [*SWEEP_MTPPO, "--agent-config.lr-actor"], "--agent-config.lr-actor", None),
    ("sweep-agent-config-nan", [*SWEEP_MTPPO, "--agent-config.lr-actor", "nan"], "lr_actor must be finite", None),
    ("sweep-file-missing", ["sweep", "--file", "missing.toml"], "missing.toml", None),
    ("sweep-file-syntax", ["sweep", "--file", "s.toml"], "s.toml is not valid TOML", write("s.toml", "agents = [\n")),
    ("sweep-file-unknown-key", ["sweep", "--file", "s.toml"], "unknown key 'agent'", write("s.toml", 'agent = "random"\n')),
    ("sweep-file-wrong-type", ["sweep", "--file", "s.toml"], "seeds must be a non-empty list of int",
     write("s.toml", 'agents = ["random"]\nsuites = ["toy/goal-line-v1"]\nseeds = ["zero"]\n')),
    ("sweep-file-bad-grid", ["sweep", "--file", "s.toml"], "[[grid]]", write("s.toml", 'grid = 3\n')),
]  # fmt: skip
BY_ID = {c[0]: c for c in CASES}
#: also run through a real ``mtrl`` process
SUBPROCESS = ["train-nan-steps", "train-runs-dir-is-file", "agent-config-unknown-field",
              "toml-syntax", "eval-config-corrupted", "report-eval-truncated", "unknown-command"]  # fmt: skip


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    root = tmp_path_factory.mktemp("template")
    cfg = RunConfig(suite="toy/goal-line-v1", agent="random", steps=5, eval_episodes=2)
    run(cfg, root / "runs", progress=False)
    (root / "a_file.txt").write_text("a file, not a directory\n")
    (root / "empty").mkdir()
    (root / "read_only").mkdir()
    return root


@pytest.fixture
def workspace(template, tmp_path, monkeypatch):
    ws = tmp_path / "ws"
    shutil.copytree(template, ws)
    monkeypatch.chdir(ws)
    yield ws
    (ws / "read_only").chmod(0o700)


def prepare(ws, argv, setup):
    if READ_ONLY in argv:
        if os.geteuid() == 0:
            pytest.skip("root ignores permissions; the '*-under-file' cases cover unwritable paths")
        (ws / "read_only").chmod(0o500)
    if setup is not None:
        setup(ws)
    return snapshot(ws)


def snapshot(root):
    """Every path under ``root`` with its kind, bytes and mtime."""
    return {
        str(p.relative_to(root)): (p.is_dir(), None if p.is_dir() else p.read_bytes(),
                                   p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
    }  # fmt: skip


def assert_one_line(err, expect):
    assert "Traceback" not in err
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith("error: ") and err.strip() != "error:", err
    assert expect in err, err


def test_table_is_large_and_covers_every_subcommand(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    listed = capsys.readouterr().out.split("{", 1)[1].split("}", 1)[0].split(",")
    assert len(CASES) >= 30 and len(BY_ID) == len(CASES)
    assert set(listed) <= {argv[0] for _, argv, _, _ in CASES}, listed


@pytest.mark.parametrize("case_id,argv,expect,setup", CASES, ids=[c[0] for c in CASES])
def test_malformed_invocation(workspace, capsys, case_id, argv, expect, setup):
    before = prepare(workspace, argv, setup)
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert "Traceback" not in out
    assert_one_line(err, expect)
    assert snapshot(workspace) == before


def _mtrl():
    script = Path(sys.executable).with_name("mtrl")
    return [str(script)] if script.exists() else [sys.executable, "-m", "mtrl_bench.cli"]


@pytest.mark.parametrize("case_id", SUBPROCESS)
def test_malformed_invocation_subprocess(workspace, case_id):
    _, argv, expect, setup = BY_ID[case_id]
    before = prepare(workspace, argv, setup)
    proc = subprocess.run([*_mtrl(), *argv], cwd=workspace, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stdout
    assert_one_line(proc.stderr, expect)
    assert snapshot(workspace) == before


def test_only_bad_input_is_one_line():
    """``main`` shortens ``UsageError`` and ``OSError`` on a path; anything else is a bug and
    keeps its traceback."""
    from mtrl_bench.errors import UsageError, input_error

    assert input_error(UsageError("bad value 'x'\nsecond line")) == "bad value 'x' second line"
    assert "runs/x" in input_error(NotADirectoryError(20, "Not a directory", "runs/x"))
    for bug in (KeyError("suite"), TypeError("x"), OSError("no path"), ValueError("x")):
        assert input_error(bug) is None
