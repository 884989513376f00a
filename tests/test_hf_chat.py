"""The transformers runtime on a real Hugging Face checkpoint (SmolLM2 converted from GGUF)."""

from __future__ import annotations

import threading

import pytest
from langchain_core.messages import HumanMessage

from rader.agent import AgentConfig, LLMConfig, build_graph, chat_model
from rader.retriever import RaderError


@pytest.fixture(scope="module")
def hf_llm(smollm_hf_folder, tmp_path_factory):
    return chat_model(LLMConfig(backend="transformers", model=str(smollm_hf_folder), max_tokens=24),
                      home=tmp_path_factory.mktemp("home"))


def test_invoke_counts_tokens_and_honours_limits(hf_llm):
    reply = hf_llm.invoke([HumanMessage("List the numbers from 1 to 9, separated by commas.")])
    assert reply.content.strip()
    usage = reply.usage_metadata
    assert usage["input_tokens"] > 5 and 0 < usage["output_tokens"] <= 24
    cut = hf_llm.invoke([HumanMessage("List the numbers from 1 to 9, separated by commas.")], stop=["5"])
    assert "5" not in cut.content


def test_streams_tokens(hf_llm):
    chunks = list(hf_llm.stream([HumanMessage("Say hello.")], max_tokens=8))
    assert len(chunks) >= 2 and "".join(c.content for c in chunks).strip()


def test_graph_runs_on_the_transformers_backend(hf_llm):
    settings = AgentConfig(max_steps=1, solution_tokens=24)
    state = build_graph(llm=hf_llm, retriever=None, settings=settings).invoke(
        {"problem": {"id": "p", "text": "What is 2 + 3?", "answer": "5"}})
    assert state["status"] in ("done", "budget_exhausted") and len(state["steps"]) == 1


def test_a_folder_that_is_no_checkpoint_is_a_clear_error(tmp_path):
    llm = chat_model(LLMConfig(backend="transformers", model=str(tmp_path)), home=tmp_path)
    with pytest.raises(RaderError, match="transformers could not load"):
        llm.invoke("hi")


def test_generation_stops_at_a_stop_sequence_and_a_closed_stream(hf_llm):
    prompt = [HumanMessage("List the numbers from 1 to 30, separated by commas.")]
    whole = hf_llm.invoke(prompt, max_tokens=40).usage_metadata["output_tokens"]
    stopped = hf_llm.invoke(prompt, max_tokens=40, stop=["3"])
    assert "3" not in stopped.content
    assert stopped.usage_metadata["output_tokens"] < whole  # generation stopped there, not cut after
    assert stopped.response_metadata["finish_reason"] == "stop"
    threads = threading.active_count()
    stream = hf_llm.stream(prompt, max_tokens=40)
    next(stream)
    assert threading.active_count() == threads + 1  # the generation's worker
    stream.close()  # the reader is gone: the worker ends now, not at the token limit
    assert threading.active_count() == threads


def test_a_stream_reports_usage_and_a_budget_triggers(hf_llm):
    from functools import reduce

    chunks = list(hf_llm.stream([HumanMessage("Count from 1 to 50.")], max_tokens=12))
    whole = reduce(lambda a, b: a + b, chunks)
    assert whole.usage_metadata["output_tokens"] == 12 and whole.usage_metadata["input_tokens"] > 5
    assert whole.response_metadata["finish_reason"] == "length"
    state = build_graph(llm=hf_llm, settings=AgentConfig(solution_tokens=12, force_answer=False)).invoke(
        {"problem": {"id": "p", "text": "Count from 1 to 50, one number per line."}})
    assert 0 < state["solution_tokens"] <= 12 + 1 and "solution_tokens" in (state.get("stop_reason") or "")
