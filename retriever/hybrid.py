"""Hybrid retrieval: fuse BM25 and dense rankings.

``rrf`` is reciprocal rank fusion, ``score = sum 1 / (rrf_k + rank)``. ``weighted`` fuses
min-max normalised scores, ``(1 - alpha) * bm25 + alpha * dense``; a document missing from
one list scores 0 there. On the TheoremQA dev labels plain RRF loses to dense alone while
weighted fusion does not (benchmarks/RESULTS.md), so weighted is the default.

Example:
    >>> from rader.retriever import Hit
    >>> bm25 = [Hit("a", 9.0, 1, "bm25"), Hit("b", 3.0, 2, "bm25")]
    >>> dense = [Hit("b", 0.8, 1, "dense"), Hit("c", 0.5, 2, "dense")]
    >>> [h.theorem_id for h in fuse(bm25, dense, method="rrf")]
    ['b', 'a', 'c']
"""

from __future__ import annotations

from collections import defaultdict

from .types import DEFAULT_ALPHA, DEFAULT_RRF_K, FusionMethod, Hit, Query, ranked_hits


def _min_max(hits: list[Hit]) -> dict[str, float]:
    if not hits:
        return {}
    high, low = max(h.score for h in hits), min(h.score for h in hits)
    span = high - low
    return {h.theorem_id: (h.score - low) / span if span > 0 else 1.0 for h in hits}


def fuse(
    bm25: list[Hit], dense: list[Hit], *, method: FusionMethod = "weighted",
    alpha: float = DEFAULT_ALPHA, rrf_k: int = DEFAULT_RRF_K, k: int | None = None,
) -> list[Hit]:
    """One ranking from a BM25 and a dense ranking of the same query."""
    fused: dict[str, float] = defaultdict(float)
    if method == "rrf":
        for hits in (bm25, dense):
            for hit in hits:
                fused[hit.theorem_id] += 1.0 / (rrf_k + hit.rank)
    else:
        for weight, hits in ((1.0 - alpha, bm25), (alpha, dense)):
            for doc_id, score in _min_max(hits).items():
                fused[doc_id] += weight * score
    # ties break by best single rank, so the order is deterministic
    best_rank = {}
    for hit in (*bm25, *dense):
        best_rank[hit.theorem_id] = min(best_rank.get(hit.theorem_id, hit.rank), hit.rank)
    order = sorted(fused.items(), key=lambda item: (-item[1], best_rank[item[0]], item[0]))
    return ranked_hits(order[:k] if k else order, "hybrid")


class HybridIndex:
    """BM25 and dense indexes over one corpus, searched together and fused."""

    kind = "hybrid"

    def __init__(self, bm25, dense, *, method: FusionMethod = "weighted", alpha: float = DEFAULT_ALPHA,
                 rrf_k: int = DEFAULT_RRF_K, depth: int = 100) -> None:
        self.bm25, self.dense = bm25, dense
        self.method, self.alpha, self.rrf_k, self.depth = method, alpha, rrf_k, depth
        self.ids = dense.ids

    @property
    def params(self) -> dict[str, object]:
        return {"fusion": self.method, "alpha": self.alpha, "rrf_k": self.rrf_k, "depth": self.depth}

    def search(self, query: Query, k: int = 10) -> list[Hit]:
        return self.search_many([query], k=k)[0]

    def search_many(self, queries: list[Query], k: int = 10) -> list[list[Hit]]:
        depth = max(k, self.depth)
        sparse = self.bm25.search_many(queries, k=depth)
        dense = self.dense.search_many(queries, k=depth)
        return [
            fuse(s, d, method=self.method, alpha=self.alpha, rrf_k=self.rrf_k, k=k)
            for s, d in zip(sparse, dense, strict=True)
        ]
