"""Indexes on disk: manifests, stale indexes rebuilt, foreign ones refused, corrupt files."""

from __future__ import annotations

import json

import pytest
import torch
from sentence_transformers import SentenceTransformer

from rader.retriever import (
    Corpus,
    IndexStore,
    Query,
    RaderError,
    Theorem,
    load_encoder,
    open_retriever,
)


def test_manifest_records_what_built_the_index(tiny_corpus, encoder, tmp_path):
    store = IndexStore(tmp_path)
    store.build_dense(tiny_corpus, encoder, show_progress=False)
    manifest = store.read_manifest(store.folder(tiny_corpus, "dense", encoder))
    assert manifest.kind == "dense" and manifest.corpus_hash == tiny_corpus.content_hash
    assert manifest.corpus_size == 4 and manifest.dim == 384 and manifest.index_type == "flat"
    assert manifest.encoder == "minilm" and manifest.encoder_hash == encoder.fingerprint
    assert manifest.created and "faiss-cpu" in manifest.versions
    store.build_bm25(tiny_corpus, show_progress=False)
    bm25 = store.read_manifest(store.folder(tiny_corpus, "bm25"))
    assert bm25.params["tokenizer"] == {"name": "math", "stem": True, "stopwords": True}


def test_open_builds_once_then_loads(tiny_corpus, encoder, tmp_path):
    first = open_retriever("hybrid", tiny_corpus, home=tmp_path, encoder=encoder, show_progress=False)
    folder = IndexStore(tmp_path).folder(tiny_corpus, "dense", encoder)
    created = json.loads((folder / "manifest.json").read_text())["created"]
    second = open_retriever("hybrid", tiny_corpus, home=tmp_path, encoder=encoder, show_progress=False)
    assert json.loads((folder / "manifest.json").read_text())["created"] == created
    query = Query("right triangle hypotenuse")
    assert second.search(query, k=2) == first.search(query, k=2)
    assert first.search(query, k=1)[0].theorem_id == "pythagoras"


def test_changed_corpus_gets_its_index_rebuilt(tiny_corpus, encoder, tmp_path, caplog):
    """A corpus whose content changed (as the built-in one does with a new rader) is indexed
    again on first use, for every retriever: the stale index is neither refused nor used."""
    open_retriever("hybrid", tiny_corpus, home=tmp_path, encoder=encoder, show_progress=False)
    changed = Corpus([*tiny_corpus, Theorem("kepler", "Kepler's third law",
                                            "The square of a planet's orbital period is proportional "
                                            "to the cube of its semi-major axis.")], name="tiny")
    query = Query("orbital period of a planet")
    with caplog.at_level("INFO", logger="rader.retriever.indexes"):
        for kind in ("bm25", "dense", "hybrid"):
            retriever = open_retriever(kind, changed, home=tmp_path, encoder=encoder, show_progress=False)
            assert retriever.search(query, k=1)[0].theorem_id == "kepler", kind
    assert "built for 4 entries of corpus 'tiny'" in caplog.text
    store = IndexStore(tmp_path)
    for manifest in (store.read_manifest(store.folder(changed, "bm25")),
                     store.read_manifest(store.folder(changed, "dense", encoder))):
        assert manifest.corpus_size == 5 and manifest.corpus_hash == changed.content_hash


def test_index_from_another_encoder_is_refused(tiny_corpus, encoder, tmp_path):
    """A second real encoder: MiniLM with one weight changed, saved under the same name."""
    store = IndexStore(tmp_path / "home")
    store.build_dense(tiny_corpus, encoder, show_progress=False)
    model = SentenceTransformer(str(encoder.folder), device="cpu")
    with torch.no_grad():
        next(model.parameters()).add_(0.01)
    other_folder = tmp_path / "minilm"
    model.save(str(other_folder))
    other = load_encoder(str(other_folder))
    other.name = "minilm"  # same name, different weights: only the hash tells them apart
    assert other.fingerprint != encoder.fingerprint
    with pytest.raises(RaderError, match=r"built with encoder 'minilm' \(weights .*not with"):
        store.load_dense(tiny_corpus, other)


@pytest.mark.parametrize("victim", ["vectors.faiss", "manifest.json", "ids.json"])
def test_corrupt_dense_files_are_clear_errors(tiny_corpus, encoder, tmp_path, victim):
    store = IndexStore(tmp_path)
    store.build_dense(tiny_corpus, encoder, show_progress=False)
    (store.folder(tiny_corpus, "dense", encoder) / victim).write_bytes(b"\x00garbage")
    with pytest.raises(RaderError, match="rebuild it with `rader index build"):
        store.load_dense(tiny_corpus, encoder)


def test_corrupt_bm25_files_are_clear_errors(tiny_corpus, tmp_path):
    store = IndexStore(tmp_path)
    store.build_bm25(tiny_corpus, show_progress=False)
    folder = store.folder(tiny_corpus, "bm25")
    (folder / "data.csc.index.npy").write_bytes(b"not numpy")
    with pytest.raises(RaderError, match=r"data.csc.index.npy changed: a corrupt file\?\); rebuild it"):
        store.load_bm25(tiny_corpus)


def test_a_failed_build_leaves_no_half_index(tiny_corpus, tmp_path, monkeypatch):
    store = IndexStore(tmp_path)

    def disk_full(self, folder):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("rader.retriever.bm25.BM25Index.save", disk_full)
    with pytest.raises(RaderError, match="No space left"):
        store.build_bm25(tiny_corpus, show_progress=False)
    assert store.load_bm25(tiny_corpus) is None
    assert not list(store.root.rglob("*.partial"))
