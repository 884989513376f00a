"""`rader harvest` with the real SmolLM2 on llama.cpp: samples, concurrency, resume after a real
SIGKILL, and the same harvest on a real local Ray."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from test_cli import rader

from rader.agent import TrajectoryStore
from rader.retriever import HeldOut
from rader.training.harvest import HarvestSpec

PROBLEMS = [
    {"id": f"h{i}", "text": f"What is {i} + {i + 1}?", "answer": str(2 * i + 1)} for i in range(1, 4)
]


@pytest.fixture
def harvest_env(home, smollm_path, tmp_path, monkeypatch):
    """A small, fast agent: SmolLM2, BM25 over the built-in corpus, two short steps."""
    problems = tmp_path / "problems.jsonl"
    problems.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    for key, value in {"LLM__MODEL": str(smollm_path), "LLM__CONTEXT": "2048", "AGENT__MAX_STEPS": "2",
                       "AGENT__SOLUTION_TOKENS": "96", "AGENT__K": "2", "AGENT__RETRIEVER": "bm25"}.items():
        monkeypatch.setenv(f"RADER_{key}", value)
    return problems


def stored(home) -> list[dict]:
    with sqlite3.connect(home / "trajectories.db") as db:
        return [json.loads(row[0]) for row in db.execute("SELECT data FROM trajectories")]


def test_samples_run_concurrently_and_a_rerun_skips_them(harvest_env, home, smollm_path, capsys):
    code, out, err = rader(capsys, "--no-progress", "harvest", "--problems", str(harvest_env), "--limit", "2",
                           "--samples", "2", "--concurrency", "2")
    assert code == 0, err
    runs = stored(home)
    assert len(runs) == 4 and all(r["status"] in ("done", "budget_exhausted", "error") for r in runs)
    assert all(r["source"] == "harvest" and r["stop_reason"] for r in runs)
    spec = HarvestSpec(model=str(smollm_path), retriever="bm25", samples=2, temperature=0.7)
    assert {r["id"] for r in runs} == {spec.trajectory_id(p, k) for p in ("h1", "h2") for k in (0, 1)}
    assert sorted(r["config"]["harvest"]["sample"] for r in runs) == [0, 0, 1, 1]
    assert all(r["config"]["harvest"]["temperature"] == 0.7 for r in runs)
    assert all(any(s["hits"] for s in r["steps"]) for r in runs)  # the harvest retrieves
    assert "planned" in out and "verified" in out
    code, out, err = rader(capsys, "--no-progress", "harvest", "--problems", str(harvest_env), "--limit", "2",
                           "--samples", "2", "--concurrency", "2")
    assert code == 0, err
    assert len(stored(home)) == 4
    assert re.search(r"skipped\W+4\b", out) and re.search(r"ran\W+0\b", out)


def test_held_out_theorems_are_never_harvested(harvest_env, home, capsys):
    """`--held-out-by theorem` skips the problems `rader eval --held-out-by theorem` scores;
    a problem that needs a picture is skipped too."""
    split = HeldOut("theorem", 0.5)
    tagged = [{**p, "theorem": f"theorem {i}"} for i in range(20) for p in PROBLEMS[:1]]
    rows = [next(r for r in tagged if split.holds(r)), next(r for r in tagged if not split.holds(r))]
    rows = [{**r, "id": f"{r['id']}-{r['theorem']}"} for r in rows]
    rows.append({**rows[1], "id": "needs-a-figure", "picture": "figure.png"})  # not in the data: skipped
    harvest_env.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, out, err = rader(capsys, "--no-progress", "harvest", "--problems", str(harvest_env),
                           "--held-out-by", "theorem")
    assert code == 0, err
    assert [r["problem"]["id"] for r in stored(home)] == [rows[1]["id"]]
    assert re.search(r"planned\W+1\b", out)


HARVEST_COMMAND = [sys.executable, "-m", "rader.app.cli", "--no-progress", "harvest", "--problems"]


def first_run_finished(home, process: subprocess.Popen, timeout: float = 300) -> bool:
    """Wait until the harvest in ``process`` has stored a finished run (False on timeout or exit)."""
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        time.sleep(0.3)
        try:
            if (home / "trajectories.db").exists() and any(r["status"] != "running" for r in stored(home)):
                return True
        except sqlite3.OperationalError:  # the file exists, its table not yet: the store is opening
            continue
    return False


def test_a_harvest_killed_mid_run_resumes_without_duplicates(harvest_env, home):
    env = {**os.environ, "RADER_AGENT__MAX_STEPS": "4"}
    process = subprocess.Popen([*HARVEST_COMMAND, str(harvest_env)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    finished = first_run_finished(home, process)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert finished, "no run finished before the kill"
    before = {r["id"]: r for r in stored(home)}
    store = TrajectoryStore(home / "trajectories.db")  # marks the killed process's running row
    assert all(s != "running" for s in store.statuses(before).values())
    store.close()
    result = subprocess.run([*HARVEST_COMMAND, str(harvest_env)], env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    after = {r["id"]: r for r in stored(home)}
    assert len(after) == len(PROBLEMS)  # no duplicates: fixed ids per (problem, sample)
    assert all(r["status"] in ("done", "budget_exhausted", "error") for r in after.values())
    for run_id, run in before.items():
        if run["status"] in ("done", "budget_exhausted", "error"):  # finished before the kill: not redone
            assert after[run_id]["started_at"] == run["started_at"]
        else:  # cut by the kill: redone from the start
            assert after[run_id]["started_at"] > run["started_at"]


def test_ctrl_c_ends_a_harvest_with_the_summary_of_what_finished(harvest_env, home, tmp_path):
    """Ctrl-C: the run in flight is stored interrupted, the table still says what finished, the
    exit status is 130 and the message says how to resume."""
    problems = tmp_path / "many.jsonl"  # more runs than finish before the signal
    rows = [{"id": f"c{i}", "text": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(12)]
    problems.write_text("".join(json.dumps(row) + "\n" for row in rows))
    # SIGINT's default action restored: a shell's `&` (a background CI job) starts children ignoring it
    process = subprocess.Popen([*HARVEST_COMMAND, str(problems), "--json"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    finished = first_run_finished(home, process)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=300)
    assert finished, err
    assert process.returncode == 130, err
    summary = json.loads(out)
    runs = stored(home)
    assert summary["stopped"] is True and summary["planned"] == 12 and 1 <= summary["ran"] < 12
    assert summary["ran"] == len(runs)  # the run in flight is reported too
    assert "rerun the same command to resume" in err
    finished = [r for r in runs if r["status"] in ("done", "budget_exhausted")]
    assert summary["done"] + summary["budget_exhausted"] == len(finished) >= 1
    cut = [r for r in runs if r not in finished]  # the one run in flight, stopped at its next node
    assert len(cut) <= 1 and all(r["status"] == "interrupted" for r in cut)


@pytest.mark.slow
def test_the_same_harvest_runs_on_a_local_ray(harvest_env, home, capsys):
    code, _, err = rader(capsys, "--no-progress", "harvest", "--problems", str(harvest_env), "--limit", "1")
    assert code == 0, err
    code, out, err = rader(capsys, "--no-progress", "harvest", "--problems", str(harvest_env), "--limit", "3",
                           "--ray", "local", "--workers", "1", "--concurrency", "2")
    assert code == 0, err
    assert re.search(r"skipped\W+1\b", out) and re.search(r"ran\W+2\b", out)  # resumes across runners
    runs = stored(home)
    assert len(runs) == 3 and all(r["status"] in ("done", "budget_exhausted", "error") for r in runs)
    assert {r["problem"]["id"] for r in runs} == {"h1", "h2", "h3"}
    on_ray = sorted((r for r in runs if r["problem"]["id"] != "h1"), key=lambda r: r["started_at"])
    assert on_ray[1]["started_at"] < on_ray[0]["finished_at"]  # the actor ran both at once
    assert all(r["config"]["harvest"]["retriever"] == "bm25" for r in runs)
