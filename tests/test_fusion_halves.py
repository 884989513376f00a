"""benchmarks/fusion_halves.py: its halves are `rader eval`'s split and its default row is rader's hybrid.

RESULTS "Hybrid on BRIGHT" reads a fusion rule off the half the learning loop never reports and
only checks it on the held-out half; that holds only if the two halves split the queries as
`rader eval --held-out-by theorem` does, and its "min-max 0.65" row means something only if it
ranks as the agent's hybrid retriever does.
"""

import pytest

from rader.retriever import HeldOut, Hit, Query, load_judged_queries, open_retriever


@pytest.fixture(scope="module")
def fusion_halves():
    from conftest import load_benchmark

    return load_benchmark("fusion_halves")


def test_the_halves_are_rader_evals_split_and_nothing_else(fusion_halves, shared_data):
    tables = fusion_halves.tables(shared_data)
    held, _ = load_judged_queries(shared_data / "problems" / "theoremqa_dev.jsonl",
                                  shared_data / "qrels" / "theoremqa_dev.qrels.tsv",
                                  where=HeldOut("theorem").holds)
    assert [q.id for q in tables["TheoremQA held-out"][0]] == [q.id for q in held]
    for name in ("TheoremQA", "BRIGHT"):
        held_ids = {q.id for q in tables[f"{name} held-out"][0]}
        other_ids = {q.id for q in tables[f"{name} other"][0]}
        assert held_ids and other_ids and not held_ids & other_ids
    assert len(tables["TheoremQA held-out"][0]) + len(tables["TheoremQA other"][0]) == 400


def test_the_default_row_ranks_as_raders_hybrid(fusion_halves, shared_data, encoder, theoremqa_corpus,
                                                 theoremqa_home):
    opened = {kind: open_retriever(kind, theoremqa_corpus, home=theoremqa_home, encoder=encoder,
                                   show_progress=False)
              for kind in ("bm25", "dense", "hybrid")}
    bright = {"BRIGHT other": fusion_halves.tables(shared_data)["BRIGHT other"]}
    ranked = fusion_halves.rank_tables(bright, opened["bm25"], opened["dense"])["BRIGHT other"]
    judged, _, sparse, dense = ranked
    default = fusion_halves.FUSIONS["minmax 0.65"]
    hybrid = opened["hybrid"].search_many([Query(q.text, q.kind) for q in judged], k=10)
    assert [[h.theorem_id for h in default(s, d)[:10]] for s, d in zip(sparse, dense, strict=True)] == \
        [[h.theorem_id for h in hits] for hits in hybrid]
    scores = {name: fusion_halves.ndcg_at_10(rule, ranked) for name, rule in fusion_halves.FUSIONS.items()}
    assert 0 < scores["bm25"] < 1 and 0 < scores["dense"] < 1 and scores["rrf"] != scores["dense"]


def test_z_fusion_gives_a_missing_theorem_its_lists_lowest_score(fusion_halves):
    bm25 = [Hit("a", 9.0, 1, "bm25"), Hit("b", 5.0, 2, "bm25"), Hit("c", 1.0, 3, "bm25")]
    dense = [Hit("c", 0.9, 1, "dense"), Hit("a", 0.5, 2, "dense"), Hit("d", 0.1, 3, "dense")]
    fused = {h.theorem_id: h.score for h in fusion_halves.z_fuse(bm25, dense, 0.5)}
    floor = -(1.5 ** 0.5)  # the lowest z of three evenly spaced scores
    assert fused["d"] == pytest.approx(floor)  # missing from BM25's list: its floor there too
    assert fused["b"] == pytest.approx(0.5 * floor)  # BM25's middle (z 0), dense's floor
    assert max(fused, key=fused.get) == "a"


def test_gated_fusion_trusts_dense_alone_when_the_two_tops_disagree(fusion_halves):
    bm25 = [Hit("b", 9.0, 1, "bm25"), Hit("e", 5.0, 2, "bm25"), Hit("g", 1.0, 3, "bm25")]
    dense = [Hit("d", 0.9, 1, "dense"), Hit("f", 0.5, 2, "dense"), Hit("h", 0.1, 3, "dense")]
    weighted = [h.theorem_id for h in fusion_halves.fuse(bm25, dense)]
    assert weighted[:2] == ["d", "b"]  # BM25's top outranks dense's second at the default share
    assert [h.theorem_id for h in fusion_halves.gated_fuse(bm25, dense, top=2)][:2] == ["d", "f"]
    agreeing = [*bm25, Hit("f", 0.5, 4, "bm25")]
    assert [h.theorem_id for h in fusion_halves.gated_fuse(agreeing, dense, top=4)] == \
        [h.theorem_id for h in fusion_halves.fuse(agreeing, dense)]
