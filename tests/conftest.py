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


def pytest_runtest_teardown(item, nextitem):
    """After a test module's last test (on this worker), drop the programs JAX compiled for it
    (``jax.clear_caches``) and return the freed heap to the OS (``malloc_trim``): a worker
    otherwise keeps every module's executables for the whole session. The figures, before and
    after: docs/performance.md (``benchmarks/test_suite_memory.py``).
    ``MTRL_TEST_KEEP_CACHES=1`` turns it off; ``MTRL_TEST_RSS_LOG=FILE`` appends each worker's
    RSS and peak RSS (GB) after each module."""
    import sys

    if nextitem is not None and nextitem.module is item.module:
        return
    keep = os.environ.get("MTRL_TEST_KEEP_CACHES") == "1"  # the old behaviour, for comparisons
    if (jax := sys.modules.get("jax")) is not None and not keep:
        import gc

        jax.clear_caches()
        gc.collect()
        try:  # hand the freed heap back to the OS (glibc keeps it otherwise)
            import ctypes

            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass
    if log := os.environ.get("MTRL_TEST_RSS_LOG"):  # per-module RSS and peak (GB) of a worker
        with open("/proc/self/status") as f:
            kb = {k: v.split()[0] for k, v in (line.split(":", 1) for line in f) if k in
                  ("VmRSS", "VmHWM")}  # fmt: skip
        with open(log, "a") as f:
            f.write(
                f"{os.getpid()} {item.module.__name__} {int(kb['VmRSS']) / 1e6:.2f} "
                f"{int(kb['VmHWM']) / 1e6:.2f}\n"
            )
