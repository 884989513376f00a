"""What the page needs from the rest of rader, handed to it by the composition root.

The page imports nothing from `rader.app`: `rader ui` (app/cli_ui.py) builds a `PageBackend`
from the settings (the store, the defaults its controls show, how to build the agent for a
student's choices) and passes it to `rader.ui.build_app` or `rader.ui.serve`. A developer
who hosts the page in their own process builds one the same way.

Example:
    >>> from rader.app.cli_ui import page_backend
    >>> from rader.app.settings import load_settings
    >>> backend = page_backend(load_settings(config_file=None)[0])  # doctest: +SKIP
    >>> serve(backend)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from rader.agent.parts import AgentParts
from rader.agent.store import TrajectoryStore
from rader.retriever import Theorem

Progress = Callable[[int, int | None], None]  # model bytes fetched so far, of how many


class RunChoices(NamedTuple):
    """What the student picked on the page; together they name one built agent."""

    retriever: str
    encoder: str
    model: str
    max_steps: int
    k: int
    max_seconds: float
    examples: str = "none"  # the worked-example retriever (none: no worked examples)


@dataclass(frozen=True, slots=True)
class PageDefaults:
    """What the page's controls show before the student changes them."""

    retriever: str
    examples: str
    encoder: str
    model: str
    models: tuple[str, ...]  # the model dropdown's choices
    max_steps: int
    k: int
    max_seconds: float


@dataclass(frozen=True, slots=True)
class PageServer:
    """Where the page is served and how many runs it takes at once."""

    host: str
    port: int
    share: bool  # also open a public gradio.live link
    concurrency: int  # runs at once
    queue_size: int  # runs waiting beyond those


@dataclass(frozen=True, slots=True)
class PageBackend:
    """The page's view of rader: its store, its defaults, and what it may ask for."""

    store: TrajectoryStore
    defaults: PageDefaults
    server: PageServer
    agent: Callable[[RunChoices, Progress | None], AgentParts]  # built (or kept) for the choices
    run_config: Callable[[RunChoices], dict[str, Any]]  # what a run records; RaderError if invalid
    encoders: Callable[[], list[str]]  # the encoder choices as they are now
    items: Callable[[], Iterable[Theorem]]  # the theorems and worked examples in force, for cards
