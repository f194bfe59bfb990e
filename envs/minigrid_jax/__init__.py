"""Pure-JAX MiniGrid backend: the tasks of the MiniGrid suites, step-equivalent to minigrid 3.2.0.

- ``layout.py``: the shared data types (``Layout``, ``TaskParams``) and minigrid's encodings.
- ``core.py``: state, ``step``, the egocentric 7x7x3 observation, conversion from minigrid.
- ``generators.py``: seeded layout generation per task family, in JAX.
- ``env.py``: the functional ``JaxEnv`` of a suite (``mtrl_bench.jax_env``).
"""
