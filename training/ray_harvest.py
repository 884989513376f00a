"""The harvest on Ray: the same per-run function on Ray actors, whole trajectories back.

Each actor builds its agent once (``factory()`` returns a graph-for-sample function: on a
GPU cluster, one whose LLM is vLLM) and runs ``runs_per_worker`` (problem, sample) runs at
once in its own threads, so a vLLM engine in the actor batches their calls together
(continuous batching) and llama.cpp fills its slots; ``gpus_per_worker`` reserves GPUs for
each actor (1 on GPU nodes: one engine per GPU). Only finished trajectories travel back; the
driver writes them to its store, so a worker that dies leaves nothing half-written and a rerun
redoes exactly what is missing.

``address``: ``"local"`` starts Ray on this machine; anything else (``"auto"``,
``"ray://head:10001"``) joins that cluster.

Example:
    >>> summary = harvest_on_ray(problems, factory, store=store, spec=spec, workers=2,
    ...                          runs_per_worker=32, gpus_per_worker=1, address="auto")  # doctest: +SKIP
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
                   runs_per_worker: int = 1, cpus_per_worker: float = 1, gpus_per_worker: float = 0,
                   on_result: Callable[[Trajectory | None], None] | None = None) -> HarvestSummary:
    """Run every unfinished (problem, sample) of ``spec`` on ``workers`` Ray actors, each with
    ``runs_per_worker`` runs in flight."""
    ray = _ray()

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
        actor = ray.remote(num_cpus=cpus_per_worker, num_gpus=gpus_per_worker,
                           max_concurrency=runs_per_worker)(HarvestWorker)
        actors = [actor.remote(factory, spec) for _ in range(min(workers, len(todo)))]
        waiting, in_flight, load = list(reversed(todo)), {}, [0] * len(actors)
        while waiting or in_flight:
            while waiting and len(in_flight) < len(actors) * runs_per_worker:  # the least busy actor
                problem, sample, trajectory_id = waiting.pop()
                i = min(range(len(actors)), key=load.__getitem__)
                in_flight[actors[i].run.remote(problem.to_dict(), sample, trajectory_id)] = i
                load[i] += 1
            [ready], _ = ray.wait(list(in_flight), num_returns=1)
            load[in_flight.pop(ready)] -= 1
            data = ray.get(ready)
            trajectory = Trajectory.from_dict(data) if data else None
            if trajectory is not None:
                store.save(trajectory)
            summary.count(trajectory)
            if on_result:
                on_result(trajectory)
    except KeyboardInterrupt:  # the runs in flight are lost (never stored): the next harvest redoes them
        summary.stopped = True
    finally:
        summary.seconds = time.perf_counter() - started
        if started_here:
            ray.shutdown()
    return summary
