"""Problem sets: JSON Lines files of problems (``id``, ``text``, optional ``answer``, ``level``).

The agent benchmark, the harvest and the judge benchmark all read them here.

Example:
    >>> import json, tempfile
    >>> path = tempfile.mktemp(suffix=".jsonl")
    >>> _ = open(path, "w").write("".join(json.dumps({"id": f"p{i}", "text": f"{i} + 1?", "level": i % 2})
    ...                                   + "\\n" for i in range(4)))
    >>> [p.id for p in load_problems(path, None, levels={1})]
    ['p1', 'p3']
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

from rader.agent.records import Problem
from rader.retriever import RaderError


def load_problems(path: str | Path, limit: int | None, *, shuffle_seed: int | None = None,
                  levels: set[int] | None = None,
                  where: Callable[[dict], bool] | None = None) -> list[Problem]:
    """Problems from a JSON Lines file (of ``levels`` only and rows ``where`` accepts, when
    given); the first ``limit``, or ``limit`` drawn with a seed. Rows that name a ``picture``
    (TheoremQA's figures, which the data does not include) are left out: the agent reads text."""
    path = Path(path)
    if not path.is_file():
        raise RaderError(f"problems file not found: {path}")
    problems = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            problem = Problem.from_dict(row)
        except (ValueError, KeyError, TypeError):
            raise RaderError(f"{path}:{number}: not a problem object with id and text") from None
        if row.get("picture") or (levels and row.get("level") not in levels) or (where and not where(row)):
            continue
        problems.append(problem)
        if limit and len(problems) >= limit and shuffle_seed is None:
            break
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(problems)
    return problems[:limit] if limit else problems
