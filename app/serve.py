"""`rader serve`: the agent and the retriever as one HTTP service (FastAPI on uvicorn).

Routes: ``/v1/models`` and ``/v1/chat/completions`` (OpenAI-compatible, `serve_openai`),
``/retrieve`` (Search-R1's retrieval-server contract), ``/search``, ``/theorems/{id}`` and
``/trajectories/{id}`` (`serve_retrieval`), MCP over streamable HTTP at ``/mcp`` (`serve_mcp`),
``/health`` and ``/metrics`` (Prometheus text). The ``[serve]`` settings section sets the
address, the API key, the run slots and queue, and the request limits.

It binds 127.0.0.1 unless told otherwise, and any other address needs ``serve.api_key``
(then every request needs ``Authorization: Bearer KEY``). On SIGTERM it stops accepting,
lets runs in flight finish for ``serve.drain_seconds``, then stops the rest, which are
stored ``interrupted``.

Example:
    >>> from rader.app.settings import load_settings
    >>> settings, _ = load_settings({"serve": {"port": 8765}}, config_file=None)
    >>> serve(settings)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.middleware import Middleware

from rader.app.serve_core import Service
from rader.app.serve_http import ApiKey, BodyLimit, Metrics, MetricsMiddleware, install_error_handlers
from rader.app.serve_mcp import build_mcp
from rader.app.serve_openai import router as openai_router
from rader.app.serve_retrieval import router as retrieval_router
from rader.app.settings import Settings
from rader.retriever import RaderError

log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (127.0.0.0/8, ::1, localhost).

    >>> is_loopback("127.0.0.1"), is_loopback("[::1]"), is_loopback("0.0.0.0")
    (True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(settings: Settings) -> None:
    """Refuse a non-loopback address without an API key: rader would be open to the network.

    >>> from rader.app.settings import load_settings
    >>> check_bind(load_settings({"serve": {"host": "0.0.0.0"}}, config_file=None)[0])
    Traceback (most recent call last):
    ...
    rader.retriever.errors.RaderError: refusing to bind 0.0.0.0: ...
    """
    serve = settings.serve
    if not is_loopback(serve.host) and serve.api_key is None:
        raise RaderError(
            f"refusing to bind {serve.host}: any address other than loopback opens rader to the network, "
            "so it needs an API key. Set one (RADER_SERVE__API_KEY=... or [serve] api_key in config.toml) "
            "and clients send `Authorization: Bearer KEY`; or keep --host 127.0.0.1.")
    if serve.api_key is not None and len(serve.api_key.get_secret_value()) < 8:
        raise RaderError("serve.api_key is too short: use at least 8 characters (16+ random ones is better)")


def create_app(settings: Settings, *, service: Service | None = None, warm_up: bool = True,
               on_ready: Callable[[], None] | None = None) -> FastAPI:
    """The service as an ASGI app (what `serve` runs; embedders can run it under their own server).

    >>> from fastapi.testclient import TestClient
    >>> from rader.app.settings import load_settings
    >>> with TestClient(create_app(load_settings(config_file=None)[0])) as http:  # doctest: +SKIP
    ...     http.get("/search", params={"q": "sum of the roots", "k": 1}).json()["hits"][0]["theorem_id"]
    'rader/algebra/vieta_quadratic'
    """
    service = service or Service(settings)
    metrics = Metrics()
    service.pool.on_finish = metrics.run_finished
    metrics.runs_in_flight.set_function(lambda: service.pool.in_flight)
    metrics.runs_queued.set_function(lambda: service.pool.queued)
    mcp = build_mcp(service)
    mcp_app = mcp.streamable_http_app(streamable_http_path="/mcp", host=settings.serve.host,
                                      max_request_body_size=settings.serve.max_body_bytes)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if warm_up:
            await anyio.to_thread.run_sync(service.warm_up)
        async with mcp.session_manager.run():
            if on_ready is not None:
                on_ready()
            yield
            # uvicorn has drained (or cancelled) the requests in flight: stop what is left
            left = await anyio.to_thread.run_sync(
                lambda: service.pool.close("the server is shutting down", settings.llm.timeout_s))
            for run in left:  # stuck in a model call: record them interrupted here
                try:
                    trajectory = service.store.get(run.id)
                    trajectory.mark_interrupted()
                    service.store.save(trajectory)
                except RaderError:
                    pass  # never started: nothing stored
            if left:
                log.warning("%d run(s) had not stopped at shutdown; stored as interrupted", len(left))

    app = FastAPI(
        title="rader", version=service.version, lifespan=lifespan,
        summary="Retrieval-augmented math reasoning: an OpenAI-compatible agent, theorem retrieval, MCP.",
        middleware=[Middleware(MetricsMiddleware, metrics=metrics),
                    Middleware(ApiKey, key=settings.serve.api_key.get_secret_value()
                               if settings.serve.api_key else None),
                    Middleware(BodyLimit, limit=settings.serve.max_body_bytes)],
    )
    app.state.service, app.state.metrics = service, metrics
    install_error_handlers(app)
    app.include_router(openai_router)
    app.include_router(retrieval_router)
    app.router.routes.extend(mcp_app.routes)  # POST/GET/DELETE /mcp, without a redirecting mount

    @app.get("/health")
    def health() -> JSONResponse:
        """Models loaded, corpora and index manifests, the store, the runs."""
        return JSONResponse(service.health())

    @app.get("/metrics")
    def prometheus(request: Request) -> Response:
        """Prometheus text: requests, latency histograms, runs in flight, tokens."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def bind(host: str, port: int) -> socket.socket:
    """A listening socket; port 0 takes a free one (its number is in ``getsockname()``)."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as err:
        sock.close()
        raise RaderError(f"cannot bind {host}:{port} ({err.strerror}); pick another --port") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(settings: Settings, *, service: Service | None = None,
          on_ready: Callable[[str], None] | None = None) -> None:
    """Run the HTTP service until SIGTERM or Ctrl-C; ``on_ready`` gets its URL once it answers.

    A ``service`` given is taken as warmed up; otherwise the model and default retrievers load
    before the first request is accepted.
    """
    import uvicorn

    check_bind(settings)
    if service is None:
        service = Service(settings)
        service.warm_up()
    sock = bind(settings.serve.host, settings.serve.port)
    host, port = sock.getsockname()[:2]
    url = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
    app = create_app(settings, service=service, warm_up=False,
                     on_ready=(lambda: on_ready(url)) if on_ready else None)
    drain = settings.serve.drain_seconds
    # a stopped run ends when its model call in flight returns: at most llm.timeout_s later
    config = uvicorn.Config(app, log_level=settings.log_level.lower(), access_log=False, lifespan="on",
                            timeout_graceful_shutdown=drain + settings.llm.timeout_s, proxy_headers=False)

    class Draining(uvicorn.Server):
        """On SIGTERM uvicorn stops accepting and waits for open requests; after ``drain`` s the
        runs still going are stopped, so their streams end properly (status ``interrupted``)."""

        async def shutdown(self, sockets=None) -> None:
            async def stop_late() -> None:
                await asyncio.sleep(drain)
                service.pool.close("the server is shutting down", timeout=0)

            late = asyncio.create_task(stop_late())
            try:
                await super().shutdown(sockets=sockets)
            finally:
                late.cancel()

    Draining(config).run(sockets=[sock])


def serve_mcp_stdio(settings: Settings) -> None:
    """The MCP tools over stdin/stdout (the model loads on the first ``solve``)."""
    mcp = build_mcp(Service(settings))
    mcp.run("stdio")
