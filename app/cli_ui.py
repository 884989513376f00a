"""`rader ui`: the student's web page, and the backend the settings give it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from rader.app.settings import AgentSettings, Settings
from rader.retriever import RaderError

if TYPE_CHECKING:
    from rader.agent.parts import AgentParts
    from rader.ui.backend import PageBackend, Progress, RunChoices

AGENTS_KEPT = 8  # built agents the page keeps, one per choice of retriever, model and budgets


def settings_with(settings: Settings, choices: RunChoices) -> Settings:
    """The settings in force with the page's choices on top (budgets validated like any)."""
    try:
        agent = AgentSettings.model_validate({**settings.agent.model_dump(), "max_steps": choices.max_steps,
                                              "k": choices.k, "max_seconds": choices.max_seconds})
    except ValueError as err:
        raise RaderError(f"invalid budget: {err}") from None
    return settings.model_copy(update={
        "agent": agent,
        "llm": settings.llm.model_copy(update={"model": choices.model}),
        "retriever": settings.retriever.model_copy(update={"encoder": choices.encoder}),
    })


def page_backend(settings: Settings) -> PageBackend:
    """What the page needs, from the settings: the store, the controls' defaults, the `[ui]`
    section, and the agents for the students' choices (a few kept; the model server is
    shared by all of them)."""
    from rader.agent.llm.catalog import CATALOG
    from rader.agent.parts import PartsCache
    from rader.app.wiring import agent_from_settings, corpus_from_settings, store_from_settings
    from rader.retriever import BUILTIN_ENCODERS, CorpusStore, registered_encoders
    from rader.ui.backend import PageBackend, PageDefaults, PageServer

    agents: PartsCache[AgentParts] = PartsCache(AGENTS_KEPT)

    def agent(choices: RunChoices, progress: Progress | None = None) -> AgentParts:
        """The parts for the choices, with the run's budgets as their config: parts are kept per
        retriever, encoder, model and example kind; budgets are a run's context."""
        chosen = settings_with(settings, choices)
        dense = {"dense", "hybrid"} & {choices.retriever, choices.examples}
        key = (choices.retriever, choices.encoder if dense else "", choices.model, choices.examples)
        parts = agents.get(key, lambda: agent_from_settings(chosen, retriever=choices.retriever,
                                                            examples=choices.examples, progress=progress))
        return parts._replace(config=chosen.agent.config())

    def run_config(choices: RunChoices) -> dict:
        chosen = settings_with(settings, choices)  # recorded like `rader solve` records its runs
        return {"llm": chosen.llm.model_dump(), "agent": chosen.agent.model_dump(),
                "retriever": chosen.retriever.model_dump(), "source": "ui"}

    def encoders() -> list[str]:  # a model registered after launch shows on the next page load
        names = [settings.retriever.encoder, *BUILTIN_ENCODERS, *registered_encoders(settings.home)]
        return list(dict.fromkeys(names))

    def items():
        examples = CorpusStore(settings.home).load_many(settings.example_corpora)
        return [*examples, *corpus_from_settings(settings)]

    agent_settings, ui = settings.agent, settings.ui
    defaults = PageDefaults(agent_settings.retriever, agent_settings.examples, settings.retriever.encoder,
                            settings.llm.model, tuple(dict.fromkeys([settings.llm.model, *CATALOG])),
                            agent_settings.max_steps, agent_settings.k, agent_settings.max_seconds)
    server = PageServer(ui.host, ui.port, ui.share, ui.concurrency or settings.llm.parallel, ui.queue_size)
    return PageBackend(store_from_settings(settings), defaults, server, agent, run_config, encoders, items)


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
        serve(page_backend(settings_for(ctx, ui=overrides or None)))
