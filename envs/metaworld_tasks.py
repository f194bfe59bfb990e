"""Meta-World task names and suite ids: pure data, importable without MuJoCo or metaworld.

``envs/metaworld.py`` builds the suites from these names; ``mtrl_bench/registry.py`` lists their
ids as a literal (a test checks that it equals ``metaworld_ids()``), and
``tests/test_metaworld.py`` checks ``METAWORLD_TASKS`` against upstream.
"""

from __future__ import annotations

#: Meta-World v3 task names in upstream order (``metaworld.env_dict.ALL_V3_ENVIRONMENTS``).
METAWORLD_TASKS = (
    "assembly-v3", "basketball-v3", "bin-picking-v3", "box-close-v3", "button-press-topdown-v3",
    "button-press-topdown-wall-v3", "button-press-v3", "button-press-wall-v3", "coffee-button-v3",
    "coffee-pull-v3", "coffee-push-v3", "dial-turn-v3", "disassemble-v3", "door-close-v3",
    "door-lock-v3", "door-open-v3", "door-unlock-v3", "hand-insert-v3", "drawer-close-v3",
    "drawer-open-v3", "faucet-open-v3", "faucet-close-v3", "hammer-v3", "handle-press-side-v3",
    "handle-press-v3", "handle-pull-side-v3", "handle-pull-v3", "lever-pull-v3",
    "pick-place-wall-v3", "pick-out-of-hole-v3", "pick-place-v3", "plate-slide-v3",
    "plate-slide-side-v3", "plate-slide-back-v3", "plate-slide-back-side-v3",
    "peg-insert-side-v3", "peg-unplug-side-v3", "soccer-v3", "stick-push-v3", "stick-pull-v3",
    "push-v3", "push-wall-v3", "push-back-v3", "reach-v3", "reach-wall-v3", "shelf-place-v3",
    "sweep-into-v3", "sweep-v3", "window-open-v3", "window-close-v3",
)  # fmt: skip
METAWORLD_BENCHMARKS = ("mt10", "mt25", "mt50", "ml10", "ml45")
#: id infixes of the option variants: reward V1 (``-rv1``), MOORE's 150-step episodes (``-h150``)
METAWORLD_VARIANTS = ("", "-rv1", "-h150", "-rv1-h150")


def metaworld_attr(suite_id: str) -> str:
    """``metaworld/mt10-rv1-v1`` -> ``MT10_RV1_V1``, its attribute in ``envs/metaworld.py``."""
    return suite_id.removeprefix("metaworld/").upper().replace("-", "_")


def metaworld_ids() -> list[str]:
    """Every Meta-World suite id: each benchmark in each variant, MT1 and ML1 per task, and
    MT10-sub3."""
    ids = [f"metaworld/{b}{v}-v1" for v in METAWORLD_VARIANTS for b in METAWORLD_BENCHMARKS]
    mt1 = [f"metaworld/mt1-{t.removesuffix('-v3')}-v1" for t in METAWORLD_TASKS]
    ml1 = [f"metaworld/ml1-{t.removesuffix('-v3')}-v1" for t in METAWORLD_TASKS]
    return [*ids, *mt1, "metaworld/mt10-sub3-v1", *ml1]
