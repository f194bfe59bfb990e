"""The ``transfer`` protocol (``mtrl_bench/transfer.py``) and its PPO trainer
(``agents/transfer_ppo.py``) on the real JAX contextual CartPole."""

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtrl_bench import transfer
from mtrl_bench.agents import transfer_ppo
from mtrl_bench.errors import UsageError
from mtrl_bench.jax_vector import suite_env
from mtrl_bench.registry import get_suite

SUITE = "control-jax/cartpole-masscart-v1"


def _train(cfg: transfer_ppo.Config, contexts: list[int], steps: int, seed: int = 0):
    suite = get_suite(SUITE)
    env = suite_env(suite)
    slots = [
        jax.tree.map(
            lambda x: jnp.broadcast_to(x, (cfg.num_envs, *jnp.shape(x))), env.params(suite.tasks[c])
        )  # fmt: skip
        for c in contexts
    ]
    params = jax.tree.map(lambda *xs: jnp.stack(xs), *slots)
    keys = jnp.stack([jax.random.PRNGKey(seed)] * len(contexts))
    updates = transfer_ppo.num_updates(cfg, steps)
    train = jax.jit(jax.vmap(transfer_ppo.make_train(cfg, env, updates)))
    return train(keys, params, jnp.zeros((len(contexts), cfg.num_envs))), env, suite


def test_ppo_learns_cartpole_and_is_deterministic() -> None:
    cfg = transfer_ppo.PRESETS["sb3"]  # SB3's defaults: CartPole is solved within ~60k steps
    (params, returns), env, suite = _train(cfg, [9], 40_960)
    returns = np.asarray(returns)[0]
    assert np.nanmean(returns[:3]) < 60 and np.nanmean(returns[-3:]) > 150
    per_episode = transfer_ppo.make_evaluate(cfg, env, 500)
    evaluate = jax.jit(jax.vmap(per_episode, in_axes=(None, None, None, 0)))
    one = jax.tree.map(lambda x: x[0], params)
    ret, _ = evaluate(one, env.params(suite.tasks[9]), jnp.float32(0),
                      jax.random.split(jax.random.PRNGKey(1), 4))  # fmt: skip
    assert float(np.mean(ret)) > 150  # a random policy averages ~22
    (again, _), _, _ = _train(cfg, [9], 40_960)
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(again), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_vmapped_contexts_equal_separate_runs() -> None:
    cfg = transfer_ppo.PRESETS["ci"]
    (both, _), _, _ = _train(cfg, [3, 60], 2048)
    (first, _), _, _ = _train(cfg, [3], 2048)
    (second, _), _, _ = _train(cfg, [60], 2048)
    for a, b, c in zip(*map(jax.tree.leaves, (both, first, second)), strict=True):
        np.testing.assert_allclose(np.asarray(a)[0], np.asarray(b)[0], atol=1e-5)
        np.testing.assert_allclose(np.asarray(a)[1], np.asarray(c)[0], atol=1e-5)
    assert not np.allclose(
        np.asarray(jax.tree.leaves(first)[0]), np.asarray(jax.tree.leaves(second)[0])
    )


def test_ppo_continuous_actions_run() -> None:
    suite = get_suite("control-jax/pendulum-dt-v1")
    env = suite_env(suite)
    cfg = transfer_ppo.PRESETS["ci"]
    slots = jax.tree.map(lambda x: jnp.broadcast_to(x, (1, cfg.num_envs, *jnp.shape(x))),
                         env.params(suite.tasks[9]))  # fmt: skip
    train = jax.jit(jax.vmap(transfer_ppo.make_train(cfg, env, 2)))
    params, returns = train(jax.random.PRNGKey(0)[None], slots, jnp.zeros((1, cfg.num_envs)))
    assert params["log_std"].shape == (1, 1) and np.all(np.isfinite(np.asarray(params["log_std"])))


def _cfg(**kw) -> transfer.TransferConfig:
    base = dict(suite=SUITE, preset="ci", steps=1024, seeds=(0, 1), episodes=2, chunk=1,
                tasks=(2, 30, 80))  # fmt: skip
    return transfer.TransferConfig(**{**base, **kw})


def test_matrix_file_row_and_resume(tmp_path) -> None:
    cfg = _cfg()
    paths = transfer.transfer_matrix(cfg, tmp_path, progress=False, isolate=False)
    data = json.loads(paths[0].read_text())
    assert data["kind"] == "transfer_matrix" and data["protocol"] == "transfer"
    assert data["sources"] == data["targets"] == [2, 30, 80] and data["seed"] == 0
    assert data["context_values"] == pytest.approx([0.3, 3.1, 8.1])
    returns, scores = np.array(data["returns"]), np.array(data["scores"])
    assert returns.shape == (3, 3) and np.allclose(scores, returns / 500)  # CartPole (0, 500)
    for key in ("git_sha", "versions", "time", "steps_per_source", "episodes", "config_hash"):
        assert key in data
    # online MBTL: one row, trained on demand, is the same computation as the matrix row
    row = transfer.train_source_row(cfg, 30, seed=1)
    seed1 = json.loads(paths[1].read_text())
    np.testing.assert_allclose(row, np.array(seed1["scores"])[1], atol=1e-6)
    # a killed run resumes: drop the last chunk and the per-seed files, rerun (that chunk in its
    # own process, as by default), same matrix
    run_dir = paths[0].parent.parent
    (run_dir / "partial" / "chunk2.npz").unlink()
    for p in paths:
        p.unlink()
    again = transfer.transfer_matrix(cfg, tmp_path, progress=False)
    assert json.loads(again[0].read_text())["returns"] == data["returns"]
    with pytest.raises(UsageError, match="different config"):
        transfer.transfer_matrix(_cfg(steps=2048), tmp_path, progress=False)


def test_multitask_row(tmp_path) -> None:
    paths = transfer.multitask_row(_cfg(agent="ppo-context", seeds=(0,), steps=2048), tmp_path)
    data = json.loads(paths[0].read_text())
    assert data["kind"] == "multitask_row" and data["sources"] == [] and data["steps"] == 2048
    assert np.array(data["scores"]).shape == (1, 3)
    assert paths[0].parent.parent.name == "ppo-context-multitask"


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"suite": "control/cartpole-masscart-v1"}, "JAX suite"),
        ({"agent": "sac"}, "unknown transfer agent"),
        ({"agent": "mtsac"}, "no jax_trainer"),  # registered, but no transfer trainer
        ({"preset": "huge"}, "unknown preset"),
        ({"tasks": (1, 1)}, "distinct task indices"),
        ({"tasks": (100,)}, "distinct task indices"),
        ({"seeds": ()}, "seeds"),
        ({"steps": 0}, "steps"),
        ({"chunk": 33}, "at most 64"),
    ],
)
def test_bad_input_is_refused_and_writes_nothing(tmp_path, kw, match) -> None:
    with pytest.raises(UsageError, match=match):
        transfer.transfer_matrix(_cfg(**kw), tmp_path, progress=False)
    assert not any(tmp_path.iterdir())


def test_registered_agents_refuse_numpy_suites_before_writing(tmp_path) -> None:
    from mtrl_bench.cli import main

    args = ["train", "--agent", "ppo", "--suite", "control/cartpole-masscart-v1", "--runs-dir",
            str(tmp_path)]  # fmt: skip
    assert main(args) == 2 and not any(tmp_path.iterdir())


def test_mtrl_transfer_command(tmp_path) -> None:
    from mtrl_bench.cli import main

    assert (
        main(["transfer", "--suite", "control/cartpole-masscart-v1", "--out", str(tmp_path)]) == 2
    )
    args = ["transfer", "--suite", SUITE, "--preset", "ci", "--steps", "512", "--seeds", "0",
            "--episodes", "1", "--tasks", "4", "50", "--out", str(tmp_path)]  # fmt: skip
    assert main(args) == 0
    data = json.loads(
        (tmp_path / "control-jax__cartpole-masscart-v1/ppo/seed0/transfer.json").read_text()
    )
    assert np.array(data["scores"]).shape == (2, 2)


def _dies_once(marker: Path) -> None:
    """Killed by SIGKILL on the first call (as a hung worker is), done on the second."""
    import os
    import signal

    if not marker.exists():
        marker.write_text("killed")
        os.kill(os.getpid(), signal.SIGKILL)
    (marker.parent / "done").write_text("ok")


def _fails(marker: Path) -> None:
    raise ValueError("a real error is not retried")


def test_isolated_retries_a_killed_worker_but_not_an_error(tmp_path):
    transfer._isolated(_dies_once, tmp_path / "marker", timeout_s=120)
    assert (tmp_path / "done").read_text() == "ok"
    with pytest.raises(RuntimeError, match="exit code 1"):
        transfer._isolated(_fails, tmp_path / "x", timeout_s=120)
