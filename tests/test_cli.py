"""Every subcommand, in-process, plus the one-line errors of bad input."""

import json
import re
import subprocess
import sys

import pytest

from mtrl_bench.cli import main


def snapshot(root):
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_list(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "minigrid/mt3-v1" in out and "toy/bandit-v1" in out and "sb3-ppo" in out
    assert main(["list", "--kind", "agents"]) == 0
    assert "minigrid" not in capsys.readouterr().out


def test_list_imports_no_jax_mujoco_or_torch():
    code = (
        "import sys; from mtrl_bench.cli import main; main(['list']);"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('jax', 'mujoco', 'torch', 'metaworld', 'ray')];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_check(capsys):
    assert main(["check", "toy/bandit-v1", "--steps", "40"]) == 0
    out = capsys.readouterr().out
    assert "ok  gymnasium check_env on all 5 tasks" in out
    assert "ok  test: same seed gives an identical rollout" in out


def test_train_eval_report(tmp_path, capsys):
    runs = tmp_path / "runs"
    args = ["--suite", "toy/goal-line-v1", "--agent", "random", "--steps", "5"]
    assert main(["train", *args, "--seeds", "0", "1", "2", "--eval-episodes", "4",
                 "--runs-dir", str(runs)]) == 0  # fmt: skip
    for seed in (0, 1, 2):
        assert (runs / f"toy/goal-line-v1/random/{seed}/DONE").exists()
    capsys.readouterr()
    run_dir = runs / "toy/goal-line-v1/random/0"
    assert main(["eval", "--run-dir", str(run_dir), "--split", "test", "--episodes", "3"]) == 0
    out = capsys.readouterr().out
    assert "| goal-line-11 |" in out and "mean score" in out
    out_dir = tmp_path / "report"
    assert main(["report", "--runs", str(runs), "--out", str(out_dir), "--reps", "200"]) == 0
    table = capsys.readouterr().out
    assert "random" in table and "zero_shot" in table
    assert {p.name for p in out_dir.iterdir()} >= {"table.md", "table.csv", "table.tex",
                                                   "report.png"}  # fmt: skip


@pytest.mark.parametrize(
    "argv,message",
    [
        (["train", "--suite", "minigrid/mt9-v1", "--agent", "random"], "unknown suite 'minigrid/mt9-v1'; closest: "),
        (["train", "--suite", "toy/bandit-v1", "--agent", "moore-xl"], "unknown agent 'moore-xl'"),
        (["train", "--suite", "toy/bandit-v1", "--agent", "random", "--steps", "0"], "steps must be positive, got 0"),
        (["train", "--suite", "toy/bandit-v1", "--agent", "random", "--eval-episodes", "0"], "eval_episodes must be positive, got 0"),
        (["train", "--suite", "toy/bandit-v1", "--agent", "random", "--seeds", "-1"], "seed must be non-negative, got -1"),
        (["train", "--suite", "toy/bandit-v1", "--agent", "random", "--jobs", "0"], "jobs must be positive, got 0"),
        (["check", "toy/nope-v1"], "unknown suite 'toy/nope-v1'"),
        (["report", "--runs", "EMPTY"], "no evaluation records to report"),
        (["report", "--runs", "MISSING"], "does not exist"),
    ],
)  # fmt: skip
def test_bad_input_one_line_error_nothing_written(tmp_path, capsys, argv, message):
    (tmp_path / "EMPTY").mkdir()
    argv = [str(tmp_path / a) if a in ("EMPTY", "MISSING") else a for a in argv]
    before = snapshot(tmp_path)
    assert main([*argv, "--runs-dir", str(tmp_path / "runs")] if argv[0] == "train" else argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert snapshot(tmp_path) == before and not (tmp_path / "runs").exists()


def test_eval_bad_split_and_episodes(tmp_path, capsys):
    runs = tmp_path / "runs"
    main(["train", "--suite", "toy/bandit-v1", "--agent", "random", "--steps", "1",
          "--eval-episodes", "2", "--runs-dir", str(runs)])  # fmt: skip
    run_dir = str(runs / "toy/bandit-v1/random/0")
    capsys.readouterr()
    assert main(["eval", "--run-dir", run_dir, "--split", "val"]) == 2
    assert "unknown split 'val' for suite toy/bandit-v1; allowed: train, test" in capsys.readouterr().err
    assert main(["eval", "--run-dir", run_dir, "--episodes", "0"]) == 2
    assert "episodes must be positive, got 0" in capsys.readouterr().err
    assert main(["eval", "--run-dir", str(tmp_path)]) == 2
    assert "is not a run directory" in capsys.readouterr().err


def test_report_refuses_corrupted_eval_and_keeps_old_output(tmp_path, capsys):
    runs, out = tmp_path / "runs", tmp_path / "out"
    main(["train", "--suite", "toy/bandit-v1", "--agent", "random", "--steps", "1",
          "--eval-episodes", "2", "--runs-dir", str(runs)])  # fmt: skip
    assert main(["report", "--runs", str(runs), "--out", str(out), "--reps", "50"]) == 0
    before = snapshot(out)
    with open(runs / "toy/bandit-v1/random/0/eval.jsonl", "a") as f:
        f.write('{"schema": 1, "sui')
    capsys.readouterr()
    assert main(["report", "--runs", str(runs), "--out", str(out)]) == 2
    assert "is corrupted or truncated" in capsys.readouterr().err
    assert snapshot(out) == before


def test_demo_on_the_toy_leaderboard(tmp_path, capsys):
    """The main job end to end at a CI budget: submit, rank against the committed baselines,
    and a site holding every committed leaderboard plus the demo's entry."""
    runs, out = tmp_path / "runs", tmp_path / "demo"
    argv = ["demo", "--leaderboard", "toy-goal-line/v1", "--agent", "random", "--runs-dir",
            str(runs), "--out", str(out), "--seeds", "0", "1", "2", "--jobs", "1"]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    mine = [line for line in text.splitlines() if line.rstrip().endswith("<")]
    assert len(mine) == 1 and "random (demo run)" in mine[0]
    assert "mtppo" in text and "P(random (demo run) > other)" in text
    assert (out / "bundles/toy-goal-line-v1/random-demo.json").is_file()
    page = (out / "site/toy-goal-line-v1.html").read_text()
    assert "random (demo run)" in page and "sb3-ppo" in page
    assert (out / "site/minigrid-mt3-v1.html").is_file()
    assert f"open {(out / 'site/index.html').resolve().as_uri()}" in text


def test_train_agent_config_precedence_and_resume(tmp_path, capsys):
    """preset < --agent-config-file < --agent-config.FIELD; config.json records the result, eval
    uses it, and resuming with another override is refused with the run untouched."""
    from mtrl_bench.registry import get_agent

    ci = get_agent("sb3-ppo").presets["ci"]
    toml, runs = tmp_path / "o.toml", tmp_path / "runs"
    toml.write_text(f"n_epochs = {ci.n_epochs + 1}\nlearning_rate = 1e-3\n")
    argv = ["train", "--suite", "toy/bandit-v1", "--agent", "sb3-ppo", "--preset", "ci",
            "--steps", "64", "--eval-episodes", "1", "--runs-dir", str(runs),
            "--agent-config-file", str(toml)]  # fmt: skip
    assert main([*argv, "--agent-config.learning-rate", "5e-4"]) == 0
    run_dir = runs / "toy/bandit-v1/sb3-ppo/0"
    saved = json.loads((run_dir / "config.json").read_text())["agent_config"]
    assert saved["learning_rate"] == 5e-4  # the flag over the file
    assert saved["n_epochs"] == ci.n_epochs + 1  # the file over the preset
    assert saved["n_steps"] == ci.n_steps and saved["batch_size"] == ci.batch_size
    assert main(["eval", "--run-dir", str(run_dir), "--episodes", "1"]) == 0
    before = snapshot(tmp_path)
    capsys.readouterr()
    assert main([*argv, "--agent-config.learning-rate", "1e-4"]) == 2
    assert "holds a different config (keys ['agent_config'] differ)" in capsys.readouterr().err
    assert main([*argv, "--agent-config.learning-rate", "5e-4"]) == 0  # finished: skipped
    assert snapshot(tmp_path) == before


def _help(capsys, argv):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 0
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", capsys.readouterr().out).split())


def test_train_help_lists_agent_fields_with_preset_values(capsys):
    from mtrl_bench.registry import get_agent

    ci = get_agent("sb3-ppo").presets["ci"]
    text = _help(capsys, ["train", "--agent", "sb3-ppo", "--preset", "ci", "--help"])
    assert ("--agent-config.n-steps INT Rollout length per env between updates. "
            f"(default: {ci.n_steps})") in text  # fmt: skip
    assert f"--agent-config.learning-rate FLOAT Adam step size (constant). (default: {ci.learning_rate})" in text
    assert "--agent-config.features {flatten,minigrid_cnn}" in text
    plain = _help(capsys, ["train", "--help"])
    assert "`mtrl train --agent ID --help` lists its hyperparameters" in plain
    assert "--agent-config.n-steps" not in plain and "--agent-config-file" in plain
