import os

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("OMP_NUM_THREADS", "1")
# One XLA thread per test process: the xdist workers already fill the 2 cores.
os.environ.setdefault(
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
)


def pytest_configure(config):
    """A per-session persistent XLA cache: tests that build the same jitted program again
    (resume, save -> load, adapt) compile it once. Fresh per session, so nothing stale."""
    import tempfile

    try:
        import jax
    except ImportError:
        return
    config._mtrl_xla_cache = tempfile.mkdtemp(prefix="mtrl-xla-")
    jax.config.update("jax_compilation_cache_dir", config._mtrl_xla_cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def pytest_unconfigure(config):
    import shutil

    if hasattr(config, "_mtrl_xla_cache"):
        shutil.rmtree(config._mtrl_xla_cache, ignore_errors=True)
