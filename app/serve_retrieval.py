"""Retrieval over HTTP: the Search-R1 retrieval-server contract and two plain reads.

``POST /retrieve`` takes ``{"queries": [...], "topk": k, "return_scores": true}`` and answers
``{"result": [[{"document": {"id", "title", "contents"}, "score": s}, ...], ...]}`` (without
``return_scores``, each inner list holds the documents alone), field for field as Search-R1's
``search_r1/search/retrieval_server.py`` does, so RL-for-search trainers (Search-R1, R1-Searcher,
ReSearch, ...) point their ``search_url`` here. ``contents`` is ``"title"\\ntext``, the layout
their clients split into title and text. All queries go through one ``search_many`` call: one
encoder pass for a dense or hybrid retriever. rader's extensions: ``retriever`` and ``kind``.

Example:
    >>> import httpx
    >>> httpx.post("http://127.0.0.1:8765/retrieve", json={  # doctest: +SKIP
    ...     "queries": ["sum of the roots of a quadratic"], "topk": 1, "return_scores": True,
    ... }).json()["result"][0][0]["document"]["id"]
    'rader/algebra/vieta_quadratic'
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from rader.app.serve_core import NotFound, Service
from rader.retriever import RaderError, Theorem

router = APIRouter()


class RetrieveRequest(BaseModel):
    """Search-R1's ``QueryRequest``, plus which retriever and query kind (rader's extensions)."""

    model_config = ConfigDict(extra="forbid")

    queries: list[str]
    topk: int | None = Field(None, description="hits per query (default: retriever.k)")
    return_scores: bool = False
    retriever: str | None = Field(None, description="bm25, dense or hybrid (default: retriever.kind)")
    kind: str = Field("llm_query", description="query kind: problem, llm_query, cot_step, lexical")


def document(theorem: Theorem) -> dict[str, Any]:
    """A theorem as a Search-R1 corpus document."""
    return {"id": theorem.id, "title": theorem.title, "contents": f'"{theorem.title}"\n{theorem.text}'}


@router.post("/retrieve")
def retrieve(body: RetrieveRequest, request: Request) -> dict[str, Any]:
    service: Service = request.app.state.service
    k = service.settings.retriever.k if body.topk is None else body.topk  # 0 is refused, not defaulted
    rows = service.search(body.queries, k=k, kind=body.kind, retriever=body.retriever)
    request.app.state.metrics.queries.labels(body.retriever or service.settings.retriever.kind).inc(len(rows))
    result = []
    for hits in rows:
        docs = [document(service.corpus.get(hit.theorem_id)) for hit in hits]
        scored = [{"document": doc, "score": float(hit.score)} for doc, hit in zip(docs, hits, strict=True)]
        result.append(scored if body.return_scores else docs)
    return {"result": result}


@router.get("/search")
def search(request: Request, q: str = Query(..., description="what to look for"),
           k: int = Query(10, description="number of hits"),
           retriever: str | None = Query(None, description="bm25, dense or hybrid"),
           kind: str = Query("problem", description="query kind")) -> dict[str, Any]:
    """Ranked theorems for one query: the shape of `rader search --json`."""
    service: Service = request.app.state.service
    hits = service.search([q], k=k, kind=kind, retriever=retriever)[0]
    name = retriever or service.settings.retriever.kind
    request.app.state.metrics.queries.labels(name).inc()
    return {"query": q, "kind": kind, "retriever": name,
            "hits": [{**hit.to_dict(), "theorem": service.corpus.get(hit.theorem_id).to_dict()}
                     for hit in hits]}


@router.get("/theorems/{theorem_id:path}")
def theorem(theorem_id: str, request: Request) -> dict[str, Any]:
    service: Service = request.app.state.service
    return service.theorem(theorem_id).to_dict()


@router.get("/trajectories/{trajectory_id}")
def trajectory(trajectory_id: str, request: Request) -> dict[str, Any]:
    """A stored run (a chat response's ``rader.trajectory_id``), as `rader trajectories show` prints it."""
    service: Service = request.app.state.service
    if len(trajectory_id) < 8:
        raise NotFound("give the trajectory id (at least 8 characters of it)", param="trajectory_id")
    try:
        return service.store.get(trajectory_id).to_dict()
    except RaderError as err:
        raise NotFound(str(err), param="trajectory_id") from None
