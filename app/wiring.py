"""From settings to working parts: the corpus in force and its retriever."""

from __future__ import annotations

import logging
import os
from functools import cache
from typing import Any, NamedTuple

from rader.app.settings import Settings
from rader.retriever import Corpus, CorpusStore, Encoder, Retriever, load_encoder, open_retriever


def configure_logging(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("bm25s").setLevel(max(logging.WARNING, logging.getLevelName(settings.log_level)))
    if not settings.show_progress:
        os.environ["RADER_NO_PROGRESS"] = "1"
        os.environ["TQDM_DISABLE"] = "1"


def corpus_from_settings(settings: Settings) -> Corpus:
    return CorpusStore(settings.home).load_many(settings.corpora)


@cache
def shared_encoder(name: str, batch_size: int) -> Encoder:
    """One loaded encoder per process: dense and hybrid retrievers (and eval) share it."""
    return load_encoder(name, batch_size=batch_size)


def retriever_from_settings(settings: Settings, corpus: Corpus | None = None,
                            kind: str | None = None) -> Retriever:
    kind = kind or settings.retriever.kind
    options = settings.retriever.options(settings.home)
    return open_retriever(
        kind,
        corpus if corpus is not None else corpus_from_settings(settings),
        home=settings.home,
        options=options,
        encoder=None if kind == "bm25" else shared_encoder(options.encoder, options.batch_size),
        show_progress=settings.show_progress,
    )


def store_from_settings(settings: Settings, *, readonly: bool = False):
    """The trajectory store; ``readonly`` for commands that only read (they work on a full disk)."""
    from rader.agent.store import TrajectoryStore

    return TrajectoryStore(settings.home / "trajectories.db", readonly=readonly)


class AgentParts(NamedTuple):
    graph: Any
    model: str
    retriever_name: str
    retriever: Retriever | None
    llm: Any = None  # the chat model the graph calls


def agent_from_settings(settings: Settings, *, retriever: str | None = None, progress=None) -> AgentParts:
    """The compiled graph and what it was built from, as the settings describe them."""
    from rader.agent.graph import build_graph
    from rader.agent.llm import chat_model
    from rader.agent.models import resolve_model

    kind = retriever or settings.agent.retriever
    llm_config = settings.llm.config()
    if llm_config.backend == "llamacpp":  # fetch first, with the caller's progress bar
        resolve_model(llm_config.model, settings.home, progress=progress)
    llm = chat_model(llm_config, home=settings.home)
    engine = None if kind == "none" else retriever_from_settings(settings, kind=kind)
    graph = build_graph(llm=llm, retriever=engine, settings=settings.agent.config())
    return AgentParts(graph, llm_config.model, kind, engine, llm)


def graph_sampler(settings: Settings, retriever: str, seed: int = 0):
    """Build the agent once; return ``sample -> graph`` whose model calls use seed ``seed + sample``
    (samples differ only when the temperature is above zero). Picklable with its arguments,
    so Ray workers call it to build their own agent."""
    from rader.agent.graph import build_graph

    parts = agent_from_settings(settings, retriever=retriever)
    config = settings.agent.config()

    @cache  # one compiled graph per sample, however many problems it runs
    def graph_for_sample(sample: int):
        if settings.llm.temperature <= 0:
            return parts.graph
        return build_graph(llm=parts.llm.bind(seed=seed + sample), retriever=parts.retriever, settings=config)

    return graph_for_sample
