"""Agent runs for the service: a bounded pool of worker threads, each run stoppable at any token.

`RunPool.submit` admits a `Run` if a slot or a queue place is free and raises `Busy` (HTTP 429)
otherwise. Each run streams the graph through `rader.agent.runner.run_problem`, so it lands in the
trajectory store like a `rader solve` run; `Run.stop` (a client gone, SIGTERM) makes the next
token or node update end the run (a model call in flight is cut), and the runner stores it
``interrupted``. Every `Piece` of chat
text goes to the run's ``emit``; the last one carries ``{"event": "end"}``.

Example:
    >>> pool = RunPool(concurrency=1, queue_size=0)
    >>> run = pool.submit(Run(job, store=store, title_of=str, emit=print))  # doctest: +SKIP
    >>> run.wait().trajectory.status  # doctest: +SKIP
    'done'
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, NamedTuple

from langchain_core.callbacks import BaseCallbackHandler

from rader.agent.records import Problem, Trajectory
from rader.agent.runner import RunStopped, run_problem
from rader.agent.store import TrajectoryStore
from rader.app.serve_render import Piece, StreamTracker, TitleOf
from rader.retriever import RaderError

log = logging.getLogger(__name__)
OVERRUN_GRACE = (0.25, 30.0)  # a run past its time budget by a quarter of it (at most 30 s) is cut
QUEUE_POLL_S = 0.1  # how often a queued run checks whether its client gave up


class Busy(RaderError):
    """Every run slot and queue place is taken, or the server is shutting down (HTTP 429)."""


class _Cut(BaseException):
    """Raised inside a model call, from its token callback, to end a stopped run's call at once.

    A BaseException: the graph turns a failed call (an ``Exception``) into a recorded event and
    goes on, so a stop must not look like one; the runner stores the run ``interrupted``.
    """


class _StopInCall(BaseCallbackHandler):
    """A LangChain callback (so any chat model) that cuts the model's stream when the run stops:
    closing the stream stops the server's generation, and the run ends within a token."""

    raise_error = True

    def __init__(self, run: Run) -> None:
        self.run = run

    def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
        self.run.check(_Cut)


def usage_of(trajectory: Trajectory | None) -> dict[str, Any]:
    """OpenAI's ``usage`` from the tokens the run recorded for its steps (what the store holds)."""
    prompt, completion, cached = (0, 0, 0) if trajectory is None else (
        trajectory.prompt_tokens, trajectory.completion_tokens, trajectory.cached_tokens)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached}}


class Job(NamedTuple):
    """What one run does: a built graph over a problem, with the budget it was given."""

    graph: Any
    problem: Problem
    model: str
    retriever: str
    config: dict[str, Any]
    max_seconds: float
    context: Any = None  # the run's AgentContext (its own budgets on the graph's parts)


class Run:
    """One agent run, from admission to its stored trajectory."""

    def __init__(self, job: Job, *, store: TrajectoryStore, title_of: TitleOf,
                 emit: Callable[[Piece], None], live_tokens: bool = True) -> None:
        self.id = uuid.uuid4().hex  # the trajectory id, known before the run starts
        self.job, self.store, self.emit = job, store, emit
        self.tracker = StreamTracker(title_of, self._emit, live_tokens=live_tokens)
        self.state = "queued"  # queued, running, finished
        self.trajectory: Trajectory | None = None
        self.error: str | None = None
        self.stop_reason: str | None = None
        self.seconds = 0.0
        self._stop = threading.Event()
        self._done = threading.Event()
        self._deadline = float("inf")

    def stop(self, reason: str) -> None:
        """Ask the run to end at its next token or node (or not to start); it is stored interrupted."""
        if not self._stop.is_set():
            self.stop_reason = reason
            self._stop.set()

    def wait(self, timeout: float | None = None) -> Run:
        self._done.wait(timeout)
        return self

    @property
    def finished(self) -> bool:
        return self._done.is_set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _emit(self, piece: Piece) -> None:
        try:
            self.emit(piece)
        except RuntimeError:  # the consumer's event loop is closed: nobody is listening any more
            self.stop("the client is gone")

    def check(self, stopped: type[BaseException] = RunStopped) -> None:
        """Raise ``stopped`` if the run was asked to stop or is far past its time budget."""
        if time.monotonic() > self._deadline:
            self.stop(f"over its wall-time budget ({self.job.max_seconds:g} s)")
        if self._stop.is_set():
            raise stopped(self.stop_reason)

    @property
    def usage(self) -> dict[str, Any]:
        return usage_of(self.trajectory)

    def _on_update(self, node: str, values: dict[str, Any], trajectory: Trajectory) -> None:
        self.trajectory = trajectory
        self.tracker.on_update(node, trajectory)
        self.check()

    def _on_token(self, node: str, text: str) -> None:
        self.tracker.on_token(node, text)
        self.check()

    def execute(self) -> None:
        """Run the job here and now (the pool calls this in a worker thread)."""
        started = time.monotonic()
        share, most = OVERRUN_GRACE
        self._deadline = started + self.job.max_seconds + min(share * self.job.max_seconds, most)
        job = self.job
        try:
            if self._stop.is_set():
                self.error = f"stopped before it started: {self.stop_reason}"
                return
            self.state = "running"
            self.trajectory = run_problem(
                job.graph, job.problem, store=self.store, model=job.model, retriever=job.retriever,
                config=job.config, on_update=self._on_update, on_token=self._on_token,
                graph_config={"callbacks": [_StopInCall(self)]}, trajectory_id=self.id, source="serve",
                context=job.context)
            self.tracker.finish(self.trajectory)
        except (RunStopped, _Cut):
            self.trajectory = self.trajectory or self.store.get(self.id)
            self.tracker.finish(self.trajectory)
        except Exception as err:  # a bug or a backend failure: the client gets the message, the log the trace
            log.exception("agent run %s failed", self.id)
            self.error = str(err) if isinstance(err, RaderError) else (
                f"the agent run failed ({type(err).__name__}: {str(err)[:300]})")
        finally:
            self.seconds = time.monotonic() - started
            self.state = "finished"
            self._done.set()
            self._emit(Piece(event={"event": "end"}))

    def summary(self) -> dict[str, Any]:
        """The ``rader`` field of a finished run's response."""
        t = self.trajectory
        return {"trajectory_id": self.id, "status": t.status if t else "error",
                "final_answer": t.final_answer if t else None, "verified": t.verified if t else None,
                "steps": len(t.steps) if t else 0, "retriever": self.job.retriever, "model": self.job.model,
                "stop_reason": self.stop_reason, "error": self.error, "seconds": round(self.seconds, 3)}


class RunPool:
    """At most ``concurrency`` runs at once and ``queue_size`` more waiting; the rest are refused."""

    def __init__(self, concurrency: int, queue_size: int,
                 on_finish: Callable[[Run], None] | None = None) -> None:
        self.concurrency, self.queue_size = concurrency, queue_size
        self.on_finish = on_finish
        self.closing = False
        self._slots = threading.BoundedSemaphore(concurrency)
        self._lock = threading.Lock()
        self._runs: dict[str, Run] = {}
        self._threads: dict[str, threading.Thread] = {}

    @property
    def in_flight(self) -> int:
        return sum(run.state == "running" for run in list(self._runs.values()))

    @property
    def queued(self) -> int:
        return sum(run.state == "queued" for run in list(self._runs.values()))

    def submit(self, run: Run) -> Run:
        with self._lock:
            if self.closing:
                raise Busy("the server is shutting down; retry against its successor")
            if len(self._runs) >= self.concurrency + self.queue_size:
                raise Busy(f"all {self.concurrency} run slots and {self.queue_size} queue places are "
                           "taken; retry later (serve.concurrency / serve.queue_size set the limits)")
            self._runs[run.id] = run
            thread = threading.Thread(target=self._work, args=(run,), name=f"rader-run-{run.id[:8]}",
                                      daemon=True)  # a hung model call must not keep the process alive
            self._threads[run.id] = thread
        thread.start()
        return run

    def _work(self, run: Run) -> None:
        try:
            while not self._slots.acquire(timeout=QUEUE_POLL_S):
                if run.stopping:  # given up while waiting: it leaves the queue without a slot
                    run.execute()
                    return
            try:
                run.execute()
            finally:
                self._slots.release()
        finally:
            with self._lock:
                self._runs.pop(run.id, None)
                self._threads.pop(run.id, None)
            if self.on_finish is not None:
                self.on_finish(run)

    def close(self, reason: str, timeout: float) -> list[Run]:
        """Refuse new runs, stop the ones admitted, wait up to ``timeout`` s; returns those still going."""
        with self._lock:
            self.closing = True
            runs, threads = list(self._runs.values()), list(self._threads.values())
        for run in runs:
            run.stop(reason)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return [run for run in runs if not run.finished]
