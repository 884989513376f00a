"""Typed records that cross package boundaries: theorems, queries, ranked hits, and the
options a retriever opens with (the settings' ``[retriever]`` section takes its defaults here).

Every record is a frozen dataclass with ``to_dict()``/``from_dict()`` so it survives JSON.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, NamedTuple, get_args

# the agent's four kinds, then RaDeR's two generated ones (`rader dataset build --generate-with`)
QueryKind = Literal["problem", "llm_query", "cot_step", "lexical", "post_llm_query", "theorem_lexical"]
QUERY_KINDS: tuple[str, ...] = get_args(QueryKind)
RetrieverName = Literal["bm25", "dense", "hybrid"]
RETRIEVER_NAMES: tuple[str, ...] = get_args(RetrieverName)
IndexType = Literal["flat", "hnsw", "ivf"]
INDEX_TYPES: tuple[str, ...] = get_args(IndexType)
FusionMethod = Literal["rrf", "weighted"]
FUSION_METHODS: tuple[str, ...] = get_args(FusionMethod)
DEFAULT_ALPHA = 0.65  # weighted fusion: the dense share (benchmarks/RESULTS.md, retrieval quality)
DEFAULT_RRF_K = 60


@dataclass(frozen=True, slots=True)
class RetrieverOptions:
    """How to open a retriever; mirrors the ``retriever`` settings section."""

    encoder: str = "minilm"
    index_type: IndexType = "flat"
    fusion: FusionMethod = "weighted"
    alpha: float = DEFAULT_ALPHA
    rrf_k: int = DEFAULT_RRF_K
    depth: int = 100
    batch_size: int = 32
    faiss_options: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Theorem:
    """One corpus entry: a theorem, identity, formula, definition or technique."""

    id: str
    title: str
    text: str
    source: str = ""
    tags: tuple[str, ...] = ()
    subject: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def passage(self) -> str:
        """The text that indexes see: title and statement together."""
        return f"{self.title}\n{self.text}" if self.title else self.text

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["tags"] = list(self.tags)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Theorem:
        known = {"id", "title", "text", "source", "tags", "subject", "metadata"}
        extra = {k: v for k, v in data.items() if k not in known}
        return cls(
            id=str(data["id"]),
            title=str(data.get("title") or ""),
            text=str(data["text"]),
            source=str(data.get("source") or ""),
            tags=tuple(str(t) for t in data.get("tags") or ()),
            subject=data.get("subject"),
            metadata={**(data.get("metadata") or {}), **extra},
        )


@dataclass(frozen=True, slots=True)
class Query:
    """What the agent (or a user) asks the retriever, and which kind of text it is."""

    text: str
    kind: QueryKind = "problem"

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "kind": self.kind}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Query:
        return cls(text=str(data["text"]), kind=data.get("kind", "problem"))


class Hit(NamedTuple):
    """One ranked result: which theorem, its score, its 1-based rank, which retriever.

    A NamedTuple rather than a frozen dataclass: retrieval makes many of them per query,
    and a tuple is built ~4x faster (benchmarks/retrieval_speed.py measures the layer).
    """

    theorem_id: str
    score: float
    rank: int
    retriever: str

    def to_dict(self) -> dict[str, Any]:
        return self._asdict()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Hit:
        return cls(
            theorem_id=str(data["theorem_id"]),
            score=float(data["score"]),
            rank=int(data["rank"]),
            retriever=str(data["retriever"]),
        )


def ranked_hits(pairs: list[tuple[str, float]], retriever: str) -> list[Hit]:
    """Turn (theorem id, score) pairs, best first, into ranked `Hit`s."""
    return [Hit(doc_id, float(score), rank, retriever) for rank, (doc_id, score) in enumerate(pairs, 1)]
