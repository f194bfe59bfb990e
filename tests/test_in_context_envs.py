"""The hidden-goal suites of envs/in_context.py: dynamics, normalisers and splits."""

import numpy as np
import pytest

from mtrl_bench import make_single_env
from mtrl_bench.registry import get_suite


def _walk(env, actions):
    env.reset(seed=0)
    total, success = 0.0, False
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        total, success = total + r, success or info["success"]
    return obs, total, success, term, trunc


@pytest.mark.parametrize(("suite_id", "dim", "horizon", "n_train", "n_test"),
                         [("darkroom/dpt-v1", 9, 20, 65, 16), ("darkroom/ad-v1", 10, 100, 80, 20)])
def test_darkroom_splits_and_optimal_walk(suite_id, dim, horizon, n_train, n_test):
    suite = get_suite(suite_id)
    assert len(suite.splits["train"]) == n_train and len(suite.splits["test"]) == n_test
    goals = {dict(t.kwargs)["goal"] for t in suite.tasks}
    assert goals == {(x, y) for x in range(dim) for y in range(dim)}
    task = suite.split_tasks("test")[3]
    gx, gy = dict(task.kwargs)["goal"]
    # walk +x then +y, then stay: the optimal return, i.e. normalised score 1
    actions = [0] * gx + [2] * gy + [4] * (horizon - gx - gy)
    obs, total, success, term, trunc = _walk(make_single_env(suite, task), actions)
    assert tuple(obs) == (gx, gy) and success and trunc and not term
    assert task.normalize(total) == pytest.approx(1.0)
    # the walls clip: pushing -x from the corner stays at (0, 0)
    obs, total, success, _, _ = _walk(make_single_env(suite, task), [1] * horizon)
    assert tuple(obs) == (0, 0) and task.normalize(total) == 0.0 and not success


def test_point_robot_straight_line_is_the_normaliser():
    suite = get_suite("point-robot/t2mir-v1")
    assert len(suite.splits["train"]) == 45 and len(suite.splits["test"]) == 5
    task = suite.split_tasks("test")[0]
    goal = np.array(dict(task.kwargs)["goal"], np.float32)
    env = make_single_env(suite, task)
    start, _ = env.reset(seed=3)
    assert np.all(np.abs(start) <= 0.1)
    total, pos, success = 0.0, start, False
    for _ in range(20):
        step = np.clip((goal - pos) / 0.1, -1, 1)  # full speed towards the goal, then hold
        pos, r, term, trunc, info = env.step(step.astype(np.float32))
        assert r == pytest.approx(-np.linalg.norm(pos - goal), abs=1e-5)
        total, success = total + r, success or info["success"]
    assert trunc and success
    # the jittered start makes it within ~0.1 per step of the origin's optimum
    assert task.normalize(total) == pytest.approx(1.0, abs=0.15)
    assert task.normalize(-20 * float(np.linalg.norm(goal))) == pytest.approx(0.0, abs=1e-6)
