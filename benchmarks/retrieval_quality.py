"""Retrieval quality on the labels in ../shared/data: BM25 vs dense vs hybrid, our layer vs raw.

Measures nDCG@10 / Recall@10/100 / MRR@10 on
- TheoremQA dev questions (400) against the TheoremQA theorem corpus (354),
- BRIGHT theoremqa_theorems dev queries (42), scored against the same corpus through
  their ``theoremqa_theorem_doc_id`` (BRIGHT's ProofWiki corpus is not available here),
- BRIGHT theoremqa_questions dev queries (97) against their 114 gold documents,
and, on TheoremQA dev, the raw libraries (bm25s default tokenizer + stemmer; MiniLM +
exact faiss) in the same run, plus a sweep of the hybrid fusion weight.

    python benchmarks/retrieval_quality.py [--data ../shared/data] [--out benchmarks/out/quality.json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import bm25s
import faiss
import Stemmer

from rader.retriever import (
    EvalQuery,
    HybridIndex,
    Retriever,
    evaluate,
    load_encoder,
    load_qrels,
    load_queries,
    open_retriever,
    qrels_from_queries,
    read_corpus,
)
from rader.retriever.evaluation import score_run

os.environ.setdefault("RADER_NO_PROGRESS", "1")
ALPHAS = (0.3, 0.5, 0.65, 0.8, 1.0)


def raw_baselines(corpus, queries: list[EvalQuery], qrels, encoder) -> dict[str, dict[str, float]]:
    """The reference recipe with the libraries alone: bm25s + stemmer, MiniLM + faiss."""
    stemmer = Stemmer.Stemmer("english")
    model = bm25s.BM25()
    model.index(bm25s.tokenize([t.passage for t in corpus], stopwords="en", stemmer=stemmer,
                               show_progress=False), show_progress=False)
    docs, scores = model.retrieve(bm25s.tokenize([q.text for q in queries], stopwords="en",
                                                 stemmer=stemmer, show_progress=False),
                                  k=100, show_progress=False)
    bm25_run = {q.id: {corpus.ids[d]: float(s) for d, s in zip(docs[i], scores[i], strict=True)}
                for i, q in enumerate(queries)}
    vectors = encoder.model.encode([t.passage for t in corpus], normalize_embeddings=True)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    qvec = encoder.model.encode([q.text for q in queries], normalize_embeddings=True)
    dscores, rows = index.search(qvec, 100)
    dense_run = {q.id: {corpus.ids[r]: float(s) for s, r in zip(dscores[i], rows[i], strict=True)}
                 for i, q in enumerate(queries)}
    return {"raw bm25s": score_run(qrels, bm25_run), "raw MiniLM+faiss": score_run(qrels, dense_run)}


def run_split(name, corpus, queries, qrels, home, encoder, sweep: bool) -> list[dict]:
    engines = {kind: open_retriever(kind, corpus, home=home, encoder=encoder, show_progress=False)
               for kind in ("bm25", "dense", "hybrid")}
    bm25, dense = engines["bm25"].index, engines["dense"].index
    engines["hybrid rrf"] = Retriever(corpus, HybridIndex(bm25, dense, method="rrf"))
    if sweep:
        for alpha in ALPHAS:
            engines[f"weighted a={alpha}"] = Retriever(corpus, HybridIndex(bm25, dense, alpha=alpha))
    rows = [{"split": name, "retriever": r.retriever, "queries": r.queries, **r.metrics}
            for r in evaluate(engines, queries, qrels) if r.kind == "all"]
    if sweep:
        rows += [{"split": name, "retriever": label, "queries": len(queries), **metrics}
                 for label, metrics in raw_baselines(corpus, queries, qrels, encoder).items()]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/quality.json"))
    args = parser.parse_args()
    data = args.data
    encoder = load_encoder("minilm")
    home = Path(tempfile.mkdtemp(prefix="rader-quality-"))
    tqa, _ = read_corpus(data / "theorems" / "theoremqa_theorems.jsonl")
    rows = run_split("TheoremQA dev (400 q, 354 thm)", tqa,
                     load_queries(data / "problems" / "theoremqa_dev.jsonl"),
                     load_qrels(data / "qrels" / "theoremqa_dev.qrels.tsv"), home, encoder, sweep=True)
    bright_t = load_queries(data / "qrels" / "bright_theoremqa_theorems_dev.jsonl",
                            gold_field="theoremqa_theorem_doc_id")
    rows += run_split("BRIGHT theorems dev (42 q, 354 thm)", tqa, bright_t,
                      qrels_from_queries(bright_t), home, encoder, sweep=False)
    golddocs, _ = read_corpus(data / "theorems" / "bright_theoremqa_questions_golddocs_dev.jsonl")
    bright_q = load_queries(data / "qrels" / "bright_theoremqa_questions_dev.jsonl")
    rows += run_split("BRIGHT questions dev (97 q, 114 docs)", golddocs, bright_q,
                      qrels_from_queries(bright_q), home, encoder, sweep=False)
    print(f"{'split':40} {'retriever':20} {'n':>4} {'nDCG@10':>8} {'R@10':>6} {'R@100':>6} {'MRR@10':>7}")
    for row in rows:
        print(f"{row['split']:40} {row['retriever']:20} {row['queries']:>4} {row['ndcg@10']:>8.3f} "
              f"{row['recall@10']:>6.3f} {row['recall@100']:>6.3f} {row['mrr@10']:>7.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
