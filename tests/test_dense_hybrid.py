from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import copy_model

from rader.retriever import DenseIndex, Hit, Query, fuse, load_encoder, make_faiss_index


def test_encoder_gives_normalised_vectors(encoder):
    vectors = encoder.encode_queries([Query("a"), Query("sum of roots", "cot_step")])
    assert vectors.shape == (2, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert encoder.encode_documents([], show_progress=False).shape == (0, 384)


@pytest.mark.parametrize("index_type", ["flat", "hnsw", "ivf"])
def test_dense_ranks_the_obvious_theorem_first(tiny_corpus, encoder, index_type):
    index = DenseIndex.build(tiny_corpus, encoder, index_type=index_type, show_progress=False)
    assert index.index_type == index_type
    passages = encoder.encode_documents([t.passage for t in tiny_corpus], show_progress=False)
    assert np.allclose(index.vectors(), passages, atol=1e-5)
    expected = {"hypotenuse of a right triangle": "pythagoras",
                "how many ways to pick a committee": "binomial",
                "remainder of a power modulo a prime": "fermat"}
    for text, theorem_id in expected.items():
        assert index.search(Query(text), k=1)[0].theorem_id == theorem_id, text


def test_dense_save_load_round_trip(tiny_corpus, encoder, tmp_path):
    index = DenseIndex.build(tiny_corpus, encoder, show_progress=False)
    index.save(tmp_path)
    again = DenseIndex.load(tmp_path, tiny_corpus.ids, encoder)
    query = Query("right triangle")
    assert [h.theorem_id for h in again.search(query, 4)] == [h.theorem_id for h in index.search(query, 4)]


def test_ivf_index_on_many_vectors_finds_exact_neighbours():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(4000, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    flat, ivf = make_faiss_index(vectors, "flat"), make_faiss_index(vectors, "ivf")
    _, exact = flat.search(vectors[:50], 1)
    _, approx = ivf.search(vectors[:50], 1)
    assert (exact == approx).mean() >= 0.9


def test_query_kind_prompts_come_from_the_model_config(encoder, tmp_path):
    folder = copy_model(encoder, tmp_path / "prompted")
    config_file = folder / "config_sentence_transformers.json"
    config = json.loads(config_file.read_text())
    config["prompts"] = {"query": "query: ", "cot_step": "reasoning step: ", "document": "passage: "}
    config_file.write_text(json.dumps(config))
    prompted = load_encoder(str(folder))
    assert prompted.query_prompt("cot_step") == "reasoning step: "
    assert prompted.query_prompt("problem") == "query: "
    assert prompted.document_prompt == "passage: "
    text = "sum of the roots"
    by_kind = prompted.encode_queries([Query(text, "cot_step"), Query(text, "problem")])
    expected = encoder.encode_queries([Query("reasoning step: " + text), Query("query: " + text)])
    assert np.allclose(by_kind, expected, atol=1e-5)
    assert prompted.fingerprint == encoder.fingerprint  # same weights, same index compatibility


def hits(ids: list[str], retriever: str, scores: list[float]) -> list[Hit]:
    return [Hit(i, s, r, retriever) for r, (i, s) in enumerate(zip(ids, scores, strict=True), 1)]


def test_rrf_fusion_by_hand():
    bm25 = hits(["a", "b", "c"], "bm25", [9, 5, 1])
    dense = hits(["c", "b", "d"], "dense", [0.9, 0.8, 0.1])
    fused = fuse(bm25, dense, method="rrf", rrf_k=60)
    expected = {"a": 1 / 61, "b": 2 / 62, "c": 1 / 63 + 1 / 61, "d": 1 / 63}
    assert [h.theorem_id for h in fused] == sorted(expected, key=lambda i: -expected[i])
    assert [h.score for h in fused] == pytest.approx(sorted(expected.values(), reverse=True))
    assert all(h.retriever == "hybrid" for h in fused)


def test_weighted_fusion_by_hand():
    bm25 = hits(["a", "b", "c"], "bm25", [10, 5, 0])   # normalised: 1, .5, 0
    dense = hits(["c", "b", "d"], "dense", [0.9, 0.5, 0.1])  # normalised: 1, .5, 0
    fused = fuse(bm25, dense, method="weighted", alpha=0.75, k=2)
    assert [h.theorem_id for h in fused] == ["c", "b"]
    assert [h.score for h in fused] == pytest.approx([0.75, 0.5])
    only_bm25 = fuse(bm25, [], method="weighted", alpha=0.0)
    assert [h.theorem_id for h in only_bm25] == ["a", "b", "c"]


def test_hub_id_loads_from_the_local_hub_cache(encoder, tmp_path, monkeypatch):
    """A hub id resolves through the Hugging Face cache layout, offline."""
    snapshot = tmp_path / "hub" / "models--someone--minilm-copy" / "snapshots" / ("0" * 40)
    copy_model(encoder, snapshot)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0" * 40)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    from_hub = load_encoder("someone/minilm-copy")
    assert from_hub.folder == snapshot
    assert from_hub.fingerprint == encoder.fingerprint
    query = [Query("right triangle")]
    assert np.allclose(from_hub.encode_queries(query), encoder.encode_queries(query), atol=1e-6)
