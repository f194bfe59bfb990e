"""Contract tests over every registered suite (docs/design.md, "Tests and benchmarks").

Meta-World registers 70 suites (5 benchmarks x 4 option variants, and MT1 for each of its 50
tasks). They all share one env factory and wrapper and differ only in task lists and options,
while each costs seconds to minutes here (MuJoCo: ~0.15 s to build an env, ~1 ms a step), so the
default run checks a representative subset -- MT10 with the default options, ML10 with both
option variants (``-rv1-h150``: reward V1, 150 steps, goal hidden) and one MT1 -- and every
Meta-World id runs under the ``slow`` marker.
"""

import warnings

import numpy as np
import pytest

from mtrl_bench import checks, make_env, make_single_env
from mtrl_bench.registry import get_suite, suite_ids
from mtrl_bench.types import EVAL_SEED_OFFSET, SEED_STRIDE

METAWORLD_DEFAULT = ("metaworld/mt10-v1", "metaworld/ml10-rv1-h150-v1", "metaworld/mt1-pick-place-v1")
#: SUMO suites: every task spawns a SUMO process (~1 s), 50 tasks per suite; one per family by
#: default, all in the slow run (the JAX traffic suites all run by default)
TRAFFIC_DEFAULT = ("traffic/signal-inflow-v1", "traffic/eco-green-v1")
SUITES = [
    pytest.param(i, marks=pytest.mark.slow)
    if (i.startswith("metaworld/") and i not in METAWORLD_DEFAULT)
    or (i.startswith("traffic/") and i not in TRAFFIC_DEFAULT)
    else i
    for i in suite_ids()
]
#: Rollout tests (vector contract, seeding) on MiniGrid MT5 / MT7 run the MT3 code path with more
#: tasks (every one of their tasks is still checked by default in ``test_check_env_every_task``);
#: checking every task of a SUMO suite costs ~30 s (a SUMO start per task; the first task of each
#: split runs by default in ``test_sb3_check_env``). These run under ``slow``.
#: ``darkroom/ad-v1`` is ``darkroom/dpt-v1``'s code with a larger grid and longer episodes.
HEAVY_ROLLOUTS = ("minigrid-jax/mt5-v1", "minigrid-jax/mt7-v1", "darkroom/ad-v1")


def _also_slow(heavy: tuple[str, ...]) -> list:
    """``SUITES`` with ``heavy`` ids moved to the slow run too."""
    return [pytest.param(p, marks=pytest.mark.slow) if p in heavy else p for p in SUITES]


ROLLOUT_SUITES = _also_slow(HEAVY_ROLLOUTS)

EVERY_TASK_SUITES = _also_slow(TRAFFIC_DEFAULT)


@pytest.mark.parametrize("suite_id", SUITES)
def test_splits_fixed_and_disjoint(suite_id):
    suite = get_suite(suite_id)
    checks.check_splits(suite)
    assert suite is get_suite(suite_id), "a suite is a module constant, never rebuilt"
    assert suite.id == suite_id and suite.id.rsplit("-v", 1)[1].isdigit()


@pytest.mark.parametrize("suite_id", EVERY_TASK_SUITES)
def test_check_env_every_task(suite_id):
    checks.check_single_envs(get_suite(suite_id))


@pytest.mark.parametrize("suite_id", SUITES)
def test_sb3_check_env(suite_id):
    """SB3's ``check_env`` passes on the single-task view too (the first task of each split; the
    gymnasium check above covers every task). SB3 adds its own rules, e.g. an env whose
    ``unwrapped`` has ``compute_reward`` must be a GoalEnv with Dict observations."""
    env_checker = pytest.importorskip("stable_baselines3.common.env_checker")
    suite = get_suite(suite_id)
    for split in ("train", "test"):
        env = make_single_env(suite, suite.splits[split][0])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # advice (e.g. "use a symmetric Box"), not failures
            env_checker.check_env(env)
        env.close()


def _vector_cases() -> list:
    """(suite, split) pairs of ``ROLLOUT_SUITES``; SUMO's held-out split (the train split's code
    with other contexts, a SUMO start per env) runs under ``slow``."""
    cases = []
    for p in ROLLOUT_SUITES:
        suite_id, marks = (p, ()) if isinstance(p, str) else (p.values[0], p.marks)
        for split in ("train", "test"):
            sumo_test = split == "test" and suite_id in TRAFFIC_DEFAULT
            extra = (pytest.mark.slow,) if sumo_test else ()
            cases.append(pytest.param(suite_id, split, marks=(*marks, *extra),
                                      id=f"{suite_id}-{split}"))  # fmt: skip
    return cases


@pytest.mark.parametrize(("suite_id", "split"), _vector_cases())
def test_vector_env_contract(suite_id, split):
    checks.check_vector_env(get_suite(suite_id), split, steps=150)


@pytest.mark.parametrize("suite_id", ROLLOUT_SUITES)
def test_same_seed_same_rollout(suite_id):
    checks.check_determinism(get_suite(suite_id), "train", steps=80)


@pytest.mark.parametrize("suite_id", ROLLOUT_SUITES)
def test_different_seed_different_rollout(suite_id):
    suite = get_suite(suite_id)
    a = checks._rollout(suite, "train", 1, 30)
    b = checks._rollout(suite, "train", 2, 30)
    assert any(not np.array_equal(x[0], y[0]) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("suite_id", SUITES)
def test_task_ids_not_in_observation(suite_id):
    """The vector env's observation is exactly the upstream single-task observation."""
    suite = get_suite(suite_id)
    env = make_env(suite, "train", envs_per_task=1, seed=0)
    assert env.single_observation_space == make_single_env(suite, suite.tasks[0]).observation_space
    env.close()


def test_same_step_autoreset_pinned():
    """When an episode ends, the returned obs is the next episode's first obs (SAME_STEP)."""
    suite = get_suite("toy/goal-line-v1")
    env = make_env(suite, "train", envs_per_task=1, seed=0)
    obs, _ = env.reset()
    start = obs.copy()
    # task 0 (goal 0): seven steps left reach the goal from the middle cell 7
    for _t in range(7):
        obs, rew, term, trunc, info = env.step(np.array([0, 0, 1]))
    assert term[0] and rew[0] > 0 and info["success"][0]
    assert info["_final_obs"][0] and info["final_obs"][0][0] == 1.0  # last obs: at cell 0
    np.testing.assert_array_equal(obs[0], start[0])  # already reset to the middle cell
    assert not info["success"][1] and not term[1]


def test_train_and_eval_seeds_are_disjoint():
    train = {s * SEED_STRIDE + i for s in range(100) for i in range(64)}
    evals = {(EVAL_SEED_OFFSET + s) * SEED_STRIDE + i for s in range(100) for i in range(64)}
    assert not train & evals
    assert max(train) < min(evals)


def test_minigrid_suites_match_moore_sets():
    names = lambda sid: [t.name.removeprefix("MiniGrid-").removesuffix("-v0")  # noqa: E731
                         for t in get_suite(sid).split_tasks("train")]
    assert names("minigrid/mt3-v1") == ["LavaGapS7", "RedBlueDoors-6x6", "MemoryS11"]
    assert names("minigrid/mt5-v1") == [*names("minigrid/mt3-v1"), "DoorKey-6x6", "DistShift1"]
    assert names("minigrid/mt7-v1") == [
        *names("minigrid/mt5-v1"), "SimpleCrossingS9N2", "MultiRoom-N2-S4"
    ]


def test_minigrid_observation_and_normaliser():
    suite = get_suite("minigrid/mt3-v1")
    env = make_single_env(suite, suite.tasks[0])
    obs, _ = env.reset(seed=0)
    assert obs.shape == (7, 7, 3) and obs.dtype == np.uint8
    lava = suite.tasks[0]
    optimal_return = 1 - 0.9 * 8 / 196  # TMLR normaliser: LavaGapS7 optimal 8 of 196 steps
    assert lava.normalize(optimal_return) == pytest.approx(1.0)
    assert lava.normalize(0.0) == 0.0
