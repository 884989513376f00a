"""The page's run worker with a real small model: snapshots carry the live trajectory and the
text the model is writing, token by token, before it lands as steps."""

from __future__ import annotations

import time

from rader.agent import AgentConfig, AgentParts, Problem, TrajectoryStore, build_graph
from rader.ui.html import draft_html
from rader.ui.session import LiveRun


def test_a_live_run_streams_the_draft_then_the_steps(smol_llm, tmp_path):
    config = AgentConfig(solution_tokens=64, force_answer=False)
    parts = AgentParts(build_graph(llm=smol_llm, settings=config), "smollm2", "none", None, smol_llm,
                       config=config)
    store = TrajectoryStore(tmp_path / "t.db")
    run = LiveRun(lambda progress: parts, Problem("d1", "Explain why 2 + 2 = 4 in three sentences."),
                  store=store, config={}).start()
    drafts = []
    while not (snapshot := run.snapshot()).finished:
        if snapshot.draft and (not drafts or drafts[-1] != snapshot.draft):
            drafts.append(snapshot.draft)
        time.sleep(0.005)
    assert snapshot.phase == "done", snapshot.error
    assert len(drafts) >= 2 and drafts[-1].startswith(drafts[0])  # it grew, token by token
    first = store.get(snapshot.trajectory_id).steps[0].thought
    assert first.startswith(drafts[0].strip()[:20])  # what was shown is what became the step
    assert snapshot.trajectory["steps"] and snapshot.draft == ""  # the steps replaced the draft
    assert "&lt;b&gt;" in draft_html("<b>x</b>") and "writing" in draft_html("x")
