"""Options and settings shared by several commands, defined once so their names and help agree."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from rader.app.settings import Settings, load_settings
from rader.app.terminal import quiet_library_progress
from rader.app.wiring import configure_logging
from rader.retriever import HeldOut

HeldOutByOpt = Annotated[str | None, typer.Option(
    help="split the rows by a seeded hash of this field (e.g. theorem): harvest skips the held-out "
    "part, eval scores only it, so a gain there is generalisation")]
HeldOutFractionOpt = Annotated[float, typer.Option(help="share of --held-out-by values held out")]
ModelOpt = Annotated[str | None, typer.Option(help="catalog name or .gguf path")]
JsonOpt = Annotated[bool, typer.Option(
    "--json", help="print what the table shows as JSON on stdout, and nothing else there")]


def settings_for(ctx: typer.Context, **overrides: Any) -> Settings:
    """Settings with this command's flags on top; ``retriever_*`` keys go to that section,
    and ``llm=`` / ``agent=`` take dicts for theirs. Logging and progress bars follow them."""
    cli = dict(ctx.obj["cli"])
    section = {k.removeprefix("retriever_"): v for k, v in overrides.items()
               if k.startswith("retriever_") and v is not None}
    cli.update({k: v for k, v in overrides.items() if not k.startswith("retriever_")})
    if section:
        cli["retriever"] = section
    settings, _ = load_settings(cli, config_file=ctx.obj["config"])
    configure_logging(settings)
    if not settings.show_progress:
        quiet_library_progress()
    return settings


def held_out_from(by: str | None, fraction: float) -> HeldOut | None:
    return HeldOut(by, fraction) if by else None


def parse_levels(levels: str | None) -> set[int] | None:
    if not levels:
        return None
    try:
        return {int(level) for level in levels.split(",")}
    except ValueError:
        raise typer.BadParameter(f"levels must be comma-separated integers, got {levels!r}") from None
