"""`rader ui`: the student's web page."""

from __future__ import annotations

from typing import Annotated

import typer


def register(app: typer.Typer, settings_for) -> None:
    @app.command()
    def ui(
        ctx: typer.Context,
        host: Annotated[str | None, typer.Option(help="address to bind (default 127.0.0.1)")] = None,
        port: Annotated[int | None, typer.Option(help="port (default 7860)")] = None,
        share: Annotated[bool | None, typer.Option(
            "--share/--no-share", help="also open a public gradio.live link")] = None,
        concurrency: Annotated[int | None, typer.Option(
            help="runs served at once (default: llm.parallel)")] = None,
    ) -> None:
        """Open the page: type or pick a problem and watch the agent solve it, step by step.

        Runs are stored like `rader solve` runs; the page's history reopens them, and the
        student's thumbs on theorem cards are stored as human relevance judgments.
        """
        from rader.ui import serve

        flags = {"host": host, "port": port, "share": share, "concurrency": concurrency}
        overrides = {key: value for key, value in flags.items() if value is not None}
        serve(settings_for(ctx, ui=overrides or None))
