"""The agent graph for LangGraph's own tools: ``langgraph.json`` at the repository root names
`make_graph`, so ``langgraph dev`` (LangGraph Studio) and LangGraph Platform open rader's graph.

The graph is built as the settings in force describe it (``RADER_*`` environment, the TOML file),
like `rader solve` builds it: the model in ``llm``, the retriever in ``agent.retriever``.

Example:
    >>> graph = make_graph()  # doctest: +SKIP
    >>> state = graph.invoke({"problem": {"id": "p", "text": "2x + 3 = 11. Find x."}})  # doctest: +SKIP
    >>> state["final_answer"]  # doctest: +SKIP
    '4'
"""

from __future__ import annotations

from typing import Any

from rader.app.settings import load_settings
from rader.app.wiring import agent_from_settings, configure_logging


def make_graph(config: dict[str, Any] | None = None):
    """The compiled agent graph (LangGraph calls this factory with the run's config, unused here)."""
    settings, _ = load_settings()
    configure_logging(settings)
    return agent_from_settings(settings).graph
