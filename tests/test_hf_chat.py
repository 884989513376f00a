"""The transformers runtime on a real Hugging Face checkpoint (SmolLM2 converted from GGUF)."""

from __future__ import annotations

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
