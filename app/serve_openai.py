"""The OpenAI-compatible chat API: ``GET /v1/models`` and ``POST /v1/chat/completions``.

The one model, ``rader-agent``, runs the whole agent graph on the last user message (earlier
messages are not part of the problem). Per-request choices go in the extra field
``rader: {"retriever": "hybrid", "max_steps": 6, "answer": "5", ...}`` (`RunOptions`); the other
OpenAI parameters are accepted and ignored, except ``n`` (must be 1). ``stream: true`` answers
Server-Sent Events: each step's reasoning as it is written, then the theorems it retrieved with
the model's verdicts and its sympy checks, ending with the boxed answer. Chunks about a step carry
``rader: {"event": "step", "number": N, "step": {...}}``; the first carries the trajectory id, the
last ``rader: {"event": "end", "trajectory_id", "status", "final_answer", "verified", "usage", ...}``.
``usage`` holds the tokens the run recorded for its steps, as the model server reported them
(``stream_options.include_usage`` adds OpenAI's usage chunk). A client that disconnects stops
its run, which is stored ``interrupted``.

Example:
    >>> from openai import OpenAI
    >>> client = OpenAI(base_url="http://127.0.0.1:8765/v1", api_key="none")  # doctest: +SKIP
    >>> reply = client.chat.completions.create(  # doctest: +SKIP
    ...     model="rader-agent", messages=[{"role": "user", "content": "2x + 3 = 11. Find x."}],
    ...     extra_body={"rader": {"retriever": "bm25", "max_steps": 4}})
    >>> reply.choices[0].message.content.splitlines()[-1]  # doctest: +SKIP
    '**Answer:** $\\\\boxed{4}$ (not checked: no gold answer)'
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from rader.app.serve_core import NotFound, RunOptions, ServeError, Service, refusal
from rader.app.serve_http import error_body
from rader.app.serve_render import Piece, trajectory_text
from rader.app.serve_runs import Run
from rader.retriever import RaderError

MODEL_ID = "rader-agent"
HEARTBEAT_S = 10.0  # a comment line this often keeps a quiet stream (a long prefill) open
FINISH_REASONS = {"done": "stop", "budget_exhausted": "length", "interrupted": "length"}
router = APIRouter(prefix="/v1")
STARTED = int(time.time())


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class ChatRequest(BaseModel):
    """OpenAI's chat request; other OpenAI parameters (temperature, ...) are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = 1
    rader: RunOptions = Field(default_factory=RunOptions)


def problem_text(messages: list[ChatMessage]) -> str:
    """The last user message's text: the problem the agent solves."""
    for message in reversed(messages):
        if message.role != "user":
            continue
        if isinstance(message.content, list):
            kinds = {part.get("type") for part in message.content} - {"text"}
            if kinds:
                raise ServeError(f"only text content is supported, not {', '.join(map(str, sorted(kinds)))}",
                                 param="messages")
            return "\n".join(str(part.get("text") or "") for part in message.content)
        return message.content or ""
    raise ServeError("no user message: the last user message is the problem to solve", param="messages")


def model_card() -> dict[str, Any]:
    return {"id": MODEL_ID, "object": "model", "created": STARTED, "owned_by": "rader"}


@router.get("/models")
async def list_models(request: Request) -> dict[str, Any]:
    service: Service = request.app.state.service
    card = {**model_card(), "rader": {"llm": service.settings.llm.model,
                                      "retriever": service.settings.agent.retriever}}
    return {"object": "list", "data": [card]}


@router.get("/models/{model}")
async def get_model(model: str) -> dict[str, Any]:
    if model != MODEL_ID:
        raise NotFound(f"unknown model {model!r}; this server serves {MODEL_ID!r}", param="model",
                       code="model_not_found")
    return model_card()


class _Pieces:
    """The pieces of one run as the worker thread emits them, read from the event loop."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[Piece] = asyncio.Queue()
        self._next: asyncio.Task[Piece] | None = None

    def emit(self, piece: Piece) -> None:  # called from the worker thread
        self.loop.call_soon_threadsafe(self.queue.put_nowait, piece)

    async def next(self, timeout: float) -> Piece | None:
        """The next piece, or None after ``timeout`` s of silence (the wait goes on at the next call)."""
        if self._next is None:
            self._next = asyncio.ensure_future(self.queue.get())
        done, _ = await asyncio.wait({self._next}, timeout=timeout)
        if not done:
            return None
        piece, self._next = self._next.result(), None
        return piece

    def close(self) -> None:
        if self._next is not None:
            self._next.cancel()


def _is_end(piece: Piece) -> bool:
    return bool(piece.event) and piece.event.get("event") == "end"


def _result(run: Run) -> tuple[str, dict[str, Any], dict[str, Any]]:
    status = run.trajectory.status if run.trajectory is not None else "error"
    return FINISH_REASONS.get(status, "stop"), run.summary(), run.usage


@router.post("/chat/completions")
async def chat_completions(body: ChatRequest, request: Request) -> Response:
    service: Service = request.app.state.service
    if body.model != MODEL_ID:
        raise NotFound(f"unknown model {body.model!r}; this server serves {MODEL_ID!r} (GET /v1/models)",
                       param="model", code="model_not_found")
    if body.n != 1:
        raise ServeError("n must be 1: one agent run answers one request", param="n")
    problem = problem_text(body.messages)
    pieces = _Pieces()
    try:
        run = await anyio.to_thread.run_sync(lambda: service.start_run(
            problem, body.rader, emit=pieces.emit, live_tokens=body.stream, source="openai"))
    except RaderError as err:
        raise refusal(err) from None
    headers = {"X-Rader-Trajectory-Id": run.id}
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return StreamingResponse(_stream(run, pieces, include_usage), media_type="text/event-stream",
                                 headers={**headers, "Cache-Control": "no-cache"})
    try:
        while True:
            piece = await pieces.next(HEARTBEAT_S)
            if piece is None:
                if await request.is_disconnected():
                    run.stop("the client disconnected")
                    return Response(status_code=499)
            elif _is_end(piece):
                break
    finally:
        pieces.close()
        if not run.finished:
            run.stop("the client disconnected")
    if run.error:
        return JSONResponse(error_body(run.error, "server_error"), status_code=500, headers=headers)
    finish, summary, usage = _result(run)
    return JSONResponse({
        "id": f"chatcmpl-{run.id}", "object": "chat.completion", "created": int(time.time()),
        "model": MODEL_ID,
        "choices": [{"index": 0, "message": {"role": "assistant",
                                             "content": trajectory_text(run.trajectory, service.title_of)},
                     "finish_reason": finish, "logprobs": None}],
        "usage": usage, "rader": summary,
    }, headers=headers)


async def _stream(run: Run, pieces: _Pieces, include_usage: bool) -> AsyncIterator[str]:
    created = int(time.time())

    def chunk(delta: dict[str, Any] | None, finish: str | None = None, extra: dict[str, Any] | None = None,
              usage: dict[str, Any] | None = None) -> str:
        data: dict[str, Any] = {"id": f"chatcmpl-{run.id}", "object": "chat.completion.chunk",
                                "created": created, "model": MODEL_ID,
                                "choices": [] if delta is None else
                                [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}
        if usage is not None:
            data["usage"] = usage
        if extra is not None:
            data["rader"] = extra
        return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"

    try:
        yield chunk({"role": "assistant", "content": ""}, extra={"event": "start", "trajectory_id": run.id})
        while True:
            piece = await pieces.next(HEARTBEAT_S)
            if piece is None:
                yield ": keep-alive\n\n"  # a comment line; a gone client fails the write
                continue
            if _is_end(piece):
                break
            yield chunk({"content": piece.text} if piece.text else {}, extra=piece.event)
        if run.error:
            yield f"data: {json.dumps(error_body(run.error, 'server_error'))}\n\n"
        else:
            finish, summary, usage = _result(run)
            yield chunk({}, finish, extra={"event": "end", **summary, "usage": usage})
            if include_usage:
                yield chunk(None, usage=usage)
        yield "data: [DONE]\n\n"
    finally:
        pieces.close()
        if not run.finished:  # the client went away (or the server is stopping): end the run
            run.stop("the client disconnected")
