"""Retrieval evaluation: nDCG@10, Recall@10/100 and MRR@10 with `ranx`, per query kind.

BRIGHT's rule is kept: a query's ``excluded_ids`` are dropped from its ranking before
scoring. Each retriever after the first also gets a p-value: Fisher's paired randomization
test of its per-query nDCG@10 against the first retriever's on the same queries (Smucker et
al., CIKM 2007), so a gain on a few hundred queries can be told from noise.

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
import warnings
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from numba.core.errors import NumbaWarning
from ranx import Qrels as RanxQrels
from ranx import Run
from ranx import evaluate as ranx_evaluate
from ranx.statistical_tests import fisher_randomization_test

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
    p_value: float | None = None  # nDCG@10 against the first retriever's row of the same kind


def to_run(queries: list[EvalQuery], rankings: list[list[Hit]]) -> dict[str, dict[str, float]]:
    """A ranx-ready run, with each query's excluded ids dropped (BRIGHT's evaluation)."""
    run = {}
    for query, hits in zip(queries, rankings, strict=True):
        excluded = set(query.excluded_ids)
        # scores from rank, so ties and fused scores keep the retriever's own order
        run[query.id] = {h.theorem_id: float(DEPTH * 10 - h.rank) for h in hits
                         if h.theorem_id not in excluded}
    return run


@contextmanager
def _quiet_numba() -> Iterator[None]:
    """ranx's kernels compile on first use (and again when numba's cache is cold), and numba
    warns then about casts inside ranx (NumbaTypeSafetyWarning: "unsafe cast from uint64 to
    int64"): nothing a user of rader can act on, so it stays off their terminal. Scoped, so a
    program that imports rader keeps its own warning filters."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NumbaWarning)
        yield


def per_query_scores(qrels: Qrels, run: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """metric -> judged query id -> score."""
    if not run or not qrels:
        return {m: dict.fromkeys(qrels, 0.0) for m in METRICS}
    run = {**run}
    for query_id in qrels:  # ranx wants every judged query in the run
        run.setdefault(query_id, {})
    for query_id in [q for q, docs in run.items() if not docs]:
        run[query_id] = {"__no_result__": 0.0}  # ranx rejects an empty ranking
    with _quiet_numba():
        judged = RanxQrels(qrels)
        scores = ranx_evaluate(judged, Run(run), list(METRICS), return_mean=False, make_comparable=True)
    ids = list(judged.keys())  # ranx scores the queries in its qrels' key order
    return {m: dict(zip(ids, map(float, scores[m]), strict=True)) for m in METRICS}


def _scores_of(scores: dict[str, dict[str, float]], ids: list[str]) -> dict[str, np.ndarray]:
    return {m: np.array([by_query[q] for q in ids], dtype=float) for m, by_query in scores.items()}


def _means(scores: dict[str, np.ndarray]) -> dict[str, float]:
    return {m: float(v.mean()) if len(v) else 0.0 for m, v in scores.items()}


def score_run(qrels: Qrels, run: dict[str, dict[str, float]]) -> dict[str, float]:
    """The mean of each metric over the judged queries."""
    return _means(_scores_of(per_query_scores(qrels, run), list(qrels)))


def randomization_p_value(control: np.ndarray, treatment: np.ndarray, permutations: int = 10_000) -> float:
    """Two-sided p-value of Fisher's paired randomization test on per-query scores."""
    if not len(control):
        return 1.0
    with _quiet_numba():
        p_value, _ = fisher_randomization_test(control, treatment, n_permutations=permutations,
                                               random_seed=0)
    return float(p_value)


def evaluate(retrievers: dict[str, object], queries: list[EvalQuery], qrels: Qrels,
             *, depth: int = DEPTH) -> list[EvalRow]:
    """Score each retriever on the judged queries, overall and per query kind."""
    judged = [q for q in queries if q.id in qrels]
    if len(judged) < len(queries):
        log.warning("%d of %d queries have no qrels and are left out",
                    len(queries) - len(judged), len(queries))
    by_kind: dict[str, list[str]] = defaultdict(list)
    for query in judged:
        by_kind[query.kind].append(query.id)
    groups = {"all": [q.id for q in judged], **(dict(sorted(by_kind.items())) if len(by_kind) > 1 else {})}
    k = depth + max((len(q.excluded_ids) for q in judged), default=0)
    judged_qrels = {q.id: qrels[q.id] for q in judged}
    rows = []
    first = next(iter(retrievers), None)
    baseline: dict[str, np.ndarray] = {}  # the first retriever's per-query nDCG@10, by kind
    for name, retriever in retrievers.items():
        started = time.perf_counter()
        rankings = retriever.search_many([Query(q.text, q.kind) for q in judged], k=k)
        seconds = time.perf_counter() - started
        scores = per_query_scores(judged_qrels, to_run(judged, rankings))
        for kind, ids in groups.items():
            of_kind = _scores_of(scores, ids)
            ndcg = of_kind["ndcg@10"]
            if name == first:
                baseline[kind] = ndcg
            p_value = None if name == first else randomization_p_value(baseline[kind], ndcg)
            rows.append(EvalRow(name, kind, len(ids), _means(of_kind), seconds, p_value))
    return rows
