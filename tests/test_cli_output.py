"""What the `rader` command prints: JSON twins of its tables, exit 1 when benchmark runs fail,
no progress bar under --no-progress, and no library warnings on the terminal."""

from __future__ import annotations

import json
import re
import warnings

import pytest
from conftest import rader
from numba.core.errors import NumbaTypeSafetyWarning

import rader.retriever.evaluation as evaluation

BAR = re.compile(r"[━█]|\d%\||it/s|\d+% ")  # rich's and tqdm's bars, percentages and rates
PROGRESS_VARIABLES = ("RADER_NO_PROGRESS", "RADER_SHOW_PROGRESS", "TQDM_DISABLE",
                      "HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS")


@pytest.fixture
def dead_llm(monkeypatch):
    """The injected fault: an OpenAI-style server that refuses every connection, no retries."""
    monkeypatch.setenv("RADER_LLM__BACKEND", "openai")
    monkeypatch.setenv("RADER_LLM__BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("RADER_LLM__RETRIES", "0")


@pytest.fixture
def bars_on(monkeypatch):
    """Progress bars as a user's terminal has them (the test session switches them off)."""
    for name in PROGRESS_VARIABLES:
        monkeypatch.delenv(name, raising=False)  # restored after the test, whatever rader sets


def bars(out: str, err: str) -> list[str]:
    """Progress bars printed: anything bar-like on stderr; on stdout, whose tables have borders
    of rich's bar glyph, a percentage."""
    return BAR.findall(err) + re.findall(r"\d+%", out)


def eval_args(shared_data, tmp_path, queries: int = 20) -> list[str]:
    """`rader eval` of BM25 on the first ``queries`` TheoremQA dev questions."""
    lines = (shared_data / "problems" / "theoremqa_dev.jsonl").read_text().splitlines()[:queries]
    path = tmp_path / "queries.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return ["eval", "--corpus", str(shared_data / "theorems" / "theoremqa_theorems.jsonl"),
            "--queries", str(path), "--qrels", str(shared_data / "qrels" / "theoremqa_dev.qrels.tsv"),
            "--retrievers", "bm25"]


def bench_agent_args(shared_data) -> list[str]:
    return ["bench", "agent", "--problems", str(shared_data / "problems" / "math_train.jsonl"),
            "--limit", "1", "--modes", "bare"]


def bench_judge_args(shared_data) -> list[str]:
    return ["bench", "judge", "--questions", str(shared_data / "problems" / "theoremqa_dev.jsonl"),
            "--qrels", str(shared_data / "qrels" / "theoremqa_dev.qrels.tsv"),
            "--corpus", str(shared_data / "theorems" / "theoremqa_theorems.jsonl"), "--limit", "1"]


def test_eval_json_is_what_the_table_shows(capsys, home, shared_data, tmp_path):
    code, out, err = rader(capsys, *eval_args(shared_data, tmp_path), "--json")
    assert code == 0, err
    result = json.loads(out)  # stdout holds the JSON and nothing else
    row = result["rows"][0]
    assert row["retriever"] == "bm25" and row["queries"] == 20
    assert result["settings"]["judged_queries"] == 20  # the queries scored, not the qrels file's 400
    code, table, _ = rader(capsys, *eval_args(shared_data, tmp_path))
    assert code == 0 and f"{row['ndcg@10']:.3f}" in table and f"{row['mrr@10']:.3f}" in table


def test_list_commands_print_json(capsys, home, shared_data):
    code, out, err = rader(capsys, "corpus", "list", "--json")
    assert code == 0, err
    rows = {row["name"]: row for row in json.loads(out)}
    assert rows["builtin"]["kind"] == "theorems" and rows["builtin"]["in_use"] is True
    assert rows["math-train"]["entries"] == 7500
    code, out, err = rader(capsys, "models", "list", "--json")
    assert code == 0, err
    listed = json.loads(out)
    models = {row["name"]: row for row in listed["models"]}
    assert models["qwen2.5-coder-1.5b"]["default"] and models["smollm2-135m"]["size"] == 98_362_432
    assert listed["encoders"] == []


def test_bench_agent_prints_its_results_then_exits_1_on_failed_runs(capsys, home, shared_data, dead_llm):
    code, out, err = rader(capsys, "--no-progress", *bench_agent_args(shared_data), "--json")
    assert code == 1
    modes = json.loads(out)["modes"]
    assert [m["mode"] for m in modes] == ["bare"] and modes[0]["errors"] == 1
    assert "1 of 1 runs ended in status error" in err and "Traceback" not in err
    code, out, err = rader(capsys, "--no-progress", *bench_agent_args(shared_data))
    assert code == 1 and "accuracy" in out and "status error" in err
    code, out, _ = rader(capsys, "trajectories", "list", "--status", "error", "--json")
    assert code == 0 and len(json.loads(out)) == 2


def test_harvest_prints_its_results_then_exits_1_on_failed_runs(capsys, home, shared_data, dead_llm):
    code, out, err = rader(capsys, "--no-progress", "harvest", "--json", "--retriever", "bm25",
                           "--problems", str(shared_data / "problems" / "math_train.jsonl"), "--limit", "2")
    summary = json.loads(out)  # the results come first, on stdout, as JSON only
    assert code == 1 and summary["ran"] == 2 and summary["failed"] == 2 and summary["verified"] == 0
    assert "2 of 2 runs failed" in err and "Traceback" not in err


def test_bench_judge_exits_1_when_its_model_fails(capsys, home, shared_data, dead_llm):
    code, out, err = rader(capsys, "--no-progress", *bench_judge_args(shared_data), "--json")
    assert code == 1 and out == ""
    assert "the judge's model failed" in err and "Traceback" not in err


def test_bench_judge_reports_what_it_judged_then_exits_1_when_some_questions_failed(
        capsys, home, shared_data, monkeypatch):
    from scripted import ScriptedServer, ServerFault

    from rader.agent.problems import load_problems

    failing = load_problems(shared_data / "problems" / "theoremqa_dev.jsonl", 3)[1].text[:60]

    def respond(messages: list[dict], body: dict) -> str:
        if failing in messages[-1]["content"]:
            raise ServerFault(500)  # the model fails on the second question only
        return "yes"

    with ScriptedServer(respond) as server:
        monkeypatch.setenv("RADER_LLM__BACKEND", "openai")
        monkeypatch.setenv("RADER_LLM__BASE_URL", server.url)
        monkeypatch.setenv("RADER_LLM__RETRIES", "0")
        args = [*bench_judge_args(shared_data)[:-1], "3"]
        code, out, err = rader(capsys, "--no-progress", *args, "--json")
    report = json.loads(out)["report"]  # the report of the questions judged comes first
    assert code == 1 and report["failed"] == 1 and report["pairs"] == 4 and "500" in report["error"]
    assert "1 questions were left out" in err and "Traceback" not in err


def test_no_progress_hides_every_bar(capsys, home, shared_data, tiny_corpus, tmp_path, dead_llm, bars_on):
    corpus = tmp_path / "tiny.jsonl"
    corpus.write_text("".join(json.dumps(t.to_dict()) + "\n" for t in tiny_corpus))
    assert rader(capsys, "corpus", "add", str(corpus), "--name", "tiny")[0] == 0
    build = ["index", "build", "-r", "hybrid", "-c", "tiny", "--force"]
    runs = {"index build": build, "bench agent": bench_agent_args(shared_data)}
    # first as users see them: each command does draw bars (--no-progress then switches them off
    # for the rest of the process, as it should)
    for name, args in runs.items():
        _, out, err = rader(capsys, *args)
        assert bars(out, err), f"{name} drew no bar to hide"
    for name, args in runs.items():
        _, out, err = rader(capsys, "--no-progress", *args)
        assert not bars(out, err), f"{name}: {err}"


def test_eval_keeps_library_warnings_off_the_terminal(capsys, home, shared_data, tmp_path, monkeypatch):
    """numba warns while ranx's kernels compile (cached after the first time, so the warning is
    injected here, as numba raises it, from inside ranx's call)."""
    ranx_evaluate = evaluation.ranx_evaluate

    def compiling(*args, **kwargs):
        warnings.warn(NumbaTypeSafetyWarning("unsafe cast from uint64 to int64. Precision may be lost."),
                      stacklevel=2)
        return ranx_evaluate(*args, **kwargs)

    monkeypatch.setattr(evaluation, "ranx_evaluate", compiling)
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        code, _, err = rader(capsys, *eval_args(shared_data, tmp_path, queries=5))
    assert code == 0, err
    assert "Warning" not in err and not [w for w in shown if "numba" in type(w.message).__module__]
