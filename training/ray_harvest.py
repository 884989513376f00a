"""The harvest on Ray: the same per-run function on Ray actors, whole trajectories back.

Each actor builds its agent once (``factory()`` returns a graph-for-sample function: on a
GPU cluster, one whose LLM is vLLM) and runs one (problem, sample) at a time. Only
finished trajectories travel back; the driver writes them to its store, so a worker that
dies leaves nothing half-written and a rerun redoes exactly what is missing.

``address``: ``"local"`` starts Ray on this machine; anything else (``"auto"``,
``"ray://head:10001"``) joins that cluster.

Example:
    >>> summary = harvest_on_ray(problems, factory, store=store, spec=spec, workers=2,
    ...                          address="local")  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from rader.agent.records import Problem, Trajectory
from rader.agent.runner import run_problem
from rader.agent.store import TrajectoryStore
from rader.retriever import RaderError
from rader.training.harvest import GraphForSample, HarvestSpec, HarvestSummary, pending_runs


class HarvestWorker:
    """Lives in a Ray actor: one agent, reused for every run sent to it."""

    def __init__(self, factory: Callable[[], GraphForSample], spec: HarvestSpec) -> None:
        self.graph_for_sample = factory()
        self.spec = spec

    def run(self, problem: dict[str, Any], sample: int, trajectory_id: str) -> dict[str, Any] | None:
        """The finished trajectory as a dict; None when the run broke (it is redone next time)."""
        try:
            trajectory = run_problem(self.graph_for_sample(sample), Problem.from_dict(problem), store=None,
                                     model=self.spec.model, retriever=self.spec.retriever,
                                     config=self.spec.run_config(sample), trajectory_id=trajectory_id,
                                     source="harvest")
        except Exception:
            logging.getLogger(__name__).exception("run %s failed", trajectory_id)
            return None
        return trajectory.to_dict()


def _ray():
    try:
        import ray
    except ImportError:
        raise RaderError('Ray is not installed: pip install "rader[ray]"') from None
    return ray


def harvest_on_ray(problems: list[Problem], factory: Callable[[], GraphForSample], *,
                   store: TrajectoryStore, spec: HarvestSpec, workers: int = 1, address: str = "local",
                   cpus_per_worker: float = 1,
                   on_result: Callable[[Trajectory | None], None] | None = None) -> HarvestSummary:
    """Run every unfinished (problem, sample) of ``spec`` on ``workers`` Ray actors."""
    ray = _ray()
    from ray.util import ActorPool

    todo, skipped = pending_runs(problems, spec, store)
    summary = HarvestSummary(planned=len(todo) + skipped, skipped=skipped)
    if not todo:
        return summary
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=None if address == "local" else address, include_dashboard=False,
                 log_to_driver=False, configure_logging=False)
    started = time.perf_counter()
    try:
        actor = ray.remote(num_cpus=cpus_per_worker)(HarvestWorker)
        pool = ActorPool([actor.remote(factory, spec) for _ in range(min(workers, len(todo)))])
        runs = pool.map_unordered(
            lambda worker, run: worker.run.remote(run[0].to_dict(), run[1], run[2]), todo)
        for data in runs:
            trajectory = Trajectory.from_dict(data) if data else None
            if trajectory is not None:
                store.save(trajectory)
            summary.count(trajectory)
            if on_result:
                on_result(trajectory)
    finally:
        summary.seconds = time.perf_counter() - started
        if started_here:
            ray.shutdown()
    return summary
