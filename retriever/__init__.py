"""rader.retriever: theorem corpora, BM25, dense and hybrid retrieval, evaluation.

Example:
    >>> import tempfile
    >>> from rader.retriever import Query, builtin_corpus, open_retriever
    >>> retriever = open_retriever("bm25", builtin_corpus(), home=tempfile.mkdtemp(),
    ...                            show_progress=False)
    >>> hit = retriever.search(Query("number of ways to choose k of n"), k=1)[0]
    >>> hit.retriever
    'bm25'
"""

from .bm25 import BM25Index
from .corpus import BUILTIN_NAME, Corpus, CorpusReport, RejectedLine, builtin_corpus, read_corpus
from .corpus_store import CorpusInfo, CorpusStore
from .dense import INDEX_TYPES, DenseIndex, make_faiss_index
from .encoders import BUILTIN_ENCODERS, Encoder, load_encoder
from .errors import RaderError
from .evaldata import EvalQuery, Qrels, load_qrels, load_queries, qrels_from_queries
from .examples import EXAMPLES_NAME, builtin_examples, examples_from_problems, read_examples
from .hybrid import FUSION_METHODS, HybridIndex, fuse
from .indexes import IndexManifest, IndexStore
from .registry import encoder_location, register_encoder, registered_encoders
from .retrievers import Retriever, RetrieverOptions, clean_query, open_retriever
from .splits import HeldOut, hash_fraction
from .tokenizer import MathTokenizer
from .types import QUERY_KINDS, RETRIEVER_NAMES, Hit, Query, QueryKind, Theorem

_LAZY = {"METRICS", "EvalRow", "evaluate"}  # evaluation imports ranx (and numba): ~2 s, only when asked


def __getattr__(name: str):
    if name in _LAZY:
        from . import evaluation

        return getattr(evaluation, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BUILTIN_ENCODERS",
    "BUILTIN_NAME",
    "EXAMPLES_NAME",
    "FUSION_METHODS",
    "INDEX_TYPES",
    "METRICS",
    "QUERY_KINDS",
    "RETRIEVER_NAMES",
    "BM25Index",
    "Corpus",
    "CorpusInfo",
    "CorpusReport",
    "CorpusStore",
    "DenseIndex",
    "Encoder",
    "EvalQuery",
    "EvalRow",
    "HeldOut",
    "Hit",
    "HybridIndex",
    "IndexManifest",
    "IndexStore",
    "MathTokenizer",
    "Qrels",
    "Query",
    "QueryKind",
    "RaderError",
    "RejectedLine",
    "Retriever",
    "RetrieverOptions",
    "Theorem",
    "builtin_corpus",
    "builtin_examples",
    "clean_query",
    "encoder_location",
    "evaluate",
    "examples_from_problems",
    "fuse",
    "hash_fraction",
    "load_encoder",
    "load_qrels",
    "load_queries",
    "make_faiss_index",
    "open_retriever",
    "qrels_from_queries",
    "read_corpus",
    "read_examples",
    "register_encoder",
    "registered_encoders",
]
