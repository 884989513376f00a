"""The training example: one query with its positive and hard negative theorems.

Example:
    >>> example = TrainingExample("sum of the roots of a quadratic", "llm_query",
    ...                           [Passage("vieta", "Vieta", "x1 + x2 = -b/a")], [], "p1")
    >>> example.to_tevatron()["positive_passages"][0]["docid"]
    'vieta'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from rader.retriever import Theorem


@dataclass(frozen=True, slots=True)
class Passage:
    docid: str
    title: str
    text: str

    @classmethod
    def of(cls, theorem: Theorem) -> Passage:
        return cls(theorem.id, theorem.title, theorem.text)


@dataclass(slots=True)
class TrainingExample:
    """A query (of one kind) from a reasoning step, with the theorems that did and did not help it."""

    query: str
    query_kind: str
    positives: list[Passage]
    negatives: list[Passage]
    problem_id: str  # the split is by problem: no problem's queries land on both sides
    provenance: list[dict[str, Any]] = field(default_factory=list)  # trajectory_id, step_index

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingExample:
        return cls(data["query"], data["query_kind"], [Passage(**p) for p in data["positives"]],
                   [Passage(**p) for p in data["negatives"]], data["problem_id"], data.get("provenance", []))

    def to_tevatron(self, query_id: str | None = None) -> dict[str, Any]:
        return {"query_id": query_id or "", "query": self.query, "query_kind": self.query_kind,
                "positive_passages": [asdict(p) for p in self.positives],
                "negative_passages": [asdict(p) for p in self.negatives]}

    def triplets(self) -> list[dict[str, str]]:
        """(anchor, positive, negative) rows for sentence-transformers: each positive once,
        paired with the hard negatives in turn (an empty negative when there is none)."""
        rows = []
        for i, positive in enumerate(self.positives):
            negative = self.negatives[i % len(self.negatives)] if self.negatives else None
            rows.append({"anchor": self.query, "positive": passage_text(positive),
                         "negative": passage_text(negative) if negative else ""})
        return rows


def passage_text(passage: Passage) -> str:
    """What the encoder reads for a theorem: the same text the index encodes."""
    return Theorem(passage.docid, passage.title, passage.text).passage
