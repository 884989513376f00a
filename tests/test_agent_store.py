"""The trajectory store: round trips, filters, exports, human judgments, schema, SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pandas as pd
import pytest

from rader.agent import Judgment, Problem, Step, Trajectory, TrajectoryStore
from rader.agent.store import STORE_VERSION, read_trajectories
from rader.retriever import Hit, Query, RaderError


def sample(problem_id: str = "p1", status: str = "done", verified: bool | None = True,
           model: str = "m") -> Trajectory:
    trajectory = Trajectory.start(Problem(problem_id, "What is 2+3?", answer="5"), model=model,
                                  retriever="bm25")
    trajectory.steps.append(Step(
        1, "2+3=5", queries=[Query("addition", "llm_query")], hits=[Hit("t1", 1.0, 1, "bm25")],
        judgments=[Judgment("t1", True, "adds numbers", 0.9)]))
    trajectory.status, trajectory.verified, trajectory.final_answer = status, verified, "5"
    return trajectory


def test_round_trip_and_filters(tmp_path):
    store = TrajectoryStore(tmp_path / "t.db")
    done, wrong = sample("a"), sample("b", verified=False, model="other")
    store.save(done)
    store.save(wrong)
    assert store.get(done.id).to_dict() == done.to_dict()
    assert store.get(done.id[:8]).id == done.id  # unique prefix
    assert [r["id"] for r in store.list(verified=True)] == [done.id]
    assert [r["id"] for r in store.list(model="other")] == [wrong.id]
    assert store.list(since="2999-01-01") == []
    with pytest.raises(RaderError, match="no trajectory"):
        store.get("nope")


def test_exports(tmp_path):
    store = TrajectoryStore(tmp_path / "t.db")
    for i in range(3):
        store.save(sample(f"p{i}"))
    assert store.export(tmp_path / "out.jsonl").written == 3
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert {r["problem"]["id"] for r in rows} == {"p0", "p1", "p2"}
    assert store.export(tmp_path / "out.parquet", fmt="parquet").written == 3
    table = pd.read_parquet(tmp_path / "out.parquet")
    assert len(table) == 3 and json.loads(table["data"][0])["steps"][0]["thought"] == "2+3=5"
    with pytest.raises(RaderError, match="jsonl or parquet"):
        store.export(tmp_path / "x.csv", fmt="csv")


@pytest.mark.parametrize("name", ["shard.jsonl.gz", "shard.parquet"])
def test_exports_from_other_machines_merge_by_id(tmp_path, name):
    """A shard from another machine: new ids are added, a finished run replaces an unfinished
    one, a row still `running` there arrives `interrupted`, and importing twice changes nothing."""
    there = TrajectoryStore(tmp_path / "there.db")
    finished, cut = sample("a"), sample("b")
    live = sample("c", status="running", verified=None)
    for trajectory in (finished, cut, live):
        there.save(trajectory)
    here = TrajectoryStore(tmp_path / "here.db")
    stale = sample("b", status="interrupted", verified=None)
    stale.id = cut.id
    here.save(stale)
    shard = tmp_path / name
    assert there.export(shard, fmt="parquet" if name.endswith("parquet") else "jsonl").written == 3
    report = here.merge(read_trajectories(shard))
    assert (report.added, report.replaced, report.kept) == (2, 1, 0)
    assert here.get(finished.id).to_dict() == finished.to_dict()
    assert here.get(cut.id).status == "done" and here.get(live.id).status == "interrupted"
    again = here.merge(read_trajectories(shard))
    assert (again.added, again.replaced, again.kept) == (0, 0, 3)


def test_a_harvest_export_grows_by_id_across_sessions(tmp_path, capsys, home):
    """`export --merge` keeps the file's runs, adds the store's new ones and replaces an
    unfinished copy with a finished one; `--source` leaves benchmark runs out."""
    from conftest import rader

    export = tmp_path / "harvest.jsonl.gz"
    earlier = TrajectoryStore(tmp_path / "earlier.db")  # another session's (or machine's) store
    old, cut = sample("old"), sample("cut", status="interrupted", verified=None)
    for trajectory in (old, cut):
        trajectory.source = "harvest"
        earlier.save(trajectory)
    assert earlier.export(export).written == 2
    store = TrajectoryStore(home / "trajectories.db")
    new, bench = sample("new"), sample("bench")
    finished = sample("cut")
    finished.id = cut.id
    for trajectory, source in ((new, "harvest"), (finished, "harvest"), (bench, "bench")):
        trajectory.source = source
        store.save(trajectory)
    code, out, _ = rader(capsys, "trajectories", "export", str(export), "--source", "harvest", "--merge")
    assert code == 0 and "wrote 3 trajectories" in out and "1 added, 1 replaced, 0 already there" in out
    rows = {t.id: t for t in read_trajectories(export)}
    assert set(rows) == {old.id, cut.id, new.id} and rows[cut.id].status == "done"
    code, out, _ = rader(capsys, "trajectories", "export", str(export), "--source", "harvest", "--merge")
    assert "wrote 3 trajectories" in out and "0 added, 0 replaced, 2 already there" in out
    code, out, _ = rader(capsys, "trajectories", "export", str(export), "--source", "harvest")
    assert "wrote 2 trajectories" in out  # without --merge the file is the store's selection alone
    first = export.read_bytes()
    time.sleep(1.1)  # gzip headers carry seconds
    rader(capsys, "trajectories", "export", str(export), "--source", "harvest")
    assert export.read_bytes() == first  # the same runs, the same bytes: no spurious change to commit


def test_a_bad_or_newer_import_is_refused_whole(tmp_path, capsys, home):
    from conftest import rader

    good = json.dumps(sample("a").to_dict())
    bad = tmp_path / "bad.jsonl"
    bad.write_text(good + "\n" + "{not json\n")
    code, _, err = rader(capsys, "trajectories", "import", str(bad))
    assert code == 2 and "bad.jsonl:2: not a trajectory record" in err
    newer = tmp_path / "newer.jsonl"
    newer.write_text(json.dumps({**sample("b").to_dict(), "schema_version": 99}) + "\n")
    with pytest.raises(RaderError, match="newer than this rader"):
        read_trajectories(newer)
    assert TrajectoryStore(home / "trajectories.db").list() == []  # nothing of either file landed
    good_file = tmp_path / "good.jsonl"
    good_file.write_text(good + "\n")
    code, out, _ = rader(capsys, "trajectories", "import", str(good_file))
    assert code == 0 and "1 added" in out
    assert len(TrajectoryStore(home / "trajectories.db").list()) == 1


def test_reverify_corrects_flags_that_a_fixed_answer_rule_changes(capsys, home):
    """A run verified by an old rule (0 accepted for a float gold of 4.7e-34) is corrected in the
    store, its human judgments stay where they were, a dry run stores nothing, a second pass
    finds nothing left to change, and the next merged export takes the corrected copies."""
    from conftest import rader

    store = TrajectoryStore(home / "trajectories.db")
    runs = {}
    for name, answer, flag in (("zero", "0", True), ("close", "4.6e-34", True), ("missed", "4.7e-34", False)):
        run = sample(name)
        run.problem = Problem(name, "The de Broglie wavelength of a tennis ball?", answer="4.7e-34",
                              answer_type="float")
        run.final_answer, run.verified = answer, flag
        store.save(run)
        runs[name] = run
    store.add_human_judgment(runs["zero"].id, 1, Judgment("t1", False, "not this one", judge="human"))
    export = home / "harvest.jsonl.gz"
    rader(capsys, "trajectories", "export", str(export), "--merge")
    code, out, _ = rader(capsys, "trajectories", "reverify", "--dry-run")
    assert code == 0 and "2 of 3 runs with an answer would change" in out
    assert store.get(runs["zero"].id).verified is True
    code, out, _ = rader(capsys, "trajectories", "reverify")
    assert code == 0 and "2 of 3 runs with an answer changed" in out
    assert {r["id"] for r in store.list(verified=True)} == {runs["close"].id, runs["missed"].id}
    corrected = store.get(runs["zero"].id)
    assert corrected.verified is False and len(corrected.steps[0].judgments) == 2  # model's + human's
    code, out, _ = rader(capsys, "trajectories", "reverify")
    assert "0 of 3 runs with an answer changed" in out
    code, out, _ = rader(capsys, "trajectories", "export", str(export), "--merge")
    assert "0 added, 2 replaced, 1 already there" in out  # the corrected runs over the file's copies
    assert {t.id: t.verified for t in read_trajectories(export)} == {
        runs["zero"].id: False, runs["close"].id: True, runs["missed"].id: True}


def test_human_judgments_attach_to_the_step(tmp_path):
    store = TrajectoryStore(tmp_path / "t.db")
    trajectory = sample()
    store.save(trajectory)
    store.add_human_judgment(trajectory.id, 1, Judgment("t1", False, "not what was needed", judge="human"))
    judgments = store.get(trajectory.id).steps[0].judgments
    assert [(j.judge, j.relevant) for j in judgments] == [("model", True), ("human", False)]
    with pytest.raises(RaderError, match="no step 7"):
        store.add_human_judgment(trajectory.id, 7, Judgment("t1", True))
    with pytest.raises(RaderError, match="not retrieved at step 1"):  # it would become training data
        store.add_human_judgment(trajectory.id, 1, Judgment("no/such/theorem", True))


def test_running_rows_of_live_writers_stay_and_orphans_become_interrupted(tmp_path):
    store = TrajectoryStore(tmp_path / "t.db")
    trajectory = sample(status="running")
    store.save(trajectory)
    beside = TrajectoryStore(tmp_path / "t.db")  # e.g. `rader trajectories list` during a harvest
    assert beside.interrupted_on_open == 0 and beside.get(trajectory.id).status == "running"
    store.close()
    beside.close()
    with sqlite3.connect(tmp_path / "t.db") as db:  # a version-1 store: no writers were recorded
        db.execute("DROP TABLE writers")
        db.execute("UPDATE meta SET value='1' WHERE key='schema_version'")
    again = TrajectoryStore(tmp_path / "t.db")
    assert again.schema_version() == STORE_VERSION == 2  # migrated in place
    assert again.interrupted_on_open == 1
    assert again.get(trajectory.id).status == "interrupted"
    assert len(again.get(trajectory.id).steps) == 1


def version_1(trajectory: Trajectory, **config) -> dict:
    """``trajectory`` as rader wrote it before records had stop_reason and source fields."""
    data = trajectory.to_dict()
    del data["stop_reason"], data["source"]
    return {**data, "schema_version": 1, "config": {**data["config"], **config}}


def test_version_1_rows_and_exports_read_as_version_2(tmp_path):
    harvested = version_1(sample("h"), stop_reason="answered", harvest={"sample": 0})
    benchmarked = version_1(sample("b"), stop_reason="answer forced after solution_tokens (1024)",
                            bench_mode="none")
    export = tmp_path / "old.jsonl"
    export.write_text("".join(json.dumps(row) + "\n" for row in (harvested, benchmarked)))
    store = TrajectoryStore(tmp_path / "t.db")
    with sqlite3.connect(tmp_path / "t.db") as db:  # a row as the older rader stored it
        plain = version_1(sample("p"), stop_reason="ended without a boxed answer")
        db.execute("INSERT INTO trajectories VALUES (?, 'done', 'm', 'bm25', 'p', 1, 1, ?, NULL, ?)",
                   (plain["id"], plain["started_at"], json.dumps(plain)))
    read = {t.problem.id: t for t in [*read_trajectories(export), store.get(plain["id"])]}
    assert {k: (t.source, t.stop_reason, t.schema_version) for k, t in read.items()} == {
        "h": ("harvest", "answered", 2), "b": ("bench", "answer forced after solution_tokens (1024)", 2),
        "p": ("python", "ended without a boxed answer", 2)}
    assert all("stop_reason" not in t.config for t in read.values()) and read["h"].config["harvest"]
    store.save(read["p"])  # written back as version 2, and read back the same
    again = store.get(plain["id"])
    assert (again.stop_reason, again.schema_version) == ("ended without a boxed answer", 2)


def test_newer_schema_and_foreign_files_are_refused(tmp_path):
    path = tmp_path / "t.db"
    TrajectoryStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    with pytest.raises(RaderError, match="schema version 99, newer"):
        TrajectoryStore(path)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(RaderError, match="not a rader trajectory store"):
        TrajectoryStore(junk)


KILL_SCRIPT = """
import sys
from rader.agent import AgentConfig, LLMConfig, Problem, TrajectoryStore, build_graph, chat_model
from rader.agent.runner import run_problem
from rader.retriever import builtin_corpus, open_retriever
llm = chat_model(LLMConfig(model=sys.argv[1], context=2048), home=sys.argv[2])
bm25 = open_retriever("bm25", builtin_corpus(), home=sys.argv[2], show_progress=False)
# a retrieval after every paragraph: a node update, and a stored step, every paragraph
config = AgentConfig(retrieve_before=False, retrieve_every=1, max_retrievals=100, judge=False,
                     write_query=False, k=1)
graph = build_graph(llm=llm, retriever=bm25, settings=config)
store = TrajectoryStore(sys.argv[2] + "/trajectories.db")
# SmolLM2 writes this one in several paragraphs; runs follow each other until the kill lands
# inside one, whatever the machine's speed
problem = ("A train travels 60 km in 1.5 hours, then 40 km in 0.5 hours. What is its average speed? "
           "Check the answer a second way.")
for attempt in range(50):
    run_problem(graph, Problem(f"kill-{attempt}", problem), store=store, model="smollm2", retriever="bm25")
"""


def test_sigkill_keeps_finished_steps_and_a_sound_database(tmp_path, smollm_path):
    process = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(smollm_path), str(tmp_path)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db_path = tmp_path / "trajectories.db"
    deadline = time.time() + 240
    steps = 0
    while time.time() < deadline and steps < 2:
        time.sleep(0.5)
        if db_path.exists():
            with sqlite3.connect(db_path) as db:
                row = db.execute("SELECT id, steps FROM trajectories WHERE status = 'running'").fetchone()
                killed, steps = row or (None, 0)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert steps >= 2, "no run wrote two steps"
    with sqlite3.connect(db_path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store = TrajectoryStore(db_path)
    assert store.interrupted_on_open == 1
    trajectory = store.get(killed)
    assert trajectory.status == "interrupted" and len(trajectory.steps) >= 2
    assert all(step.thought for step in trajectory.steps)
