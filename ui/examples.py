"""The example problems offered on the page: two per MATH subject, shipped with the package.

Each row of ``examples.jsonl`` is a `Problem` (with its gold answer) plus ``subject``,
``level`` and the ``attribution`` its license asks for (MATH: MIT, © 2021 Dan Hendrycks).

Example:
    >>> examples = load_examples()
    >>> sorted({e.subject for e in examples})[:2], examples[0].problem.answer
    (['Algebra', 'Counting & Probability'], '13')
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from importlib import resources
from typing import NamedTuple

from rader.agent.records import Problem


class Example(NamedTuple):
    problem: Problem
    subject: str
    level: int | None

    @property
    def label(self) -> str:
        """Subject, level and the problem's start, for the examples' buttons."""
        level = f" · L{self.level}" if self.level else ""
        start = " ".join(self.problem.text.split())
        return f"{self.subject}{level} · " + (start if len(start) <= 30 else start[:28] + "…")


@cache
def load_examples() -> tuple[Example, ...]:
    text = resources.files("rader.ui").joinpath("examples.jsonl").read_text(encoding="utf-8")
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return tuple(Example(Problem.from_dict(row), row["subject"], row.get("level")) for row in rows)


def problem_for(text: str, answer: str | None) -> Problem:
    """The problem a student submitted: an example keeps its MATH id (and so its provenance),
    anything typed gets an id derived from its text, so repeated runs of it group together."""
    text, answer = text.strip(), (answer or "").strip() or None
    for example in load_examples():
        if example.problem.text.strip() == text and example.problem.answer == answer:
            return example.problem
    digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]
    return Problem(id=f"ui/{digest}", text=text, answer=answer, source="ui")
