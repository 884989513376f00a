"""A LangChain `BaseRetriever` over a rader `Retriever`, for developers' own graphs.

Example:
    >>> import tempfile
    >>> from rader.retriever import builtin_corpus, open_retriever
    >>> inner = open_retriever("bm25", builtin_corpus(), home=tempfile.mkdtemp(),
    ...                        show_progress=False)
    >>> docs = RaderLangChainRetriever(retriever=inner, k=2).invoke("law of cosines")
    >>> sorted(docs[0].metadata)
    ['rank', 'retriever', 'score', 'source', 'theorem_id', 'title']
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from .retrievers import Retriever
from .types import Query, QueryKind


class RaderLangChainRetriever(BaseRetriever):
    """Theorems as LangChain `Document`s; page content is the title and statement."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    retriever: Any
    k: int = 10
    query_kind: QueryKind = "problem"

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        inner: Retriever = self.retriever
        docs = []
        for hit in inner.search(Query(query, self.query_kind), k=self.k):
            theorem = inner.theorem(hit.theorem_id)
            docs.append(Document(
                page_content=theorem.passage,
                metadata={"theorem_id": theorem.id, "title": theorem.title,
                          "source": theorem.source, "score": hit.score, "rank": hit.rank,
                          "retriever": hit.retriever},
            ))
        return docs
