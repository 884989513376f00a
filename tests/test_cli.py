"""The `rader` command, in-process through its real entry point (errors never traceback)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import rader

from rader.retriever import HeldOut


def test_help_explains_every_command(capsys):
    code, out, _ = rader(capsys, "--help")
    assert code == 0
    for command in ("config", "corpus", "index", "search", "eval"):
        assert command in out


def test_config_show_reports_each_origin(capsys, home, tmp_path, monkeypatch):
    config = tmp_path / "rader.toml"
    config.write_text('[retriever]\nk = 7\nfusion = "rrf"\n')
    monkeypatch.setenv("RADER_CONFIG", str(config))
    monkeypatch.setenv("RADER_RETRIEVER__K", "4")
    code, out, _ = rader(capsys, "--no-progress", "config", "show", "--json")
    assert code == 0
    shown = json.loads(out)
    assert shown["retriever.k"] == {"value": 4, "origin": "env"}
    assert shown["retriever.fusion"] == {"value": "rrf", "origin": f"file {config}"}
    assert shown["show_progress"] == {"value": False, "origin": "cli"}
    assert shown["retriever.encoder"] == {"value": "minilm", "origin": "default"}
    assert shown["home"]["value"] == str(home)


def test_invalid_settings_are_one_line_errors(capsys, home, monkeypatch):
    monkeypatch.setenv("RADER_RETRIEVER__ALPHA", "7")
    code, _, err = rader(capsys, "config", "show")
    assert code == 2 and "invalid settings" in err and "Traceback" not in err


def test_corpus_add_list_show(capsys, home, shared_data, tmp_path):
    code, out, _ = rader(capsys, "corpus", "add",
                         str(shared_data / "theorems" / "theoremqa_theorems.jsonl"), "--name", "tqa")
    assert code == 0 and "kept 354 of 354 lines" in out
    code, out, _ = rader(capsys, "corpus", "list")
    assert code == 0 and "builtin" in out and "tqa" in out and "354" in out
    code, out, _ = rader(capsys, "corpus", "show", "tqa_thm/kraft_inequality", "--corpus", "tqa", "--json")
    assert code == 0 and json.loads(out)["title"] == "Kraft inequality"
    code, _, err = rader(capsys, "corpus", "show", "tqa_thm/nope", "--corpus", "tqa")
    assert code == 2 and "no theorem 'tqa_thm/nope'" in err


def test_corpus_add_reports_bad_lines(capsys, home, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "text": "x"}\n{broken\n{"id": "b", "text": ""}\n')
    code, _, err = rader(capsys, "corpus", "add", str(bad), "--name", "bad")
    assert code == 2 and "bad.jsonl:2: malformed JSON" in err and "Traceback" not in err
    code, out, _ = rader(capsys, "corpus", "add", str(bad), "--name", "bad", "--skip-bad-lines")
    assert code == 0 and "kept 1 of 3 lines; rejected 2" in out
    assert "line 2: malformed JSON" in out and "line 3: missing text" in out


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "no usable corpus entries"), (bytes(range(256)) * 4, "binary file"), (None, "not found")],
)
def test_bad_corpus_files_are_clear_errors(capsys, home, tmp_path, content, message):
    path = tmp_path / "corpus.jsonl"
    if content is not None:
        path.write_bytes(content)
    code, _, err = rader(capsys, "corpus", "add", str(path), "--name", "x")
    assert code == 2 and message in err and "Traceback" not in err


def test_search_each_retriever_json(capsys, indexed_home):
    for kind in ("bm25", "dense", "hybrid"):
        code, out, _ = rader(capsys, "search", "the roots of a quadratic sum to -b/a",
                             "--retriever", kind, "-k", "3", "--json")
        assert code == 0, out
        result = json.loads(out)
        assert result["retriever"] == kind and len(result["hits"]) == 3
        assert any("Vieta" in h["theorem"]["title"] for h in result["hits"])
    code, out, _ = rader(capsys, "search", r"$\binom{n}{k}$", "-r", "bm25", "--kind", "cot_step")
    assert code == 0 and "hits in" in out


def test_search_bad_input(capsys, home):
    code, _, err = rader(capsys, "search", "  ", "-r", "bm25")
    assert code == 2 and "query is empty" in err
    code, _, err = rader(capsys, "search", "x", "-r", "bm25", "--kind", "poem")
    assert code == 2 and "unknown query kind" in err
    code, _, err = rader(capsys, "search", "x", "-r", "splade")
    assert code == 2 and "invalid settings" in err


@pytest.mark.slow
def test_corrupt_index_then_rebuild(capsys, indexed_home):
    (next(indexed_home.glob("indexes/builtin/dense-*")) / "vectors.faiss").write_bytes(b"junk")
    code, _, err = rader(capsys, "search", "triangle", "-r", "dense")
    assert code == 2 and "--force" in err and "Traceback" not in err
    code, out, _ = rader(capsys, "index", "build", "-r", "dense", "--force")
    assert code == 0 and "dense index ready" in out
    assert rader(capsys, "search", "triangle", "-r", "dense")[0] == 0


@pytest.mark.slow
def test_eval_prints_one_table_with_settings(capsys, theoremqa_indexed_home, shared_data, tmp_path):
    queries = tmp_path / "q.jsonl"
    rows = [json.loads(line) for line in
            (shared_data / "problems" / "theoremqa_dev.jsonl").read_text().splitlines()[:40]]
    queries.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out_file = tmp_path / "result.json"
    corpus = shared_data / "theorems" / "theoremqa_theorems.jsonl"
    code, out, _ = rader(capsys, "eval", "--corpus", str(corpus), "--queries", str(queries), "--qrels",
                         str(shared_data / "qrels" / "theoremqa_dev.qrels.tsv"),
                         "--retrievers", "bm25,hybrid", "--out", str(out_file))
    assert code == 0
    assert "ndcg@10" in out and "settings:" in out and "alpha=0.65" in out
    result = json.loads(out_file.read_text())
    assert [r["retriever"] for r in result["rows"]] == ["bm25", "hybrid"]
    assert all(r["queries"] == 40 and 0 < r["ndcg@10"] <= 1 for r in result["rows"])


def test_eval_held_out_by_theorem_scores_only_that_part(capsys, home, shared_data, tmp_path):
    problems = shared_data / "problems" / "theoremqa_dev.jsonl"
    rows = [json.loads(line) for line in problems.read_text().splitlines()]
    held = {r["id"] for r in rows if HeldOut("theorem", 0.5).holds(r)}
    held_theorems = {r["theorem"] for r in rows if r["id"] in held}
    assert 0 < len(held) < len(rows)
    assert not held_theorems & {r["theorem"] for r in rows if r["id"] not in held}  # whole theorems
    out_file = tmp_path / "result.json"
    corpus = str(shared_data / "theorems" / "theoremqa_theorems.jsonl")
    code, _, _ = rader(capsys, "eval", "--corpus", corpus, "--queries", str(problems),
                       "--qrels", str(shared_data / "qrels" / "theoremqa_dev.qrels.tsv"),
                       "--retrievers", "bm25", "--held-out-by", "theorem", "--out", str(out_file))
    assert code == 0
    result = json.loads(out_file.read_text())
    assert result["rows"][0]["queries"] == len(held) and result["settings"]["judged_queries"] == len(held)
    assert result["settings"]["held_out"] == "theorem 0.5 seed 0"
    code, _, err = rader(capsys, "eval", "--corpus", corpus, "--queries", str(problems),
                         "--retrievers", "bm25", "--held-out-by", "no_such_field")
    assert code == 2 and "no field 'no_such_field'" in err


def test_eval_bright_style_without_qrels(capsys, home, shared_data):
    code, out, _ = rader(capsys, "eval", "--corpus",
                         str(shared_data / "theorems" / "bright_theoremqa_questions_golddocs_dev.jsonl"),
                         "--queries", str(shared_data / "qrels" / "bright_theoremqa_questions_dev.jsonl"),
                         "--retrievers", "bm25")
    assert code == 0 and "bm25" in out and "gold ids (auto)" in out


def test_console_script_is_installed_and_fails_cleanly(home):
    done = subprocess.run([sys.executable, "-m", "rader.app.cli", "search", "", "-r", "bm25"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "query is empty" in done.stderr
    assert "Traceback" not in done.stderr
