"""The graph state: plain JSON-able values, so any LangGraph checkpointer can store it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

from rader.agent.sandbox import ComputeLimits

RetrievalSchedule = Literal["every_step", "first_k", "model", "never"]


class AgentState(TypedDict, total=False):
    problem: dict[str, Any]  # a Problem as a dict; the only required input
    steps: list[dict[str, Any]]  # finished Steps as dicts
    pending: dict[str, Any]  # queries, hits and judgments gathered for the next step
    compute_request: str | None
    search_request: str | None  # a query the model asked for (schedule "model")
    final_answer: str | None
    verified: bool | None
    status: str
    stop_reason: str
    started: float
    tokens: int
    retrievals: int
    reasks: int


@dataclass(frozen=True, kw_only=True)
class AgentConfig:
    """How the agent runs; every field has a safe default."""

    max_steps: int = 8  # reasoning steps before the run ends as budget_exhausted
    max_retrievals: int = 8  # retrievals before the run ends as budget_exhausted
    max_tokens: int = 20000  # prompt + completion tokens over the whole run (judging costs ~1.5k a step)
    max_seconds: float = 600.0  # wall time of the whole run
    retrieval: RetrievalSchedule = "every_step"  # when the graph retrieves before a step
    first_k: int = 2  # with retrieval="first_k": retrieve before the first k steps
    k: int = 3  # theorems retrieved (and judged) per retrieval
    judge: bool = True  # run the self-reflective relevance check
    judge_threshold: float = 0.75  # P(yes) that makes any theorem relevant (calibrated, RESULTS.md)
    judge_top_threshold: float = 0.05  # P(yes) that makes a step's best-scored theorem relevant
    judge_chars: int = 0  # statement characters shown to the judge beside the title
    max_context_theorems: int = 4  # relevant theorems shown to the reasoning step
    step_tokens: int = 256  # max tokens of one reasoning step
    reasks: int = 2  # re-asks after an empty or unusable reply before the run errors
    compute_limits: ComputeLimits = field(default_factory=ComputeLimits)
