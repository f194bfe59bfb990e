"""Leaderboard bundles: round trip, byte determinism, runs -> bundle checks, hostile input, ranks."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from mtrl_bench import bundle as bundles
from mtrl_bench import ranking, submit
from mtrl_bench.errors import UsageError
from mtrl_bench.leaderboard import get_leaderboard, leaderboards, parse_definition

TOY = "toy-goal-line/v1"
TASKS = ("goal-line-0", "goal-line-14", "goal-line-3")


def _results(rng: np.random.Generator, seeds: range, level: float) -> list[dict]:
    lb = get_leaderboard(TOY)
    out = []
    for protocol, tasks in (("mt", TASKS), ("zero_shot", ("goal-line-11",))):
        for seed in seeds:
            for i, task in enumerate(tasks):
                returns = np.clip(rng.normal(level, 0.1, lb.eval_episodes), 0, 1).round(6)
                out.append({
                    "protocol": protocol, "seed": seed, "task": task, "task_index": i,
                    "score": float(returns.mean()), "success": float((returns > 0).mean()),
                    "return": float(returns.mean()), "episodes": lb.eval_episodes,
                    "per_episode": {"return": returns.tolist(), "length": [5.0] * len(returns),
                                    "success": (returns > 0).astype(float).tolist(),
                                    "env_seed": [float(seed * 100 + j) for j in range(len(returns))],
                                    "env_episode": [0.0] * len(returns)},
                })  # fmt: skip
    return out


def make(name: str = "agent", level: float = 0.5, seeds: range = range(3), seed: int = 0) -> dict:
    lb = get_leaderboard(TOY)
    rng = np.random.default_rng(seed)
    return bundles.make_bundle(
        lb, {"name": name, "version": "1.0", "url": "https://example.org", "description": "x"},
        _results(rng, seeds, level), {str(s): {"git_sha": "0" * 40} for s in seeds},
        {"env_steps": lb.steps, "eval_episodes": lb.eval_episodes},
    )  # fmt: skip


def test_shipped_definitions_parse_and_name_their_files() -> None:
    boards = leaderboards()
    assert {"toy-goal-line/v1", "minigrid-mt3/v1", "minigrid-mt5/v1", "minigrid-mt7/v1",
            "metaworld-mt10/v2", "metaworld-mt10-cpu/v1"} <= set(boards)  # fmt: skip
    for key, lb in boards.items():
        assert key == f"{lb.id}/v{lb.version}"
        assert lb.protocol(lb.primary_protocol).split == "train"


def test_definition_rejects_unknown_fields_and_bad_values() -> None:
    raw = {"id": "x", "version": 1, "title": "t", "description": "", "kind": "multitask",
           "suite": "toy/goal-line-v1", "steps": 10, "eval_episodes": 2, "min_seeds": 1,
           "protocols": [{"name": "mt", "split": "train"}]}  # fmt: skip
    assert parse_definition(raw, "d").key == "x/v1"
    with pytest.raises(UsageError, match="unknown field 'budget'"):
        parse_definition({**raw, "budget": 3}, "d")
    with pytest.raises(UsageError, match="steps must be >= 1"):
        parse_definition({**raw, "steps": 0}, "d")
    with pytest.raises(UsageError, match="protocol 'mtt'"):
        parse_definition({**raw, "protocols": [{"name": "mtt", "split": "train"}]}, "d")


def test_protocols_can_fix_their_own_episode_count() -> None:
    """Meta-World's held-out split has 40 goals, played once each: its leaderboards score
    ``zero_shot`` on 40 episodes per task and ``mt`` on 50, and a bundle must match both."""
    raw = {"id": "x", "version": 1, "title": "t", "description": "", "kind": "multitask",
           "suite": "toy/goal-line-v1", "steps": 10, "eval_episodes": 2, "min_seeds": 1,
           "protocols": [{"name": "mt", "split": "train"}]}  # fmt: skip
    with pytest.raises(UsageError, match="episodes must be >= 0, got -1"):
        parse_definition({**raw, "protocols": [{"name": "mt", "split": "train", "episodes": -1}]},
                         "d")  # fmt: skip
    lb = get_leaderboard("metaworld-mt10-cpu/v1")
    assert (lb.episodes("mt"), lb.episodes("zero_shot")) == (50, 40)
    rng = np.random.default_rng(0)

    def results(zero_shot_episodes: int) -> list[dict]:
        out = []
        for protocol, n in (("mt", 50), ("zero_shot", zero_shot_episodes)):
            for seed in range(lb.min_seeds):
                success = (rng.random(n) < 0.3).astype(float)
                out.append({"protocol": protocol, "seed": seed, "task": "reach-v3",
                            "task_index": 0, "score": float(success.mean()),
                            "success": float(success.mean()), "return": 1.0, "episodes": n})
        return out

    def bundle(zero_shot_episodes: int) -> dict:
        return bundles.make_bundle(
            lb, {"name": "a", "version": "1", "url": "", "description": ""},
            results(zero_shot_episodes), {str(s): {"git_sha": "0" * 40} for s in range(3)},
            {"env_steps": lb.steps, "eval_episodes": lb.eval_episodes})  # fmt: skip

    assert bundles.validate(json.loads(json.dumps(bundle(40)))).key == lb.key
    with pytest.raises(UsageError, match="episodes = 50; metaworld-mt10-cpu/v1 evaluates 40 "
                                         "on zero_shot"):  # fmt: skip
        bundles.validate(json.loads(json.dumps(bundle(50))))


def test_round_trip_and_bytes_are_canonical(tmp_path: Path) -> None:
    b = make()
    path = bundles.write(b, tmp_path / "b.json")
    loaded, lb = bundles.load(path)
    assert lb.key == TOY and loaded == b
    assert bundles.dumps(loaded) == path.read_bytes()
    # Building again from the same values gives the same bytes (summary bootstrap is seeded).
    assert bundles.dumps(make()) == path.read_bytes()
    assert bundles.dumps(make(seed=1)) != path.read_bytes()


def test_single_seed_summary_has_no_interval() -> None:
    lb = get_leaderboard(TOY)
    raw = {**lb.__dict__, "min_seeds": 1, "protocols": [p.__dict__ for p in lb.protocols]}
    del raw["secondary"]
    one = parse_definition(raw, "one-seed")
    rows = [r for r in _results(np.random.default_rng(0), range(1), 0.5)]
    summary = bundles.summarize({"results": rows}, one)
    assert summary["mt"]["n_seeds"] == 1
    assert summary["mt"]["iqm"][1] is None and summary["mt"]["iqm"][2] is None
    assert ranking.fmt_interval(summary["mt"]["iqm"]).endswith("(n = 1)")


def _set(path: str, value):  # noqa: ANN202
    def mutate(b: dict) -> dict:
        *parents, last = path.split(".")
        node = b
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        node[int(last) if isinstance(node, list) else last] = value
        return b
    return mutate


def _drop_seed(b: dict) -> dict:
    b["results"] = [r for r in b["results"] if r["seed"] != 2]
    b["seeds"] = [0, 1]
    b["summary"] = bundles.summarize(b, get_leaderboard(TOY))
    return b


def _duplicate(b: dict) -> dict:
    b["results"].append(copy.deepcopy(b["results"][0]))
    return b


def _no_protocol(b: dict) -> dict:
    b["results"] = [r for r in b["results"] if r["protocol"] != "zero_shot"]
    b["summary"] = bundles.summarize(b, get_leaderboard(TOY))
    return b


# (case id, mutation of a valid bundle or raw text, fragment of the one-line reason)
HOSTILE = [
    ("schema-version", _set("schema_version", 2), "schema 'mtrl-bench/bundle' version 2"),
    ("too-few-seeds", _drop_seed, "2 seed(s); toy-goal-line/v1 needs at least 3"),
    ("budget-over", _set("budget.env_steps", 10**9), "budget.env_steps = 1000000000"),
    ("nan-score", "NAN", "non-finite number NaN"),
    ("infinity", "INF", "non-finite number Infinity"),
    ("summary-disagrees", _set("results.0.score", 0.99), "summary disagrees"),
    ("huge-string", "HUGE", "bytes; at most"),
    ("long-description", _set("agent.description", "x" * 5000), "has 5000 characters"),
    ("unknown-leaderboard", _set("leaderboard.key", "atari-57/v1"), "unknown leaderboard 'atari-57/v1'"),
    ("unversioned-key", _set("leaderboard.key", "toy-goal-line"), "must name a version"),
    ("definition-changed", _set("leaderboard.definition_hash", "0" * 16), "definition hash differs"),
    ("checkpoint-digest", _set("checkpoints", {"0/state.npz": "not-a-digest"}), "hex SHA-256"),
    ("unknown-top-key", _set("payload", "__import__('os')"), "unknown key 'payload'"),
    ("success-range", _set("results.0.success", 1.5), "outside [0.0, 1.0]"),
    ("episodes", _set("results.0.episodes", 3), "results[0].episodes = 3"),
    ("wrong-suite", _set("suite", "toy/bandit-v1"), "toy-goal-line/v1 is on toy/goal-line-v1"),
    ("duplicate-result", _duplicate, "exactly one result per seed and task"),
    ("seeds-list", _set("seeds", [0, 1, 7]), "do not match the results' seeds"),
    ("bool-seed", _set("results.0.seed", True), "results[0].seed must be an integer"),
    ("unscored-protocol", _set("results.0.protocol", "few_shot"), "'few_shot' is not scored"),
    ("protocol-list", _set("results.0.protocol", ["mt"]), "is not scored"),
    ("empty-name", _set("agent.name", ""), "agent.name must not be empty"),
    ("missing-protocol", _no_protocol, "protocol 'zero_shot' is required"),
    ("per-episode-mismatch", _set("results.0.per_episode.return", [0.0] * 16), "disagrees with the mean"),
    ("not-json", "TRUNCATED", "is not UTF-8 JSON"),
    ("deep-nesting", "DEEP", "bundle"),
    ("top-level-list", "LIST", "bundle must be an object"),
]


@pytest.mark.parametrize(("case", "mutation", "reason"), HOSTILE, ids=[c[0] for c in HOSTILE])
def test_hostile_bundles_are_rejected_with_one_line(tmp_path: Path, case, mutation, reason) -> None:
    path = tmp_path / "entry.json"
    text = bundles.dumps(make()).decode()
    if mutation == "NAN":
        text = text.replace(json.dumps(make()["results"][0]["score"]), "NaN", 1)
    elif mutation == "INF":
        text = text.replace(json.dumps(make()["results"][0]["return"]), "Infinity", 1)
    elif mutation == "HUGE":
        text = text.replace('"description": "x"', '"description": "' + "x" * (100 << 20) + '"')
    elif mutation == "TRUNCATED":
        text = text[: len(text) // 2]
    elif mutation == "DEEP":
        text = "[" * 100_000 + "]" * 100_000
    elif mutation == "LIST":
        text = "[]"
    else:
        text = bundles.dumps(mutation(make())).decode() if case != "nan-score" else text
    path.write_text(text)
    with pytest.raises(UsageError) as info:
        bundles.load(path)
    message = str(info.value)
    assert "\n" not in message and len(message) < 300, message
    assert reason in message, message


def test_runs_to_bundle_checks_the_definition_and_is_byte_identical(tmp_path: Path) -> None:
    lb = get_leaderboard(TOY)
    runs = tmp_path / "runs"
    first = submit.submit(lb, "random", seeds=[0, 1, 2], runs_dir=runs, progress=False)
    again = submit.from_runs(lb, [runs / lb.suite / "random"])
    assert bundles.dumps(first) == bundles.dumps(again)
    assert first["summary"]["mt"]["n_seeds"] == 3 and set(first["summary"]) == {"mt", "zero_shot"}
    assert all(len(r["per_episode"]["return"]) == lb.eval_episodes for r in first["results"])
    # A run evaluated with other episodes is refused, and the error names the field.
    config = runs / lb.suite / "random" / "1" / "config.json"
    saved = json.loads(config.read_text())
    config.write_text(json.dumps({**saved, "eval_episodes": 8}))
    with pytest.raises(UsageError, match=r"has eval_episodes = 8; toy-goal-line/v1 requires 16"):
        submit.from_runs(lb, [runs / lb.suite / "random"])
    config.write_text(json.dumps({**saved, "steps": 5}))
    with pytest.raises(UsageError, match=r"has steps = 5; toy-goal-line/v1 requires 6000"):
        submit.from_runs(lb, [runs / lb.suite / "random"])
    (runs / lb.suite / "random" / "2" / "DONE").unlink()
    config.write_text(json.dumps(saved))
    with pytest.raises(UsageError, match="is not finished"):
        submit.from_runs(lb, [runs / lb.suite / "random"])


def test_ranks_share_a_group_when_not_significantly_different() -> None:
    lb = get_leaderboard(TOY)
    entries = [make("strong", 0.8, range(5), 1), make("close", 0.8, range(5), 2),
               make("weak", 0.2, range(5), 3)]  # fmt: skip
    ranked = ranking.rank(entries, lb)
    assert {r.name: r.rank for r in ranked} == {"strong": 1, "close": 1, "weak": 3}
    assert ranked[2].name == "weak"
    matrix = ranking.improvement_matrix(ranked, lb)
    assert matrix[0][0] is None and matrix[0][2][1] > 0.5  # leader > weak, CI above 0.5
    assert matrix[2][0][0] == pytest.approx(1 - matrix[0][2][0])
    text = ranking.comparison_text(ranked, lb, "close")
    assert "P(close > other)" in text and "goal-line-14" in text
    with pytest.raises(UsageError, match="named 'strong'"):
        ranking.rank([entries[0], copy.deepcopy(entries[0])], lb)


#: The content hash of every shipped definition. A definition is never edited in place: a change
#: is a new file with the next version (then add its hash here). This test catches the edit.
PINNED = {
    "metaworld-mt10/v2": "cdd7c9dcdc8f676d",
    "metaworld-mt10-cpu/v1": "bb09aee2f29e3ccd",
    "minigrid-mt3/v1": "47e095671541b0b8",
    "minigrid-mt5/v1": "8a51ff03974affdb",
    "minigrid-mt7/v1": "84296ebc8d5e7ff5",
    "pendulum-dt-transfer/v1": "e45b123725366c68",
    "toy-goal-line/v1": "91743532be82e854",
}


def test_shipped_definitions_are_frozen() -> None:
    from mtrl_bench.leaderboard import definition_hash

    assert {k: definition_hash(lb) for k, lb in leaderboards().items()} == PINNED
    lb = get_leaderboard(TOY)
    assert definition_hash(lb) != definition_hash(
        parse_definition({**RAW_TOY, "eval_episodes": 8}, "edited"))


RAW_TOY = {"id": "toy-goal-line", "version": 1, "title": "Toy goal line", "description": "",
           "kind": "multitask", "suite": "toy/goal-line-v1", "steps": 6000, "eval_episodes": 16,
           "min_seeds": 3, "protocols": [{"name": "mt", "split": "train"},
                                         {"name": "zero_shot", "split": "test"}]}  # fmt: skip


ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("agent", ["mtppo", "moore", "moe"])
def test_committed_toy_baselines_are_verified_by_committed_checkpoints(agent: str) -> None:
    """The toy board's learned baselines ship their checkpoints: the bundle's SHA-256 of every
    file equals the committed file's, and the ``mtrl verify`` sidecar is for this exact bundle
    (so the site marks it verified). ``mtrl verify`` re-evaluating them is
    ``mtrl verify leaderboards/bundles/toy-goal-line-v1/<agent>.json --checkpoints
    results/leaderboards/runs/toy/goal-line-v1/<agent>``; its own tests are in
    tests/test_leaderboard_cli.py."""
    import hashlib

    from mtrl_bench import site

    path = ROOT / "leaderboards" / "bundles" / "toy-goal-line-v1" / f"{agent}.json"
    b, _ = bundles.load(path)
    runs = ROOT / "results" / "leaderboards" / "runs" / "toy" / "goal-line-v1" / agent
    assert b["checkpoints"] and len(b["seeds"]) >= 3
    for name, digest in b["checkpoints"].items():
        seed, _, rel = name.partition("/")
        assert hashlib.sha256((runs / seed / "ckpt" / rel).read_bytes()).hexdigest() == digest
    assert site.verified(path)
