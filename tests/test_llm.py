"""LLM runtimes: the catalog, llama.cpp in-process, and a real OpenAI-compatible server."""

from __future__ import annotations

import hashlib

import pytest
from conftest import MODEL_CACHE
from langchain_core.messages import HumanMessage

from rader.agent.llm import LLMConfig, chat_model, llamacpp_server
from rader.agent.llm.catalog import CATALOG, fetch, resolve_model
from rader.retriever import RaderError


def test_catalog_fetch_is_checked_and_cached(smollm_path):
    entry = CATALOG["smollm2-135m"]
    assert smollm_path.stat().st_size == entry.size
    digest = hashlib.sha256(smollm_path.read_bytes()).hexdigest()
    assert digest == entry.sha256
    assert fetch("smollm2-135m", MODEL_CACHE) == smollm_path  # cached: no second download
    assert resolve_model("smollm2-135m", MODEL_CACHE) == smollm_path
    assert resolve_model(str(smollm_path), "/nonexistent") == smollm_path


def test_model_errors_are_clear(tmp_path):
    with pytest.raises(RaderError, match=r"unknown model 'gpt-9'.*catalog"):
        resolve_model("gpt-9", tmp_path)
    with pytest.raises(RaderError, match="model file not found"):
        resolve_model(str(tmp_path / "absent.gguf"), tmp_path)
    with pytest.raises(RaderError, match="not fetched"):
        resolve_model("qwen2.5-coder-0.5b", tmp_path, fetch_missing=False)
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF but not really" * 100)
    with pytest.raises(RaderError, match=r"llama\.cpp could not load"):
        chat_model(LLMConfig(model=str(bad)), home=tmp_path)
    with pytest.raises(RaderError, match="needs a server URL"):
        chat_model(LLMConfig(backend="openai"), home=tmp_path)


def test_llamacpp_chat_model_counts_tokens_and_stops(smol_llm):
    reply = smol_llm.invoke([HumanMessage("List the numbers 1, 2, 3, 4, 5, one per line.")],
                            max_tokens=40, stop=["3"])
    assert "3" not in reply.content
    usage = reply.usage_metadata
    assert usage["input_tokens"] > 0 and 0 < usage["output_tokens"] <= 40


def test_streaming_tokens(smol_llm):
    chunks = list(smol_llm.stream([HumanMessage("Say hello to the world.")], max_tokens=12))
    assert len(chunks) > 2
    assert "".join(c.content for c in chunks).strip()


def test_seed_makes_sampling_repeatable(smollm_path):
    llm = chat_model(LLMConfig(model=str(smollm_path), temperature=0.9, seed=7, max_tokens=16,
                               context=2048), home=MODEL_CACHE)
    prompt = [HumanMessage("Write a random word.")]
    assert llm.invoke(prompt).content == llm.invoke(prompt).content


def test_openai_compatible_backend_against_a_real_local_server(smollm_path):
    """xllamacpp's own HTTP server on 127.0.0.1, reached as any OpenAI-compatible server."""
    server = llamacpp_server(smollm_path, context=2048)
    assert server.base_url.startswith("http://127.0.0.1:")
    llm = chat_model(LLMConfig(backend="openai", base_url=server.base_url, model="smollm2",
                               max_tokens=8), home=MODEL_CACHE)
    reply = llm.invoke([HumanMessage("What is 2+2?")])
    assert reply.content and reply.usage_metadata["output_tokens"] <= 8


def test_the_short_calls_leave_the_solutions_cached_prefix_alone(smollm_path):
    """`chat_models` on llama.cpp: the solution on slot 0, queries and verdicts on slot 1, so a
    retrieval in the middle of a solution costs no re-processing of the solution so far."""
    from langchain_core.messages import AIMessage, SystemMessage

    from rader.agent.llm import chat_models

    prompt = [SystemMessage("Solve step by step."),
              HumanMessage("Count the ways to choose 3 of 10 people. " * 20)]

    def reused(solution, short) -> tuple[int, int]:
        first = solution.invoke(prompt).usage_metadata
        short.invoke([SystemMessage("Answer yes or no."), HumanMessage("Is 7 prime? " * 30)])
        again = solution.invoke([*prompt, AIMessage("We use the binomial coefficient.")]).usage_metadata
        return again["input_token_details"]["cache_read"], first["input_tokens"]

    config = LLMConfig(model=str(smollm_path), max_tokens=4, context=2048)
    solution, short = chat_models(config, home=MODEL_CACHE)
    assert solution.extra_body == {"id_slot": 0} and short.extra_body == {"id_slot": 1}
    cached, prompt_tokens = reused(solution, short)
    assert cached >= prompt_tokens - 1


def test_a_text_started_afresh_evaluates_its_whole_prompt(smollm_path, tmp_path):
    """llama.cpp gives slightly different logits for a prompt read partly from its cache, so a
    fresh start (`write` with no solution yet, the bare call) asks it to evaluate the whole
    prompt: the same prompt again reads nothing from the cache and gives the same text, while a
    continuation still reuses the cached prefix. Other runtimes get no such option."""
    from rader.agent.calls import write
    from rader.agent.llm import chat_models
    from rader.agent.llm.chat import whole_prompt_options

    system, user = "Reply with one word.", "Is 7 a prime number? Say yes or no. " * 10
    config = LLMConfig(model=str(smollm_path), max_tokens=16, context=2048)
    solution, _ = chat_models(config, home=MODEL_CACHE)
    default = [solution.invoke([HumanMessage(user)]).usage_metadata for _ in range(2)]
    assert default[1]["input_token_details"]["cache_read"] > 0  # what llama.cpp does unasked
    # a short reply that ends before max_tokens, so the stream's usage chunk arrives
    first, again = (write(solution, system, user, "", max_tokens=64, cut=lambda text: None) for _ in range(2))
    assert again.ended
    assert again.usage.prompt > 0 and again.usage.cached == 0 and again.text == first.text
    more = write(solution, system, user, first.text, max_tokens=4, cut=lambda text: None)
    assert more.usage.cached > 0
    assert whole_prompt_options(solution) == {"extra_body": {"id_slot": 0, "cache_prompt": False}}
    server = chat_model(LLMConfig(backend="openai", base_url="http://127.0.0.1:9/v1", model="m"),
                        home=tmp_path)
    assert whole_prompt_options(server) == {}


def test_a_text_written_to_its_budget_keeps_its_usage(smol_llm, tmp_path):
    """At ``max_tokens`` the server ends the stream itself, so the call's usage (prompt tokens,
    the cached part among them) is read, not lost with a closed stream; a server that writes
    past the limit is still stopped there."""
    from scripted import ScriptedServer

    from rader.agent.calls import write

    system, user = "Count.", "Count from 1 to 100, one number a line."
    full = write(smol_llm, system, user, "", max_tokens=6, cut=lambda text: None)
    assert not full.ended and full.usage.completion == 6 and full.usage.prompt > 0
    with ScriptedServer(lambda messages, body: "one two three " * 40) as server:
        llm = chat_model(LLMConfig(backend="openai", base_url=server.url, model="m"), home=tmp_path)
        past = write(llm, system, user, "", max_tokens=5, cut=lambda text: None)
    assert not past.ended and past.chunks == 5 and len(past.text) == 5 * 8  # pieces of 8 characters
