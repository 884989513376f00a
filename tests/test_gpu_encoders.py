"""benchmarks/gpu_encoders.py: rankings made on another machine score as `rader eval` scores them.

The seventh learning-loop pass trained encoders on a GPU machine without faiss, bm25s or ranx and
scored their rankings here; its tables are only comparable with the earlier passes if a ranking
from `rank` scores exactly what rader's own dense retriever scores, and BM25 fused with it what
rader's hybrid scores, on the same queries.
"""

import pytest

from rader.retriever import EvalQuery, HeldOut, evaluate, open_retriever


@pytest.fixture(scope="module")
def gpu_encoders():
    from conftest import load_benchmark

    return load_benchmark("gpu_encoders")


def test_rankings_from_elsewhere_score_as_rader_eval_scores_them(gpu_encoders, shared_data, encoder,
                                                                   theoremqa_corpus, theoremqa_home):
    corpus_path = shared_data / "theorems" / "theoremqa_theorems.jsonl"
    evalset = gpu_encoders.evalset_from(corpus_path, shared_data / "problems" / "theoremqa_dev.jsonl",
                                        shared_data / "qrels" / "theoremqa_dev.qrels.tsv", None,
                                        HeldOut("theorem"))
    evalset["queries"] = evalset["queries"][:60]
    queries = [EvalQuery(q["id"], q["text"], q["kind"], excluded_ids=tuple(q["excluded_ids"]))
               for q in evalset["queries"]]
    qrels = {q.id: evalset["qrels"][q.id] for q in queries}
    ranked = gpu_encoders.Ranked("elsewhere", evalset, gpu_encoders.rank(encoder, evalset))
    corpus = theoremqa_corpus
    bm25 = open_retriever("bm25", corpus, home=theoremqa_home, show_progress=False)
    opened = {kind: open_retriever(kind, corpus, home=theoremqa_home, encoder=encoder, show_progress=False)
              for kind in ("dense", "hybrid")}
    engines = {**opened, "ranked": ranked, "fused": gpu_encoders.Fused(bm25, ranked)}
    rows = {row.retriever: row.metrics for row in evaluate(engines, queries, qrels)}
    assert 0.3 < rows["dense"]["ndcg@10"] < 1  # a real ranking, not an empty or perfect one
    assert rows["ranked"] == pytest.approx(rows["dense"], abs=1e-9)
    assert rows["fused"] == pytest.approx(rows["hybrid"], abs=1e-9)
    assert rows["fused"] != pytest.approx(rows["ranked"])  # the fusion did something
