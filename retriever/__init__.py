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

from rader.retriever.lazy import lazy_exports

# module -> its public names: nothing loads until used (evaluation alone imports ranx and
# numba, ~2 s; bm25s imports numba too)
_EXPORTS = {
    "aliases": "twin_key",
    "bm25": "BM25Index",
    "corpus": "BUILTIN_NAME Corpus CorpusReport RejectedLine builtin_corpus read_corpus",
    "corpus_store": "CorpusInfo CorpusStore",
    "dense": "DenseIndex make_faiss_index",
    "encoders": "BUILTIN_ENCODERS Encoder load_encoder",
    "errors": "RaderError",
    "evaldata": "EvalQuery Qrels held_out_theorems load_judged_queries load_qrels load_queries "
                "qrels_from_queries",
    "examples": "EXAMPLES_NAME builtin_examples examples_from_problems read_examples",
    "hybrid": "HybridIndex fuse",
    "indexes": "IndexManifest IndexStore",
    "registry": "encoder_location register_encoder registered_encoders",
    "retrievers": "Retriever clean_query open_retriever",
    "splits": "HeldOut hash_fraction held_out_rows",
    "tokenizer": "MathTokenizer",
    "types": "FUSION_METHODS INDEX_TYPES QUERY_KINDS RETRIEVER_NAMES Hit Query QueryKind RetrieverOptions "
             "Theorem",
    "evaluation": "METRICS EvalRow evaluate",
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
