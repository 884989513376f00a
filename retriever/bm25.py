"""Sparse retrieval: a `bm25s` index over the math-aware tokenizer.

Example:
    >>> from rader.retriever import Corpus, Theorem, Query
    >>> corpus = Corpus([Theorem("a", "Vieta", "sum of roots is $-b/a$"),
    ...                  Theorem("b", "Pythagoras", "$a^2+b^2=c^2$ in a right triangle")])
    >>> index = BM25Index.build(corpus, show_progress=False)
    >>> [h.theorem_id for h in index.search(Query("right triangle"), k=1)]
    ['b']
"""

from __future__ import annotations

from pathlib import Path

import bm25s
import numpy as np

from .corpus import Corpus
from .tokenizer import MathTokenizer
from .types import Hit, Query, ranked_hits


class BM25Index:
    """A bm25s index over a corpus; ids are kept in corpus order."""

    kind = "bm25"

    def __init__(self, model: bm25s.BM25, ids: list[str], tokenizer: MathTokenizer) -> None:
        self.model = model
        self.ids = ids
        self.tokenizer = tokenizer
        self._vocab: dict[str, int] = model.vocab_dict

    @classmethod
    def build(
        cls, corpus: Corpus, *, k1: float = 1.5, b: float = 0.75, show_progress: bool = True
    ) -> BM25Index:
        tokenizer = MathTokenizer()
        tokens = tokenizer.tokenize_many([t.passage for t in corpus])
        model = bm25s.BM25(k1=k1, b=b)
        model.index(tokens, show_progress=show_progress)
        return cls(model, corpus.ids, tokenizer)

    @property
    def params(self) -> dict[str, object]:
        return {"k1": self.model.k1, "b": self.model.b, "method": self.model.method,
                "tokenizer": self.tokenizer.config, "bm25s": bm25s.__version__}

    def search(self, query: Query, k: int = 10) -> list[Hit]:
        return self.search_many([query], k=k)[0]

    def search_many(self, queries: list[Query], k: int = 10) -> list[list[Hit]]:
        k = min(k, len(self.ids))
        results: list[list[Hit]] = []
        for query in queries:
            token_ids = [self._vocab[t] for t in self.tokenizer.tokenize(query.text) if t in self._vocab]
            if not token_ids or k <= 0:
                results.append([])  # nothing in the query that the corpus knows
                continue
            scores = self.model.get_scores_from_ids(token_ids)
            top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
            top = top[np.argsort(-scores[top], kind="stable")]
            ranked = zip(top.tolist(), scores[top].tolist(), strict=True)
            pairs = [(self.ids[i], s) for i, s in ranked if s > 0]
            results.append(ranked_hits(pairs, self.kind))
        return results

    def save(self, folder: Path) -> None:
        self.model.save(str(folder), show_progress=False)

    @classmethod
    def load(cls, folder: Path, ids: list[str], tokenizer: dict[str, object] | None = None,
             mmap: bool = False) -> BM25Index:
        """Load a saved index; ``tokenizer`` is the config it was built with (from its manifest)."""
        model = bm25s.BM25.load(str(folder), mmap=mmap, show_progress=False, verbosity=0)
        options = {k: v for k, v in (tokenizer or {}).items() if k != "name"}
        return cls(model, ids, MathTokenizer(**options))
