"""Evaluation inputs: queries and qrels in BEIR, TREC and BRIGHT-style files.

- Queries: JSON Lines with an id (``_id``, ``id`` or ``query_id``), a ``text`` (or
  ``query``), optional ``kind`` (a query kind), and BRIGHT-style ``gold_ids`` /
  ``gold_doc_ids`` and ``excluded_ids``.
- Qrels: BEIR TSV (``query-id  corpus-id  score`` with a header), TREC
  (``qid 0 docid rel``), or JSON Lines (``query_id``, ``doc_id``, ``relevance``). Without a
  qrels file, the gold ids inside the queries file are the qrels (BRIGHT's layout).

Example:
    >>> import json, tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "q.jsonl"
    >>> _ = f.write_text(json.dumps({"id": "q1", "text": "x", "gold_ids": ["d1"]}) + "\\n")
    >>> queries = load_queries(f)
    >>> queries[0].id, qrels_from_queries(queries)
    ('q1', {'q1': {'d1': 1}})
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import RaderError
from .splits import HeldOut, held_out_rows
from .types import QUERY_KINDS

Qrels = dict[str, dict[str, int]]
_GOLD_FIELDS = ("gold_ids", "gold_doc_ids")


@dataclass(frozen=True, slots=True)
class EvalQuery:
    id: str
    text: str
    kind: str = "problem"
    gold_ids: tuple[str, ...] = ()
    excluded_ids: tuple[str, ...] = ()


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise RaderError(f"file not found: {path}")
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise RaderError(f"{path} is not UTF-8 text (byte {err.start})") from None


def load_queries(path: str | Path, *, gold_field: str | None = None, kind: str | None = None,
                 where: Callable[[dict], bool] | None = None) -> list[EvalQuery]:
    """Queries from JSON Lines; ``gold_field`` names the field holding gold ids, if any;
    ``where`` keeps only the rows it accepts (a `HeldOut` split, say)."""
    path = Path(path)
    if kind is not None and kind not in QUERY_KINDS:
        raise RaderError(f"unknown query kind {kind!r}; choose one of {', '.join(QUERY_KINDS)}")
    queries = []
    for number, line in enumerate(_read_lines(path), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            query_id = str(next(row[f] for f in ("_id", "id", "query_id") if f in row))
            text = row.get("text", row.get("query"))
        except (json.JSONDecodeError, StopIteration, TypeError):
            raise RaderError(f"{path}:{number}: not a query object with an id and a text") from None
        if not isinstance(text, str) or not text.strip():
            raise RaderError(f"{path}:{number}: query {query_id!r} has no text")
        if where and not where(row):
            continue
        fields = (gold_field,) if gold_field else _GOLD_FIELDS
        gold = next((row[f] for f in fields if row.get(f) is not None), ())
        gold = (gold,) if isinstance(gold, str) else tuple(str(g) for g in gold)
        query_kind = kind or row.get("kind", "problem")
        if query_kind not in QUERY_KINDS:
            raise RaderError(f"{path}:{number}: unknown query kind {query_kind!r}")
        queries.append(EvalQuery(query_id, text, query_kind, gold,
                                 tuple(str(e) for e in row.get("excluded_ids") or ())))
    if not queries:
        raise RaderError(f"{path} holds no queries")
    return queries


def load_qrels(path: str | Path) -> Qrels:
    """Qrels from BEIR TSV, TREC or JSON Lines; relevance 0 rows are kept out."""
    path = Path(path)
    qrels: Qrels = {}
    for number, line in enumerate(_read_lines(path), start=1):
        if not line.strip():
            continue
        try:
            if line.lstrip().startswith("{"):
                row = json.loads(line)
                qid, did, rel = row["query_id"], row["doc_id"], row.get("relevance", 1)
            else:
                parts = line.split("\t") if "\t" in line else line.split()
                if number == 1 and parts[0].strip() in ("query-id", "query_id", "qid"):
                    continue  # BEIR header
                qid, did, rel = (parts[0], parts[2], parts[3]) if len(parts) == 4 else parts
            relevance = int(float(rel))
        except (ValueError, KeyError, TypeError, json.JSONDecodeError):
            raise RaderError(
                f"{path}:{number}: not a qrels row (BEIR `query-id corpus-id score`, "
                "TREC `qid 0 docid rel`, or JSON with query_id/doc_id/relevance)"
            ) from None
        if relevance > 0:
            qrels.setdefault(str(qid).strip(), {})[str(did).strip()] = relevance
    if not qrels:
        raise RaderError(f"{path} holds no relevance judgments")
    return qrels


def qrels_from_queries(queries: list[EvalQuery]) -> Qrels:
    """BRIGHT's layout: each query carries its gold ids."""
    qrels = {q.id: dict.fromkeys(q.gold_ids, 1) for q in queries if q.gold_ids}
    if not qrels:
        raise RaderError("no qrels file given and the queries carry no gold ids "
                         "(`gold_ids`, `gold_doc_ids`, or name a field with --gold-field)")
    return qrels


def load_judged_queries(queries: str | Path, qrels: str | Path | None, *, gold_field: str | None = None,
                        query_kind: str | None = None,
                        where: Callable[[dict], bool] | None = None) -> tuple[list[EvalQuery], Qrels]:
    """Queries and their judgments (a qrels file, or gold ids in the queries file); only the
    queries ``where`` accepts (one side of a `HeldOut` split, say), and their judgments."""
    query_list = load_queries(queries, gold_field=gold_field, kind=query_kind, where=where)
    judgments = load_qrels(qrels) if qrels else qrels_from_queries(query_list)
    if where:  # a qrels file also judges the queries left out
        kept = {q.id for q in query_list}
        judgments = {qid: docs for qid, docs in judgments.items() if qid in kept}
    return query_list, judgments


def held_out_theorems(queries: str | Path, qrels: str | Path | None, *, gold_field: str | None = None,
                      held_out: HeldOut | None = None) -> set[str]:
    """The theorem ids an evaluation set's (held-out) queries are labelled with: what a
    training set must leave out for a gain on those queries to be on theorems never trained on."""
    _, judgments = load_judged_queries(queries, qrels, gold_field=gold_field,
                                       where=held_out_rows(held_out))
    return {doc for docs in judgments.values() for doc in docs}
