"""`rader serve`: the agent and the retriever as a service (HTTP, OpenAI API, MCP)."""

from __future__ import annotations

from typing import Annotated

import typer

from rader.app.terminal import download_progress, err_console


def register(app: typer.Typer, settings_for) -> None:
    @app.command()
    def serve(
        ctx: typer.Context,
        host: Annotated[str | None, typer.Option(
            help="address to bind (default 127.0.0.1; any other needs serve.api_key)")] = None,
        port: Annotated[int | None, typer.Option(help="port (default 8765; 0 picks a free one)")] = None,
        concurrency: Annotated[int | None, typer.Option(
            help="agent runs at once (default: llm.parallel)")] = None,
        queue_size: Annotated[int | None, typer.Option(
            help="runs that may wait for a slot; beyond them requests get HTTP 429")] = None,
        mcp_stdio: Annotated[bool, typer.Option(
            "--mcp-stdio", help="serve the MCP tools over stdin/stdout instead of HTTP")] = False,
    ) -> None:
        """Serve rader over HTTP: an OpenAI-compatible chat API (model `rader-agent` runs the agent),
        the Search-R1 retrieval contract (POST /retrieve), /search, /theorems/ID, MCP at /mcp,
        /health and /metrics.

        Binds 127.0.0.1 by default. The API key is read from settings only (RADER_SERVE__API_KEY or
        [serve] api_key), never from the command line, where other users could see it.
        """
        from rader.app.serve import check_bind, serve_mcp_stdio
        from rader.app.serve import serve as run_server
        from rader.app.serve_core import Service

        flags = {"host": host, "port": port, "concurrency": concurrency, "queue_size": queue_size}
        overrides = {key: value for key, value in flags.items() if value is not None}
        settings = settings_for(ctx, serve=overrides or None)
        if mcp_stdio:  # stdout is the protocol: nothing else may print there
            serve_mcp_stdio(settings)
            return
        check_bind(settings)
        service = Service(settings)
        progress, on_bytes = download_progress(settings.show_progress)
        err_console.print(f"loading {settings.llm.model} and the {settings.retriever.kind} retriever...",
                          highlight=False)
        with progress:
            service.warm_up(progress=on_bytes)

        def ready(url: str) -> None:
            err_console.print(f"rader serve: {url}  (OpenAI API {url}/v1, model rader-agent; "
                              f"MCP {url}/mcp; POST {url}/retrieve; {url}/health)", highlight=False)

        run_server(settings, service=service, on_ready=ready)
