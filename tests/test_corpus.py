from __future__ import annotations

import json
from pathlib import Path

import pytest

from rader.retriever import Corpus, CorpusStore, RaderError, Theorem, read_corpus


def write_lines(path: Path, lines: list[str | bytes]) -> Path:
    path.write_bytes(b"\n".join(x if isinstance(x, bytes) else x.encode() for x in lines) + b"\n")
    return path


GOOD = json.dumps({"id": "a", "title": "A", "text": "first", "tags": ["x"]})
GOOD2 = json.dumps({"id": "b", "title": "B", "text": "second"})


def test_reads_our_jsonl_and_keeps_fields(tmp_path):
    line = json.dumps({"id": "t1", "title": "T", "text": "$x$", "source": "s", "tags": ["a"],
                       "subject": "Algebra", "kind": "theorem"})
    corpus, report = read_corpus(write_lines(tmp_path / "c.jsonl", [line]))
    theorem = corpus.get("t1")
    assert (theorem.title, theorem.source, theorem.tags, theorem.subject) == ("T", "s", ("a",), "Algebra")
    assert theorem.metadata == {"kind": "theorem"}
    assert (report.lines, report.kept, report.rejected) == (1, 1, [])


def test_reads_beir_corpus(tmp_path):
    line = json.dumps({"_id": "d1", "title": "Doc", "text": "body"})
    corpus, _ = read_corpus(write_lines(tmp_path / "corpus.jsonl", [line]))
    assert corpus.ids == ["d1"] and corpus.get("d1").source == "corpus"


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("{not json", "malformed JSON"),
        ('["a list"]', "malformed JSON"),
        (json.dumps({"id": "c", "title": "no text"}), "missing text"),
        (json.dumps({"id": "c", "text": "   "}), "missing text"),
        (json.dumps({"text": "no id"}), "missing id"),
        (json.dumps({"id": "a", "text": "again"}), "duplicate id"),
        (b'{"id": "c", "text": "caf\xe9"}', "not UTF-8"),
        (json.dumps({"id": "c", "text": "t", "tags": "one"}), "bad tags"),
    ],
)
def test_bad_line_fails_fast_with_its_line_number(tmp_path, bad, reason):
    path = write_lines(tmp_path / "c.jsonl", [GOOD, bad, GOOD2])
    with pytest.raises(RaderError, match=rf"c\.jsonl:2: {reason}"):
        read_corpus(path)


def test_skip_mode_keeps_good_lines_and_reports_the_rest(tmp_path):
    lines = [GOOD, "{oops", json.dumps({"id": "c"}), GOOD2, json.dumps({"id": "a", "text": "dup"})]
    corpus, report = read_corpus(write_lines(tmp_path / "c.jsonl", lines), errors="skip")
    assert corpus.ids == ["a", "b"]
    assert (report.lines, report.kept) == (5, 2)
    assert [(r.line, r.reason.split(":")[0]) for r in report.rejected] == [
        (2, "malformed JSON"), (3, "missing text"), (5, "duplicate id")]
    assert "kept 2 of 5 lines; rejected 3" in report.summary()


def test_empty_binary_and_missing_files_are_clear_errors(tmp_path):
    with pytest.raises(RaderError, match="no usable corpus entries"):
        read_corpus(write_lines(tmp_path / "empty.jsonl", []))
    (tmp_path / "zero.jsonl").write_bytes(b"")
    with pytest.raises(RaderError, match="no usable corpus entries"):
        read_corpus(tmp_path / "zero.jsonl")
    (tmp_path / "blob.jsonl").write_bytes(bytes(range(256)) * 10)
    with pytest.raises(RaderError, match="binary file"):
        read_corpus(tmp_path / "blob.jsonl")
    with pytest.raises(RaderError, match="not found"):
        read_corpus(tmp_path / "absent.jsonl")


def test_duplicate_ids_across_merged_corpora_are_refused():
    one = Corpus([Theorem("x", "X", "text")], name="one")
    with pytest.raises(RaderError, match="duplicate ids"):
        Corpus.merge([one, one])


def test_content_hash_changes_with_content():
    base = Corpus([Theorem("x", "X", "text")])
    assert base.content_hash == Corpus([Theorem("x", "X", "text")]).content_hash
    assert base.content_hash != Corpus([Theorem("x", "X", "text!")]).content_hash


def test_shared_theorem_corpora_load(shared_data):
    tqa, report = read_corpus(shared_data / "theorems" / "theoremqa_theorems.jsonl")
    assert len(tqa) == 354 and report.rejected == []
    assert "tqa_thm/kraft_inequality" in tqa
    bright, _ = read_corpus(shared_data / "theorems" / "bright_theoremqa_questions_golddocs_dev.jsonl")
    assert len(bright) == 114


def test_corpus_store_add_list_load(tmp_path, shared_data):
    store = CorpusStore(tmp_path)
    report = store.add(shared_data / "theorems" / "theoremqa_theorems.jsonl", "tqa")
    assert report.kept == 354
    assert store.names() == ["builtin", "math-train", "tqa"]  # the built-ins, then what was added
    assert {i.name: (i.kind, i.size) for i in store.list()}["tqa"] == ("theorems", 354)
    merged = store.load_many(["builtin", "tqa"])
    assert len(merged) == len(store.load("builtin")) + 354
    with pytest.raises(RaderError, match="unknown corpus 'nope'"):
        store.load("nope")
    with pytest.raises(RaderError, match="invalid corpus name"):
        store.add(shared_data / "theorems" / "theoremqa_theorems.jsonl", "builtin")


def test_corpus_store_skip_mode_stores_only_valid_lines(tmp_path):
    path = write_lines(tmp_path / "c.jsonl", [GOOD, "garbage", GOOD2])
    store = CorpusStore(tmp_path / "home")
    with pytest.raises(RaderError, match=r"c\.jsonl:2"):
        store.add(path, "mine")
    assert store.names() == ["builtin", "math-train"]  # only the built-ins: nothing half-stored
    report = store.add(path, "mine", errors="skip")
    assert (report.kept, len(report.rejected)) == (2, 1)
    assert store.load("mine").ids == ["a", "b"]
