"""Property: on freshly generated smooth transfer matrices the default MBTL (``gp="sound"``)
selects at least as well as random selection (issue 16; evidence at scale in
``results/transfer/mbtl-synthetic/table.md``)."""

import numpy as np
import pytest

from experiments.mbtl_synthetic import Spec, matrix
from mtrl_bench.agents import mbtl

N, K = 24, 8
SHAPES = ("gp", "sines", "peak", "ramp")


def _smooth(seed: int) -> np.ndarray:
    """A smooth training performance, a linear gap and noise, with parameters drawn by ``seed``."""
    rng = np.random.default_rng(seed)
    spec = Spec(name="property", shape=SHAPES[seed % 4], n=N, offset=float(rng.choice([0, 1.2])),
                amplitude=float(rng.uniform(0.05, 0.5)), smooth=float(rng.uniform(0.1, 0.4)),
                slope=float(rng.uniform(0.1, 2.0)), skew=0.0, noise=0.01, row_noise=0.0,
                floor=None, theta_factor=1.0, seed=seed)  # fmt: skip
    return matrix(spec)


@pytest.mark.parametrize("seed", range(1000, 1006))
def test_default_mbtl_is_at_least_random_on_smooth_matrices(seed: int) -> None:
    m = _smooth(seed)
    # theta as a domain table would give it, not the true slope: the default estimates it
    ours = mbtl.curve(m, mbtl.mbtl_order(m.__getitem__, N, K, theta=0.005, seed=0)).mean()
    rand = np.mean([mbtl.curve(m, o).mean() for o in mbtl.random_orders(N, K, seed=0)])
    best = mbtl.curve(m, mbtl.sequential_oracle_order(m, K)).mean()
    # Tolerance: 10 % of the sequential oracle's lead over random. Random's score is a mean of 100
    # orders, MBTL's a single order, so on a matrix where every selector is near the oracle a tie
    # can land a hair below; a GP that explores badly (the reference's) trails by much more.
    assert ours >= rand - 0.1 * (best - rand), (ours, rand, best)
