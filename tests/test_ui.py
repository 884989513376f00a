"""The student's page, for real: `rader ui` in a subprocess with SmolLM2 and BM25 on the built-in
corpus, driven by Debian's Chromium through Playwright, and by `gradio_client` for scripts.

One server serves the module (three llama.cpp slots, so that three sessions really run at
once). Screenshots go to test-artifacts/ui/. The tests read the server's store as any other
process may: a `TrajectoryStore` opened beside a live writer leaves its running rows alone.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import sync_playwright
from test_cli import rader

from rader.agent.records import Judgment, Trajectory
from rader.agent.store import TrajectoryStore
from rader.ui.examples import problem_for

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
RUN_TIMEOUT_S = 150  # one SmolLM2 step on two shared cores, with margin for a busy machine
FINISHED = re.compile(r"✅|⏹|⚠")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """The running `rader ui`: its address, model and log, and its store as read from outside."""

    def __init__(self, url: str, home: Path, model: str, log: Path) -> None:
        self.url, self.home, self.model, self.log = url, home, model, log
        self.store = TrajectoryStore(home / "trajectories.db")

    def trajectories(self, problem_id: str) -> list[Trajectory]:
        """Stored runs of one problem, oldest first, with the human judgments on them."""
        return [self.store.get(row["id"]) for row in reversed(self.store.list(problem_id=problem_id))]


@pytest.fixture(scope="module")
def server(tmp_path_factory, smollm_path, artifacts):
    if not Path(CHROMIUM).is_file():
        pytest.fail("the browser tests need Debian's chromium: apt-get install chromium")
    home = tmp_path_factory.mktemp("ui") / "home"
    port = free_port()
    env = {  # the home's own config.toml (none): the settings below are all there is
        **{k: v for k, v in os.environ.items() if not k.startswith("RADER_")}, "RADER_HOME": str(home),
        "RADER_LLM__MODEL": str(smollm_path), "RADER_LLM__CONTEXT": "2048", "RADER_LLM__PARALLEL": "3",
        "RADER_AGENT__RETRIEVER": "bm25", "RADER_AGENT__MAX_STEPS": "1", "RADER_AGENT__K": "1",
        "RADER_AGENT__SOLUTION_TOKENS": "48", "GRADIO_ANALYTICS_ENABLED": "False",
    }
    log = artifacts / "ui" / "server.log"
    log.parent.mkdir(exist_ok=True)
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-m", "rader.app.cli", "ui", "--port", str(port)],
                                   env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(url, timeout=5)
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"rader ui did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
    running = Server(url, home, str(smollm_path), log)
    yield running
    running.store.close()
    process.terminate()
    process.wait(30)


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.goto(server.url)
    page.get_by_label("Problem").wait_for()
    yield page
    context.close()


def screenshot(page, artifacts: Path, name: str) -> None:
    page.screenshot(path=str(artifacts / "ui" / f"{name}.png"), full_page=True)


def status(page) -> str:
    return page.locator("#rd-status").inner_text()


def wait_for_status(page, pattern: re.Pattern | str, timeout_s: float = RUN_TIMEOUT_S) -> str:
    deadline = time.monotonic() + timeout_s
    while not re.search(pattern, text := status(page)):
        assert time.monotonic() < deadline, f"status never matched {pattern!r}; last: {text!r}"
        time.sleep(0.25)
    return text


def submit(page, problem: str, gold: str = "") -> None:
    page.get_by_label("Problem").fill(problem)
    page.get_by_label("Gold answer", exact=False).fill(gold)
    page.get_by_role("button", name="Run", exact=True).click()


def test_a_busy_port_is_a_one_line_error(capsys, home):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        code, _, err = rader(capsys, "ui", "--port", str(busy.getsockname()[1]))
    assert code == 2 and "cannot serve the page on 127.0.0.1" in err and "Traceback" not in err


def test_rader_ui_binds_localhost_by_default(server):
    # the fixture passed only --port: the address is the settings' default
    assert f"Running on local URL:  {server.url.rstrip('/')}" in server.log.read_text()


@pytest.mark.slow
def test_a_run_streams_steps_and_cards_and_a_thumb_is_stored_as_a_human_judgment(page, server, artifacts):
    problem = "Find $x$ if\n\\[2x + 3\n= 11.\\]"  # display math over two lines, as MATH writes it
    submit(page, problem, "4")
    # steps stream in: the first theorem card shows while the run is still going
    page.locator(".rd-card").first.wait_for(timeout=RUN_TIMEOUT_S * 1000)
    assert "running" in status(page)
    screenshot(page, artifacts, "run-streaming")
    final = wait_for_status(page, FINISHED)
    assert "✅" in final, final
    assert page.get_by_role("heading", name="Step 1").is_visible()
    assert page.locator(".rd-problem .katex").count() == 3  # $x$, the display and the gold $4$
    assert page.locator(".rd-problem .katex-display").count() == 1
    assert page.locator(".rd-kind").first.is_visible()  # the queries the agent wrote
    assert "model:" in page.locator(".rd-card").first.inner_text()  # the relevance verdict
    answer = page.locator("#rd-answer").inner_text()
    assert "1 steps" in answer and "tokens" in answer and "gold answer" in answer
    stored, = server.trajectories(problem_for(problem, "4").id)
    assert stored.status in ("done", "budget_exhausted") and len(stored.steps) == 1
    assert stored.id[:12] in answer

    theorem_id = stored.steps[0].hits[0].theorem_id
    assert theorem_id in page.locator(".rd-card-row").first.inner_text()
    for _ in range(3):  # a click that lands as the timeline re-renders finds its button gone: again
        page.locator(".rd-card-row").first.get_by_role("button", name="👍 helped").click()
        try:
            page.locator(".rd-card-row .rd-human").first.wait_for(timeout=20_000)
            break
        except PlaywrightTimeout:
            continue
    assert "you: 👍 helped" in page.locator(".rd-card-row").first.inner_text()
    screenshot(page, artifacts, "run-feedback")
    step, = server.store.get(stored.id).steps
    assert [j for j in step.judgments if j.judge == "human"] == [
        Judgment(theorem_id, True, "student feedback in the UI", None, "human")]


def test_stop_ends_the_run_cleanly_and_stores_it_interrupted(page, server, artifacts):
    page.get_by_label("number input for Max steps").fill("20")
    page.get_by_label("number input for Max steps").press("Enter")
    problem = "Count the primes below 100, one step per prime."
    submit(page, problem)
    page.get_by_role("heading", name="Step 1 · in progress").wait_for(timeout=RUN_TIMEOUT_S * 1000)
    page.get_by_role("button", name="Stop", exact=True).click()
    final = wait_for_status(page, FINISHED)
    assert "⏹" in final and "interrupted" in final, final
    screenshot(page, artifacts, "stopped")
    stored, = server.trajectories(problem_for(problem, None).id)
    assert stored.status == "interrupted" and stored.finished_at is not None
    assert len(stored.steps) <= 1  # Stop came during step 1: the run ended at the next node


def test_errors_are_messages_in_the_page_never_tracebacks(page, artifacts):
    page.get_by_role("button", name="Run", exact=True).click()
    assert "Type a problem" in wait_for_status(page, "⚠", 30)
    model = page.get_by_role("combobox", name="Model")
    model.fill("gpt-9")
    model.press("Enter")
    submit(page, "What is 1 + 1?")
    message = wait_for_status(page, "unknown model|✅|⏹", 60)  # the old message stays until then
    assert "⚠ unknown model 'gpt-9'" in message and "catalog" in message
    screenshot(page, artifacts, "error")
    assert "Traceback" not in page.content()


def test_registered_encoders_are_offered_on_the_next_page_load(page, server):
    from rader.retriever import register_encoder
    from rader.retriever.encoders import resolve_encoder_path

    register_encoder(resolve_encoder_path("minilm"), "minilm-tuned", server.home)
    page.reload()
    page.get_by_role("combobox", name="Encoder (dense, hybrid)").click()
    page.get_by_role("option", name="minilm-tuned").wait_for(timeout=30_000)  # fails if never offered


@pytest.fixture(scope="module")
def scripted_run(server):
    """One run through the API, as a developer's script would start it."""
    from gradio_client import Client

    client = Client(server.url, verbose=False)
    status_html, answer_html, record, download = client.predict(
        "What is $3 + 4$?", "7", "bm25", "minilm", server.model, 1, 1, 600, api_name="/solve")
    return client, status_html, answer_html, record, download


def test_gradio_client_solves_lists_opens_and_gives_feedback(server, scripted_run):
    client, status_html, answer_html, record, download = scripted_run
    assert "✅" in status_html and record["problem"]["text"] == "What is $3 + 4$?"
    assert record["status"] in ("done", "budget_exhausted") and record["id"][:12] in answer_html
    assert json.loads(Path(download).read_text())["id"] == record["id"]
    table = client.predict(api_name="/history")
    assert record["id"][:12] in [row[0] for row in table["data"]]
    _, _, reopened, _ = client.predict(record["id"][:10], api_name="/open")
    assert reopened["id"] == record["id"] and reopened["steps"] == record["steps"]
    hit = record["steps"][0]["hits"][0]
    saved = client.predict(record["id"], 1, hit["theorem_id"], False, api_name="/feedback")
    assert saved.startswith("saved")
    human = [j for j in server.store.get(record["id"]).steps[0].judgments if j.judge == "human"]
    assert [(j.theorem_id, j.relevant) for j in human] == [(hit["theorem_id"], False)]
    assert client.predict("nope", 1, "x", True, api_name="/feedback").startswith("not saved")
    unknown = client.predict(record["id"], 1, "rader/no/such/theorem", True, api_name="/feedback")
    assert unknown.startswith("not saved") and "was not retrieved" in unknown


def test_gradio_client_cancel_stops_the_run_and_stores_it_interrupted(server, scripted_run):
    client = scripted_run[0]
    job = client.submit("Count the primes below 100, one step per prime.", "", "bm25", "minilm",
                        server.model, 20, 1, 600, api_name="/solve")
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while not (records := [out[2] for out in job.outputs() if isinstance(out[2], dict) and "id" in out[2]]):
        assert time.monotonic() < deadline and not job.done(), "the run never started"
        time.sleep(0.25)
    assert job.cancel()  # Gradio closes the run's generator; the worker ends at the next node
    while (status := server.store.get(records[0]["id"]).status) != "interrupted":
        assert time.monotonic() < deadline, status
        time.sleep(0.25)


def test_history_reopens_replays_and_downloads_a_stored_run(page, scripted_run, artifacts):
    record = scripted_run[3]
    page.get_by_role("tab", name="History").click()
    cell = page.get_by_role("gridcell", name=record["id"][:12])
    cell.wait_for(timeout=30_000)
    cell.click()
    assert record["id"][:12] in wait_for_status(page, "opened", 30)
    assert "What is" in page.locator(".rd-problem").inner_text()
    assert page.get_by_role("heading", name="Step 1").is_visible()
    screenshot(page, artifacts, "history-open")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download trajectory JSON").click()
    assert json.loads(Path(download.value.path()).read_text())["id"] == record["id"]
    page.get_by_role("tab", name="History").click()
    page.get_by_role("button", name="Replay").click()
    wait_for_status(page, "replaying", 30)  # step by step, then the whole run again
    wait_for_status(page, "replayed", 30)
    page.get_by_role("heading", name="Step 1").wait_for(timeout=10_000)  # rendered just after the status


@pytest.mark.slow
def test_three_sessions_at_once_each_see_their_own_run(browser, server, artifacts):
    fruits = ("apples", "pears", "plums")
    problems = {fruit: f"Ann has 3 {fruit} and buys 4 more. How many {fruit} has she?" for fruit in fruits}
    contexts = [browser.new_context(viewport={"width": 1280, "height": 1000}) for _ in fruits]
    pages = dict(zip(fruits, (context.new_page() for context in contexts), strict=True))
    try:
        for page in pages.values():
            page.goto(server.url)
            page.get_by_label("Problem").wait_for()
        for fruit, page in pages.items():  # all three submitted before any finishes
            submit(page, problems[fruit], "7")
        runs = []
        for number, (fruit, page) in enumerate(pages.items(), 1):
            assert "✅" in wait_for_status(page, FINISHED)
            screenshot(page, artifacts, f"session-{number}")
            stored, = server.trajectories(problem_for(problems[fruit], "7").id)
            assert stored.id[:12] in page.locator("#rd-answer").inner_text()
            shown = page.locator(".rd-problem").inner_text()
            assert [other for other in fruits if other in shown] == [fruit]
            runs.append(stored)
        # served at once (three llama.cpp slots), not one after another
        assert max(r.started_at for r in runs) < min(r.finished_at for r in runs)
    finally:
        for context in contexts:
            context.close()
