"""Run the agent over many problems at once, for benchmarks and harvests.

``concurrency`` runs share one LLM backend: llama.cpp serves them from its slots with
continuous batching (``llm.parallel``), vLLM batches them in its engine. Each run is timed,
with the part of its wall time spent inside chat-model calls, so the share of time spent
outside the LLM (graph, retrieval, sympy) stays measurable under concurrency.

Ctrl-C (or ``stop.set()``) ends cleanly: runs in flight stop at their next node and are
stored ``interrupted``; runs not started are not started. After Ctrl-C the runs that were in
flight are still yielded, then the KeyboardInterrupt is raised again.

Example:
    >>> jobs = [Job(graph, problem) for problem in problems]  # doctest: +SKIP
    >>> for result in run_jobs(jobs, concurrency=2, store=store, model="m", retriever="bm25"):
    ...     print(result.trajectory.status, result.seconds)  # doctest: +SKIP
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler

from rader.agent.records import Problem, Source, Trajectory
from rader.agent.runner import RunStopped, run_problem
from rader.agent.store import TrajectoryStore


class LLMTimer(BaseCallbackHandler):
    """Adds up wall time spent inside chat-model calls (LangChain callbacks)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._starts: dict[Any, float] = {}

    def on_chat_model_start(self, serialized, messages, *, run_id, **kwargs) -> None:
        self._starts[run_id] = time.perf_counter()

    def on_llm_end(self, response, *, run_id, **kwargs) -> None:
        self.seconds += time.perf_counter() - self._starts.pop(run_id, time.perf_counter())

    def on_llm_error(self, error, *, run_id, **kwargs) -> None:  # a failed call, or a stream the graph cut
        self.on_llm_end(None, run_id=run_id)


@dataclass(frozen=True, slots=True)
class Job:
    """One run: a graph (which carries its model and sampling seed) on one problem."""

    graph: Any
    problem: Problem
    trajectory_id: str | None = None  # fixed ids make a rerun overwrite, not duplicate
    config: dict[str, Any] | None = None  # recorded on the trajectory (sample, seed...)
    retriever: str | None = None  # the retriever name recorded, when jobs of one batch differ
    source: Source = "python"  # what started the run (harvest, bench...)


@dataclass(frozen=True, slots=True)
class JobResult:
    job: Job
    trajectory: Trajectory | None  # None when the run raised before it could start
    seconds: float
    llm_seconds: float
    error: str | None = None


def _run(job: Job, *, store: TrajectoryStore | None, model: str, retriever: str,
         stop: threading.Event) -> JobResult:
    timer = LLMTimer()
    started = time.perf_counter()

    def check_stop(node: str, values: dict[str, Any], trajectory: Trajectory) -> None:
        if stop.is_set():
            raise RunStopped(job.problem.id)

    trajectory, error = None, None
    try:
        trajectory = run_problem(job.graph, job.problem, store=store, model=model,
                                 retriever=job.retriever or retriever,
                                 config=job.config, on_update=check_stop, graph_config={"callbacks": [timer]},
                                 trajectory_id=job.trajectory_id, source=job.source)
    except RunStopped:
        error = "stopped"
    except Exception as err:  # one broken run must not end the batch; its row says interrupted
        error = f"{type(err).__name__}: {err}"
    if trajectory is None and store is not None and job.trajectory_id:
        trajectory = store.get(job.trajectory_id) if store.statuses([job.trajectory_id]) else None
    return JobResult(job, trajectory, time.perf_counter() - started, timer.seconds, error)


def run_jobs(jobs: Iterable[Job], *, concurrency: int = 1, store: TrajectoryStore | None, model: str,
             retriever: str, stop: threading.Event | None = None) -> Iterator[JobResult]:
    """Run ``jobs`` ``concurrency`` at a time; yields each result as it finishes."""
    stop = stop or threading.Event()
    pending_jobs = iter(jobs)
    running: set[Future] = set()
    slots = max(1, concurrency)
    with ThreadPoolExecutor(max_workers=slots, thread_name_prefix="rader-run") as pool:
        try:
            while True:
                while len(running) < slots and not stop.is_set():
                    job = next(pending_jobs, None)
                    if job is None:
                        break
                    running.add(pool.submit(_run, job, store=store, model=model, retriever=retriever,
                                            stop=stop))
                if not running:
                    return
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
        except KeyboardInterrupt:  # Ctrl-C while waiting: the runs in flight end at their next node
            stop.set()  # (stored interrupted, or finished if that node was their last) and are reported
            for future in running:
                yield future.result()
            raise
        except BaseException:  # the consumer stopped iterating: let runs in flight end cleanly
            stop.set()
            for future in running:
                future.result()
            raise
