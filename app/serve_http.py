"""The HTTP edge of `rader serve`: one JSON error shape, the API key, the body-size limit and
Prometheus metrics, as plain ASGI middleware (safe around streaming responses).

Every error is OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``, on /v1
and everywhere else alike; a bug answers 500 with a message and leaves its trace in the log.

Example:
    >>> error_body("no such model", "not_found_error", code="model_not_found")["error"]["code"]
    'model_not_found'
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rader.app.serve_core import ServeError

log = logging.getLogger(__name__)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
_STATUS_TYPES = {401: "authentication_error", 404: "not_found_error", 405: "invalid_request_error",
                 413: "invalid_request_error", 429: "rate_limit_error"}


def error_body(message: str, kind: str = "invalid_request_error", *, param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def error_response(status: int, message: str, kind: str | None = None, *, param: str | None = None,
                   code: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    kind = kind or _STATUS_TYPES.get(status, "invalid_request_error" if status < 500 else "server_error")
    return JSONResponse(error_body(message, kind, param=param, code=code), status_code=status,
                        headers=headers)


async def _send_json(send: Send, status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
    data = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data})


def _describe(errors: list[dict[str, Any]]) -> tuple[str, str | None]:
    """A one-line account of pydantic's validation errors, and the first offending field."""
    if any(e.get("type") == "json_invalid" for e in errors):
        detail = next(e for e in errors if e.get("type") == "json_invalid")
        return f"the body is not valid JSON ({detail.get('ctx', {}).get('error', 'malformed')})", None
    parts, param = [], None
    for e in errors[:5]:
        loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body")
        param = param or loc or None
        parts.append(f"{loc or 'body'}: {e.get('msg', 'invalid')}")
    return "invalid request: " + "; ".join(parts), param


def install_error_handlers(app: FastAPI) -> None:
    """Bad input answers a JSON error, never a traceback."""

    @app.exception_handler(ServeError)
    async def _refused(request: Request, err: ServeError) -> JSONResponse:
        headers = {"Retry-After": "5"} if err.status == 429 else None
        return error_response(err.status, str(err), err.kind, param=err.param, code=err.code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        message, param = _describe(list(err.errors()))
        return error_response(400, message, param=param)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, err: StarletteHTTPException) -> JSONResponse:
        message = str(err.detail)
        if err.status_code == 404 and message == "Not Found":
            message = f"no route {request.method} {request.url.path}; see GET /health and the README"
        elif err.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        return error_response(err.status_code, message, headers=getattr(err, "headers", None))

    @app.exception_handler(Exception)
    async def _bug(request: Request, err: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, f"internal error ({type(err).__name__}); the server log has the details",
                              "server_error")


class ApiKey:
    """Requires ``Authorization: Bearer KEY`` on every request when a key is set."""

    def __init__(self, app: ASGIApp, key: str | None) -> None:
        self.app, self.key = app, key.encode() if key else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.key is None:
            return await self.app(scope, receive, send)
        header = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, token = header.partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.key):
            return await self.app(scope, receive, send)
        message = ("missing API key: send `Authorization: Bearer KEY` (the server's serve.api_key)"
                   if not header else "wrong API key")
        await _send_json(send, 401, error_body(message, "authentication_error", code="invalid_api_key"),
                         {"WWW-Authenticate": "Bearer"})


class BodyLimit:
    """Refuses a request body over ``limit`` bytes with 413, declared or streamed."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        too_large = error_body(f"the request body is over {self.limit} bytes (serve.max_body_bytes)",
                               code="body_too_large")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await _send_json(send, 413, too_large)
        if declared is not None:  # a declared length is enforced by the server's HTTP parser
            return await self.app(scope, receive, send)
        chunks, size = [], 0  # chunked upload: read it here, up to the limit
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return
            size += len(message.get("body", b""))
            if size > self.limit:
                return await _send_json(send, 413, too_large)
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class Metrics:
    """Prometheus metrics of one server (its own registry, so servers in one process stay apart)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("rader_http_requests", "HTTP requests by route and status",
                                ["method", "route", "status"], registry=r)
        self.latency = Histogram("rader_http_request_duration_seconds", "HTTP request time (whole stream)",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.runs_in_flight = Gauge("rader_runs_in_flight", "agent runs in progress", registry=r)
        self.runs_queued = Gauge("rader_runs_queued", "agent runs waiting for a slot", registry=r)
        self.runs = Counter("rader_runs", "finished agent runs by status", ["status"], registry=r)
        self.run_seconds = Histogram("rader_run_duration_seconds", "agent run wall time",
                                     buckets=LATENCY_BUCKETS, registry=r)
        self.tokens = Counter("rader_tokens", "model tokens of agent runs", ["kind"], registry=r)
        self.queries = Counter("rader_retrieval_queries", "queries searched", ["retriever"], registry=r)

    def run_finished(self, run) -> None:
        status = run.trajectory.status if run.trajectory is not None else "error"
        self.runs.labels(status).inc()
        self.run_seconds.observe(run.seconds)
        usage = run.usage
        self.tokens.labels("prompt").inc(usage["prompt_tokens"])
        self.tokens.labels("completion").inc(usage["completion_tokens"])


class MetricsMiddleware:
    """Counts and times every request under its route's template (unknown paths as ``other``)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), 500

        async def observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            route = getattr(scope.get("route"), "path", None) or (
                scope["path"] if scope["path"] == "/mcp" else "other")
            self.metrics.requests.labels(scope["method"], route, str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - started)
