"""Encoder training runs on a lent GPU machine, scored here with `rader eval`'s own code.

The learning loop's encoders (RESULTS "seventh pass") train in minutes on a GPU where mpnet
takes ~35 minutes an epoch on 2 CPU cores. A lent GPU machine has no network and none of
rader's retrieval dependencies (faiss, bm25s, ranx), so the work splits in three steps:

* ``prepare`` (here) writes the three evaluation sets of ``benchmarks/loop4_eval.sh`` as one
  JSON file: each set's corpus passages, its judged queries (the held-out half where the
  table is held out, cleaned as `rader eval` cleans them, with BRIGHT's excluded ids) and qrels.
* ``run`` (on the GPU machine) ranks every set with the base encoder, then trains each
  configuration with rader's ``train_encoder`` (the same code as `rader train`) and ranks
  again, with rader's ``Encoder`` and an exact inner-product search (what the default flat
  faiss index computes). One JSON per model: its rankings, its training manifest.
* ``score`` (here) scores those rankings with ``rader.retriever.evaluate`` beside base
  MiniLM dense and BM25 run here (the first is the baseline of the paired randomization p),
  and the hybrid of BM25 with each ranking (rader's ``fuse``, default weights).

    python benchmarks/gpu_encoders.py prepare .gpu/evalsets.json --judged ~/loop/data/judged
    python benchmarks/gpu_encoders.py run .gpu/evalsets.json --data DATA --base MODEL --out DIR
    python benchmarks/gpu_encoders.py score .gpu/evalsets.json DIR/rankings-*.json --out FILE
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

# only what imports without faiss, bm25s and ranx: the GPU machine has none of them
from rader.retriever import HeldOut, Hit, Query, held_out_rows, load_judged_queries, read_corpus

DEPTH = 100
SHARED = Path(os.environ.get("RADER_SHARED_DATA", "../shared/data"))
# name -> (corpus, queries, qrels, gold field, held out by): benchmarks/loop4_eval.sh's tables
TABLES = {
    "tqa_heldout": ("theorems/theoremqa_theorems.jsonl", "problems/theoremqa_dev.jsonl",
                    "qrels/theoremqa_dev.qrels.tsv", None, "theorem"),
    "bright_heldout": ("theorems/theoremqa_theorems.jsonl", "qrels/bright_theoremqa_theorems_dev.jsonl",
                       None, "theoremqa_theorem_doc_id", "theorem"),
}
class Config(NamedTuple):
    """One training run: ``negatives`` None takes every hard negative of a row (n-tuples);
    ``dropout`` None keeps mpnet's own attention dropout (0.1), as the seventh pass ran, where 0
    is `rader train`'s default since the tenth pass (measured on MiniLM only, on a CPU)."""

    epochs: float
    negatives: int | None
    seed: int
    graded: str
    batch: int
    dropout: float | None = None


# in the order they run: the ones that answer the targets first, so a run cut by its time limit
# still answers them
CONFIGS = {
    "e1": Config(1.0, 1, 0, "none", 32),  # the CPU recipe of the sixth pass (triplets, 1 epoch)
    "e2": Config(2.0, 1, 0, "none", 32),
    "all1": Config(1.0, None, 0, "none", 32),  # every hard negative of a row (n-tuples)
    "e1s1": Config(1.0, 1, 1, "none", 32),  # a second seed
    "graded1": Config(1.0, 1, 0, "margin_mse", 32),
    "e3": Config(3.0, 1, 0, "none", 32),
    "all1s1": Config(1.0, None, 1, "none", 32),
    "all1b64": Config(1.0, None, 0, "none", 64),
    "all2": Config(2.0, None, 0, "none", 32),
    "all1d0": Config(1.0, None, 0, "none", 32, dropout=0.0),  # rader train's default dropout on mpnet
    "all1b64d0": Config(1.0, None, 0, "none", 64, dropout=0.0),
}


def evalset_from(corpus: Path, queries: Path, qrels: Path | None, gold_field: str | None,
                 held_out: HeldOut | None) -> dict:
    """One evaluation set as `rader eval` reads it: passages, judged queries (cleaned), qrels."""
    from rader.retriever import clean_query

    docs, _ = read_corpus(corpus)
    query_list, judgments = load_judged_queries(queries, qrels, gold_field=gold_field,
                                                where=held_out_rows(held_out))
    judged = [q for q in query_list if q.id in judgments]
    return {"corpus": str(corpus.resolve()), "docs": [[t.id, t.passage] for t in docs],
            "queries": [{"id": q.id, "text": clean_query(Query(q.text, q.kind)).text, "kind": q.kind,
                         "excluded_ids": list(q.excluded_ids)} for q in judged],
            "qrels": judgments}


def prepare(out: Path, judged: Path) -> None:
    sets = {name: evalset_from(SHARED / corpus, SHARED / queries, qrels and SHARED / qrels, gold,
                               HeldOut(by) if by else None)
            for name, (corpus, queries, qrels, gold, by) in TABLES.items()}
    sets["own_dev"] = evalset_from(judged / "corpus.jsonl", judged / "queries.jsonl",
                                   judged / "qrels/dev.tsv", None, None)
    out.write_text(json.dumps(sets))
    for name, evalset in sets.items():
        print(f"{name}: {len(evalset['docs'])} docs, {len(evalset['queries'])} judged queries")


def rank(encoder, evalset: dict) -> dict[str, list[list]]:
    """query id -> [[doc id, score], ...], best first: the flat index's exact inner product."""
    doc_ids = [doc_id for doc_id, _ in evalset["docs"]]
    docs = encoder.encode_documents([text for _, text in evalset["docs"]], show_progress=False)
    queries = encoder.encode_queries([Query(q["text"], q["kind"]) for q in evalset["queries"]])
    scores = queries @ docs.T
    rankings = {}
    for row, query in zip(scores, evalset["queries"], strict=True):
        order = np.argsort(-row, kind="stable")[:DEPTH + len(query["excluded_ids"])]
        rankings[query["id"]] = [[doc_ids[i], float(row[i])] for i in order]
    return rankings


def _rank_all(encoder, sets: dict) -> dict:
    return {name: rank(encoder, evalset) for name, evalset in sets.items()}


def run(evalsets: Path, data: Path, base: Path, out: Path, configs: list[str], budget_s: float,
        max_steps: int = -1) -> None:
    from rader.retriever import load_encoder
    from rader.training.config import TrainConfig
    from rader.training.train import train_encoder

    started = time.perf_counter()
    sets = json.loads(evalsets.read_text())
    device = "cuda" if _cuda() else "cpu"
    out.mkdir(parents=True, exist_ok=True)
    (out / "rankings-base.json").write_text(json.dumps(
        {"model": base.name, "rankings": _rank_all(load_encoder(str(base), device=device), sets)}))
    work = Path(tempfile.mkdtemp(prefix="gpu-encoders-"))
    for tag in configs:
        if time.perf_counter() - started > budget_s:
            print(f"{tag}: skipped, {budget_s:.0f} s spent", flush=True)
            continue
        recipe = CONFIGS[tag]
        config = TrainConfig(base=str(base), epochs=recipe.epochs, negatives=recipe.negatives,
                             seed=recipe.seed, graded=recipe.graded, batch_size=recipe.batch,
                             max_steps=max_steps, attention_dropout=recipe.dropout)
        manifest = train_encoder(data, work / tag, config, resume=False, show_progress=False)
        rankings = _rank_all(load_encoder(str(work / tag), device=device), sets)
        (out / f"rankings-{tag}.json").write_text(json.dumps(
            {"model": f"{base.name}-{tag}", "manifest": manifest, "rankings": rankings}))
        print(f"{tag}: {manifest['train_rows']} rows, {manifest['steps']} steps, {manifest['seconds']} s, "
              f"dev {manifest['metrics']}", flush=True)
        shutil.rmtree(work / tag)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


class Ranked:
    """A retriever that answers with rankings computed elsewhere, by (text, kind)."""

    def __init__(self, name: str, evalset: dict, rankings: dict[str, list[list]]) -> None:
        self.name = name
        self.by_query = {(q["text"], q["kind"]): rankings[q["id"]] for q in evalset["queries"]}

    def search_many(self, queries: list[Query], k: int = 10) -> list[list[Hit]]:
        return [[Hit(doc_id, score, place, self.name)
                 for place, (doc_id, score) in enumerate(self.by_query[(q.text, q.kind)][:k], start=1)]
                for q in queries]


class Fused:
    """BM25 fused with a ranking computed elsewhere, as the hybrid retriever fuses them."""

    def __init__(self, bm25, dense: Ranked) -> None:
        self.bm25, self.dense = bm25, dense

    def search_many(self, queries: list[Query], k: int = 10) -> list[list[Hit]]:
        from rader.retriever import fuse

        return [fuse(b, d, k=k) for b, d in zip(self.bm25.search_many(queries, k),
                                                 self.dense.search_many(queries, k), strict=True)]


def score(evalsets: Path, files: list[Path], home: Path, out: Path | None) -> None:
    from rader.app.evalrun import load_eval_corpus, retriever_for_spec
    from rader.app.settings import load_settings
    from rader.retriever import EvalQuery, evaluate

    settings, _ = load_settings({"home": str(home)}, config_file=None)  # the defaults `rader eval` has
    sets = json.loads(evalsets.read_text())
    models = [json.loads(f.read_text()) for f in files]
    report = {}
    for name, evalset in sets.items():
        corpus = load_eval_corpus(settings, evalset["corpus"])  # as `rader eval` loads and names it
        engines = {spec: retriever_for_spec(settings, corpus, spec) for spec in ("dense", "bm25")}
        bm25 = engines["bm25"]
        for model in models:
            ranked = Ranked(model["model"], evalset, model["rankings"][name])
            engines[f"dense@{model['model']}"] = ranked
            engines[f"hybrid@{model['model']}"] = Fused(bm25, ranked)
        queries = [EvalQuery(q["id"], q["text"], q["kind"], excluded_ids=tuple(q["excluded_ids"]))
                   for q in evalset["queries"]]
        rows = evaluate(engines, queries, evalset["qrels"])
        report[name] = [{"retriever": r.retriever, "kind": r.kind, "queries": r.queries, **r.metrics,
                         "p_value": r.p_value} for r in rows]
        print(f"\n{name}")
        for r in rows:
            p = "" if r.p_value is None else f"p {r.p_value:.3f}"
            print(f"  {r.retriever:28} {r.kind:10} {r.queries:4d}  nDCG@10 {r.metrics['ndcg@10']:.3f}  "
                  f"R@100 {r.metrics['recall@100']:.3f}  {p}")
    kept = ("train_rows", "steps", "seconds", "config", "metrics")
    report["training"] = {m["model"]: {k: m["manifest"][k] for k in kept} for m in models if "manifest" in m}
    if out:
        out.write_text(json.dumps(report, indent=1))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    steps = parser.add_subparsers(dest="step", required=True)
    p = steps.add_parser("prepare", help="write the evaluation sets (here)")
    p.add_argument("evalsets", type=Path)
    p.add_argument("--judged", type=Path, required=True, help="the judged dataset (own dev's qrels)")
    r = steps.add_parser("run", help="rank with the base encoder, train and rank each config (GPU)")
    r.add_argument("evalsets", type=Path)
    r.add_argument("--data", type=Path, required=True, help="a `rader dataset build` folder")
    r.add_argument("--base", type=Path, required=True, help="the base encoder's folder")
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--configs", default="e1,e2,all1,e1s1,graded1,e3", help=f"of {', '.join(CONFIGS)}")
    r.add_argument("--budget", type=float, default=1e9, help="start no config after this many seconds")
    r.add_argument("--max-steps", type=int, default=-1, help="cap each training (a smoke run)")
    s = steps.add_parser("score", help="score rankings against base MiniLM and BM25 (here)")
    s.add_argument("evalsets", type=Path)
    s.add_argument("rankings", type=Path, nargs="+")
    s.add_argument("--home", type=Path, default=Path(tempfile.gettempdir()) / "rader-gpu-score")
    s.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.step == "prepare":
        prepare(args.evalsets, args.judged)
    elif args.step == "run":
        run(args.evalsets, args.data, args.base, args.out, args.configs.split(","), args.budget,
            args.max_steps)
    else:
        score(args.evalsets, args.rankings, args.home, args.out)


if __name__ == "__main__":
    sys.exit(main())
