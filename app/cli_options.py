"""Options shared by several commands, defined once so their names and help agree."""

from __future__ import annotations

from typing import Annotated

import typer

from rader.retriever import HeldOut

HeldOutByOpt = Annotated[str | None, typer.Option(
    help="split the rows by a seeded hash of this field (e.g. theorem): harvest skips the held-out "
    "part, eval scores only it, so a gain there is generalisation")]
HeldOutFractionOpt = Annotated[float, typer.Option(help="share of --held-out-by values held out")]


def held_out_from(by: str | None, fraction: float) -> HeldOut | None:
    return HeldOut(by, fraction) if by else None


def parse_levels(levels: str | None) -> set[int] | None:
    if not levels:
        return None
    try:
        return {int(level) for level in levels.split(",")}
    except ValueError:
        raise typer.BadParameter(f"levels must be comma-separated integers, got {levels!r}") from None
