"""Learning-history datasets (agents/icl_data.py, ``mtrl datasets``): made inside the test at a
tiny budget; round trip through the file, determinism, the format's invariants."""

import json

import numpy as np
import pytest

from mtrl_bench.agents import icl_data
from mtrl_bench.cli import main
from mtrl_bench.registry import get_suite

TINY = icl_data.DataConfig(updates=2, envs=2, episodes_per_update=1, batch_size=20, epochs=1,
                           hidden=(8,))  # fmt: skip


@pytest.fixture(scope="module")
def darkroom_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "dpt.npz"
    assert main(["datasets", "make", "darkroom/dpt-v1", "--preset", "ci", "--updates", "2",
                 "--envs", "2", "--out", str(path)]) == 0  # fmt: skip
    return path


def test_round_trip_and_determinism(darkroom_file, capsys):
    suite = get_suite("darkroom/dpt-v1")
    cfg = icl_data.DataConfig(**{**icl_data.asdict(icl_data.PRESETS["ci"]), "updates": 2,
                                 "envs": 2})  # fmt: skip
    loaded = icl_data.load(darkroom_file)
    again = icl_data.make_dataset(suite, cfg, seed=0)  # same seed, made again in memory
    for key in icl_data.KEYS[:-1]:
        np.testing.assert_array_equal(loaded[key], again[key], err_msg=key)
    meta = loaded["meta"]
    assert meta == json.loads(str(again["meta"]))
    assert meta["suite"] == "darkroom/dpt-v1" and meta["seed"] == 0 and meta["format"] == 1
    assert meta["config"]["updates"] == 2 and len(meta["provenance"]["git_sha"]) >= 7
    other = icl_data.make_dataset(suite, cfg, seed=1)
    assert not np.array_equal(other["actions"], loaded["actions"])
    assert main(["datasets", "info", str(darkroom_file), "--points", "2"]) == 0
    out = capsys.readouterr().out
    assert "65 tasks x 4 episodes x 20 steps" in out and out.count("\n") == 5


def test_format_invariants(darkroom_file):
    d = icl_data.load(darkroom_file)
    t, m, h = d["rewards"].shape
    assert (t, m, h) == (65, 4, 20) and d["obs"].shape == (t, m, h, 2)
    assert list(d["task_index"]) == list(get_suite("darkroom/dpt-v1").splits["train"])
    # episodes in learning order: the update index never decreases along the history
    assert np.all(np.diff(d["update"], axis=1) >= 0) and d["update"][0].tolist() == [0, 0, 1, 1]
    # every episode starts in the corner; next_obs is the following obs within an episode
    assert np.all(d["obs"][:, :, 0] == 0)
    np.testing.assert_array_equal(d["next_obs"][:, :, :-1], d["obs"][:, :, 1:])
    np.testing.assert_allclose(d["returns"], d["rewards"].sum(-1))
    assert np.array_equal(d["success"], d["rewards"].max(-1) > 0)  # DarkRoom: reward = on goal
    # the rewards are the env's: 1 exactly where next_obs is the task's goal
    goals = np.array([dict(get_suite("darkroom/dpt-v1").tasks[i].kwargs)["goal"]
                      for i in d["task_index"]])  # fmt: skip
    on_goal = np.all(d["next_obs"] == goals[:, None, None, :], -1)
    np.testing.assert_array_equal(d["rewards"], on_goal.astype(np.float32))


@pytest.mark.slow  # a second learner compile (~6 s CPU); the Box-action path of the same code
def test_continuous_actions_point_robot():
    d = icl_data.make_dataset(get_suite("point-robot/t2mir-v1"), TINY, seed=0)
    assert d["actions"].shape == (45, 4, 20, 2) and d["actions"].dtype == np.float32
    assert np.abs(d["actions"]).max() <= 1.0  # what the env received: clipped to the Box
    step = d["next_obs"] - d["obs"]
    np.testing.assert_allclose(step, 0.1 * d["actions"], atol=1e-6)
