from __future__ import annotations

import bm25s
import numpy as np
import pytest

from rader.retriever import BM25Index, MathTokenizer, Query


def test_tokenizer_keeps_math_tokens():
    tokens = MathTokenizer().tokenize(
        r"Compute $\binom{10}{3}$, $\sin^2\theta$, $a^{p-1} \equiv 1 \pmod{p}$ and 7 mod 3")
    for kept in ("binom", "sin", "theta", "^p", "equiv", "mod", "comput"):
        assert kept in tokens
    assert "10" not in tokens and "^2" not in tokens  # bare numbers are noise (see module doc)
    assert "left" not in MathTokenizer().tokenize(r"$\left( x \right)$")


def test_tokenizer_stems_and_drops_stopwords():
    assert MathTokenizer().tokenize("The integers are dividing") == ["integ", "divid"]
    assert MathTokenizer(stem=False, stopwords=False).tokenize("The integers") == ["the", "integers"]


def test_bm25_ranks_the_obvious_theorem_first(tiny_corpus):
    index = BM25Index.build(tiny_corpus, show_progress=False)
    expected = {
        "hypotenuse of a right triangle": "pythagoras",
        r"choose $\binom{n}{k}$": "binomial",
        r"$2^{p-1} \pmod p$ for a prime": "fermat",
        "sum and product of the roots": "vieta",
    }
    for text, theorem_id in expected.items():
        assert index.search(Query(text), k=1)[0].theorem_id == theorem_id, text


def test_bm25_unknown_words_give_no_hits(tiny_corpus):
    index = BM25Index.build(tiny_corpus, show_progress=False)
    assert index.search(Query("zzzz qqqq"), k=3) == []
    assert len(index.search(Query("triangle"), k=100)) == 1  # only positive scores come back


def test_bm25_scores_match_bm25s_on_the_same_tokens(tiny_corpus):
    """Parity: our layer returns exactly bm25s' scores for the tokens it produced."""
    index = BM25Index.build(tiny_corpus, show_progress=False)
    tokenizer = MathTokenizer()
    raw = bm25s.BM25()
    raw.index([tokenizer.tokenize(t.passage) for t in tiny_corpus], show_progress=False)
    query = "the roots of a right triangle prime"
    expected = raw.get_scores([t for t in tokenizer.tokenize(query) if t in raw.vocab_dict])
    hits = index.search(Query(query), k=4)
    for hit in hits:
        assert hit.score == pytest.approx(expected[tiny_corpus.ids.index(hit.theorem_id)])
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    assert np.all(np.diff([h.score for h in hits]) <= 0)


def test_bm25_save_and_load_round_trip(tiny_corpus, tmp_path):
    index = BM25Index.build(tiny_corpus, show_progress=False)
    index.save(tmp_path)
    again = BM25Index.load(tmp_path, tiny_corpus.ids)
    query = Query("prime modulus")
    assert again.search(query, k=4) == index.search(query, k=4)
