"""The leaderboard loop end to end: a user's own agent package -> ``mtrl compare`` -> rank;
``mtrl verify`` on correct, swapped and inconsistent checkpoints; ``mtrl leaderboard``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mtrl_bench import bundle as bundles
from mtrl_bench import submit
from mtrl_bench.cli import main
from mtrl_bench.leaderboard import get_leaderboard

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "my_agent"
MTRL = Path(sys.executable).parent / "mtrl"
TOY = "toy-goal-line/v1"


def test_compare_a_user_package_against_the_committed_baselines(tmp_path: Path) -> None:
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
           "-e", str(EXAMPLE)]  # fmt: skip
    subprocess.run(pip, check=True, capture_output=True)
    try:
        listed = subprocess.run([str(MTRL), "list", "--kind", "agents"], capture_output=True,
                                text=True, check=True).stdout  # fmt: skip
        assert "my-linear" in listed
        out = subprocess.run(
            [str(MTRL), "compare", "--leaderboard", TOY, "--agent", "my-linear",
             "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "mine.json")],
            capture_output=True, text=True, cwd=tmp_path,
        )  # fmt: skip
    finally:
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "-y", "-q", "my-agent"],
                       capture_output=True)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    mine = [line for line in lines if line.rstrip().endswith("<")]
    assert len(mine) == 1 and "my-linear" in mine[0] and "6,000" in mine[0]
    for baseline in ("random", "mtppo", "moore", "moe", "sb3-ppo"):
        assert any(line.strip().startswith(baseline) and "[" in line for line in lines), baseline
    assert "P(my-linear > other) on mt:" in out.stdout and "goal-line-14" in out.stdout
    b, lb = bundles.load(tmp_path / "mine.json")
    assert lb.key == TOY and b["seeds"] == [0, 1, 2] and b["agent"]["name"] == "my-linear"


@pytest.fixture(scope="module")
def entry(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A bundle of the example agent (by import path) and its run directories."""
    root = tmp_path_factory.mktemp("verify")
    sys.path.insert(0, str(EXAMPLE))
    lb = get_leaderboard(TOY)
    b = submit.submit(lb, "my_agent:SPEC", seeds=[0, 1, 2], runs_dir=root / "runs",
                      progress=False)  # fmt: skip
    return bundles.write(b, root / "bundle" / "mine.json"), root / "runs" / lb.suite / "my_agent:SPEC"


def test_verify_accepts_the_submitted_checkpoints(entry, tmp_path, capsys) -> None:
    path, runs = entry
    bundle = shutil.copy(path, tmp_path / "mine.json")
    assert main(["verify", str(bundle), "--checkpoints", str(runs)]) == 0
    assert "verified" in capsys.readouterr().out
    record = json.loads((tmp_path / "mine.verify.json").read_text())
    assert record["passed"] and record["protocols"]["mt"]["abs_diff"] == 0.0
    assert main(["leaderboard", "--bundles", str(tmp_path), "--out", str(tmp_path / "site")]) == 0
    assert "<td>yes</td>" in (tmp_path / "site" / "toy-goal-line-v1.html").read_text()


def test_verify_refuses_a_swapped_checkpoint(entry, tmp_path, capsys) -> None:
    path, runs = entry
    swapped = tmp_path / "runs"
    shutil.copytree(runs, swapped)
    a, b = swapped / "0" / "ckpt" / "weights.npz", swapped / "1" / "ckpt" / "weights.npz"
    data = a.read_bytes()
    a.write_bytes(b.read_bytes())
    b.write_bytes(data)
    assert main(["verify", str(path), "--checkpoints", str(swapped)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "0/weights.npz does not have the bundle's SHA-256" in err


def test_verify_fails_when_the_scores_do_not_reproduce(entry, tmp_path, capsys) -> None:
    path, runs = entry
    b, lb = bundles.load(path)
    for r in b["results"]:  # digests intact, claimed scores inflated
        r["score"] = min(1.0, r["score"] + 0.3)
    forged = bundles.make_bundle(lb, b["agent"], b["results"], b["provenance"], b["budget"],
                                 b["checkpoints"], b["curves"])  # fmt: skip
    bundle = bundles.write(forged, tmp_path / "forged.json")
    with pytest.raises(SystemExit) as exit_info:
        main(["verify", str(bundle), "--checkpoints", str(runs)])
    assert exit_info.value.code == 1
    assert "NOT verified" in capsys.readouterr().out
    assert json.loads((tmp_path / "forged.verify.json").read_text())["passed"] is False
