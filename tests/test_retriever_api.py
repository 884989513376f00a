"""The one retrieval API: bad queries, the built-in corpus, LangChain."""

from __future__ import annotations

import pytest

from rader.retriever import (
    Query,
    RaderError,
    RetrieverOptions,
    builtin_corpus,
    load_encoder,
    open_retriever,
)
from rader.retriever.langchain import RaderLangChainRetriever


@pytest.fixture(scope="module")
def builtin_hybrid(encoder, builtin_indexes):
    return open_retriever("hybrid", builtin_corpus(), home=builtin_indexes.parent, encoder=encoder,
                          show_progress=False)


@pytest.mark.parametrize(
    ("query", "expected_title_word"),
    [
        ("the roots of a quadratic sum to -b/a", "Vieta"),
        (r"$\binom{n}{k} = \binom{n-1}{k-1} + \binom{n-1}{k}$", "Pascal"),
        ("a^2 + b^2 = c^2 for the sides of a right triangle", "Pythag"),
        ("if p is prime then a^{p-1} is 1 mod p", "Fermat"),
    ],
)
def test_builtin_corpus_answers_textbook_queries(builtin_hybrid, query, expected_title_word):
    hits = builtin_hybrid.search(Query(query), k=3)
    titles = [builtin_hybrid.theorem(h.theorem_id).title for h in hits]
    assert any(expected_title_word in title for title in titles), titles


@pytest.mark.parametrize("query", ["", "   \n\t "])
def test_empty_query_is_a_clear_error(builtin_hybrid, query):
    with pytest.raises(RaderError, match="query is empty"):
        builtin_hybrid.search(query)


def test_huge_and_hostile_queries_give_sensible_results(builtin_hybrid):
    huge = "triangle area " * 8000  # ~100 kB
    assert len(huge) > 100_000
    hits = builtin_hybrid.search(huge, k=5)
    assert len(hits) == 5
    latex_only = builtin_hybrid.search(r"$\int_0^1 \frac{\sin^2 x}{\sqrt{x}}\,dx$", k=5)
    assert len(latex_only) == 5
    garbage = builtin_hybrid.search("\x00\x01\ufffd💥 ' OR 1=1; --", k=5)
    assert len(garbage) == 5  # dense always answers; nothing crashes
    with pytest.raises(RaderError, match="k must be at least 1"):
        builtin_hybrid.search("triangle", k=0)


def test_unknown_retriever_lists_the_valid_ones(tiny_corpus, tmp_path):
    with pytest.raises(RaderError, match="choose one of bm25, dense, hybrid"):
        open_retriever("splade", tiny_corpus, home=tmp_path)


def test_missing_encoder_is_a_clear_error(tiny_corpus, tmp_path):
    with pytest.raises(RaderError, match="not a built-in name"):
        open_retriever("dense", tiny_corpus, home=tmp_path,
                       options=RetrieverOptions(encoder="no-such-encoder"))
    with pytest.raises(RaderError, match="not in the local Hugging Face cache"):
        load_encoder("nobody/no-such-model")


def test_langchain_retriever_returns_documents(builtin_hybrid):
    retriever = RaderLangChainRetriever(retriever=builtin_hybrid, k=3, query_kind="cot_step")
    docs = retriever.invoke("the discriminant tells how many real roots a quadratic has")
    assert len(docs) == 3
    assert [d.metadata["rank"] for d in docs] == [1, 2, 3]
    first = builtin_hybrid.theorem(docs[0].metadata["theorem_id"])
    assert docs[0].page_content == first.passage
    assert any("iscriminant" in d.page_content for d in docs)
