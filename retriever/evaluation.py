"""Retrieval evaluation: nDCG@10, Recall@10/100 and MRR@10 with `ranx`, per query kind.

BRIGHT's rule is kept: a query's ``excluded_ids`` are dropped from its ranking before
scoring.

Example:
    >>> from rader.retriever.evaldata import EvalQuery
    >>> class Fixed:  # any object with search_many(queries, k) works
    ...     def search_many(self, queries, k=10):
    ...         from rader.retriever import Hit
    ...         return [[Hit("d1", 1.0, 1, "x"), Hit("d2", 0.5, 2, "x")] for _ in queries]
    >>> rows = evaluate({"x": Fixed()}, [EvalQuery("q", "text")], {"q": {"d2": 1}})
    >>> round(rows[0].metrics["mrr@10"], 2)
    0.5
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass

from ranx import Qrels as RanxQrels
from ranx import Run
from ranx import evaluate as ranx_evaluate

from .evaldata import EvalQuery, Qrels
from .types import Hit, Query

log = logging.getLogger(__name__)
METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")
DEPTH = 100


@dataclass(frozen=True, slots=True)
class EvalRow:
    retriever: str
    kind: str
    queries: int
    metrics: dict[str, float]
    seconds: float


def to_run(queries: list[EvalQuery], rankings: list[list[Hit]]) -> dict[str, dict[str, float]]:
    """A ranx-ready run, with each query's excluded ids dropped (BRIGHT's evaluation)."""
    run = {}
    for query, hits in zip(queries, rankings, strict=True):
        excluded = set(query.excluded_ids)
        # scores from rank, so ties and fused scores keep the retriever's own order
        run[query.id] = {h.theorem_id: float(DEPTH * 10 - h.rank) for h in hits
                         if h.theorem_id not in excluded}
    return run


def score_run(qrels: Qrels, run: dict[str, dict[str, float]]) -> dict[str, float]:
    if not run:
        return dict.fromkeys(METRICS, 0.0)
    for query_id in qrels:  # ranx wants every judged query in the run
        run.setdefault(query_id, {})
    empty = [q for q, docs in run.items() if not docs]
    for query_id in empty:
        run[query_id] = {"__no_result__": 0.0}  # ranx rejects an empty ranking
    scores = ranx_evaluate(RanxQrels(qrels), Run(run), list(METRICS), make_comparable=True)
    return {m: float(scores[m]) for m in METRICS}


def evaluate(retrievers: dict[str, object], queries: list[EvalQuery], qrels: Qrels,
             *, depth: int = DEPTH) -> list[EvalRow]:
    """Score each retriever on the judged queries, overall and per query kind."""
    judged = [q for q in queries if q.id in qrels]
    if len(judged) < len(queries):
        log.warning("%d of %d queries have no qrels and are left out",
                    len(queries) - len(judged), len(queries))
    rows = []
    kinds = sorted({q.kind for q in judged})
    for name, retriever in retrievers.items():
        started = time.perf_counter()
        k = depth + max((len(q.excluded_ids) for q in judged), default=0)
        rankings = retriever.search_many([Query(q.text, q.kind) for q in judged], k=k)
        seconds = time.perf_counter() - started
        run = to_run(judged, rankings)
        by_kind: dict[str, list[str]] = defaultdict(list)
        for query in judged:
            by_kind[query.kind].append(query.id)
        rows.append(EvalRow(name, "all", len(judged), score_run(qrels, run), seconds))
        if len(kinds) > 1:
            for kind in kinds:
                ids = by_kind[kind]
                sub_qrels = {q: qrels[q] for q in ids}
                sub_run = {q: run[q] for q in ids}
                rows.append(EvalRow(name, kind, len(ids), score_run(sub_qrels, sub_run), seconds))
    return rows
