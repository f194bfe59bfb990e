"""The ``in_context`` protocol (mtrl_bench/in_context.py): the harness's context buffer and the
curve over in-context episodes, with a scripted in-context learner on DarkRoom."""

import numpy as np
import pytest

from mtrl_bench.errors import UsageError
from mtrl_bench.evaluation import get_protocol
from mtrl_bench.in_context import ContextBuffer, curve
from mtrl_bench.registry import get_suite


def _step(value, t):
    v = np.array([value], np.float32)
    return {"obs": v[:, None], "next_obs": v[:, None] + 0.5, "actions": np.array([int(value)]),
            "rewards": v, "timestep": np.array([t], np.int32)}  # fmt: skip


def test_context_keeps_recent_steps_sorted_by_return():
    buf = ContextBuffer(1, 7, (1,), np.float32, (), np.int64)
    # three 3-step episodes with returns 9, 3, 6 (rewards equal to the step's value)
    for value in (3.0, 1.0, 2.0):
        for t in range(3):
            buf.add(_step(value, t))
        buf.end_episode(0)
    # sorted ascending by return (1, 2, 3), then the 7 most recent of those 9 steps
    assert buf.length[0] == 7
    np.testing.assert_array_equal(buf.arrays["rewards"][0], [1, 2, 2, 2, 3, 3, 3])
    np.testing.assert_array_equal(buf.arrays["timestep"][0], [2, 0, 1, 2, 0, 1, 2])
    buf.add(_step(0.0, 0))  # the current episode's steps follow, the oldest falls out
    np.testing.assert_array_equal(buf.arrays["rewards"][0], [2, 2, 2, 3, 3, 3, 0])
    # only episodes that can still reach the window are kept (9 >= 7 steps: the newest three)
    buf.end_episode(0)
    assert [ret for ret, _ in buf.finished[0]] == [3.0, 6.0, 0.0]
    np.testing.assert_array_equal(buf.arrays["rewards"][0], [0, 1, 1, 1, 2, 2, 2])


class SweepThenExploit:
    """A scripted in-context learner for DarkRoom: episode k sweeps column k mod 9 (+x k times,
    then +y); once its context holds a rewarded step it walks to that cell and stays."""

    context_steps = 200

    def act_in_context(self, context, task_ids, *, deterministic=False):
        actions = np.zeros(len(task_ids), np.int64)
        for b in range(len(task_ids)):
            n = context.length[b]
            rewarded = context.rewards[b, -n:] > 0 if n else np.zeros(0, bool)
            x, y = context.query_obs[b]
            if rewarded.any():
                gx, gy = context.next_obs[b, -n:][rewarded][-1]
                actions[b] = 0 if x < gx else 1 if x > gx else 2 if y < gy else 3 if y > gy else 4
            else:
                col = context.episode[b] % 9
                actions[b] = 0 if x < col else 2
        return actions


def test_in_context_curve_rises_with_a_scripted_learner():
    suite = get_suite("darkroom/dpt-v1")
    protocol = get_protocol("in_context")
    result = protocol.run(SweepThenExploit(), suite, 5, seed=0, envs_per_task=2)
    assert [t.task_index for t in result.tasks] == list(suite.splits["test"])
    ret = curve(result)
    assert ret.shape == (16, 30)  # the suite fixes 30 in-context episodes (ignores the 5)
    assert all(t.episodes == 60 for t in result.tasks)
    # goals are found within the 9-episode sweep, then every episode is near optimal
    assert ret[:, 0].mean() < ret[:, 10:].mean() - 5 and ret[:, 10:].min() > 0
    norm = np.array([[suite.tasks[t.task_index].normalize(r) for r in row]
                     for t, row in zip(result.tasks, ret, strict=True)])  # fmt: skip
    np.testing.assert_allclose(norm[:, 10:], 1.0)
    succ = curve(result, "success")
    assert succ[:, 9:].min() == 1.0 and succ[:, 0].mean() < 0.5


def test_a_plain_policy_is_refused():
    class Plain:
        def act(self, obs, task_ids, *, deterministic=False):
            return np.zeros(len(task_ids), int)

        def reset(self, mask):
            pass

    with pytest.raises(UsageError, match="not an in-context policy"):
        get_protocol("in_context").run(Plain(), get_suite("darkroom/dpt-v1"), 3, seed=0)
