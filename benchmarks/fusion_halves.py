"""Hybrid fusion on both halves of the held-out tables: is the fusion rule why hybrid loses on BRIGHT?

The learning-loop passes score the held-out half (by theorem) of two tables, TheoremQA dev
questions and BRIGHT's `theoremqa_theorems` rewrites, against the TheoremQA theorem corpus.
Hybrid beats dense on the first and loses on the second (BM25 scores ~0.03 on BRIGHT's 19
held-out queries). This prints nDCG@10 of BM25, dense and several fusion rules on the held-out
half *and* on the other half, so a rule is chosen on the half the loop never reports and only
read on the held-out one:

- ``minmax A``: rader's weighted fusion (min-max normalised scores, dense share A),
- ``z A``: z-score normalised scores instead (a flat BM25 list then adds less to its top),
- ``gated N``: weighted fusion whose dense share goes to 1.0 when BM25's and dense's top N
  share no theorem (the two disagree: trust dense),
- ``rrf``: reciprocal rank fusion.

    python benchmarks/fusion_halves.py [--encoder minilm] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from rader.retriever import (
    HeldOut,
    Hit,
    Query,
    RetrieverOptions,
    fuse,
    load_judged_queries,
    open_retriever,
    read_corpus,
)
from rader.retriever.evaluation import score_run, to_run
from rader.retriever.types import DEFAULT_ALPHA

os.environ.setdefault("RADER_NO_PROGRESS", "1")
DEPTH = 100
Fusion = Callable[[list[Hit], list[Hit]], list[Hit]]


def z_fuse(bm25: list[Hit], dense: list[Hit], alpha: float) -> list[Hit]:
    """Weighted fusion of z-score normalised scores; a theorem missing from a list takes that
    list's lowest z."""
    fused: dict[str, float] = {}
    ids = {h.theorem_id for h in (*bm25, *dense)}
    for weight, hits in ((1.0 - alpha, bm25), (alpha, dense)):
        scores = np.array([h.score for h in hits])
        z = (scores - scores.mean()) / (scores.std() or 1.0)
        by_id = dict(zip((h.theorem_id for h in hits), z, strict=True))
        for theorem_id in ids:
            fused[theorem_id] = fused.get(theorem_id, 0.0) + weight * by_id.get(theorem_id, z.min())
    order = sorted(fused.items(), key=lambda item: (-item[1], item[0]))
    return [Hit(t, float(s), rank, "hybrid") for rank, (t, s) in enumerate(order, 1)]


def gated_fuse(bm25: list[Hit], dense: list[Hit], top: int) -> list[Hit]:
    """Weighted fusion, dense alone when the two top-``top`` lists share no theorem."""
    shared = {h.theorem_id for h in bm25[:top]} & {h.theorem_id for h in dense[:top]}
    return fuse(bm25, dense, alpha=DEFAULT_ALPHA if shared else 1.0)


FUSIONS: dict[str, Fusion] = {
    "bm25": lambda b, d: b,
    "dense": lambda b, d: d,
    **{f"minmax {a}": (lambda b, d, a=a: fuse(b, d, alpha=a)) for a in (0.5, DEFAULT_ALPHA, 0.8)},
    **{f"z {a}": (lambda b, d, a=a: z_fuse(b, d, a)) for a in (0.5, DEFAULT_ALPHA, 0.8)},
    **{f"gated {n}": (lambda b, d, n=n: gated_fuse(b, d, n)) for n in (3, 10)},
    "rrf": lambda b, d: fuse(b, d, method="rrf"),
}


def tables(data: Path) -> dict[str, tuple[list, dict]]:
    """Both halves (by theorem, as `rader eval --held-out-by theorem`) of the two tables."""
    held_out = HeldOut("theorem", 0.5)
    sides = {"held-out": held_out.holds, "other": lambda row: not held_out.holds(row)}
    tqa = data / "problems" / "theoremqa_dev.jsonl", data / "qrels" / "theoremqa_dev.qrels.tsv"
    bright = data / "qrels" / "bright_theoremqa_theorems_dev.jsonl", None
    out = {}
    for side, where in sides.items():
        out[f"TheoremQA {side}"] = load_judged_queries(*tqa, where=where)
        out[f"BRIGHT {side}"] = load_judged_queries(*bright, gold_field="theoremqa_theorem_doc_id",
                                                    where=where)
    return out


Ranked = tuple[list, dict, list[list[Hit]], list[list[Hit]]]  # queries, qrels, BM25's and dense's lists


def rank_tables(evalsets: dict[str, tuple[list, dict]], bm25, dense) -> dict[str, Ranked]:
    """Each table's judged queries, qrels, and BM25's and dense's rankings to depth 100."""
    ranked = {}
    for name, (queries, qrels) in evalsets.items():
        judged = [q for q in queries if q.id in qrels]
        asked = [Query(q.text, q.kind) for q in judged]
        ranked[name] = (judged, qrels, bm25.search_many(asked, k=DEPTH), dense.search_many(asked, k=DEPTH))
    return ranked


def ndcg_at_10(rule: Fusion, ranked: Ranked) -> float:
    """Mean nDCG@10 of one fusion rule over one table's queries."""
    judged, qrels, sparse, dense = ranked
    fused = [rule(s, d) for s, d in zip(sparse, dense, strict=True)]
    return score_run(qrels, to_run(judged, fused))["ndcg@10"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--encoder", default="minilm", help="a built-in, registered or folder encoder")
    args = parser.parse_args()
    corpus, _ = read_corpus(args.data / "theorems" / "theoremqa_theorems.jsonl")
    home = tempfile.mkdtemp()
    bm25 = open_retriever("bm25", corpus, home=home, show_progress=False)
    dense = open_retriever("dense", corpus, home=home, options=RetrieverOptions(encoder=args.encoder),
                           show_progress=False)
    rankings = rank_tables(tables(args.data), bm25, dense)
    print(f"nDCG@10, encoder {args.encoder}; queries: "
          + ", ".join(f"{name} {len(r[0])}" for name, r in rankings.items()))
    print(f"{'fusion':<12}" + "".join(f"{name:>20}" for name in rankings))
    for fusion, rule in FUSIONS.items():
        print(f"{fusion:<12}" + "".join(f"{ndcg_at_10(rule, r):>20.3f}" for r in rankings.values()))


if __name__ == "__main__":
    main()
