"""What every face of `rader serve` shares: the settings, the store, loaded retrievers and agent
graphs, the run pool, the request limits, and the errors they raise.

The HTTP routes (OpenAI API, retrieval, health) and the MCP tools are thin layers over a
`Service`; so is `rader serve --mcp-stdio`.

Example:
    >>> from rader.app.settings import load_settings
    >>> service = Service(load_settings(config_file=None)[0])  # doctest: +SKIP
    >>> service.search(["sum of the roots of a quadratic"], k=1)[0][0].theorem_id  # doctest: +SKIP
    'rader/algebra/vieta_quadratic'
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from importlib.metadata import version
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rader.agent.parts import AgentParts, PartsCache
from rader.agent.records import Problem
from rader.app.serve_render import Piece
from rader.app.serve_runs import Busy, Job, Run, RunPool
from rader.app.settings import AgentSettings, Settings
from rader.app.wiring import (
    agent_from_settings,
    corpus_from_settings,
    retriever_from_settings,
    store_from_settings,
)
from rader.retriever import QUERY_KINDS, Corpus, Hit, IndexStore, Query, RaderError, Retriever, Theorem

log = logging.getLogger(__name__)
GRAPH_CACHE_SIZE = 16
Progress = Callable[[int, int | None], None]


class ServeError(RaderError):
    """A request the service refuses; ``status`` is its HTTP status, ``kind`` OpenAI's error type."""

    status = 400
    kind = "invalid_request_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.param, self.code = param, code


class NotFound(ServeError):
    status, kind = 404, "not_found_error"


class TooLarge(ServeError):
    status = 413


def refusal(err: Exception) -> ServeError:
    """The `ServeError` an error becomes at the service's edge (a full pool is HTTP 429)."""
    if isinstance(err, ServeError):
        return err
    if isinstance(err, Busy):
        refused = ServeError(str(err), code="queue_full")
        refused.status, refused.kind = 429, "rate_limit_error"
        return refused
    return ServeError(str(err))


class RunOptions(BaseModel):
    """Per-request choices for one agent run: the ``rader`` field of a chat request, and the
    arguments of the MCP ``solve`` tool. Unset fields keep the server's settings.

    Besides ``retriever`` and ``answer``, any field of the ``[agent]`` settings section may be
    given (``max_steps``, ``max_tokens``, ``max_seconds``, ``k``, ``judge``, ``examples``, ...);
    `AgentSettings` validates them, so a typo is refused by name. None of them names a file.

    >>> RunOptions.model_validate({"retriever": "bm25", "max_steps": 4}).agent_fields()
    {'max_steps': 4}
    """

    model_config = ConfigDict(extra="allow")

    retriever: Literal["none", "bm25", "dense", "hybrid"] | None = Field(
        None, description="theorem retriever of the run (none: no theorems)")
    answer: str | None = Field(None, max_length=1000, description="gold answer, to verify against")

    def agent_fields(self) -> dict[str, Any]:
        """The ``[agent]`` settings this request overrides."""
        return dict(self.model_extra or {})


def _check_text(text: str, what: str, limit: int, param: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise ServeError(f"{what} is empty: give some text", param=param)
    if len(text) > limit:
        raise ServeError(f"{what} has {len(text)} characters; the limit is {limit} "
                         f"(serve.max_{'problem' if what == 'the problem' else 'query'}_chars)", param=param)
    return text


class Service:
    """Loaded parts and limits, shared by the HTTP routes, the MCP tools and the run workers."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.limits = settings.serve
        self.store = store_from_settings(settings)
        self.pool = RunPool(settings.serve.concurrency or settings.llm.parallel, settings.serve.queue_size)
        self.version = version("rader")
        self._lock = threading.RLock()  # builds: two requests must not write one index at once
        self._corpus: Corpus | None = None
        self._retrievers: dict[str, Retriever] = {}
        self._parts: PartsCache[AgentParts] = PartsCache(GRAPH_CACHE_SIZE, lock=self._lock)

    # -- loaded parts ----------------------------------------------------------------------
    @property
    def corpus(self) -> Corpus:
        if self._corpus is None:
            with self._lock:
                if self._corpus is None:
                    self._corpus = corpus_from_settings(self.settings)
        return self._corpus

    def retriever(self, kind: str | None = None) -> Retriever:
        """The retriever of ``kind`` (default: ``retriever.kind``) over the corpora in force."""
        kind = kind or self.settings.retriever.kind
        if kind not in self._retrievers:
            with self._lock:
                if kind not in self._retrievers:
                    self._retrievers[kind] = retriever_from_settings(self.settings, self.corpus, kind=kind)
        return self._retrievers[kind]

    def parts(self, kind: str, agent: AgentSettings, progress: Progress | None = None) -> AgentParts:
        """The agent built for a theorem retriever and ``[agent]`` settings, as `rader solve` builds
        it, with ``agent``'s budgets as its config (parts are kept per retriever and worked-example
        kind: budgets are a run's context, not a build of their own)."""
        chosen = self.settings.model_copy(update={"agent": agent})
        parts = self._parts.get((kind, agent.examples),
                                lambda: agent_from_settings(chosen, retriever=kind, progress=progress))
        return parts._replace(config=agent.config())

    def warm_up(self, progress: Progress | None = None) -> None:
        """Load the model (``progress`` sees a first fetch's bytes), the default agent and the
        default search retriever now, not on the first request."""
        self.parts(self.settings.agent.retriever, self.settings.agent, progress)
        self.retriever()

    # -- retrieval -------------------------------------------------------------------------
    def title_of(self, theorem_id: str) -> str:
        try:
            return self.corpus.get(theorem_id).title or theorem_id
        except RaderError:
            return theorem_id

    def theorem(self, theorem_id: str) -> Theorem:
        try:
            return self.corpus.get(theorem_id)
        except RaderError:
            raise NotFound(f"no theorem {theorem_id!r} in the corpora in force "
                           f"({', '.join(self.settings.corpora)})", param="id") from None

    def search(self, texts: list[str], *, k: int, kind: str = "problem",
               retriever: str | None = None) -> list[list[Hit]]:
        """One batch through ``search_many``, after the request limits are checked."""
        limits = self.limits
        if not texts:
            raise ServeError("no queries: give at least one", param="queries")
        if len(texts) > limits.max_queries:
            raise ServeError(f"{len(texts)} queries in one request; the limit is {limits.max_queries} "
                             "(serve.max_queries)", param="queries")
        if not 1 <= k <= limits.max_topk:
            raise ServeError(f"topk/k must be between 1 and {limits.max_topk}, got {k}", param="topk")
        if kind not in QUERY_KINDS:
            raise ServeError(f"unknown query kind {kind!r}; choose one of {', '.join(QUERY_KINDS)}",
                             param="kind")
        if retriever is not None and retriever not in ("bm25", "dense", "hybrid"):
            raise ServeError(f"unknown retriever {retriever!r}; choose one of bm25, dense, hybrid",
                             param="retriever")
        queries = [Query(_check_text(text, "a query", limits.max_query_chars, "queries"), kind)
                   for text in texts]
        return self.retriever(retriever).search_many(queries, k=k)

    # -- agent runs ------------------------------------------------------------------------
    def run_settings(self, options: RunOptions) -> tuple[str, AgentSettings]:
        """The retriever kind and agent budgets a run gets: the settings with ``options`` on top."""
        base = self.settings.agent
        chosen = options.agent_fields()
        cap = self.limits.max_run_seconds
        try:
            agent = AgentSettings.model_validate({**base.model_dump(), **chosen})
        except ValidationError as err:
            problems = "; ".join(f"rader.{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                 for e in err.errors()[:5])
            raise ServeError(f"invalid run options: {problems}", param="rader") from None
        if "max_seconds" in chosen and agent.max_seconds > cap:
            raise ServeError(f"max_seconds {agent.max_seconds:g} is over this server's limit of "
                             f"{cap:g} s (serve.max_run_seconds)", param="rader.max_seconds")
        agent = agent.model_copy(update={"max_seconds": min(agent.max_seconds, cap)})
        return options.retriever or base.retriever, agent

    def start_run(self, problem_text: str, options: RunOptions, *, emit: Callable[[Piece], None],
                  live_tokens: bool = True, source: str = "serve") -> Run:
        """Admit an agent run on ``problem_text`` (raises `Busy` when the pool is full)."""
        text = _check_text(problem_text, "the problem", self.limits.max_problem_chars, "messages")
        kind, agent = self.run_settings(options)
        parts = self.parts(kind, agent)
        digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]
        problem = Problem(id=f"{source}-{digest}", text=text, answer=options.answer, source=source)
        config = {"llm": self.settings.llm.model_dump(exclude={"api_key"}), "agent": agent.model_dump(),
                  "retriever": self.settings.retriever.model_dump(), "source": source}
        job = Job(parts.graph, problem, parts.model, parts.retriever_name, config, agent.max_seconds,
                  parts.context())
        return self.pool.submit(Run(job, store=self.store, title_of=self.title_of, emit=emit,
                                    live_tokens=live_tokens))

    # -- health ----------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """What is loaded and where things live (GET /health)."""
        corpus = self.corpus
        indexes = []
        store = IndexStore(self.settings.home)
        for manifest_file in sorted(store.root.glob("*/*/manifest.json")):
            manifest = store.read_manifest(manifest_file.parent)
            if manifest is not None and manifest.corpus_hash == corpus.content_hash:
                indexes.append({"path": str(manifest_file.parent), **manifest.to_dict()})
        llm = self.settings.llm
        return {
            "status": "ok", "version": self.version,
            "models": [{"id": "rader-agent", "llm": llm.model, "backend": llm.backend,
                        "loaded": bool(self._parts)}],
            "retrievers": {kind: {"loaded": kind in self._retrievers}
                           for kind in ("bm25", "dense", "hybrid")},
            "default_retriever": {"search": self.settings.retriever.kind,
                                  "agent": self.settings.agent.retriever},
            "encoder": self.settings.retriever.encoder,
            "corpora": [{"names": self.settings.corpora, "name": corpus.name, "size": len(corpus),
                         "hash": corpus.content_hash}],
            "indexes": indexes,
            "store": str(self.store.path), "home": str(self.settings.home),
            "runs": {"in_flight": self.pool.in_flight, "queued": self.pool.queued,
                     "concurrency": self.pool.concurrency, "queue_size": self.pool.queue_size},
            "auth": self.limits.api_key is not None,
        }
