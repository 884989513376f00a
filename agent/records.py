"""Records the agent writes and the trainer reads: problems, judgments, steps, trajectories.

Each is a dataclass with ``to_dict()``/``from_dict()``; a trajectory carries
``schema_version`` so that stored rows from older versions can be migrated or refused.

Example:
    >>> t = Trajectory.start(Problem(id="p1", text="1+1?", answer="2"), model="m", retriever="bm25")
    >>> Trajectory.from_dict(t.to_dict()).problem.answer
    '2'
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from rader.retriever import Hit, Query

SCHEMA_VERSION = 2  # 2: stop_reason and source are fields (version 1 kept stop_reason in config)
Status = Literal["running", "done", "budget_exhausted", "error", "interrupted"]
# what started a run: `rader solve`, the Gradio page, `rader serve`, a harvest, `rader bench agent`,
# or a program calling the Python API
Source = Literal["solve", "ui", "serve", "harvest", "bench", "python"]
FINISHED_STATUSES = ("done", "budget_exhausted", "error")  # a run that reached its end


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(slots=True)
class Problem:
    id: str
    text: str
    answer: str | None = None
    solution: str | None = None
    source: str = ""
    answer_type: str | None = None  # TheoremQA's bool, float, ...: how the answer is compared

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Problem:
        answer = data.get("answer")
        return cls(id=str(data["id"]), text=str(data["text"]),
                   answer=None if answer is None else str(answer),
                   solution=data.get("solution"), source=str(data.get("source") or ""),
                   answer_type=data.get("answer_type"))


@dataclass(slots=True)
class Judgment:
    """The self-reflective relevance check of one retrieved theorem for one step."""

    theorem_id: str
    relevant: bool
    rationale: str = ""
    score: float | None = None
    judge: Literal["model", "human"] = "model"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Judgment:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(slots=True)
class ToolCall:
    """One sympy computation: what was asked, what came back, how it ended."""

    tool: str
    input: str
    output: str = ""
    status: Literal["ok", "error", "refused", "timeout", "memory"] = "ok"  # refused: not mathematics
    elapsed_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ToolCall:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(slots=True)
class Step:
    index: int
    thought: str = ""
    queries: list[Query] = field(default_factory=list)
    hits: list[Hit] = field(default_factory=list)
    judgments: list[Judgment] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    prompt_tokens: int = 0  # prompt tokens of the calls made for this step (retrieval, judge, writing)
    completion_tokens: int = 0  # tokens those calls generated
    cached_tokens: int = 0  # prompt tokens the server took from its cache instead of processing

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index, "thought": self.thought,
            "queries": [q.to_dict() for q in self.queries], "hits": [h.to_dict() for h in self.hits],
            "judgments": [j.to_dict() for j in self.judgments],
            "tool_calls": [c.to_dict() for c in self.tool_calls], "events": list(self.events),
            "elapsed_s": self.elapsed_s, "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens, "cached_tokens": self.cached_tokens,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Step:
        return cls(
            index=int(data["index"]), thought=data.get("thought", ""),
            queries=[Query.from_dict(q) for q in data.get("queries", [])],
            hits=[Hit.from_dict(h) for h in data.get("hits", [])],
            judgments=[Judgment.from_dict(j) for j in data.get("judgments", [])],
            tool_calls=[ToolCall.from_dict(c) for c in data.get("tool_calls", [])],
            events=list(data.get("events", [])), elapsed_s=float(data.get("elapsed_s", 0.0)),
            prompt_tokens=int(data.get("prompt_tokens", 0)),
            completion_tokens=int(data.get("completion_tokens", 0)),
            cached_tokens=int(data.get("cached_tokens", 0)),
        )


@dataclass(slots=True)
class Trajectory:
    id: str
    problem: Problem
    model: str
    retriever: str
    steps: list[Step] = field(default_factory=list)
    final_answer: str | None = None
    verified: bool | None = None
    config: dict[str, Any] = field(default_factory=dict)  # what the run was started with (sample, mode...)
    started_at: str = field(default_factory=now_iso)
    finished_at: str | None = None
    status: Status = "running"
    stop_reason: str | None = None  # why it ended: "answered", "solution_tokens (1024)", an error...
    source: Source = "python"
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def start(cls, problem: Problem, *, model: str, retriever: str, config: dict[str, Any] | None = None,
              trajectory_id: str | None = None, source: Source = "python") -> Trajectory:
        return cls(id=trajectory_id or uuid.uuid4().hex, problem=problem, model=model, retriever=retriever,
                   config=dict(config or {}), source=source)

    def mark_interrupted(self) -> None:
        """A run cut short (Ctrl-C, a stop, a dead writer): it keeps its steps, never counts as whole."""
        self.status = "interrupted"
        self.finished_at = self.finished_at or now_iso()

    @property
    def prompt_tokens(self) -> int:
        return sum(s.prompt_tokens for s in self.steps)

    @property
    def completion_tokens(self) -> int:
        return sum(s.completion_tokens for s in self.steps)

    @property
    def cached_tokens(self) -> int:
        """Prompt tokens the model server took from its cache instead of processing them."""
        return sum(s.cached_tokens for s in self.steps)

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "schema_version": self.schema_version, "problem": self.problem.to_dict(),
            "steps": [s.to_dict() for s in self.steps], "final_answer": self.final_answer,
            "verified": self.verified, "model": self.model, "retriever": self.retriever,
            "config": self.config, "started_at": self.started_at, "finished_at": self.finished_at,
            "status": self.status, "stop_reason": self.stop_reason, "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trajectory:
        """A record of this version, or of an older one brought up to it (stored rows and
        exports alike); a newer record keeps its ``schema_version``, so that it can be refused."""
        version = int(data.get("schema_version", SCHEMA_VERSION))
        config = dict(data.get("config") or {})
        stop_reason, source = data.get("stop_reason"), data.get("source")
        if version < 2:  # stop_reason lived in config; the source is told by what config holds
            stop_reason = config.pop("stop_reason", None)
            source = "harvest" if "harvest" in config else "bench" if "bench_mode" in config else "python"
        return cls(
            id=data["id"], problem=Problem.from_dict(data["problem"]), model=data["model"],
            retriever=data["retriever"], steps=[Step.from_dict(s) for s in data.get("steps", [])],
            final_answer=data.get("final_answer"), verified=data.get("verified"),
            config=config, started_at=data["started_at"],
            finished_at=data.get("finished_at"), status=data.get("status", "running"),
            stop_reason=stop_reason, source=source or "python", schema_version=max(version, SCHEMA_VERSION),
        )
