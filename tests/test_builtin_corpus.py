"""The corpus rader ships: coverage per MATH subject, well-formed LaTeX, no near-duplicates, and
every id it ever had still resolving (merged entries keep their old ids as aliases)."""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from test_cli import rader

from rader.retriever import Corpus, RaderError, Theorem, builtin_corpus, open_retriever

REPO = Path(__file__).resolve().parents[1]
FORMER_IDS = Path(__file__).parent / "data" / "builtin_ids_2026-11-28.txt"  # the 548 ids before the merge

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


# Near-identical: the passages' MiniLM cosine is at least PASSAGE, or the titles' is at least
# TITLE and the passages' at least PASSAGE_WITH_TITLE. Chosen on the pairs themselves: before the
# merge, every pair of entries with the same title had title cosine 1.0 and passage cosine
# 0.774-0.997, and "Denesting a square root" / "Denesting square roots" 0.957 / 0.970. The
# closest distinct pairs kept: "Stars and bars: positive / nonnegative solutions" (passages 0.883,
# titles 0.919), "Euler's totient function" / "Formula for Euler's totient" (0.877 / 0.888),
# "Sums of consecutive (positive) integers" (titles 0.976, passages 0.727) and "Product-to-sum" /
# "Sum-to-product formulas" (titles 0.986, passages 0.635). Synonyms the encoder scores lower
# (e.g. "Number of divisors formula" / "Counting positive divisors", 0.742) were merged by reading.
PASSAGE, TITLE, PASSAGE_WITH_TITLE = 0.90, 0.95, 0.75


def near_identical(theorems: list[Theorem], encoder, passages: np.ndarray | None = None,
                   ) -> list[tuple[str, str, float, float]]:
    """Pairs of entries that say the same thing: (id, id, passage cosine, title cosine);
    ``passages`` are the theorems' passage vectors where they are at hand (encoded if not)."""
    if passages is None:
        passages = encoder.encode_documents([t.passage for t in theorems], show_progress=False)
    titles = encoder.encode_documents([t.title for t in theorems], show_progress=False)
    by_passage, by_title = passages @ passages.T, titles @ titles.T  # (n, n) cosines
    close = (by_passage >= PASSAGE) | ((by_title >= TITLE) & (by_passage >= PASSAGE_WITH_TITLE))
    pairs = zip(*np.nonzero(np.triu(close, k=1)), strict=True)
    return [(theorems[i].id, theorems[j].id, round(float(by_passage[i, j]), 3),
             round(float(by_title[i, j]), 3)) for i, j in pairs]


def test_no_two_entries_are_near_identical(corpus, encoder, builtin_indexes):
    # the passage vectors the built-in dense index holds: the ones the agent's retrieval compares
    index = open_retriever("dense", corpus, home=builtin_indexes.parent, encoder=encoder,
                           show_progress=False).index
    assert index.ids == corpus.ids
    assert near_identical(corpus.theorems, encoder, index.vectors()) == []


def test_the_near_duplicate_check_catches_former_duplicates(corpus, encoder):
    """Two entries the merge removed, put back: one with another wording of the same statement,
    one with the same title and a different emphasis."""
    former = [Theorem("rader/prealgebra/pythagorean_theorem", "Pythagorean theorem",
                      "In a right triangle with legs of lengths $a$ and $b$ and hypotenuse of length $c$, "
                      "$a^2 + b^2 = c^2$. Conversely, if the side lengths of a triangle satisfy "
                      "$a^2 + b^2 = c^2$, the angle opposite the side of length $c$ is a right angle."),
              Theorem("rader/algebra/circle_equation", "Equation of a circle",
                      "The circle with center $(h, k)$ and radius $r > 0$ consists of the points $(x, y)$ "
                      "with $(x - h)^2 + (y - k)^2 = r^2$. A point lies inside, on, or outside the circle "
                      "according as $(x - h)^2 + (y - k)^2$ is less than, equal to, or greater than $r^2$.")]
    twins = {"rader/prealgebra/pythagorean_theorem": "rader/geometry/pythagorean_theorem",
             "rader/algebra/circle_equation": "rader/geometry/circle_equation"}
    kept = [t for t in corpus if t.id in twins.values()]
    found = {(a, b) for a, b, *_ in near_identical(kept + former, encoder)}
    assert found == {(twin, old) for old, twin in twins.items()}


def test_every_former_id_still_resolves(corpus):
    former = FORMER_IDS.read_text().split()
    assert len(former) == 548
    assert all(theorem_id in corpus for theorem_id in former)
    merged = [i for i in former if corpus.get(i).id != i]
    assert len(merged) == 548 - len(corpus) == sum(len(t.metadata.get("aliases", ())) for t in corpus)
    resolved = corpus.get("rader/prealgebra/number_of_divisors")
    assert resolved.id == "rader/number_theory/number_of_divisors" and "divisors" in resolved.title.lower()
    assert set(corpus.ids) <= set(former)  # merging adds no new ids


def test_the_committed_harvest_resolves_against_the_merged_corpus(corpus, theoremqa_corpus):
    """Every theorem the stored trajectories retrieved or judged is still in builtin + TheoremQA."""
    both = Corpus.merge([corpus, theoremqa_corpus])
    cited = set()
    with gzip.open(REPO / "benchmarks" / "harvest.jsonl.gz", "rt", encoding="utf-8") as lines:
        for line in lines:
            for step in json.loads(line)["steps"]:
                cited.update(h["theorem_id"] for h in step["hits"])
                cited.update(j["theorem_id"] for j in step["judgments"])
    assert len(cited) > 400 and not [i for i in cited if i not in both]
    assert sum(both.get(i).id != i for i in cited) > 0  # some cite a merged-away id


def test_aliases_may_not_shadow_an_id_or_be_claimed_twice():
    a = Theorem("a", "A", "first", metadata={"aliases": ["old"]})
    with pytest.raises(RaderError, match="both an entry's id and an alias"):
        Corpus([a, Theorem("old", "Old", "second")])
    with pytest.raises(RaderError, match="claimed by both"):
        Corpus([a, Theorem("b", "B", "second", metadata={"aliases": ["old"]})])
    assert Corpus([a]).get("old") is a and "old" in Corpus([a]) and Corpus([a]).ids == ["a"]


def test_corpus_show_takes_a_former_id(capsys, home):
    code, out, err = rader(capsys, "corpus", "show", "rader/geometry/point_line_distance", "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["id"] == "rader/algebra/point_line_distance"
    assert "rader/geometry/point_line_distance" in shown["metadata"]["aliases"]
