"""Model calls as the graph makes them: one reply, or a solution streamed until the graph acts.

`write` continues the model's own solution: the text so far goes back as the assistant's
unfinished message (llama.cpp, vLLM and transformers continue it, reusing the cached
prefix), and the stream is cut where the graph has something to do (a tool request, or a
paragraph when a retrieval is due), so a solution the graph leaves alone is exactly the one
call the bare model would make.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from rader.agent.llm.chat import whole_prompt_options


class LLMFailure(Exception):
    """The model call failed (timeout, connection, server error) after its retries."""


@dataclass(slots=True)
class Usage:
    """Tokens of one call: prompt (of which ``cached`` came from the server's prompt cache)
    and completion."""

    prompt: int = 0
    completion: int = 0
    cached: int = 0

    @property
    def total(self) -> int:
        return self.prompt + self.completion

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.prompt + other.prompt, self.completion + other.completion,
                     self.cached + other.cached)

    @classmethod
    def of(cls, message: BaseMessage | None) -> Usage:
        usage = getattr(message, "usage_metadata", None) or {}
        details = usage.get("input_token_details") or {}
        return cls(int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0)),
                   int(details.get("cache_read", 0) or 0))


def chat(llm: BaseChatModel, system: str, user: str, **kwargs: Any) -> tuple[str, Usage, AIMessage]:
    """One reply to a system + user prompt."""
    try:
        message = llm.invoke([SystemMessage(system), HumanMessage(user)], **kwargs)
    except Exception as err:  # the clients raise many types; all end this call the same way
        raise LLMFailure(f"{type(err).__name__}: {str(err)[:200]}") from err
    text = message.content if isinstance(message.content, str) else str(message.content)
    return text, Usage.of(message), message


def chat_many(llm: BaseChatModel, prompts: list[tuple[str, str]], *, concurrency: int = 1,
              **kwargs: Any) -> list[tuple[str, Usage, AIMessage]]:
    """`chat` for several (system, user) prompts, ``concurrency`` at a time (a server that
    batches, such as vLLM, answers them together); the first failed call raises `LLMFailure`."""
    inputs = [[SystemMessage(system), HumanMessage(user)] for system, user in prompts]
    replies = llm.batch(inputs, config={"max_concurrency": concurrency}, return_exceptions=True, **kwargs)
    out = []
    for message in replies:
        if isinstance(message, Exception):
            raise LLMFailure(f"{type(message).__name__}: {str(message)[:200]}") from message
        out.append((message.content if isinstance(message.content, str) else str(message.content),
                    Usage.of(message), message))
    return out


def token_logprobs(message: BaseMessage) -> list[dict[str, Any]]:
    """The per-token log-probabilities a reply (or a streamed chunk of one) carries, in the
    OpenAI format (``token``, ``logprob``, ``top_logprobs``); empty when none were reported."""
    return ((message.response_metadata or {}).get("logprobs") or {}).get("content") or []


@dataclass(slots=True)
class Written:
    """What one `write` call added to the solution."""

    text: str
    usage: Usage
    ended: bool  # the model finished its text (end of generation) rather than being cut
    chunks: int  # streamed pieces: a token count where the server reports none (a cut stream)
    logprobs: list[float] = field(default_factory=list)  # each token's log-probability, if asked
    stopped: bool = False  # ``stop`` ended it: the text so far is not worth finishing


def write(llm: BaseChatModel, system: str, user: str, solution: str, *, max_tokens: int,
          cut: Callable[[str], int | None], logprobs: bool = False,
          stop: Callable[[list[float]], bool] | None = None, **options: Any) -> Written:
    """Continue ``solution`` (the assistant's unfinished message) for at most ``max_tokens``.

    ``cut(text)`` sees the new text as it streams and returns where to cut it (the graph acts
    there) or None to go on; the stream is then closed, which stops the server's generation.
    A server that echoes the unfinished message before its continuation is handled. With
    ``logprobs``, each streamed token's log-probability is kept, as far as the server reports
    them (llama.cpp, vLLM and OpenAI-compatible servers do; the transformers runtime does not),
    and ``stop(logprobs)``, when given, may end the stream there (``Written.stopped``).
    ``options`` go with the request (a ``temperature`` and ``seed`` of its own).
    """
    messages: list[BaseMessage] = [SystemMessage(system), HumanMessage(user)]
    if solution:
        messages.append(AIMessage(solution))
    else:  # a text started afresh: the same prompt gives the same text, whatever is cached
        options = {**whole_prompt_options(llm), **options}
    text, last, chunks, cut_at, finish, logprobs_seen, stopped = "", None, 0, None, None, [], False
    try:
        if logprobs:
            options["logprobs"] = True
        stream = llm.stream(messages, max_tokens=max_tokens, **options)
        for chunk in stream:
            last = chunk if getattr(chunk, "usage_metadata", None) else last
            finish = (chunk.response_metadata or {}).get("finish_reason") or finish
            logprobs_seen += [token["logprob"] for token in token_logprobs(chunk)]
            piece = chunk.content if isinstance(chunk.content, str) else ""
            if not piece:
                continue
            if chunks >= max_tokens:  # a server that writes past the limit: stop it there
                stream.close()
                break
            text += piece
            chunks += 1
            if solution and len(text) <= len(solution) and solution.startswith(text):
                continue  # an echo of the unfinished message, still arriving
            if solution and text.startswith(solution):
                text, chunks = text[len(solution):], 0
            cut_at = cut(text)
            stopped = cut_at is None and stop is not None and stop(logprobs_seen)
            if cut_at is not None or stopped:
                stream.close()  # closes the connection: the server stops generating
                break  # (at max_tokens the server ends the stream itself, with the call's usage)
    except Exception as err:
        raise LLMFailure(f"{type(err).__name__}: {str(err)[:200]}") from err
    if cut_at is not None:
        text = text[:cut_at]
    usage = Usage.of(last)
    if not usage.completion:
        usage.completion = chunks
    ended = cut_at is None and not stopped and finish != "length" and chunks < max_tokens
    return Written(text, usage, ended, chunks, logprobs_seen, stopped)
