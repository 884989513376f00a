"""Dense retrieval: encoder vectors in a faiss index (exact inner product by default).

``flat`` is exact; ``hnsw`` (graph) and ``ivf`` (clustered, probed) trade a little recall
for speed on large corpora. Vectors are L2-normalised, so inner product is cosine.

Example:
    >>> from rader.retriever import Corpus, Theorem, Query, load_encoder
    >>> corpus = Corpus([Theorem("a", "Vieta", "sum of roots is $-b/a$"),
    ...                  Theorem("b", "Pythagoras", "$a^2+b^2=c^2$ in a right triangle")])
    >>> index = DenseIndex.build(corpus, load_encoder("minilm"), show_progress=False)
    >>> index.search(Query("hypotenuse of a right triangle"), k=1)[0].theorem_id
    'b'
"""

from __future__ import annotations

import math
from pathlib import Path

import faiss
import numpy as np

from .corpus import Corpus
from .encoders import Encoder
from .errors import RaderError
from .types import INDEX_TYPES, Hit, IndexType, Query, ranked_hits

_FILE = "vectors.faiss"


def make_faiss_index(
    vectors: np.ndarray, index_type: IndexType = "flat", *, hnsw_m: int = 32,
    ivf_nlist: int | None = None, ivf_nprobe: int = 16,
) -> faiss.Index:
    """A faiss inner-product index holding ``vectors`` (n, dim), float32, normalised."""
    n, dim = vectors.shape
    if index_type == "flat":
        index = faiss.IndexFlatIP(dim)
    elif index_type == "hnsw":
        index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = max(64, hnsw_m * 2)
    elif index_type == "ivf":
        # ~4 sqrt(n) lists is faiss' usual guidance; never more lists than 1 per 39 points
        nlist = ivf_nlist or max(1, min(int(4 * math.sqrt(n)), n // 39))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(vectors)
        index.nprobe = min(ivf_nprobe, nlist)
    else:
        raise RaderError(f"unknown index type {index_type!r}; choose one of {', '.join(INDEX_TYPES)}")
    index.add(vectors)
    return index


class DenseIndex:
    """A faiss index over encoder vectors; row i is corpus id ``ids[i]``."""

    kind = "dense"

    def __init__(self, index: faiss.Index, ids: list[str], encoder: Encoder) -> None:
        if index.ntotal != len(ids):
            raise RaderError(
                f"dense index holds {index.ntotal} vectors for {len(ids)} ids: it is corrupt; "
                "rebuild it with `rader index build --retriever dense --force`"
            )
        self.index = index
        self.ids = ids
        self.encoder = encoder

    @classmethod
    def build(
        cls, corpus: Corpus, encoder: Encoder, *, index_type: IndexType = "flat",
        show_progress: bool = True, **options,
    ) -> DenseIndex:
        vectors = encoder.encode_documents([t.passage for t in corpus], show_progress=show_progress)
        return cls(make_faiss_index(vectors, index_type, **options), corpus.ids, encoder)

    @property
    def index_type(self) -> str:
        if isinstance(self.index, faiss.IndexHNSW):
            return "hnsw"
        return "ivf" if isinstance(self.index, faiss.IndexIVF) else "flat"

    def vectors(self) -> np.ndarray:
        """The passage vectors the index compares queries with, (len(ids), dim): row i is
        ``ids[i]``'s (read back from faiss; an IVF index gains the row map it needs for that)."""
        if isinstance(self.index, faiss.IndexIVF):
            self.index.make_direct_map()
        return self.index.reconstruct_n(0, self.index.ntotal)

    def search(self, query: Query, k: int = 10) -> list[Hit]:
        return self.search_many([query], k=k)[0]

    def search_many(self, queries: list[Query], k: int = 10) -> list[list[Hit]]:
        return self.search_vectors(self.encoder.encode_queries(queries), k)

    def search_vectors(self, vectors: np.ndarray, k: int) -> list[list[Hit]]:
        """Search with ready query vectors (n, dim)."""
        k = min(k, len(self.ids))
        if k <= 0 or len(vectors) == 0:
            return [[] for _ in range(len(vectors))]
        scores, rows = self.index.search(vectors, k)  # both (n_queries, k); row -1 = no result
        ids = self.ids
        # .tolist() first: Python floats and ints are much cheaper to handle than numpy scalars
        return [
            ranked_hits([(ids[r], s) for s, r in zip(srow, rrow, strict=True) if r >= 0], self.kind)
            for srow, rrow in zip(scores.tolist(), rows.tolist(), strict=True)
        ]

    def save(self, folder: Path) -> None:
        faiss.write_index(self.index, str(folder / _FILE))

    @classmethod
    def load(cls, folder: Path, ids: list[str], encoder: Encoder) -> DenseIndex:
        try:
            index = faiss.read_index(str(folder / _FILE))
        except RuntimeError as err:
            raise RaderError(
                f"dense index file {folder / _FILE} is unreadable ({str(err).splitlines()[0]}); "
                "rebuild it with `rader index build --retriever dense --force`"
            ) from None
        return cls(index, ids, encoder)
