"""Worked examples: solved problems retrieved for a problem like theorems, shown as demonstrations.

A worked example is a corpus entry whose ``text`` is the problem statement (what indexes
see: a problem retrieves similar problems) and whose ``metadata["solution"]`` is the worked
solution. The built-in set, ``math-train``, is the MATH training split: 7,500 problems with
their solutions (Hendrycks et al., 2021, MIT License, (c) 2021 Dan Hendrycks), compressed in
the package. Your own: a JSON Lines file of problems with ``id``, ``text`` (or ``problem``)
and ``solution``, added with ``rader corpus add FILE --name NAME --kind examples``.

Example:
    >>> corpus = builtin_examples()
    >>> len(corpus), "solution" in corpus.theorems[0].metadata
    (7500, True)
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from .corpus import Corpus, CorpusReport, ErrorPolicy, RejectedLine
from .errors import RaderError
from .types import Theorem

EXAMPLES_NAME = "math-train"
MATH_ATTRIBUTION = "MATH train (Hendrycks et al. 2021, MIT License)"
_DATA = "data/examples/math_train.jsonl.gz"


class _Unreadable(str):
    """A line that is not JSON, kept in its place so that line numbers stay right."""


def example_from_problem(row: dict[str, Any], source: str = "") -> Theorem:
    """A problem row (``id``, ``text`` or ``problem``, ``solution``; ``answer``, ``subject``,
    ``level`` kept) as a worked example; ``ValueError`` says what is missing."""
    problem, solution = row.get("text", row.get("problem")), row.get("solution")
    if not isinstance(row.get("id"), str) or not row["id"].strip():
        raise ValueError("missing id: needs a string `id`")
    if not isinstance(problem, str) or not problem.strip():
        raise ValueError("missing problem: needs `text` (or `problem`)")
    if not isinstance(solution, str) or not solution.strip():
        raise ValueError("missing solution: a worked example needs `solution`")
    metadata = {"solution": solution}
    for key in ("answer", "level"):
        if row.get(key) is not None:
            metadata[key] = row[key]
    subject = row.get("subject")
    return Theorem(id=row["id"], title="", text=problem, source=str(row.get("source") or source),
                   subject=subject if isinstance(subject, str) else None, metadata=metadata)


def examples_from_problems(rows: Iterable[dict[str, Any]], *, name: str, source: str = "",
                           errors: ErrorPolicy = "raise", path: str = "") -> tuple[Corpus, CorpusReport]:
    """Worked examples from problem rows, each bad row reported with its number and reason."""
    report = CorpusReport(path=path or name)
    examples: list[Theorem] = []
    seen: set[str] = set()
    for number, row in enumerate(rows, start=1):
        report.lines += 1
        try:
            if isinstance(row, _Unreadable):
                raise ValueError(row)
            if not isinstance(row, dict):
                raise ValueError(f"malformed JSON: expected an object, got {type(row).__name__}")
            example = example_from_problem(row, source)
            if example.id in seen:
                raise ValueError(f"duplicate id: {example.id!r}")
        except ValueError as err:
            if errors == "raise":
                raise RaderError(f"{report.path}:{number}: {err}") from None
            report.rejected.append(RejectedLine(number, str(err)))
            continue
        seen.add(example.id)
        examples.append(example)
    report.kept = len(examples)
    if not examples:
        raise RaderError(f"{report.path} has no usable worked examples ({report.summary()})")
    return Corpus(examples, name=name), report


def read_examples(path: str | Path, *, name: str,
                  errors: ErrorPolicy = "raise") -> tuple[Corpus, CorpusReport]:
    """Worked examples from a JSON Lines file of solved problems (gzipped if it ends in .gz)."""
    path = Path(path)
    if not path.is_file():
        raise RaderError(f"examples file not found: {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    rows: list[Any] = []
    try:
        with opener(path, "rt", encoding="utf-8") as source:
            for line in source:
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except (ValueError, RecursionError) as err:
                        rows.append(_Unreadable(f"malformed JSON: {str(err)[:80]}"))
    except (OSError, EOFError, UnicodeDecodeError) as err:
        raise RaderError(f"{path} is not a readable JSON Lines file ({err})") from None
    return examples_from_problems(rows, name=name, source=path.stem, errors=errors, path=str(path))


@cache
def builtin_examples() -> Corpus:
    """MATH train's 7,500 solved problems (MIT License), shipped with rader (read once)."""
    with resources.as_file(resources.files("rader.retriever") / _DATA) as file:
        return read_examples(file, name=EXAMPLES_NAME)[0]
