"""`rader eval`: load a corpus, queries and qrels, score each retriever, print one table."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table

from rader.app.settings import Settings
from rader.app.wiring import retriever_from_settings
from rader.retriever import (
    METRICS,
    RETRIEVER_NAMES,
    Corpus,
    CorpusStore,
    EvalRow,
    HeldOut,
    RaderError,
    evaluate,
    held_out_rows,
    load_judged_queries,
    read_corpus,
)


@dataclass
class EvalResult:
    rows: list[EvalRow]
    settings: dict[str, Any] = field(default_factory=dict)

    def table(self) -> Table:
        table = Table(title="retrieval evaluation", caption=(
            f"p: paired randomization test of nDCG@10 against {self.rows[0].retriever}, same queries"
            if self.rows else None))
        for column in ("retriever", "query kind", "queries", *METRICS, "p", "seconds"):
            table.add_column(column, justify="left" if column in ("retriever", "query kind") else "right")
        for row in self.rows:
            table.add_row(row.retriever, row.kind, str(row.queries),
                          *(f"{row.metrics[m]:.3f}" for m in METRICS),
                          "" if row.p_value is None else f"{row.p_value:.3f}", f"{row.seconds:.1f}")
        return table

    def settings_line(self) -> str:
        return "settings: " + " ".join(f"{k}={v}" for k, v in self.settings.items())

    def to_dict(self) -> dict[str, Any]:
        return {"settings": self.settings,
                "rows": [{"retriever": r.retriever, "kind": r.kind, "queries": r.queries,
                          "seconds": r.seconds, **r.metrics, "p_value": r.p_value} for r in self.rows]}


def corpus_from_file(path: Path) -> Corpus:
    """A corpus file as `rader eval` reads it: named by its content, so that the indexes cached
    under that name never go stale."""
    docs, _ = read_corpus(path)
    return Corpus(docs.theorems, name=f"eval-{path.stem}-{docs.content_hash[:10]}")


def load_eval_corpus(settings: Settings, corpus: str) -> Corpus:
    """A corpus file (see `corpus_from_file`) or the name of one in the store."""
    path = Path(corpus)
    if path.is_file():
        return corpus_from_file(path)
    store = CorpusStore(settings.home)
    names = store.names()
    if corpus in names:
        return store.load(corpus)
    raise RaderError(f"--corpus {corpus!r} is neither a file nor a corpus name ({', '.join(names)})")


def retriever_for_spec(settings: Settings, docs: Corpus, spec: str):
    """``kind`` or ``kind@encoder`` (a built-in name, registered name or folder)."""
    kind, _, encoder = spec.partition("@")
    if kind not in RETRIEVER_NAMES:
        raise RaderError(f"retriever {spec!r}: the kind must be one of {', '.join(RETRIEVER_NAMES)}")
    if encoder:
        settings = settings.model_copy(update={"retriever": settings.retriever.model_copy(
            update={"encoder": encoder})})
    return retriever_from_settings(settings, docs, kind=kind)


def run_eval(settings: Settings, *, corpus: str, queries: Path, qrels: Path | None,
             gold_field: str | None, retrievers: list[str], query_kind: str | None,
             held_out: HeldOut | None = None) -> EvalResult:
    """Score ``retrievers`` on ``queries`` (only the ``held_out`` part of them, when given)."""
    docs = load_eval_corpus(settings, corpus)
    query_list, judgments = load_judged_queries(queries, qrels, gold_field=gold_field, query_kind=query_kind,
                                                where=held_out_rows(held_out))
    engines = {spec: retriever_for_spec(settings, docs, spec) for spec in retrievers}
    rows = evaluate(engines, query_list, judgments)
    options = settings.retriever
    described = {
        "corpus": f"{corpus} ({len(docs)} docs, sha256 {docs.content_hash[:12]})",
        "queries": str(queries), "qrels": str(qrels) if qrels else f"gold ids ({gold_field or 'auto'})",
        "judged_queries": sum(q.id in judgments for q in query_list), "encoder": options.encoder,
        "index_type": options.index_type, "fusion": options.fusion, "alpha": options.alpha,
        "rrf_k": options.rrf_k, "depth": options.depth, "tokenizer": "math (stem, stopwords)",
    }
    if held_out:
        described["held_out"] = f"{held_out.field} {held_out.fraction} seed {held_out.seed}"
    missing = {d for docs_ in judgments.values() for d in docs_} - set(docs.ids)
    if missing:
        described["gold_ids_not_in_corpus"] = len(missing)
    return EvalResult(rows, described)
