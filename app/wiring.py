"""From settings to working parts: the corpus in force and its retriever."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from functools import cache
from typing import TYPE_CHECKING

from rader.agent.parts import AgentParts
from rader.app.settings import Settings
from rader.retriever import RETRIEVER_NAMES, CorpusStore, RaderError

if TYPE_CHECKING:  # indexes and encoders load when a command opens a retriever, not at start-up
    from rader.retriever import Corpus, Encoder, Retriever

AGENT_RETRIEVERS = ("none", *RETRIEVER_NAMES)


def configure_logging(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("bm25s").setLevel(max(logging.WARNING, logging.getLevelName(settings.log_level)))
    if not settings.show_progress:
        os.environ["RADER_NO_PROGRESS"] = "1"
        os.environ["TQDM_DISABLE"] = "1"


def corpus_from_settings(settings: Settings) -> Corpus:
    return CorpusStore(settings.home).load_many(settings.corpora)


def example_corpus_from_settings(settings: Settings) -> Corpus:
    """The worked examples of ``example_corpora``, merged."""
    return CorpusStore(settings.home).load_many(settings.example_corpora)


@cache
def shared_encoder(name: str, batch_size: int) -> Encoder:
    """One loaded encoder per process: dense and hybrid retrievers (and eval) share it."""
    from rader.retriever import load_encoder

    return load_encoder(name, batch_size=batch_size)


def retriever_from_settings(settings: Settings, corpus: Corpus | None = None,
                            kind: str | None = None) -> Retriever:
    from rader.retriever import open_retriever

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


def agent_name(theorems: str, examples: str) -> str:
    """The retriever a run records: the theorem retriever, with ``+examples`` when examples are on."""
    if examples == "none":
        return theorems
    return "examples" if theorems == "none" else f"{theorems}+examples"


def examples_from_settings(settings: Settings, kind: str, exclude: Iterable[str] = ()) -> Retriever:
    """The worked-example retriever over ``example_corpora`` (never returning ``exclude``)."""
    engine = retriever_from_settings(settings, corpus=example_corpus_from_settings(settings), kind=kind)
    exclude = set(exclude)
    return engine.excluding(exclude) if exclude else engine


def agent_from_settings(settings: Settings, *, retriever: str | None = None, examples: str | None = None,
                        exclude_examples: Iterable[str] = (), progress=None) -> AgentParts:
    """The compiled graph and what it was built from, as the settings describe them:
    ``retriever`` for theorems and ``examples`` for worked examples (each a retriever kind or
    "none"; default: settings), ``exclude_examples`` ids never shown as examples."""
    from rader.agent.graph import build_graph
    from rader.agent.llm import chat_models
    from rader.agent.llm.catalog import resolve_model

    kind = retriever or settings.agent.retriever
    example_kind = examples or settings.agent.examples
    for value in (kind, example_kind):  # before anything loads: a typo costs no model start-up
        if value not in AGENT_RETRIEVERS:
            raise RaderError(f"unknown retriever {value!r}; choose one of {', '.join(AGENT_RETRIEVERS)}")
    llm_config = settings.llm.config()
    if llm_config.backend == "llamacpp":  # fetch first, with the caller's progress bar
        resolve_model(llm_config.model, settings.home, progress=progress)
    llm, aux_llm = chat_models(llm_config, home=settings.home)
    engine = None if kind == "none" else retriever_from_settings(settings, kind=kind)
    solved = (None if example_kind == "none"
              else examples_from_settings(settings, example_kind, exclude_examples))
    config = settings.agent.config()
    graph = build_graph(llm=llm, retriever=engine, settings=config, examples=solved, aux_llm=aux_llm)
    return AgentParts(graph, llm_config.model, agent_name(kind, example_kind), engine, llm, solved, aux_llm,
                      config)


def graphs_by_sample(settings: Settings, retriever: str, seed: int = 0, examples: str | None = None):
    """Build the agent once; return ``sample -> graph`` whose model calls use seed ``seed + sample``
    (samples differ only when the temperature is above zero): the one compiled graph, bound to a
    run-time context whose chat models carry the sample's seed. Picklable with its arguments,
    so Ray workers call it to build their own agent."""
    import dataclasses

    parts = agent_from_settings(settings, retriever=retriever, examples=examples)
    context = parts.context()

    @cache  # one context per sample, however many problems it runs
    def graph_for_sample(sample: int):
        if settings.llm.temperature <= 0:
            return parts.graph
        seeded = dataclasses.replace(context, llm=parts.llm.bind(seed=seed + sample),
                                     aux_llm=parts.aux_llm.bind(seed=seed + sample))
        return parts.graph.bind(context=seeded)

    return graph_for_sample
