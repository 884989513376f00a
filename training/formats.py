"""The BEIR layout of a dataset folder, so that BEIR's loader and rader's own read it as is.

BEIR's ``GenericDataLoader(folder).load(split="dev")`` reads three things, by these names:
``corpus.jsonl`` (``_id``, ``title``, ``text``), ``queries.jsonl`` (``_id``, ``text``; one file
for every split) and ``qrels/<split>.tsv`` (``query-id  corpus-id  score`` under a header). The
corpus rows keep rader's other theorem fields (``source``, ``tags``, ...) beside BEIR's, and the
queries their ``kind``: BEIR ignores them and `rader eval` scores by kind.

Example:
    >>> queries, qrels = beir_split(folder, "dev")  # doctest: +SKIP
    >>> # rader eval --corpus FOLDER/corpus.jsonl --queries FOLDER/queries.jsonl --qrels FOLDER/qrels/dev.tsv
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

from rader.retriever import Corpus, RaderError, Theorem
from rader.training.examples import TrainingExample

CORPUS, QUERIES, QRELS = "corpus.jsonl", "queries.jsonl", "qrels"
QRELS_HEADER = "query-id\tcorpus-id\tscore\n"


class SplitFiles(NamedTuple):
    """Where a split's queries and qrels are: BEIR's files, or those of a folder built before them."""

    queries: Path
    qrels: Path


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """One JSON object a line, UTF-8 kept as is (theorem text is full of LaTeX and symbols)."""
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def beir_row(theorem: Theorem) -> dict[str, Any]:
    """A corpus row BEIR reads (``_id`` first) that rader's corpus loader reads back whole."""
    row = theorem.to_dict()
    return {"_id": row.pop("id"), **row}


def write_beir(folder: Path, corpus: Corpus,
               splits: dict[str, list[tuple[str, TrainingExample]]]) -> None:
    """``corpus.jsonl``, ``queries.jsonl`` (every split's queries, ids unique across splits) and
    ``qrels/<split>.tsv`` (each query's positives, relevance 1) for ``splits``: name -> (query id,
    example)."""
    write_jsonl(folder / CORPUS, map(beir_row, corpus))
    write_jsonl(folder / QUERIES, ({"_id": query_id, "text": example.query, "kind": example.query_kind}
                                   for named in splits.values() for query_id, example in named))
    (folder / QRELS).mkdir(exist_ok=True)
    for split, named in splits.items():
        with (folder / QRELS / f"{split}.tsv").open("w", encoding="utf-8") as handle:
            handle.write(QRELS_HEADER)
            for query_id, example in named:
                handle.writelines(f"{query_id}\t{p.docid}\t1\n" for p in example.positives)


def beir_split(folder: str | Path, split: str) -> SplitFiles:
    """The queries and qrels files of ``split`` in a dataset folder. A folder written before the
    BEIR layout (``<split>.queries.jsonl``, ``<split>.qrels.tsv``) still reads."""
    folder = Path(folder)
    for files in (SplitFiles(folder / QUERIES, folder / QRELS / f"{split}.tsv"),
                  SplitFiles(folder / f"{split}.queries.jsonl", folder / f"{split}.qrels.tsv")):
        if files.queries.is_file() and files.qrels.is_file():
            return files
    raise RaderError(f"no {split} queries and qrels in {folder} (expected {QUERIES} and "
                     f"{QRELS}/{split}.tsv): run `rader dataset build --out {folder}`")
