"""`rader serve`, for real: the server in a subprocess on a random loopback port with SmolLM2 and
BM25 on the built-in corpus, called by the official `openai` client, LangChain's `ChatOpenAI`,
`httpx` and the `mcp` client (over streamable HTTP and over stdio).

Two servers serve the module: ``server`` (no key, three llama.cpp slots, one queue place, a
SIGTERM that stops runs at once) and ``keyed`` (an API key, SIGTERM drains runs in flight). Each
is stopped by the last test that uses it. The tests read the store as another process may.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from langchain_openai import ChatOpenAI
from mcp import Client, StdioServerParameters
from openai import APIError, AuthenticationError, BadRequestError, NotFoundError, OpenAI
from prometheus_client.parser import text_string_to_metric_families

from rader.agent.records import Problem, Trajectory
from rader.agent.runner import run_problem
from rader.agent.store import TrajectoryStore
from rader.app.serve import check_bind, is_loopback
from rader.app.serve_render import answer_text
from rader.app.settings import AgentSettings, load_settings
from rader.retriever import Query, builtin_corpus, open_retriever

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 240  # imports, the model and the BM25 index on two busy cores
RUN_TIMEOUT_S = 240  # a few short SmolLM2 steps on a busy machine
KEY = "test-key-0123456789"
LONG_PROBLEM = "Prove that there are infinitely many prime numbers."  # SmolLM2 never boxes an answer
SHORT = {"max_steps": 1}
# short model calls: the agent's completion budget (its name moves with the agent's design)
BUDGETS = [name for name in ("step_tokens", "solution_tokens") if name in AgentSettings.model_fields]
SHORT_CALLS = {f"RADER_AGENT__{name.upper()}": "48" for name in BUDGETS}
LONG_RUN = {"max_steps": 64, "max_seconds": 280, **dict.fromkeys(BUDGETS, 4000)}  # stopped long before


class Server:
    """A running `rader serve`: its URL, process, log and (read from outside) its store."""

    def __init__(self, url: str, process: subprocess.Popen, home: Path, log: Path) -> None:
        self.url, self.process, self.home, self.log = url, process, home, log
        self.store = TrajectoryStore(home / "trajectories.db")

    def stored(self, trajectory_id: str) -> Trajectory:
        return self.store.get(trajectory_id)

    def wait_finished(self, trajectory_id: str) -> Trajectory:
        """The stored run once it is no longer ``running``."""
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while (trajectory := self.stored(trajectory_id)).status == "running":
            assert time.monotonic() < deadline, f"run {trajectory_id} still running"
            time.sleep(0.2)
        return trajectory


def server_env(home: Path, model: Path, **extra: str) -> dict[str, str]:
    """This environment without stray RADER_ settings, plus the module's: SmolLM2, short steps,
    BM25 for search and no retrieval in the agent unless a request asks for it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RADER_")}
    return {**env, "RADER_HOME": str(home), "RADER_LLM__MODEL": str(model), "RADER_LLM__MAX_TOKENS": "48",
            "RADER_RETRIEVER__KIND": "bm25", "RADER_AGENT__RETRIEVER": "none", "RADER_AGENT__MAX_STEPS": "1",
            "RADER_AGENT__K": "1", "RADER_SHOW_PROGRESS": "0", "RADER_NO_PROGRESS": "1", **SHORT_CALLS,
            **extra}


def start_server(home: Path, model: Path, log: Path, **extra: str) -> Server:
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-m", "rader.app.cli", "serve", "--port", "0"],
                                   env=server_env(home, model, **extra), stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not (found := re.search(r"rader serve: (http://[\d.]+:\d+)", log.read_text())):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"rader serve did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.3)
    return Server(found.group(1), process, home, log)


def stop_server(server: Server) -> None:
    server.store.close()
    if server.process.poll() is None:
        server.process.kill()
        server.process.wait(30)


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("serve") / "home"


@pytest.fixture(scope="module")
def server(home, smollm_path, tmp_path_factory):
    log = tmp_path_factory.mktemp("serve-log") / "server.log"
    running = start_server(home, smollm_path, log, RADER_LLM__PARALLEL="3", RADER_SERVE__QUEUE_SIZE="1",
                           RADER_SERVE__MAX_BODY_BYTES="65536", RADER_SERVE__MAX_PROBLEM_CHARS="2000",
                           RADER_SERVE__MAX_TOPK="50", RADER_SERVE__MAX_QUERIES="64",
                           RADER_SERVE__MAX_RUN_SECONDS="300", RADER_SERVE__DRAIN_SECONDS="0")
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def keyed(home, smollm_path, server, tmp_path_factory):
    """A second server with an API key, started after ``server`` built the index they share."""
    log = tmp_path_factory.mktemp("serve-keyed") / "server.log"
    running = start_server(home, smollm_path, log, RADER_SERVE__API_KEY=KEY, RADER_SERVE__DRAIN_SECONDS="120")
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def client(server) -> OpenAI:
    return OpenAI(base_url=f"{server.url}/v1", api_key="unused", timeout=RUN_TIMEOUT_S, max_retries=0)


def sse_events(response: httpx.Response):
    """The JSON payloads of a raw SSE response, up to ``[DONE]`` (which is yielded as None)."""
    for line in response.iter_lines():
        if not line.startswith("data: "):
            continue
        payload = line.removeprefix("data: ")
        yield None if payload == "[DONE]" else json.loads(payload)


def rader_event(chunk) -> dict:
    """The ``rader`` field of an `openai` stream chunk ({} when it has none)."""
    return chunk.model_extra.get("rader") or {}


def assert_error(response: httpx.Response, status: int, kind: str, *words: str) -> dict:
    """An OpenAI-shaped JSON error, with no traceback in it."""
    assert response.status_code == status, response.text
    assert "Traceback" not in response.text
    error = response.json()["error"]
    assert error["type"] == kind
    for word in words:
        assert word in error["message"], error["message"]
    return error


# -- the OpenAI-compatible chat API --------------------------------------------------------
def test_models_lists_rader_agent(client):
    assert [model.id for model in client.models.list()] == ["rader-agent"]
    assert client.models.retrieve("rader-agent").id == "rader-agent"
    with pytest.raises(NotFoundError):
        client.models.retrieve("gpt-4o")


def test_chat_with_the_openai_client_runs_the_agent_and_stores_the_run(client, server):
    problem = "If $2x+3=11$, what is $x$?"
    raw = client.chat.completions.with_raw_response.create(
        model="rader-agent", extra_body={"rader": {"answer": "4"}},
        messages=[{"role": "system", "content": "ignored"}, {"role": "user", "content": "earlier question"},
                  {"role": "assistant", "content": "earlier answer"}, {"role": "user", "content": problem}])
    reply = raw.parse()
    extra = reply.model_extra["rader"]
    assert raw.headers["x-rader-trajectory-id"] == extra["trajectory_id"]
    assert extra["trajectory_id"] == reply.id.removeprefix("chatcmpl-")
    stored = server.stored(extra["trajectory_id"])
    assert stored.problem.text == problem and stored.problem.answer == "4"  # the last user message
    assert stored.status == extra["status"] != "running" and len(stored.steps) == extra["steps"] >= 1
    assert (stored.source, stored.config["source"], stored.retriever) == ("serve", "openai", "none")
    content = reply.choices[0].message.content
    assert content.endswith(answer_text(stored))  # ends with the boxed answer (or why there is none)
    assert stored.steps[0].thought.strip() in content
    assert reply.choices[0].finish_reason == {"done": "stop", "error": "stop"}.get(stored.status, "length")
    usage = reply.usage  # the tokens the run recorded, as the model server reported them
    assert usage.prompt_tokens == sum(step.prompt_tokens for step in stored.steps)
    assert usage.completion_tokens == sum(step.completion_tokens for step in stored.steps) > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens == stored.tokens


def test_streaming_with_the_openai_client(client, server):
    stream = client.chat.completions.create(  # two steps: the second streams token by token
        model="rader-agent", stream=True, stream_options={"include_usage": True},
        extra_body={"rader": {"max_steps": 2}},
        messages=[{"role": "user", "content": "What is $3 \\cdot 7 + 1$?"}])
    chunks = list(stream)
    start, end, usage_chunk = chunks[0], chunks[-2], chunks[-1]
    trajectory_id = start.model_extra["rader"]["trajectory_id"]
    assert start.choices[0].delta.role == "assistant"
    assert {chunk.id for chunk in chunks} == {f"chatcmpl-{trajectory_id}"}
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    stored = server.stored(trajectory_id)
    assert end.model_extra["rader"]["event"] == "end" and end.choices[0].finish_reason in ("stop", "length")
    assert end.model_extra["rader"]["status"] == stored.status != "running"
    assert content.endswith(answer_text(stored))
    before_first_step = next(i for i, c in enumerate(chunks) if rader_event(c).get("event") == "step")
    live = [c for c in chunks[1:before_first_step] if c.choices and c.choices[0].delta.content]
    assert len(live) >= 2  # the reasoning arrived token by token, before its step was recorded
    assert "".join(c.choices[0].delta.content for c in live).strip().startswith(stored.steps[0].thought[:20])
    steps = [rader_event(c) for c in chunks if rader_event(c).get("event") == "step"]
    assert steps and steps[-1]["step"]["thought"] == stored.steps[-1].thought
    assert usage_chunk.choices == [] and usage_chunk.usage.completion_tokens > 0
    usage = usage_chunk.usage
    reported = end.model_extra["rader"]["usage"]
    assert (reported["prompt_tokens"], reported["completion_tokens"], reported["total_tokens"]) == (
        usage.prompt_tokens, usage.completion_tokens, usage.total_tokens)
    assert usage.completion_tokens == sum(step.completion_tokens for step in stored.steps)


def test_a_streamed_run_with_retrieval_shows_theorems_and_verdicts(client, server):
    chunks = list(client.chat.completions.create(
        model="rader-agent", stream=True, extra_body={"rader": {"retriever": "bm25", "k": 1}},
        messages=[{"role": "user", "content": "The roots of $x^2-5x+6=0$ are $r$ and $s$. Find $r+s$."}]))
    trajectory_id = chunks[0].model_extra["rader"]["trajectory_id"]
    stored = server.stored(trajectory_id)
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    step = stored.steps[0]
    assert stored.retriever == "bm25" and step.hits
    assert "Theorems retrieved for step 1:" in content
    corpus = builtin_corpus()
    for hit in step.hits:
        assert f"{corpus.get(hit.theorem_id).title} (`{hit.theorem_id}`, bm25" in content
    for judgment in step.judgments:
        assert ("not relevant" if not judgment.relevant else "relevant") in content
    event = next(rader_event(c) for c in chunks if rader_event(c).get("event") == "step")
    assert [h["theorem_id"] for h in event["step"]["hits"]] == [h.theorem_id for h in step.hits]
    assert event["step"]["hits"][0]["title"] == corpus.get(step.hits[0].theorem_id).title


def test_chat_openai_from_langchain_streaming_and_not(server):
    llm = ChatOpenAI(base_url=f"{server.url}/v1", api_key="unused", model="rader-agent", max_retries=0,
                     timeout=RUN_TIMEOUT_S, stream_usage=True, extra_body={"rader": SHORT})
    message = llm.invoke("What is $10 - 3$?")
    stored = server.stored(message.response_metadata["id"].removeprefix("chatcmpl-"))
    assert stored.problem.text == "What is $10 - 3$?" and message.content.endswith(answer_text(stored))
    assert message.usage_metadata["output_tokens"] == sum(s.completion_tokens for s in stored.steps) > 0
    chunks = list(llm.stream("What is $6 + 9$?"))
    streamed = "".join(chunk.content for chunk in chunks)
    latest = server.stored(server.store.list(limit=1)[0]["id"])
    assert latest.problem.text == "What is $6 + 9$?" and streamed.endswith(answer_text(latest))
    assert sum((chunk.usage_metadata or {}).get("output_tokens", 0) for chunk in chunks) > 0


def test_a_run_keeps_to_the_wall_time_budget_it_asked_for(client, server):
    reply = client.chat.completions.create(
        model="rader-agent", extra_body={"rader": {**LONG_RUN, "max_seconds": 1}},
        messages=[{"role": "user", "content": LONG_PROBLEM}])
    extra = reply.model_extra["rader"]
    stored = server.stored(extra["trajectory_id"])
    assert stored.config["agent"]["max_seconds"] == 1 and len(stored.steps) < 64
    # the graph's own budget between steps, or the service's cut in the middle of a model call
    assert (stored.status == "budget_exhausted" and "max_seconds" in stored.stop_reason) or (
        stored.status == "interrupted" and "wall-time budget" in extra["stop_reason"])
    assert reply.choices[0].finish_reason == "length" and "**No answer**" in reply.choices[0].message.content


def test_three_concurrent_streams_each_get_only_their_own_chunks(server):
    problems = ["What is $2+2$?", "What is $5 \\cdot 5$?", "What is $100 - 1$?"]

    async def one(http: httpx.AsyncClient, problem: str) -> list[dict]:
        body = {"model": "rader-agent", "stream": True, "messages": [{"role": "user", "content": problem}],
                "rader": SHORT}
        events = []
        async with http.stream("POST", f"{server.url}/v1/chat/completions", json=body) as response:
            assert response.status_code == 200
            async for line in response.aiter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    events.append(json.loads(line.removeprefix("data: ")))
        return events

    async def all_three():
        async with httpx.AsyncClient(timeout=RUN_TIMEOUT_S) as http:
            return await asyncio.gather(*(one(http, p) for p in problems))

    results = asyncio.run(all_three())
    ids = set()
    for problem, events in zip(problems, results, strict=True):
        trajectory_id = events[0]["rader"]["trajectory_id"]
        ids.add(trajectory_id)
        assert {e["id"] for e in events} == {f"chatcmpl-{trajectory_id}"}
        stored = server.stored(trajectory_id)
        assert stored.problem.text == problem
        content = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"])
        assert content.endswith(answer_text(stored))
        steps = [event["rader"]["step"] for event in events
                 if (event.get("rader") or {}).get("event") == "step"]
        assert steps and all(step["thought"] in [s.thought for s in stored.steps] + [""] for step in steps)
    assert len(ids) == 3
    overlapped = sorted((server.stored(i).started_at, server.stored(i).finished_at) for i in ids)
    assert overlapped[1][0] < overlapped[0][1]  # they ran at once, not one after another


def test_bad_chat_requests_get_openai_errors(client, server):
    url = f"{server.url}/v1/chat/completions"
    with pytest.raises(NotFoundError) as unknown:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "1+1?"}])
    assert unknown.value.body["code"] == "model_not_found"
    with pytest.raises(BadRequestError):
        client.chat.completions.create(model="rader-agent", messages=[])
    cases = [
        ({"model": "rader-agent", "messages": [{"role": "user", "content": "   "}]}, "empty"),
        ({"model": "rader-agent", "messages": [{"role": "assistant", "content": "hi"}]}, "no user message"),
        ({"model": "rader-agent", "messages": "1+1?"}, "messages"),
        ({"model": "rader-agent", "messages": [{"role": "user", "content": "x" * 2001}]}, "limit is 2000"),
        ({"model": "rader-agent", "n": 2, "messages": [{"role": "user", "content": "1+1?"}]}, "n must be 1"),
        ({"model": "rader-agent", "messages": [{"role": "user", "content": "1+1?"}],
          "rader": {"max_seconds": 301}}, "serve.max_run_seconds"),
        ({"model": "rader-agent", "messages": [{"role": "user", "content": "1+1?"}],
          "rader": {"encoder": "/etc"}}, "rader.encoder"),  # no request names a file or folder
        ({"model": "rader-agent", "messages": [{"role": "user", "content": "1+1?"}],
          "rader": {"retriever": "google"}}, "rader.retriever"),
        ({"model": "rader-agent", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "http://x"}}]}]}, "only text"),
    ]
    for body, words in cases:
        assert_error(httpx.post(url, json=body), 400, "invalid_request_error", words)
    malformed = httpx.post(url, content=b'{"model": "rader-agent", "messages": [', timeout=30,
                           headers={"content-type": "application/json"})
    assert_error(malformed, 400, "invalid_request_error", "not valid JSON")


def runs_now(server: Server) -> dict[str, int]:
    return httpx.get(f"{server.url}/health").json()["runs"]


def wait_runs(server: Server, in_flight: int, queued: int) -> None:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while (now := runs_now(server))["in_flight"] != in_flight or now["queued"] != queued:
        assert time.monotonic() < deadline, now
        time.sleep(0.05)


def test_full_slots_and_queue_answer_429_and_a_disconnect_interrupts_its_run(server):
    """Three slots (llm.parallel) and one queue place: a fifth run is refused; the four clients
    then hang up, and every run that had started is stored interrupted."""
    body = {"model": "rader-agent", "stream": True, "messages": [{"role": "user", "content": LONG_PROBLEM}],
            "rader": LONG_RUN}
    url = f"{server.url}/v1/chat/completions"
    http = httpx.Client(timeout=RUN_TIMEOUT_S)
    streams, readers, ids = [], [], []  # a reader dropped half-read would close its connection
    try:
        for _ in range(4):
            stream = http.stream("POST", url, json=body)
            streams.append(stream)
            readers.append(events := sse_events(stream.__enter__()))
            ids.append(next(events)["rader"]["trajectory_id"])
        wait_runs(server, in_flight=3, queued=1)
        refused = httpx.post(url, json={**body, "stream": False}, timeout=30)
        error = assert_error(refused, 429, "rate_limit_error", "serve.queue_size")
        assert error["code"] == "queue_full" and refused.headers["retry-after"]
        assert runs_now(server)["queued"] == 1
    finally:
        streams[-1].__exit__(None, None, None)  # the queued one first: it ends without starting
        wait_runs(server, in_flight=3, queued=0)
        for stream in streams[:-1]:
            stream.__exit__(None, None, None)
        http.close()
    for trajectory_id in ids[:3]:
        stopped = server.wait_finished(trajectory_id)
        assert stopped.status == "interrupted" and stopped.finished_at and stopped.final_answer is None
    with pytest.raises(Exception, match="no trajectory"):
        server.stored(ids[3])  # the queued run never started, so nothing half-written was stored
    wait_runs(server, in_flight=0, queued=0)


# -- retrieval -----------------------------------------------------------------------------
def test_retrieve_follows_the_search_r1_contract_and_matches_the_python_api(server, home):
    queries = ["sum of the roots of a quadratic", "number of ways to choose k of n objects",
               "area of a triangle from two sides and the angle between them"] * 22  # 66 > max_queries
    response = httpx.post(f"{server.url}/retrieve", json={"queries": queries[:64], "topk": 3,
                                                          "return_scores": True}, timeout=60)
    assert response.status_code == 200
    result = response.json()["result"]
    engine = open_retriever("bm25", builtin_corpus(), home=home, show_progress=False)
    expected = engine.search_many([Query(q, "llm_query") for q in queries[:64]], k=3)
    assert len(result) == 64
    for row, hits in zip(result, expected, strict=True):
        assert [item["document"]["id"] for item in row] == [hit.theorem_id for hit in hits]
        assert [item["score"] for item in row] == pytest.approx([hit.score for hit in hits])
        for item in row:
            assert set(item) == {"document", "score"} and set(item["document"]) == {"id", "title", "contents"}
            theorem = engine.theorem(item["document"]["id"])
            title, text = item["document"]["contents"].split("\n", 1)  # how Search-R1's client reads it
            assert title == f'"{theorem.title}"' and text == theorem.text
    plain = httpx.post(f"{server.url}/retrieve", json={"queries": queries[:2], "topk": 2}).json()["result"]
    assert [[doc["id"] for doc in row] for row in plain] == [[i["document"]["id"] for i in row[:2]]
                                                             for row in result[:2]]
    assert set(plain[0][0]) == {"id", "title", "contents"}  # without return_scores: documents alone
    default_k = httpx.post(f"{server.url}/retrieve", json={"queries": queries[:1]}).json()["result"]
    assert len(default_k[0]) == 10  # topk absent: retriever.k


def test_bad_retrieval_requests_get_clear_errors(server):
    url = f"{server.url}/retrieve"
    cases = [({"queries": ["x"], "topk": 0}, "between 1 and 50"), ({"queries": ["x"], "topk": 51}, "between"),
             ({"queries": []}, "no queries"), ({"queries": ["x"] * 65}, "serve.max_queries"),
             ({"queries": ["x" * 2001]}, "serve.max_query_chars"), ({"queries": ["  "]}, "empty"),
             ({"queries": "x"}, "queries"), ({"queries": ["x"], "topk": "many"}, "topk"),
             ({"queries": ["x"], "retriever": "google"}, "bm25, dense, hybrid"),
             ({"queries": ["x"], "kind": "poem"}, "query kind"), ({"query": ["x"]}, "queries")]
    for body, words in cases:
        assert_error(httpx.post(url, json=body), 400, "invalid_request_error", words)
    assert_error(httpx.post(url, content=b"{nope", headers={"content-type": "application/json"}), 400,
                 "invalid_request_error", "not valid JSON")
    big = {"queries": ["sum of roots " * 100] * 60}  # ~78 KB > serve.max_body_bytes
    assert_error(httpx.post(url, json=big), 413, "invalid_request_error", "serve.max_body_bytes")

    def chunked():  # no Content-Length: the limit still holds
        for _ in range(70):
            yield b" " * 1024

    assert_error(httpx.post(url, content=chunked(), headers={"content-type": "application/json"}), 413,
                 "invalid_request_error", "serve.max_body_bytes")
    assert_error(httpx.get(f"{server.url}/search", params={"q": "x", "k": 0}), 400, "invalid_request_error")
    assert_error(httpx.get(f"{server.url}/search"), 400, "invalid_request_error", "q")
    assert_error(httpx.get(f"{server.url}/nowhere"), 404, "not_found_error", "no route")
    assert_error(httpx.get(f"{server.url}/retrieve"), 405, "invalid_request_error")


def test_search_and_theorems(server):
    found = httpx.get(f"{server.url}/search", params={"q": "sum of the roots of a quadratic", "k": 3}).json()
    assert found["retriever"] == "bm25" and found["kind"] == "problem" and len(found["hits"]) == 3
    best = found["hits"][0]
    assert best["rank"] == 1 and best["theorem"]["id"] == best["theorem_id"]
    theorem = httpx.get(f"{server.url}/theorems/{best['theorem_id']}").json()  # ids hold slashes
    assert theorem == builtin_corpus().get(best["theorem_id"]).to_dict()
    assert_error(httpx.get(f"{server.url}/theorems/no/such/theorem"), 404, "not_found_error", "no theorem")
    escape = httpx.get(f"{server.url}/theorems/..%2F..%2F..%2Fetc%2Fpasswd")  # an id, never a path
    assert escape.status_code == 404 and "root:" not in escape.text


# -- MCP -----------------------------------------------------------------------------------
async def mcp_session(target, problem: str) -> tuple[set[str], list, dict, dict]:
    async with Client(target, read_timeout_seconds=RUN_TIMEOUT_S) as mcp:
        tools = {tool.name for tool in (await mcp.list_tools()).tools}
        found = await mcp.call_tool("search", {"query": "sum of the roots of a quadratic", "k": 2})
        theorem = await mcp.call_tool("get_theorem", {"id": "rader/algebra/vieta_quadratic"})
        solved = await mcp.call_tool("solve", {"problem": problem, "max_steps": 1})
        missing = await mcp.call_tool("get_theorem", {"id": "no/such"})
        assert not found.is_error and not theorem.is_error and not solved.is_error, solved
        assert missing.is_error and "no theorem" in missing.content[0].text
        hits = found.structured_content["result"]
        return tools, hits, theorem.structured_content, solved.structured_content


def check_mcp(server: Server, tools, hits, theorem, solved, problem: str) -> None:
    assert tools == {"search", "get_theorem", "solve"}
    query = {"q": "sum of the roots of a quadratic", "k": 2}
    expected = httpx.get(f"{server.url}/search", params=query).json()
    assert [h["theorem_id"] for h in hits] == [h["theorem_id"] for h in expected["hits"]]
    assert theorem["title"] == builtin_corpus().get("rader/algebra/vieta_quadratic").title
    stored = server.stored(solved["trajectory_id"])
    assert stored.problem.text == problem and stored.status == solved["status"] != "running"
    assert solved["text"].endswith(answer_text(stored)) and solved["usage"]["completion_tokens"] > 0


def test_mcp_over_streamable_http(server):
    problem = "What is $4 \\cdot 4$?"
    check_mcp(server, *asyncio.run(mcp_session(f"{server.url}/mcp", problem)), problem)
    assert server.stored(server.store.list(limit=1)[0]["id"]).config["source"] == "mcp"


def test_mcp_over_stdio(server, home, smollm_path):
    problem = "What is $9 - 4$?"
    env = {k: v for k, v in server_env(home, smollm_path).items()
           if k.startswith(("RADER_", "COLUMNS", "PYTHONPATH"))}
    params = StdioServerParameters(command=sys.executable, env=env,
                                   args=["-m", "rader.app.cli", "serve", "--mcp-stdio"])
    check_mcp(server, *asyncio.run(mcp_session(params, problem)), problem)


# -- health, metrics, LangGraph ------------------------------------------------------------
def test_health_says_what_is_loaded_and_where(server, home):
    health = httpx.get(f"{server.url}/health").json()
    assert health["status"] == "ok" and health["models"][0]["loaded"] is True
    assert health["retrievers"]["bm25"]["loaded"] is True and health["retrievers"]["dense"]["loaded"] is False
    corpus = builtin_corpus()
    assert health["corpora"][0]["size"] == len(corpus) and health["corpora"][0]["hash"] == corpus.content_hash
    assert [index["kind"] for index in health["indexes"]] == ["bm25"]
    assert Path(health["indexes"][0]["path"]).is_relative_to(home)
    assert health["store"] == str(home / "trajectories.db") and health["auth"] is False


def test_metrics_are_prometheus_text(server, client):
    httpx.post(f"{server.url}/retrieve", json={"queries": ["a", "b", "c"], "topk": 1})
    httpx.post(f"{server.url}/retrieve", json={"queries": []})
    reply = client.chat.completions.create(model="rader-agent", extra_body={"rader": SHORT},
                                           messages=[{"role": "user", "content": "What is $7 + 7$?"}])
    text = httpx.get(f"{server.url}/metrics")
    assert text.headers["content-type"].startswith("text/plain")
    families = {family.name: family for family in text_string_to_metric_families(text.text)}
    samples = [sample for family in families.values() for sample in family.samples]

    def value(name: str, **labels: str) -> float:
        return sum(s.value for s in samples
                   if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))

    assert value("rader_http_requests_total", route="/retrieve", status="200") >= 1
    assert value("rader_http_requests_total", route="/v1/chat/completions", status="200") >= 1
    assert value("rader_http_requests_total", route="/retrieve", status="400") >= 1
    assert value("rader_http_request_duration_seconds_count", route="/retrieve") >= 1
    assert value("rader_retrieval_queries_total", retriever="bm25") >= 3
    assert value("rader_tokens_total", kind="completion") > 0
    assert any(s.name == "rader_tokens_total" and s.labels["kind"] == "prompt" for s in samples)
    assert value("rader_runs_total", status=reply.model_extra["rader"]["status"]) >= 1
    assert families["rader_runs_in_flight"].type == "gauge" and value("rader_run_duration_seconds_count") >= 1
    assert families["rader_http_request_duration_seconds"].type == "histogram"


def test_langgraph_json_names_a_graph_that_runs(server, home, smollm_path, monkeypatch):
    config = json.loads((REPO / "langgraph.json").read_text())
    path, _, name = config["graphs"]["rader"].partition(":")
    assert config["dependencies"] == ["."] and (REPO / path).is_file()
    for key, value in server_env(home, smollm_path, RADER_AGENT__MAX_STEPS="1").items():
        if key.startswith("RADER_"):
            monkeypatch.setenv(key, value)
    import importlib.util

    spec = importlib.util.spec_from_file_location("rader_langgraph_entry", REPO / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # as `langgraph dev` loads it: by file path
    graph = getattr(module, name)()
    assert graph.get_graph().nodes and graph.name == "rader"
    trajectory = run_problem(graph, Problem("lg", "What is 1+1?"), store=None, model="smollm",
                             retriever="none")
    assert trajectory.status in ("done", "budget_exhausted") and len(trajectory.steps) == 1


# -- binding, keys, shutdown ---------------------------------------------------------------
def test_binding_beyond_loopback_needs_a_key(home):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RADER_")} | {"RADER_HOME": str(home)}
    refused = subprocess.run([sys.executable, "-m", "rader.app.cli", "serve", "--host", "0.0.0.0"],
                             env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "refusing to bind 0.0.0.0" in refused.stderr and "RADER_SERVE__API_KEY" in refused.stderr
    assert all(map(is_loopback, ["127.0.0.1", "127.0.0.2", "::1", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "192.168.1.5", "example.org"]))
    with_key, _ = load_settings({"serve": {"host": "0.0.0.0", "api_key": KEY}}, config_file=None)
    check_bind(with_key)  # allowed
    short, _ = load_settings({"serve": {"host": "0.0.0.0", "api_key": "abc"}}, config_file=None)
    with pytest.raises(Exception, match="too short"):
        check_bind(short)


def test_a_key_is_required_when_set(keyed):
    for headers in ({}, {"Authorization": "Bearer wrong-key-000000"}, {"Authorization": KEY}):
        for method, path in (("GET", "/health"), ("GET", "/v1/models"), ("POST", "/retrieve"),
                             ("POST", "/mcp"), ("GET", "/metrics")):
            response = httpx.request(method, f"{keyed.url}{path}", headers=headers, json={"queries": ["x"]})
            error = assert_error(response, 401, "authentication_error")
            assert error["code"] == "invalid_api_key" and response.headers["www-authenticate"] == "Bearer"
    with pytest.raises(AuthenticationError):
        OpenAI(base_url=f"{keyed.url}/v1", api_key="wrong-key-000000", max_retries=0).models.list()
    client = OpenAI(base_url=f"{keyed.url}/v1", api_key=KEY, max_retries=0)
    assert [m.id for m in client.models.list()] == ["rader-agent"]
    health = httpx.get(f"{keyed.url}/health", headers={"Authorization": f"Bearer {KEY}"}).json()
    assert health["auth"] is True and health["runs"]["concurrency"] == 1  # llm.parallel


def test_sigterm_drains_a_run_in_flight(keyed):
    client = OpenAI(base_url=f"{keyed.url}/v1", api_key=KEY, max_retries=0, timeout=RUN_TIMEOUT_S)
    stream = client.chat.completions.create(model="rader-agent", stream=True, extra_body={"rader": SHORT},
                                            messages=[{"role": "user", "content": "What is $8 + 8$?"}])
    chunks = [next(stream)]
    trajectory_id = chunks[0].model_extra["rader"]["trajectory_id"]
    keyed.process.send_signal(signal.SIGTERM)
    chunks += list(stream)  # the run goes on to its end
    assert chunks[-1].model_extra["rader"]["event"] == "end"
    keyed.process.wait(RUN_TIMEOUT_S)
    stored = keyed.stored(trajectory_id)
    assert stored.status in ("done", "budget_exhausted") and len(stored.steps) == 1
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{keyed.url}/health")


def test_sigterm_stops_runs_in_flight_and_stores_them_interrupted(server):
    """With serve.drain_seconds = 0 a SIGTERM stops the runs at once: their streams end properly,
    saying so, and the store holds them ``interrupted``; none stays ``running``."""
    body = {"model": "rader-agent", "stream": True, "messages": [{"role": "user", "content": LONG_PROBLEM}],
            "rader": LONG_RUN}
    url = f"{server.url}/v1/chat/completions"
    with httpx.stream("POST", url, json=body, timeout=RUN_TIMEOUT_S) as response:
        events = sse_events(response)
        trajectory_id = next(events)["rader"]["trajectory_id"]
        wait_runs(server, in_flight=1, queued=0)
        server.process.send_signal(signal.SIGTERM)
        rest = list(events)
    assert rest[-1] is None  # [DONE]
    end = rest[-2]["rader"]
    assert end["event"] == "end" and end["status"] == "interrupted" and "shutting down" in end["stop_reason"]
    assert rest[-2]["choices"][0]["finish_reason"] == "length"
    assert server.process.wait(RUN_TIMEOUT_S) in (0, -signal.SIGTERM)
    stopped = server.stored(trajectory_id)
    assert stopped.status == "interrupted" and stopped.finished_at
    assert not server.store.list(status="running")
    assert "Traceback" not in server.log.read_text()
    with pytest.raises(APIError):
        OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0, timeout=5).models.list()
