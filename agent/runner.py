"""Run the graph on one problem and keep its trajectory in the store as it grows.

The trajectory row is rewritten after every node that finishes a step, so a run killed at
any moment keeps its finished steps; Ctrl-C marks the run ``interrupted``.

Example:
    >>> run_problem(graph, Problem("p1", "2+3?", answer="5"), store=store,
    ...             model="smollm2-135m", retriever="bm25")  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from rader.agent.records import FINISHED_STATUSES, Problem, Source, Step, Trajectory, now_iso
from rader.agent.state import merge_steps
from rader.agent.store import TrajectoryStore
from rader.retriever import RaderError

OnUpdate = Callable[[str, dict[str, Any], Trajectory], None]
OnToken = Callable[[str, str], None]  # (node, text of one streamed token chunk)


logger = logging.getLogger(__name__)


class RunStopped(Exception):
    """Raised by an ``on_update`` callback to end a run cleanly (Stop in the UI, Ctrl-C in a batch)."""


_SAVE_AFTER = {"reason", "compute", "finish"}


def _guarded(callback: Callable | None) -> Callable | None:
    """A display callback whose failure is logged and ends its display, never the run: a run
    that reached its answer stays stored as it is. `RunStopped` still stops the run."""
    if callback is None:
        return None
    broken = False

    def call(*args) -> None:
        nonlocal broken
        if broken:
            return
        try:
            callback(*args)
        except RunStopped:
            raise
        except Exception:
            broken = True
            logger.exception("displaying the run failed; the run goes on without display")

    return call


def apply_update(trajectory: Trajectory, values: dict[str, Any]) -> None:
    """Fold one node's state update into the trajectory record."""
    if values.get("steps"):  # the steps a node wrote or changed (the state's reducer merges them so)
        merged = merge_steps([step.to_dict() for step in trajectory.steps], values["steps"])
        trajectory.steps = [Step.from_dict(step) for step in merged]
    for key in ("final_answer", "verified"):
        if key in values:
            setattr(trajectory, key, values[key])
    if values.get("status") in FINISHED_STATUSES:
        trajectory.status = values["status"]
        trajectory.finished_at = now_iso()
    if values.get("stop_reason"):
        trajectory.stop_reason = values["stop_reason"]


def run_problem(graph, problem: Problem, *, store: TrajectoryStore | None, model: str, retriever: str,
                config: dict[str, Any] | None = None, on_update: OnUpdate | None = None,
                graph_config: dict[str, Any] | None = None, trajectory_id: str | None = None,
                on_token: OnToken | None = None, source: Source = "python",
                context: Any = None) -> Trajectory:
    """Stream ``graph`` over ``problem``; returns the finished (or interrupted) trajectory.

    ``context`` (an `AgentContext`) is the run's own, instead of the one the graph was built with.

    ``on_update`` sees each node's update; ``on_token``, when given, each token the model
    writes, with the node writing it (LangGraph's ``messages`` stream). A fixed
    ``trajectory_id`` makes a rerun overwrite the same row (harvest resumes that way);
    ``source`` records what started the run.
    """
    trajectory = Trajectory.start(problem, model=model, retriever=retriever, config=config,
                                  trajectory_id=trajectory_id, source=source)
    on_update, on_token = _guarded(on_update), _guarded(on_token)
    if store is not None:
        store.save(trajectory)
    try:
        modes = ["updates", "messages"] if on_token else ["updates"]
        with_context = {"context": context} if context is not None else {}
        for mode, chunk in graph.stream({"problem": problem.to_dict()}, config=graph_config,
                                        stream_mode=modes, **with_context):
            if mode == "messages":
                message, metadata = chunk
                if isinstance(message.content, str) and message.content:
                    on_token(metadata.get("langgraph_node", ""), message.content)
                continue
            for node, values in chunk.items():
                apply_update(trajectory, values or {})
                if store is not None and node in _SAVE_AFTER:
                    store.save(trajectory)
                if on_update is not None:
                    on_update(node, values or {}, trajectory)
    except BaseException as err:
        # KeyboardInterrupt, a stop from the UI, a full disk or a bug: the record says so and
        # keeps its steps (the rows written so far stay whatever this last write does)
        trajectory.mark_interrupted()
        if store is not None:
            try:
                store.save(trajectory)
            except RaderError as failed:
                logger.warning("the interrupted run could not be stored: %s", failed)
                raise err from None
        raise
    if trajectory.status == "running":  # the graph ended without reaching finish
        trajectory.status, trajectory.finished_at = "error", now_iso()
    if store is not None:
        store.save(trajectory)
    return trajectory
