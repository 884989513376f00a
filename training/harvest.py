"""Harvest trajectories at scale: K sampled runs per problem, C at a time, resumable.

Every (problem, sample) has a fixed trajectory id derived from the harvest's identity
(model, retriever, temperature, seed), so rerunning the same command after a crash or
Ctrl-C skips the runs that finished and redoes only the rest; a run cut short is stored
``interrupted`` and never counted as finished. Ctrl-C returns the summary of what finished,
marked ``stopped``.

``graph_for_sample(k)`` returns the agent graph for sample ``k`` (its model calls seeded
with ``seed + k``, so the K samples differ under temperature); it is called once per run,
so it should cache its graphs (`rader.app.wiring.graphs_by_sample` does). Locally, runs share one
LLM backend through `rader.agent.batch.run_jobs`; with Ray, `rader.training.ray_harvest`
runs the same function on workers.

Example:
    >>> summary = harvest(problems, graph_for_sample, store=store, model="qwen2.5-coder-1.5b",
    ...                   retriever="hybrid", samples=2, concurrency=2)  # doctest: +SKIP
    >>> summary.verified  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from rader.agent.batch import Job, run_jobs
from rader.agent.records import FINISHED_STATUSES, Problem, Trajectory
from rader.agent.store import TrajectoryStore

GraphForSample = Callable[[int], Any]


@dataclass(frozen=True, slots=True)
class HarvestSpec:
    """What makes two harvests the same harvest (and their trajectory ids equal)."""

    model: str
    retriever: str
    samples: int = 1
    temperature: float = 0.0
    seed: int = 0

    def trajectory_id(self, problem_id: str, sample: int) -> str:
        key = f"{self.model}|{self.retriever}|{self.temperature}|{self.seed}|{problem_id}|{sample}"
        return "h" + hashlib.sha256(key.encode()).hexdigest()[:24]

    def run_config(self, sample: int) -> dict[str, Any]:
        return {"harvest": {**asdict(self), "sample": sample}}


@dataclass
class HarvestSummary:
    planned: int = 0
    skipped: int = 0  # finished by an earlier run of the same harvest
    ran: int = 0
    done: int = 0
    budget_exhausted: int = 0
    verified: int = 0
    failed: int = 0  # error or interrupted
    seconds: float = 0.0
    stopped: bool = False  # Ctrl-C ended the harvest early (rerun the command to resume)

    def count(self, trajectory: Trajectory | None) -> None:
        self.ran += 1
        status = trajectory.status if trajectory else "interrupted"
        if status == "done":
            self.done += 1
        elif status == "budget_exhausted":
            self.budget_exhausted += 1
        else:
            self.failed += 1
        self.verified += bool(trajectory and trajectory.verified is True)

    @property
    def runs_per_hour(self) -> float:
        return 3600 * self.ran / self.seconds if self.seconds else 0.0


def pending_runs(problems: list[Problem], spec: HarvestSpec,
                 store: TrajectoryStore) -> tuple[list[tuple[Problem, int, str]], int]:
    """(problem, sample, trajectory id) of every run not finished yet, and how many are."""
    planned = [(p, k, spec.trajectory_id(p.id, k)) for p in problems for k in range(spec.samples)]
    statuses = store.statuses(tid for _, _, tid in planned)
    todo = [run for run in planned if statuses.get(run[2]) not in FINISHED_STATUSES]  # interrupted: again
    return todo, len(planned) - len(todo)


def harvest(problems: list[Problem], graph_for_sample: GraphForSample, *, store: TrajectoryStore,
            spec: HarvestSpec, concurrency: int = 1, stop: threading.Event | None = None,
            on_result: Callable[[Trajectory | None], None] | None = None) -> HarvestSummary:
    """Run every unfinished (problem, sample) of ``spec`` on this machine; see the module doc."""
    todo, skipped = pending_runs(problems, spec, store)
    summary = HarvestSummary(planned=len(todo) + skipped, skipped=skipped)

    def jobs() -> Iterator[Job]:
        for problem, sample, trajectory_id in todo:
            yield Job(graph_for_sample(sample), problem, trajectory_id, spec.run_config(sample),
                      source="harvest")

    started = time.perf_counter()
    try:
        for result in run_jobs(jobs(), concurrency=concurrency, store=store, model=spec.model,
                               retriever=spec.retriever, stop=stop):
            summary.count(result.trajectory)
            if on_result:
                on_result(result.trajectory)
    except KeyboardInterrupt:  # the runs in flight were stored interrupted: report what finished
        summary.stopped = True
    finally:
        summary.seconds = time.perf_counter() - started
    return summary
