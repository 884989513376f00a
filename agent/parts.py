"""A built agent (its compiled graph and what it was built from) and a cache of built agents.

Building an agent loads a model server, an encoder and indexes: the CLI builds one per
command, while the page and `rader serve` keep a few, one per choice their users make.

Example:
    >>> cache = PartsCache(size=2)
    >>> cache.get("a", lambda: "built a"), cache.get("a", lambda: "built again")
    ('built a', 'built a')
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar

if TYPE_CHECKING:
    from rader.agent.state import AgentContext
    from rader.retriever import Retriever

Built = TypeVar("Built")


class AgentParts(NamedTuple):
    """The compiled graph and the parts it was built from (for the trajectory's record and
    for graphs built again on the same parts)."""

    graph: Any
    model: str
    retriever_name: str  # what the trajectory records: "none", "hybrid", "examples", "hybrid+examples"
    retriever: Retriever | None  # theorems
    llm: Any = None  # the chat model that writes solutions
    examples: Retriever | None = None  # worked examples
    aux_llm: Any = None  # the chat model of the short calls (queries, verdicts)
    config: Any = None  # the AgentConfig the graph runs with when a run passes no context

    def context(self, config: Any = None) -> AgentContext:
        """A run's context on these parts: the graph's own settings, or ``config`` (budgets, k,
        thresholds) for a run that chose others; the same compiled graph serves both."""
        from rader.agent.state import AgentConfig, AgentContext

        return AgentContext(llm=self.llm, retriever=self.retriever, examples=self.examples,
                            aux_llm=self.aux_llm, config=config or self.config or AgentConfig())


class PartsCache(Generic[Built]):
    """Built things by key, the ``size`` most recently used kept.

    Builds take ``lock`` (default: the cache's own): two users asking for a new index at once
    must not both write it; a key already built is returned without waiting on a build.
    """

    def __init__(self, size: int, lock: threading.RLock | None = None) -> None:
        self.size = size
        self._built: OrderedDict[Hashable, Built] = OrderedDict()
        self._lock = lock or threading.RLock()  # builds (minutes)
        self._order = threading.Lock()  # the dict itself (microseconds)

    def _lookup(self, key: Hashable) -> tuple[bool, Built | None]:
        with self._order:
            if key not in self._built:
                return False, None
            self._built.move_to_end(key)
            return True, self._built[key]

    def get(self, key: Hashable, build: Callable[[], Built]) -> Built:
        """The thing built for ``key``, built now by ``build`` if it is not kept."""
        found, built = self._lookup(key)
        if found:
            return built
        with self._lock:
            found, built = self._lookup(key)  # built by another thread while this one waited
            if found:
                return built
            built = build()
            with self._order:
                self._built[key] = built
                while len(self._built) > self.size:
                    self._built.popitem(last=False)  # the least recently used goes
            return built

    def __len__(self) -> int:
        return len(self._built)
