"""Evaluation: file formats, BRIGHT's excluded ids, metric cross-checks, real labels."""

from __future__ import annotations

import json
import math

import pytest

from rader.retriever import (
    EvalQuery,
    Hit,
    RaderError,
    builtin_corpus,
    evaluate,
    load_qrels,
    load_queries,
    open_retriever,
    qrels_from_queries,
)
from rader.retriever.evaluation import score_run, to_run


class FixedRanking:
    """A retriever whose rankings are given; stands in for nothing under test here."""

    def __init__(self, rankings: dict[str, list[str]]):
        self.rankings = rankings

    def search_many(self, queries, k=10):
        return [[Hit(d, 1.0 / r, r, "fixed") for r, d in enumerate(self.rankings[q.text][:k], 1)]
                for q in queries]


def ndcg_at_10(ranking: list[str], relevant: dict[str, int]) -> float:
    """nDCG@10 written out from its definition, to cross-check ranx."""
    dcg = sum(relevant.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranking[:10]))
    ideal = sorted(relevant.values(), reverse=True)[:10]
    return dcg / sum(g / math.log2(i + 2) for i, g in enumerate(ideal))


def test_ranx_metrics_match_their_definitions():
    rankings = {"q1": ["a", "b", "c", "d"], "q2": ["x", "y", "z"], "q3": ["m"]}
    qrels = {"q1": {"c": 1, "d": 1}, "q2": {"x": 1}, "q3": {"nope": 1}}
    queries = [EvalQuery(q, q) for q in rankings]
    row = evaluate({"fixed": FixedRanking(rankings)}, queries, qrels)[0]
    expected_ndcg = sum(ndcg_at_10(rankings[q], qrels[q]) for q in rankings) / 3
    assert row.metrics["ndcg@10"] == pytest.approx(expected_ndcg)
    assert row.metrics["mrr@10"] == pytest.approx((1 / 3 + 1 + 0) / 3)
    assert row.metrics["recall@10"] == pytest.approx((1 + 1 + 0) / 3)


def test_excluded_ids_are_dropped_before_scoring():
    queries = [EvalQuery("q", "q", excluded_ids=("self",))]
    run = to_run(queries, [[Hit("self", 1, 1, "x"), Hit("gold", 0.5, 2, "x")]])
    assert list(run["q"]) == ["gold"]
    assert score_run({"q": {"gold": 1}}, run)["mrr@10"] == 1.0


def test_per_kind_rows_when_queries_have_kinds():
    rankings = {"a": ["d1"], "b": ["d2"]}
    queries = [EvalQuery("q1", "a", "cot_step"), EvalQuery("q2", "b", "llm_query")]
    rows = evaluate({"fixed": FixedRanking(rankings)}, queries, {"q1": {"d1": 1}, "q2": {"d1": 1}})
    assert [(r.kind, r.queries, r.metrics["mrr@10"]) for r in rows] == [
        ("all", 2, 0.5), ("cot_step", 1, 1.0), ("llm_query", 1, 0.0)]


def test_qrels_formats(tmp_path):
    beir = tmp_path / "q.tsv"
    beir.write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t0\nq2\td3\t2\n")
    trec = tmp_path / "q.trec"
    trec.write_text("q1 0 d1 1\nq2 0 d3 2\n")
    jsonl = tmp_path / "q.jsonl"
    jsonl.write_text('{"query_id": "q1", "doc_id": "d1", "relevance": 1}\n'
                     '{"query_id": "q2", "doc_id": "d3", "relevance": 2}\n')
    expected = {"q1": {"d1": 1}, "q2": {"d3": 2}}
    assert load_qrels(beir) == load_qrels(trec) == load_qrels(jsonl) == expected
    bad = tmp_path / "bad.tsv"
    bad.write_text("q1\td1\tmaybe\n")
    with pytest.raises(RaderError, match=r"bad\.tsv:1: not a qrels row"):
        load_qrels(bad)


def test_bright_style_queries_carry_their_qrels(tmp_path):
    path = tmp_path / "bright.jsonl"
    rows = [{"id": "q1", "query": "text", "gold_ids": ["a"], "excluded_ids": ["b"]},
            {"query_id": "q2", "text": "t", "gold_doc_ids": ["c"], "other": "x"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    queries = load_queries(path)
    assert queries[0].excluded_ids == ("b",)
    assert qrels_from_queries(queries) == {"q1": {"a": 1}, "q2": {"c": 1}}
    with pytest.raises(RaderError, match="unknown query kind"):
        load_queries(path, kind="essay")


@pytest.mark.slow
def test_theoremqa_dev_labels_reproduce_the_reference(shared_data, encoder, theoremqa_corpus, theoremqa_home):
    """Reference on this machine: bm25s 0.578, MiniLM 0.676; hybrid must beat both parts."""
    queries = load_queries(shared_data / "problems" / "theoremqa_dev.jsonl")
    qrels = load_qrels(shared_data / "qrels" / "theoremqa_dev.qrels.tsv")
    engines = {kind: open_retriever(kind, theoremqa_corpus, home=theoremqa_home, encoder=encoder,
                                    show_progress=False)
               for kind in ("bm25", "dense", "hybrid")}
    engines["bm25 again"] = engines["bm25"]
    rows = evaluate(engines, queries, qrels)
    ndcg = {row.retriever: row.metrics["ndcg@10"] for row in rows}
    assert ndcg["bm25"] >= 0.578
    assert ndcg["dense"] >= 0.670
    assert ndcg["hybrid"] >= max(ndcg["bm25"], ndcg["dense"])
    # significance against the first retriever: none for itself, certain for a 0.1 gain on
    # 400 queries, and no difference at all for the same rankings
    p_value = {row.retriever: row.p_value for row in rows if row.kind == "all"}
    assert p_value["bm25"] is None and p_value["dense"] < 0.01 and p_value["bm25 again"] == 1.0


def test_bright_theorems_queries_score_against_theoremqa_corpus(shared_data, theoremqa_corpus,
                                                               theoremqa_home):
    queries = load_queries(shared_data / "qrels" / "bright_theoremqa_theorems_dev.jsonl",
                           gold_field="theoremqa_theorem_doc_id")
    assert len(queries) == 42
    engine = open_retriever("bm25", theoremqa_corpus, home=theoremqa_home, show_progress=False)
    row = evaluate({"bm25": engine}, queries, qrels_from_queries(queries))[0]
    assert row.queries == 42 and 0.2 < row.metrics["recall@100"] <= 1.0


def test_builtin_corpus_is_searchable_by_its_own_titles(tmp_path):
    """Sanity of the shipped corpus: a theorem's title finds it in the BM25 top 10."""
    corpus = builtin_corpus()
    engine = open_retriever("bm25", corpus, home=tmp_path, show_progress=False)
    queries = [EvalQuery(t.id, t.title) for t in corpus]
    row = evaluate({"bm25": engine}, queries, {t.id: {t.id: 1} for t in corpus})[0]
    assert row.metrics["recall@10"] >= 0.9
