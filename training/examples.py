"""The training example: one query with its positive and hard negative theorems.

Each example turns into sentence-transformers rows two ways: n-tuples (anchor, positive,
negative_1..negative_n) for InfoNCE, one per positive with every hard negative of the query,
and judged pairs (anchor, positive, negative, label) for a graded loss, the label being the
judge's P(yes) margin between the two.

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


def negative_columns(n: int) -> list[str]:
    """The hard-negative columns of an n-tuple dataset, as sentence-transformers names them."""
    return [f"negative_{i}" for i in range(1, n + 1)]


@dataclass(slots=True)
class TrainingExample:
    """A query (of one kind) from a reasoning step, with the theorems that did and did not help it."""

    query: str
    query_kind: str
    positives: list[Passage]
    negatives: list[Passage]
    problem_id: str  # the split is by problem: no problem's queries land on both sides
    provenance: list[dict[str, Any]] = field(default_factory=list)  # trajectory_id, step_index
    # graded labels: docid -> the judge's P(yes) for this query (mean over the judgments merged
    # into the example; a human's verdict is 1.0 or 0.0); mined negatives have none
    scores: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingExample:
        return cls(data["query"], data["query_kind"], [Passage(**p) for p in data["positives"]],
                   [Passage(**p) for p in data["negatives"]], data["problem_id"], data.get("provenance", []),
                   {k: float(v) for k, v in (data.get("scores") or {}).items()})

    def to_tevatron(self, query_id: str | None = None) -> dict[str, Any]:
        """Tevatron's row, plus the graded label of each passage (null when unjudged)."""
        return {"query_id": query_id or "", "query": self.query, "query_kind": self.query_kind,
                "positive_passages": [asdict(p) for p in self.positives],
                "negative_passages": [asdict(p) for p in self.negatives],
                "positive_scores": [self.scores.get(p.docid) for p in self.positives],
                "negative_scores": [self.scores.get(p.docid) for p in self.negatives]}

    def ntuples(self, n: int) -> list[dict[str, str]]:
        """(anchor, positive, negative_1..negative_n) rows for InfoNCE, one per positive.

        The k-th positive takes the query's hard negatives starting from the k-th, so that with
        ``n`` below their number the positives of one query see different ones. A query with
        fewer than ``n`` repeats its own (a repeated negative counts twice in the softmax; a row
        never borrows another query's negatives, which may be its positives). A query with none
        leaves the negative columns empty (the trainer keeps such rows to in-batch negatives).
        """
        rows = []
        for k, positive in enumerate(self.positives):
            row = {"anchor": self.query, "positive": passage_text(positive)}
            for i, column in enumerate(negative_columns(n)):
                negative = self.negatives[(k + i) % len(self.negatives)] if self.negatives else None
                row[column] = passage_text(negative) if negative else ""
            rows.append(row)
        return rows

    def judged_pairs(self) -> list[dict[str, Any]]:
        """(anchor, positive, negative, label) rows for a graded loss: every positive against
        every negative the judge scored, label = P(yes | positive) - P(yes | negative)."""
        return [{"anchor": self.query, "positive": passage_text(positive), "negative": passage_text(negative),
                 "label": self.scores[positive.docid] - self.scores[negative.docid]}
                for positive in self.positives if positive.docid in self.scores
                for negative in self.negatives if negative.docid in self.scores]


def passage_text(passage: Passage) -> str:
    """What the encoder reads for a theorem: the same text the index encodes."""
    return Theorem(passage.docid, passage.title, passage.text).passage
