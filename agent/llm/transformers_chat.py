"""The ``transformers`` runtime: a LangChain chat model over a Hugging Face checkpoint folder.

For HF checkpoints (safetensors), not GGUF: transformers dequantises GGUF to fp32, which is
~10x slower than llama.cpp on this CPU. Supports stop sequences (generation stops at them),
max tokens, temperature, seed, token streaming with token counts and a finish reason (the
last chunk), continuing an unfinished assistant message, and a stream closed early stops
the generation; no log-probabilities (the judge then reads the verdict word instead).

Example:
    >>> llm = TransformersChat(model_path="path/to/checkpoint", max_tokens=32)  # doctest: +SKIP
    >>> llm.invoke("What is 2+3?").usage_metadata["output_tokens"] <= 32  # doctest: +SKIP
    True
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from functools import cache
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

from rader.retriever import RaderError

_ROLES = {"human": "user", "ai": "assistant", "system": "system"}


@cache
def _load(model_path: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_path)
        model = AutoModelForCausalLM.from_pretrained(model_path)
    except (OSError, ValueError) as err:
        raise RaderError(f"transformers could not load a checkpoint from {model_path}: {err}") from err
    model.eval()
    return tokenizer, model


class TransformersChat(BaseChatModel):
    """Chat with a local Hugging Face causal LM through its chat template."""

    model_path: str
    max_tokens: int = 512
    temperature: float = 0.0
    seed: int = 0

    @property
    def _llm_type(self) -> str:
        return "rader-transformers"

    def _inputs(self, messages: list[BaseMessage]):
        tokenizer, _ = _load(self.model_path)
        chat = [{"role": _ROLES.get(m.type, "user"), "content": str(m.content)} for m in messages]
        unfinished = bool(messages) and messages[-1].type == "ai"  # the agent continues its solution
        return tokenizer.apply_chat_template(chat, add_generation_prompt=not unfinished,
                                             continue_final_message=unfinished, return_tensors="pt",
                                             return_dict=True)

    def _generate_kwargs(self, inputs, stop: list[str] | None, watch: _Watch,
                         kwargs: dict[str, Any]) -> dict[str, Any]:
        import torch
        from transformers import StoppingCriteriaList

        temperature = kwargs.get("temperature", self.temperature)
        torch.manual_seed(kwargs.get("seed", self.seed))
        stops = {"stop_strings": stop, "tokenizer": _load(self.model_path)[0]} if stop else {}
        sampling = {"do_sample": temperature > 0, **({"temperature": temperature} if temperature > 0 else {})}
        return {**inputs, "max_new_tokens": watch.limit, "stopping_criteria": StoppingCriteriaList([watch]),
                **stops, **sampling}

    def _watch(self, inputs, kwargs: dict[str, Any]) -> _Watch:
        return _Watch(inputs["input_ids"].shape[1], kwargs.get("max_tokens", self.max_tokens))

    @staticmethod
    def _cut(text: str, stop: list[str] | None) -> str:
        for marker in stop or []:
            if marker in text:
                text = text[: text.index(marker)]
        return text

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager=None, **kwargs: Any) -> ChatResult:
        tokenizer, model = _load(self.model_path)
        inputs = self._inputs(messages)
        watch = self._watch(inputs, kwargs)
        output = model.generate(**self._generate_kwargs(inputs, stop, watch, kwargs))
        new_tokens = output[0][watch.prompt_tokens:]
        text = self._cut(tokenizer.decode(new_tokens, skip_special_tokens=True), stop)
        message = AIMessage(text, usage_metadata=watch.usage(), response_metadata=watch.finish())
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager=None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        from transformers import TextIteratorStreamer

        tokenizer, model = _load(self.model_path)
        inputs = self._inputs(messages)
        watch = self._watch(inputs, kwargs)
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
        worker = threading.Thread(target=model.generate, kwargs={
            **self._generate_kwargs(inputs, stop, watch, kwargs), "streamer": streamer})
        worker.start()
        text = ""
        try:
            for piece in streamer:
                combined = text + piece
                cut = self._cut(combined, stop)
                delta, text = cut[len(text):], cut
                if delta:
                    chunk = ChatGenerationChunk(message=AIMessageChunk(delta))
                    if run_manager:
                        run_manager.on_llm_new_token(delta, chunk=chunk)
                    yield chunk
                if len(cut) < len(combined):  # a stop sequence appeared
                    break
        finally:  # the text is complete, or the caller closed the stream: generation ends too
            watch.cancelled.set()
            worker.join()
        yield ChatGenerationChunk(message=AIMessageChunk("", usage_metadata=watch.usage(),
                                                         response_metadata=watch.finish()))


class _Watch:
    """A stopping criterion that sees every generation step: it counts the tokens generated so
    far (the stream's usage) and stops the generation once the stream's reader is gone."""

    def __init__(self, prompt_tokens: int, limit: int) -> None:
        self.prompt_tokens, self.limit, self.generated = prompt_tokens, limit, 0
        self.cancelled = threading.Event()

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        self.generated = input_ids.shape[1] - self.prompt_tokens
        return torch.full((input_ids.shape[0],), self.cancelled.is_set(), dtype=torch.bool)

    def usage(self) -> UsageMetadata:
        return UsageMetadata(input_tokens=self.prompt_tokens, output_tokens=self.generated,
                             total_tokens=self.prompt_tokens + self.generated)

    def finish(self) -> dict[str, str]:
        return {"finish_reason": "length" if self.generated >= self.limit else "stop"}
