"""One agent run per browser session, in a worker thread whose snapshots the page streams.

The worker builds the agent (fetching the model on first use), streams the graph through
`rader.agent.runner.run_problem` (which keeps the trajectory in the store after every
step) and publishes the latest node, the live trajectory, the pending retrieval and the
text the model is writing now, token by token (``draft``). `LiveRun.stop`
asks it to end: the next node update raises `RunStopped` inside the runner, which marks the
stored trajectory ``interrupted``.

Example:
    >>> run = LiveRun(build, problem, store=store, config={})  # doctest: +SKIP
    >>> for snapshot in run.start().snapshots():  # doctest: +SKIP
    ...     print(snapshot.node, snapshot.trajectory_id)
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from rader.agent.graph import SOLUTION_NODES
from rader.agent.parts import AgentParts
from rader.agent.records import Problem
from rader.agent.runner import RunStopped, run_problem
from rader.agent.store import TrajectoryStore
from rader.retriever import RaderError
from rader.ui.backend import Progress

log = logging.getLogger(__name__)


class Snapshot(NamedTuple):
    """What the page shows of a run at one moment."""

    phase: str  # loading, running, done, stopped, error
    updates: int  # node updates so far: a snapshot with as many as the last one shown is a clock tick
    node: str | None
    trajectory_id: str | None
    pending: dict[str, Any] | None
    error: str | None
    elapsed_s: float
    fetched: tuple[int, int | None] | None  # model bytes fetched so far, of how many
    trajectory: dict[str, Any] | None = None  # the run as it stands (Trajectory.to_dict)
    draft: str = ""  # what the model has written since the last step landed (streamed tokens)

    @property
    def finished(self) -> bool:
        return self.phase in ("done", "stopped", "error")


class LiveRun:
    """An agent run in a worker thread; `snapshots` yields its state as it changes."""

    def __init__(self, build: Callable[[Progress], AgentParts], problem: Problem, *,
                 store: TrajectoryStore, config: dict[str, Any]) -> None:
        self._build, self.problem, self.store, self.config = build, problem, store, config
        self._lock = threading.Lock()
        self._changed = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name="rader-ui-run", daemon=True)
        self._started = time.monotonic()
        self._state = Snapshot("loading", 0, None, None, None, None, 0.0, None)

    # -- the page's side -------------------------------------------------------------------
    def start(self) -> LiveRun:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def wait(self, timeout: float | None = None) -> Snapshot:
        self._thread.join(timeout)
        return self.snapshot()

    def snapshot(self) -> Snapshot:
        with self._lock:
            return self._state._replace(elapsed_s=time.monotonic() - self._started)

    def snapshots(self, tick_s: float = 0.5) -> Iterator[Snapshot]:
        """The state after each change, and at least every ``tick_s`` (the page's clock, and
        a chance for Gradio to close this generator when the page cancels the run)."""
        while True:
            self._changed.wait(tick_s)
            self._changed.clear()
            snapshot = self.snapshot()
            yield snapshot
            if snapshot.finished:
                return

    # -- the worker's side -----------------------------------------------------------------
    def _publish(self, wake: bool = True, **changes: Any) -> None:
        with self._lock:
            self._state = self._state._replace(**changes)
        if wake:
            self._changed.set()

    def _on_update(self, node: str, values: dict[str, Any], trajectory) -> None:
        changes: dict[str, Any] = {"phase": "running", "node": node, "trajectory_id": trajectory.id,
                                   "updates": self._state.updates + 1, "trajectory": trajectory.to_dict()}
        if "pending" in values:
            changes["pending"] = values["pending"]
        if values.get("steps"):  # the draft became steps
            changes["draft"] = ""
        self._publish(**changes)
        if self._stop.is_set():
            raise RunStopped

    def _on_token(self, node: str, token: str) -> None:
        if node in SOLUTION_NODES:  # the solution's tokens, not a query's or a verdict's
            self._publish(wake=False, draft=self._state.draft + token)  # shown at the next tick
        if self._stop.is_set():
            raise RunStopped

    def _work(self) -> None:
        try:
            parts = self._build(lambda done, total: self._publish(fetched=(done, total)))
            if self._stop.is_set():
                self._publish(phase="stopped")
                return
            trajectory = run_problem(parts.graph, self.problem, store=self.store, model=parts.model,
                                     retriever=parts.retriever_name, config=self.config,
                                     on_update=self._on_update, on_token=self._on_token, source="ui",
                                     context=parts.context())
            self._publish(phase="done", trajectory_id=trajectory.id, pending=None)
        except RunStopped:
            self._publish(phase="stopped", pending=None)
        except RaderError as err:
            self._publish(phase="error", error=str(err))
        except Exception as err:  # a bug or a backend failure: the page says so, the log has the trace
            log.exception("agent run failed")
            self._publish(phase="error", error=f"{type(err).__name__}: {err}")
