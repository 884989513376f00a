"""`rader solve`, `rader models` and `rader trajectories` through the real entry point."""

from __future__ import annotations

import json

from conftest import rader


def test_solve_json_then_list_show_export(capsys, home, smollm_path, tmp_path):
    code, out, err = rader(capsys, "solve", "What is 2 + 3?", "--model", str(smollm_path), "-r", "bm25",
                           "--max-steps", "1", "--solution-tokens", "48", "--answer", "5", "--json")
    assert code == 0, err
    trajectory = json.loads(out)
    assert trajectory["problem"]["answer"] == "5" and trajectory["retriever"] == "bm25"
    assert trajectory["status"] in ("done", "budget_exhausted") and len(trajectory["steps"]) == 1
    assert trajectory["source"] == "solve" and trajectory["stop_reason"]
    assert trajectory["steps"][0]["queries"]
    code, out, _ = rader(capsys, "trajectories", "list")
    assert code == 0 and trajectory["id"][:12] in out
    code, out, _ = rader(capsys, "trajectories", "show", trajectory["id"][:10])
    assert code == 0 and json.loads(out)["id"] == trajectory["id"]
    target = tmp_path / "all.jsonl"
    code, out, _ = rader(capsys, "trajectories", "export", str(target), "--format", "jsonl")
    assert code == 0 and json.loads(target.read_text().splitlines()[0])["id"] == trajectory["id"]


def test_solve_renders_the_run_live(capsys, home, smollm_path):
    code, out, _ = rader(capsys, "solve", "Find x if 2x = 10", "--model", str(smollm_path),
                         "-r", "bm25", "--max-steps", "1", "--solution-tokens", "48")
    assert code == 0
    assert "step 1: retrieval" in out and "query [" in out and "answer" in out
    code, out, _ = rader(capsys, "solve", "Find x if 2x = 10", "--model", str(smollm_path), "-r", "bm25",
                         "--solution-tokens", "48", "--retrieve-when", "unsure")
    assert code == 0 and "sure of the first attempt (" in out  # why it retrieved, or why not
    assert ("step 1: retrieval" not in out) and (": retrieval" in out) == ("unsure of the first" in out)


def test_solve_and_models_errors(capsys, home):
    code, _, err = rader(capsys, "solve", "  ")
    assert code == 2 and "problem is empty" in err
    code, _, err = rader(capsys, "solve", "2+2?", "--retrieve-when", "sometimes")
    assert code == 2 and "'always' or 'unsure'" in err
    code, _, err = rader(capsys, "solve", "2+2?", "--model", "gpt-9", "-r", "none")
    assert code == 2 and "unknown model 'gpt-9'" in err and "Traceback" not in err
    code, _, err = rader(capsys, "models", "fetch", "gpt-9")
    assert code == 2 and "catalog has" in err
    code, out, _ = rader(capsys, "models", "list")
    assert code == 0 and "qwen2.5-coder-1.5b (default)" in out and "smollm2-135m" in out
    code, _, err = rader(capsys, "trajectories", "show", "nope")
    assert code == 2 and "no trajectory" in err


def test_bench_judge_and_agent_small(capsys, home, smollm_path, shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("RADER_AGENT__SOLUTION_TOKENS", "48")
    report = tmp_path / "judge.json"
    code, out, err = rader(capsys, "bench", "judge",
                           "--questions", str(shared_data / "problems" / "theoremqa_dev.jsonl"),
                           "--qrels", str(shared_data / "qrels" / "theoremqa_dev.qrels.tsv"),
                           "--corpus", str(shared_data / "theorems" / "theoremqa_theorems.jsonl"),
                           "--limit", "2", "--model", str(smollm_path), "--out", str(report), "--json")
    assert code == 0, err
    result = json.loads(report.read_text())
    assert json.loads(out) == {"model": str(smollm_path), "report": result["report"]}  # the table's JSON
    assert result["report"]["pairs"] == 4 and 0 <= result["report"]["balanced_accuracy"] <= 1
    assert [j["label"] for j in result["judgments"]] == [True, False, True, False]
    runs = tmp_path / "agent.json"
    code, out, err = rader(capsys, "--no-progress", "bench", "agent",
                           "--problems", str(shared_data / "problems" / "math_train.jsonl"),
                           "--limit", "2", "--shuffle-seed", "3", "--modes", "none,theorems",
                           "--retriever", "bm25", "--model", str(smollm_path), "--out", str(runs))
    assert code == 0, err
    result = json.loads(runs.read_text())
    modes = {m["mode"]: m for m in result["modes"]}
    assert list(modes) == ["bare", "none", "theorems"]  # the bare model runs whether asked for or not
    assert all(m["problems"] == 2 and 0 <= m["outside_llm_share"] <= 1 for m in modes.values())
    assert modes["bare"]["vs_bare"] is None and modes["theorems"]["vs_bare"]["problems"] == 2
    assert [r["mode"] for r in result["rows"]] == ["bare", "none", "theorems"] * 2  # problem by problem
    drawn = {r["problem_id"] for r in result["rows"]}
    assert len(drawn) == 2 and drawn != {"train/algebra/0.json", "train/algebra/3.json"}  # drawn at random
    assert modes["theorems"]["mean_retrievals"] >= 1 and modes["none"]["mean_retrievals"] == 0
    assert modes["bare"]["mean_steps"] == 1 and "vs bare" in out
    assert result["agent"]["solution_tokens"] == 48  # the settings the rows were measured under
    # an interrupted benchmark goes on where it stopped: runs in the file are kept, not run again
    rows = result["rows"]
    other = {**rows[0], "mode": "examples", "trajectory_id": "from-another-benchmark"}
    runs.write_text(json.dumps({"modes": [], "rows": [*rows[:4], other]}))
    code, out, err = rader(capsys, "--no-progress", "bench", "agent", "--resume",
                           "--problems", str(shared_data / "problems" / "math_train.jsonl"),
                           "--limit", "2", "--shuffle-seed", "3", "--modes", "none,theorems",
                           "--retriever", "bm25", "--model", str(smollm_path), "--out", str(runs), "--json")
    assert code == 0, err
    resumed = json.loads(runs.read_text())
    assert json.loads(out)["modes"] == resumed["modes"]
    ids = [r["trajectory_id"] for r in resumed["rows"]]
    assert ids[:4] == [r["trajectory_id"] for r in rows[:4]] and len(set(ids)) == 7
    assert [r["mode"] for r in resumed["rows"]] == ["bare", "none", "theorems", "bare", "none", "theorems",
                                                    "examples"]  # the other benchmark's row stays
    assert all(m["problems"] == 2 for m in resumed["modes"])
    code, _, err = rader(capsys, "bench", "agent", "--resume", "--problems", str(runs))
    assert code == 2 and "--resume needs --out" in err


def test_bench_agent_unsure_mode(capsys, home, smollm_path, shared_data, tmp_path, monkeypatch):
    """Mode unsure: theorems only after an unsure first attempt, recorded as its own row."""
    monkeypatch.setenv("RADER_AGENT__SOLUTION_TOKENS", "32")
    runs = tmp_path / "agent.json"
    code, _, err = rader(capsys, "--no-progress", "bench", "agent",
                         "--problems", str(shared_data / "problems" / "math_train.jsonl"), "--limit", "1",
                         "--modes", "unsure", "--retriever", "bm25", "--model", str(smollm_path),
                         "--out", str(runs))
    assert code == 0, err
    result = json.loads(runs.read_text())
    assert [m["mode"] for m in result["modes"]] == ["bare", "unsure"]
    unsure = next(r for r in result["rows"] if r["mode"] == "unsure")
    assert unsure["retrievals"] <= 1 and result["agent"]["retrieve_when"] == "always"  # the settings' own
    code, out, _ = rader(capsys, "trajectories", "show", unsure["trajectory_id"])
    events = [e for step in json.loads(out)["steps"] for e in step["events"]]
    assert unsure["retrievals"] == any(e.startswith("unsure of the first attempt") for e in events)
