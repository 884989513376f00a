"""rader as MCP tools (the official `mcp` SDK): ``search``, ``get_theorem`` and ``solve``.

The same tools answer over streamable HTTP at ``/mcp`` inside `rader serve` and over stdio
with ``rader serve --mcp-stdio`` (for clients that launch their servers as subprocesses).
``solve`` runs the agent like a chat request: through the run pool's limits, into the store.

Example (an MCP client config entry for stdio):
    ``{"command": "rader", "args": ["serve", "--mcp-stdio"], "env": {"RADER_LLM__MODEL": "smollm2-135m"}}``

    >>> from mcp import Client
    >>> async def main():  # doctest: +SKIP
    ...     async with Client("http://127.0.0.1:8765/mcp") as client:
    ...         return await client.call_tool("search", {"query": "sum of the roots", "k": 1})
"""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from rader.app.serve_core import RunOptions, Service
from rader.app.serve_render import Piece, trajectory_text
from rader.retriever import RaderError

INSTRUCTIONS = (
    "rader retrieves mathematical theorems and solves math problems with a retrieval-augmented "
    "agent. `search` ranks theorems for a query, `get_theorem` reads one by id, `solve` runs the "
    "agent on a problem and returns its steps, the theorems it used and the boxed answer."
)


def build_mcp(service: Service) -> MCPServer:
    """An MCP server whose tools call ``service``."""
    server = MCPServer("rader", instructions=INSTRUCTIONS, version=service.version,
                       log_level=service.settings.log_level)

    @server.tool()
    def search(query: str, k: int = 5, retriever: str | None = None,
               kind: str = "problem") -> list[dict[str, Any]]:
        """Rank theorems for a query (words, LaTeX or a reasoning step).

        Args:
            query: what to look for
            k: number of theorems
            retriever: bm25, dense or hybrid (default: the server's)
            kind: query kind - problem, llm_query, cot_step or lexical
        """
        try:
            hits = service.search([query], k=k, kind=kind, retriever=retriever)[0]
        except RaderError as err:
            raise ToolError(str(err)) from None
        return [{**hit.to_dict(), "title": service.title_of(hit.theorem_id),
                 "text": service.corpus.get(hit.theorem_id).text} for hit in hits]

    @server.tool()
    def get_theorem(id: str) -> dict[str, Any]:
        """One theorem of the corpus by id (ids come from `search`).

        Args:
            id: theorem id, e.g. rader/algebra/vieta_quadratic
        """
        try:
            return service.theorem(id).to_dict()
        except RaderError as err:
            raise ToolError(str(err)) from None

    @server.tool()
    async def solve(problem: str, answer: str | None = None, retriever: str | None = None,
                    max_steps: int | None = None, max_seconds: float | None = None) -> dict[str, Any]:
        """Solve a math problem step by step, retrieving theorems between steps.

        Args:
            problem: the problem, in words and LaTeX
            answer: the gold answer, if known, to verify against
            retriever: none, bm25, dense or hybrid (default: the server's)
            max_steps: step budget
            max_seconds: wall-time budget
        """
        loop, ended = asyncio.get_running_loop(), asyncio.Event()

        def emit(piece: Piece) -> None:  # called from the run's worker thread
            if piece.event and piece.event.get("event") == "end":
                loop.call_soon_threadsafe(ended.set)

        try:
            chosen = {"answer": answer, "retriever": retriever, "max_steps": max_steps,
                      "max_seconds": max_seconds}
            options = RunOptions.model_validate({k: v for k, v in chosen.items() if v is not None})
            run = await anyio.to_thread.run_sync(lambda: service.start_run(
                problem, options, emit=emit, live_tokens=False, source="mcp"))
        except (RaderError, ValueError) as err:
            raise ToolError(str(err)) from None
        try:
            await ended.wait()
        finally:
            if not run.finished:  # the call was cancelled: the run ends, stored interrupted
                run.stop("the MCP call was cancelled")
        if run.error:
            raise ToolError(run.error)
        return {**run.summary(), "usage": run.usage,
                "text": trajectory_text(run.trajectory, service.title_of)}

    return server
