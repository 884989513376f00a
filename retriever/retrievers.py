"""The one retrieval API the agent, the CLI and the UI use: `Query` in, ranked `Hit`s out.

Example:
    >>> import tempfile
    >>> from rader.retriever import Query, builtin_corpus
    >>> retriever = open_retriever("bm25", builtin_corpus(), home=tempfile.mkdtemp(),
    ...                            show_progress=False)
    >>> hits = retriever.search(Query("the roots of a quadratic sum to -b/a"), k=3)
    >>> len(hits), hits[0].rank
    (3, 1)
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from .bm25 import BM25Index
from .corpus import Corpus
from .dense import DenseIndex
from .encoders import Encoder, load_encoder
from .errors import RaderError
from .hybrid import HybridIndex
from .indexes import IndexStore
from .types import RETRIEVER_NAMES, Hit, Query, RetrieverOptions, Theorem

log = logging.getLogger(__name__)
MAX_QUERY_CHARS = 20_000  # longer text is cut: no encoder reads past 512 tokens anyway


class Index(Protocol):
    kind: str

    def search_many(self, queries: list[Query], k: int = 10) -> list[list[Hit]]: ...


def clean_query(query: Query | str) -> Query:
    """Validate a query: empty text is an error; very long text is cut with a warning."""
    if isinstance(query, str):
        query = Query(query)
    # lone surrogates (undecodable bytes from a command line) reach no tokenizer or encoder
    text = query.text.encode("utf-8", "replace").decode("utf-8").strip()
    if not text:
        raise RaderError("the query is empty: give some text to search for")
    if len(text) > MAX_QUERY_CHARS:
        log.warning("query of %d characters cut to %d", len(text), MAX_QUERY_CHARS)
        text = text[:MAX_QUERY_CHARS]
    return Query(text, query.kind)


class Retriever:
    """A corpus and an index over it."""

    def __init__(self, corpus: Corpus, index: Index) -> None:
        self.corpus = corpus
        self.index = index

    @property
    def name(self) -> str:
        return self.index.kind

    def search(self, query: Query | str, k: int = 10) -> list[Hit]:
        return self.search_many([query], k=k)[0]

    def search_many(self, queries: list[Query | str], k: int = 10) -> list[list[Hit]]:
        if k < 1:
            raise RaderError(f"k must be at least 1, got {k}")
        return self.index.search_many([clean_query(q) for q in queries], k=k)

    def theorem(self, theorem_id: str) -> Theorem:
        return self.corpus.get(theorem_id)

    def excluding(self, theorem_ids: Iterable[str]) -> Retriever:
        """This retriever with some entries never returned (a benchmark's own problems among
        the worked examples, say); ranks are renumbered."""
        return _Excluding(self, frozenset(theorem_ids))


class _Excluding(Retriever):
    def __init__(self, inner: Retriever, excluded: frozenset[str]) -> None:
        super().__init__(inner.corpus, inner.index)
        self.excluded = excluded

    def search_many(self, queries: list[Query | str], k: int = 10) -> list[list[Hit]]:
        rows = super().search_many(queries, k=k + len(self.excluded))
        return [[hit._replace(rank=rank) for rank, hit in enumerate(
            (h for h in hits if h.theorem_id not in self.excluded), start=1) if rank <= k] for hits in rows]


def _open_bm25(store: IndexStore, corpus: Corpus, show_progress: bool) -> BM25Index:
    index = store.load_bm25(corpus)
    if index is None:
        log.info("no BM25 index for corpus %r yet: building it", corpus.name)
        index = store.build_bm25(corpus, show_progress=show_progress)
    return index


def _open_dense(store: IndexStore, corpus: Corpus, encoder: Encoder, options: RetrieverOptions,
                show_progress: bool) -> DenseIndex:
    index = store.load_dense(corpus, encoder)
    if index is None:
        log.info("no dense index for corpus %r and encoder %r yet: building it",
                 corpus.name, encoder.name)
        index = store.build_dense(corpus, encoder, index_type=options.index_type,
                                  show_progress=show_progress, **options.faiss_options)
    return index


def open_retriever(
    kind: str, corpus: Corpus, *, home: str | Path, options: RetrieverOptions | None = None,
    encoder: Encoder | None = None, show_progress: bool = True,
) -> Retriever:
    """Open (building on first use) the ``bm25``, ``dense`` or ``hybrid`` retriever."""
    options = options or RetrieverOptions()
    if kind not in RETRIEVER_NAMES:
        raise RaderError(f"unknown retriever {kind!r}; choose one of {', '.join(RETRIEVER_NAMES)}")
    store = IndexStore(home)
    if kind == "bm25":
        return Retriever(corpus, _open_bm25(store, corpus, show_progress))
    encoder = encoder or load_encoder(options.encoder, batch_size=options.batch_size)
    dense = _open_dense(store, corpus, encoder, options, show_progress)
    if kind == "dense":
        return Retriever(corpus, dense)
    hybrid = HybridIndex(_open_bm25(store, corpus, show_progress), dense, method=options.fusion,
                         alpha=options.alpha, rrf_k=options.rrf_k, depth=options.depth)
    return Retriever(corpus, hybrid)
