"""The Ray executor of ``mtrl sweep`` (``--executor ray``): each run is one Ray task.

The task is ``sweep_store.run_job``, the function the local pool runs, so both executors write
the same run directories. It declares its CPUs and GPUs (``num_cpus``, ``num_gpus``), and Ray
retries it up to ``max_retries`` times when its worker process or its node dies (system
failures; a run that raises is not retried: the same config would raise again). A retried run
finds its checkpoints in the store and resumes from them (``sweep_store``). Run states reach
the driver through a ``ray.util.queue.Queue`` whose actor is pinned to the driver's node, so
losing a worker node loses no event. Ray is imported here only.
"""

from __future__ import annotations

from collections.abc import Sequence

from mtrl_bench.sweep import Event, with_events
from mtrl_bench.sweep_store import Job, Outcome, QueueReport, Store, run_job


def run_ray(jobs: Sequence[Job], store: Store, on_event: Event, *, address: str | None = None,
            num_cpus: float = 1.0, num_gpus: float = 0.0,
            max_retries: int = 3) -> list[Outcome]:  # fmt: skip
    """Run ``jobs`` on the Ray cluster at ``address`` (``None``: ``RAY_ADDRESS``, else a
    cluster already started on this machine, else a new local one)."""
    import ray
    from ray.util.queue import Queue
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    connected_here = not ray.is_initialized()
    if connected_here:
        ray.init(address=address, logging_level="warning")
    try:
        here = ray.get_runtime_context().get_node_id()
        queue = Queue(actor_options={
            "num_cpus": 0, "scheduling_strategy": NodeAffinitySchedulingStrategy(here, soft=False),
        })  # fmt: skip
        task = ray.remote(run_job).options(
            num_cpus=num_cpus, num_gpus=num_gpus, max_retries=max_retries, retry_exceptions=False
        )
        refs = {task.remote(job, store, QueueReport(queue)): job for job in jobs}
        pending, outcomes = list(refs), []
        while pending:
            ready, pending = ray.wait(pending, num_returns=1, timeout=0.2)
            with_events(queue, on_event)
            for ref in ready:
                job = refs[ref]
                try:
                    outcome = ray.get(ref)
                except ray.exceptions.RayError as err:  # retries used up (worker or node lost)
                    error = f"{type(err).__name__}: {str(err).strip().splitlines()[0]}"
                    outcome = Outcome(job.key, "failed", error, store.location(job, "sweep.log"))
                on_event(job.key, outcome.state, {"outcome": outcome})
                outcomes.append(outcome)
        queue.shutdown()
        return outcomes
    finally:
        if connected_here:
            ray.shutdown()
