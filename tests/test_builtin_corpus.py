"""The corpus rader ships: coverage per MATH subject and well-formed LaTeX."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from rader.retriever import builtin_corpus

SUBJECTS = ("Prealgebra", "Algebra", "Number Theory", "Counting & Probability", "Geometry",
            "Intermediate Algebra", "Precalculus")
KINDS = {"theorem", "identity", "formula", "definition", "technique"}


@pytest.fixture(scope="module")
def corpus():
    return builtin_corpus()


def test_size_and_coverage_per_subject(corpus):
    assert len(corpus) >= 400
    per_subject = Counter(t.subject for t in corpus)
    assert set(per_subject) == set(SUBJECTS)
    assert min(per_subject.values()) >= 50, per_subject
    kinds = Counter(t.metadata.get("kind") for t in corpus)
    assert set(kinds) == KINDS


def test_every_entry_is_complete(corpus):
    for theorem in corpus:
        assert theorem.id.startswith("rader/"), theorem.id
        assert theorem.title.strip() and theorem.text.strip(), theorem.id
        assert theorem.source == "rader-builtin"
        assert 3 <= len(theorem.tags) <= 8, theorem.id
        assert all(tag == tag.lower() for tag in theorem.tags), theorem.id


def latex_problems(text: str) -> list[str]:
    """What is wrong with the LaTeX of one statement (empty when well-formed)."""
    problems = []
    body = text.replace(r"\$", "").replace(r"\{", "").replace(r"\}", "")
    if body.count("$") % 2:
        problems.append("unpaired $")
    depth = 0
    for char in body:
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth < 0:
            problems.append("} before {")
            break
    if depth > 0:
        problems.append("unclosed {")
    if len(re.findall(r"\\left\b", body)) != len(re.findall(r"\\right\b", body)):
        problems.append(r"\left without \right")
    if re.findall(r"\\begin\{(\w+\*?)\}", body) != re.findall(r"\\end\{(\w+\*?)\}", body):
        problems.append(r"\begin/\end mismatch")
    for math in re.findall(r"\$\$?(.+?)\$?\$", body, flags=re.S):
        if re.search(r"\\(frac|binom)(?!\s*\{)", math):
            problems.append(r"\frac or \binom without braces")
    return problems


def test_latex_is_well_formed(corpus):
    bad = {t.id: latex_problems(t.text) for t in corpus if latex_problems(t.text)}
    assert bad == {}


def test_the_latex_check_catches_mistakes():
    assert latex_problems(r"$\frac{1}{2}$ and $x$") == []
    assert "unpaired $" in latex_problems(r"$x + 1")
    assert "unclosed {" in latex_problems(r"$\frac{1}{2$")
    assert r"\left without \right" in latex_problems(r"$\left( x$")
    assert r"\begin/\end mismatch" in latex_problems(r"$\begin{pmatrix} 1 \end{bmatrix}$")
