"""RaDeR's generated queries in `rader dataset build`, written by the real test LLM (SmolLM2):
post-retrieval queries and BM25-checked lexical ones join the recorded queries, every reply is
cached, and a build cut short resumes from the cache."""

from __future__ import annotations

import json

import pytest
from conftest import MODEL_CACHE
from test_cli import rader
from test_training import CORPUS, IDS, copy_store, step, trajectory

from rader.agent import TrajectoryStore
from rader.agent.llm import LLMConfig, chat_model
from rader.retriever import Query, builtin_examples, load_queries, open_retriever
from rader.training.dataset import build_examples
from rader.training.generate import (
    LEXICAL_DEPTH,
    LEXICAL_KIND,
    POST_QUERY_KIND,
    QueryCache,
    QueryWriter,
    clean_reply,
)

VIETA, DIVISORS = "rader/algebra/vieta_quadratic", "rader/number_theory/number_of_divisors"
SOLVED = builtin_examples()


def test_clean_reply_takes_the_query_out_of_a_small_models_reply():
    assert clean_reply('Query: "sum of the roots without solving"\nThen we add them.', max_words=60) == (
        "sum of the roots without solving")
    echo = "Theorem: Vieta's formulas for a quadratic: ...\n\nthe sum of both roots from the coefficients"
    assert clean_reply(echo, max_words=60) == "the sum of both roots from the coefficients"
    title = "Vieta's formulas for a quadratic"  # a post-retrieval query may not name its theorem
    assert clean_reply(f"Use {title} here", max_words=60, avoid=title) is None
    assert clean_reply("Keywords: divisors prime factorization exponents count product", max_words=3) == (
        "divisors prime factorization")
    assert clean_reply("\n  \nok", max_words=60) is None


@pytest.fixture(scope="module")
def writer_llm(smollm_path):
    """SmolLM2 with room for a loaded machine (a reply may wait minutes for a core)."""
    return chat_model(LLMConfig(model=str(smollm_path), max_tokens=64, context=2048, timeout_s=600),
                      home=MODEL_CACHE)


@pytest.fixture
def two_runs(tmp_path) -> TrajectoryStore:
    """Two verified runs: g1 found Vieta (and a useful worked example) on its first step, g2 the
    divisor count on its second."""
    store = TrajectoryStore(tmp_path / "runs.db")
    store.save(trajectory("g1", [step(1, [("add the roots", "llm_query")],
                                      {VIETA: True, IDS[100]: False, SOLVED.theorems[0].id: True})],
                          verified=True))
    store.save(trajectory("g2", [step(1, [("start", "cot_step")], {IDS[200]: False}),
                                 step(2, [("count the divisors of 72", "llm_query")], {DIVISORS: True})],
                          verified=True))
    return store


def test_generated_queries_join_the_data_from_a_cache_that_resumes(writer_llm, two_runs, tmp_path):
    bm25 = open_retriever("bm25", CORPUS, home=tmp_path, show_progress=False)
    cache = tmp_path / "generated.jsonl"

    def build(runs):
        writer = QueryWriter(writer_llm, "smollm2-135m", QueryCache(cache))  # a new process each time
        return build_examples(runs, CORPUS, writer=writer, lexical_check=bm25, worked_examples=SOLVED)

    _, cut = build([t for t in two_runs.iter_trajectories() if t.problem.id == "g1"])  # a build cut short
    # both kinds for Vieta; none for the worked example (RaDeR's queries are for theorems)
    assert cut.generated["generated_asked"] == 2 and cut.generated["generated_failed"] == 0
    examples, report = build(two_runs.iter_trajectories())
    assert (report.generated["generated_cached"], report.generated["generated_asked"]) == (2, 2)  # resumed
    again, rebuilt = build(two_runs.iter_trajectories())
    assert (rebuilt.generated["generated_cached"], rebuilt.generated["generated_asked"]) == (4, 0)
    assert [e.to_dict() for e in again] == [e.to_dict() for e in examples]

    kinds = {(e.query_kind, e.query) for e in examples}
    assert {("llm_query", "add the roots"), ("llm_query", "count the divisors of 72")} <= kinds  # kept
    post = [e for e in examples if e.query_kind == POST_QUERY_KIND]
    lexical = [e for e in examples if e.query_kind == LEXICAL_KIND]
    # each of the four replies is an example, a rejection, or a lexical query BM25 did not find again
    assert len(post) + len(lexical) + report.generated["generated_rejected"] + report.generated[
        "lexical_dropped_by_bm25"] == 4
    for example in post:
        [positive] = [p.docid for p in example.positives]
        assert CORPUS.get(positive).title.lower() not in example.query.lower()
        if positive == VIETA:
            assert [n.docid for n in example.negatives] == [IDS[100]]  # its step's judged negatives
    for example in lexical:
        hits = bm25.search(Query(example.query, "lexical"), k=LEXICAL_DEPTH)
        assert example.positives[0].docid in {h.theorem_id for h in hits}  # the round trip held


def test_generated_kinds_load_where_eval_and_train_read_queries(tmp_path):
    """A built folder's queries.jsonl carries these kinds; `rader train` and `rader eval` read it."""
    path = tmp_path / "queries.jsonl"
    path.write_text("".join(json.dumps({"_id": f"q{i}", "text": "sum of the roots", "kind": kind}) + "\n"
                            for i, kind in enumerate((POST_QUERY_KIND, LEXICAL_KIND))))
    assert [q.kind for q in load_queries(path)] == [POST_QUERY_KIND, LEXICAL_KIND]


def test_dataset_build_writes_queries_with_a_model(two_runs, home, smollm_path, capsys, monkeypatch,
                                                   tmp_path):
    copy_store(two_runs, home)
    monkeypatch.setenv("RADER_LLM__TIMEOUT_S", "600")

    def build(*cache: str) -> dict:
        code, _, err = rader(capsys, "--no-progress", "dataset", "build", "--out", str(home / "gen"),
                             "--mine", "none", "--dev-fraction", "0", "--generate-with", str(smollm_path),
                             *cache)
        assert code == 0, err
        return json.loads((home / "gen" / "stats.json").read_text())

    stats = build()
    assert stats["generated_with"] == str(smollm_path)
    assert stats["build"]["generated"]["generated_asked"] == 4  # two positives, two kinds each
    assert len((home / "generated_queries.jsonl").read_text().splitlines()) == 4
    # a cache of the project's (benchmarks/generated_queries.jsonl) serves another machine's build
    shared = tmp_path / "project" / "generated_queries.jsonl"
    shared.parent.mkdir()
    shared.write_text((home / "generated_queries.jsonl").read_text())
    (home / "generated_queries.jsonl").unlink()
    again = build("--query-cache", str(shared))
    generated = again["build"]["generated"]
    assert (generated["generated_asked"], generated["generated_cached"]) == (0, 4)
    assert not (home / "generated_queries.jsonl").exists()
