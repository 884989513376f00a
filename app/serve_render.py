"""An agent run as chat text: each step's reasoning, the theorems it retrieved with the model's
verdicts, its sympy checks, and the boxed answer.

Everything here reads the `Trajectory` record (and the text of streamed tokens), never the
state of a graph node; the only node names it knows are the graph's published
`rader.agent.graph.SOLUTION_NODES`, whose tokens are the solution. `StreamTracker` turns the
runner's callbacks into `Piece`s of text, each optionally carrying a structured event (the
documented ``rader`` field of a chat chunk).

Example:
    >>> from rader.agent.records import Problem, Step, Trajectory
    >>> t = Trajectory.start(Problem("p", "1+1?"), model="m", retriever="none")
    >>> t.steps, t.final_answer, t.status = [Step(1, thought="1+1=2.")], "2", "done"
    >>> print(trajectory_text(t, str))
    1+1=2.
    <BLANKLINE>
    **Answer:** $\\boxed{2}$ (not checked: no gold answer)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from rader.agent.graph import SOLUTION_NODES
from rader.agent.records import Step, Trajectory

TitleOf = Callable[[str], str]  # theorem id -> its title


class Piece(NamedTuple):
    """A bit of a run's chat text; ``event`` is structured data about it (a step, the end)."""

    text: str = ""
    event: dict[str, Any] | None = None


def _verdict(judgment) -> str:
    verdict = "relevant" if judgment.relevant else "not relevant"
    if judgment.score is not None:
        verdict += f" (p={judgment.score:.2f})"
    rationale = " ".join(judgment.rationale.split())
    return f"{verdict}: {rationale[:200]}" if rationale else verdict


@dataclass
class _Shown:
    """What of one step the text already holds."""

    hits: set[str] = field(default_factory=set)
    judgments: set[str] = field(default_factory=set)
    tool_calls: int = 0


def step_notes(step: Step, title_of: TitleOf, shown: _Shown | None = None) -> str:
    """Lines for what ``step`` retrieved, judged and computed that ``shown`` does not hold yet."""
    shown = shown if shown is not None else _Shown()
    judged = {j.theorem_id: j for j in step.judgments}
    lines: list[str] = []
    for hit in step.hits:
        if hit.theorem_id in shown.hits:
            continue
        line = f"- {title_of(hit.theorem_id)} (`{hit.theorem_id}`, {hit.retriever} {hit.score:.3f})"
        if hit.theorem_id in judged:
            line += f": {_verdict(judged[hit.theorem_id])}"
            shown.judgments.add(hit.theorem_id)
        lines.append(line)
        shown.hits.add(hit.theorem_id)
    if lines:
        lines.insert(0, f"Theorems retrieved for step {step.index}:")
    for judgment in step.judgments:
        if judgment.theorem_id not in shown.judgments:
            lines.append(f"- verdict on {title_of(judgment.theorem_id)}: {_verdict(judgment)}")
            shown.judgments.add(judgment.theorem_id)
    for call in step.tool_calls[shown.tool_calls:]:
        lines.append(f"- {call.tool}: `{call.input}` -> `{call.output}` ({call.status})")
    shown.tool_calls = len(step.tool_calls)
    return "\n".join(lines) + "\n\n" if lines else ""


def answer_text(trajectory: Trajectory) -> str:
    """The closing line: the boxed answer and its verification, or why there is none."""
    if trajectory.final_answer is None:
        reason = trajectory.stop_reason or trajectory.status
        return f"**No answer** (run {trajectory.status}: {reason})"
    check = {True: "verified", False: "wrong", None: "not checked: no gold answer"}[trajectory.verified]
    return f"**Answer:** $\\boxed{{{trajectory.final_answer}}}$ ({check})"


def trajectory_text(trajectory: Trajectory, title_of: TitleOf) -> str:
    """The whole run as one chat message (what a non-streaming request answers): each step's
    text, what it retrieved, judged and computed, then the answer."""
    parts = []
    for step in trajectory.steps:
        thought = step.thought.strip()
        parts.append((thought + "\n\n" if thought else "") + step_notes(step, title_of))
    return "".join(parts) + answer_text(trajectory)


def step_event(step: Step, number: int, title_of: TitleOf) -> dict[str, Any]:
    """The ``rader`` field of a chunk about a step: the step as recorded so far (a later event with
    the same ``number`` replaces it), each hit with its theorem's title."""
    data = step.to_dict()
    for hit in data["hits"]:
        hit["title"] = title_of(hit["theorem_id"])
    return {"event": "step", "number": number, "step": data}


class StreamTracker:
    """Turns ``run_problem``'s callbacks into chat text, in order, each piece once.

    Tokens stream live from the nodes that write the solution (the graph's `SOLUTION_NODES`);
    tokens of other nodes (query writing, relevance verdicts) are never shown. ``emit``
    receives each `Piece`.
    """

    def __init__(self, title_of: TitleOf, emit: Callable[[Piece], None], *, live_tokens: bool = True) -> None:
        self.title_of, self.emit, self.live_tokens = title_of, emit, live_tokens
        self._shown: list[_Shown] = []  # one per landed step, by position
        self._thoughts: list[str] = []  # each landed step's thought as last seen
        self._draft_open = False  # tokens are streaming that no landed step holds yet

    def on_token(self, node: str, text: str) -> None:
        if self.live_tokens and node in SOLUTION_NODES and text:
            self._draft_open = True
            self.emit(Piece(text))

    def on_update(self, node: str, trajectory: Trajectory) -> None:
        steps = trajectory.steps
        landed = len(steps) > len(self._shown) or any(
            step.thought != old for step, old in zip(steps, self._thoughts, strict=False))
        streamed = self._draft_open  # the tokens just streamed are the text of the steps landing now
        if self._draft_open and (landed or node in SOLUTION_NODES):
            self._draft_open = False  # landed, or that call's text did not become a step
            self.emit(Piece("\n\n"))
        for number, step in enumerate(steps, start=1):
            text = ""
            new = number > len(self._shown)
            if new:
                self._shown.append(_Shown())
                thought = step.thought.strip()
                if thought and not (streamed and landed):
                    text = thought + "\n\n"
            text += step_notes(step, self.title_of, self._shown[number - 1])
            if new or text:
                self.emit(Piece(text, step_event(step, number, self.title_of)))
        self._thoughts = [step.thought for step in steps]

    def finish(self, trajectory: Trajectory) -> None:
        """The closing piece: the boxed answer, once the run is over."""
        if self._draft_open:
            self._draft_open = False
            self.emit(Piece("\n\n"))
        self.on_update("", trajectory)  # anything recorded after the last update
        self.emit(Piece(answer_text(trajectory)))
