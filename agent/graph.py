"""The agent graph: reason, retrieve, judge, compute, finish.

The model does not decide alone when to retrieve (a probe showed small models never ask):
before a step the **retrieve** node asks the model which theorem the step needs (an
``llm_query``), adds the previous step itself (``cot_step``) or, first, the problem, and
searches. **judge** asks the same model whether each hit helps (the self-reflective check);
only relevant theorems reach **reason**, which writes one step. **compute** runs a sympy
request in the sandbox; **finish** extracts the boxed answer and verifies it against the gold
answer with math-verify.

Example:
    >>> from rader.agent import AgentConfig, build_graph  # doctest: +SKIP
    >>> graph = build_graph(llm=my_chat_model, retriever=my_retriever)  # doctest: +SKIP
    >>> for update in graph.stream({"problem": {"id": "p", "text": "2+3?"}},
    ...                            stream_mode="updates"):  # doctest: +SKIP
    ...     print(update)
"""

from __future__ import annotations

import math
import time
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langgraph.graph import END, START, StateGraph

from rader.agent import prompts
from rader.agent.protocol import (
    ReasonReply,
    lexical_keywords,
    parse_query,
    parse_reason,
    parse_verdict,
)
from rader.agent.records import Judgment, Step
from rader.agent.sandbox import compute, verify_answer
from rader.agent.state import AgentConfig, AgentState
from rader.retriever import Hit, Query

Node = Literal["reason", "retrieve", "judge", "compute", "finish"]
RATIONALE_THEOREM_CHARS = 300  # long corpus entries are cut for the rationale: prefill is slow


class LLMFailure(Exception):
    """The model call failed (timeout, connection, server error) after its retries."""


def _chat(llm: BaseChatModel, system: str, user: str, **kwargs: Any) -> tuple[str, int, AIMessage]:
    try:
        message = llm.invoke([SystemMessage(system), HumanMessage(user)], **kwargs)
    except Exception as err:  # the clients raise many types; all end this call the same way
        raise LLMFailure(f"{type(err).__name__}: {str(err)[:200]}") from err
    usage = getattr(message, "usage_metadata", None) or {}
    text = message.content if isinstance(message.content, str) else str(message.content)
    return text, int(usage.get("total_tokens", 0)), message


def _yes_probability(message: AIMessage) -> float | None:
    """P(yes) / (P(yes) + P(no)) at the first token of a one-word verdict."""
    content = ((message.response_metadata or {}).get("logprobs") or {}).get("content") or []
    if not content:
        return None
    probs = {"yes": 0.0, "no": 0.0}
    for alt in content[0].get("top_logprobs") or [content[0]]:
        word = alt.get("token", "").strip().lower()
        if word in probs:
            probs[word] += math.exp(alt["logprob"])
    total = probs["yes"] + probs["no"]
    return probs["yes"] / total if total > 0 else None


def judge_hits(llm: BaseChatModel, problem: str, steps: list[str], theorems: list,
               config: AgentConfig) -> tuple[list[Judgment], int, list[str]]:
    """The self-reflective relevance check of one step's theorems, decided together.

    Each theorem gets a one-word verdict whose score is P(yes) from the log-probabilities
    (one generated token: cheap). A theorem is relevant when its score reaches
    ``judge_threshold``, or when it is the step's best-scored theorem and reaches
    ``judge_top_threshold``: on the TheoremQA dev labels the model ranks the gold theorem
    above a wrong one far more reliably than it scores either in isolation
    (benchmarks/RESULTS.md). Relevant theorems then get a one-line rationale.
    """
    scores, tokens, events = [], 0, []
    for theorem in theorems:
        quoted = prompts.quote_theorem(theorem.id, theorem.title, theorem.text[: config.judge_chars])
        reply, used, message = _chat(llm, prompts.JUDGE_SYSTEM, prompts.judge_prompt(problem, steps, quoted),
                                     max_tokens=1, logprobs=True, top_logprobs=10)
        tokens += used
        score = _yes_probability(message)
        if score is None:  # a server without log-probabilities: fall back on the word itself
            verdict, _ = parse_verdict("Relevant: " + reply)
            if verdict is None:
                events.append(f"no yes/no verdict for {theorem.id}: counted as not relevant")
            score = 1.0 if verdict else 0.0
        scores.append(score)
    best = max(range(len(scores)), key=scores.__getitem__, default=None)
    judgments = []
    for i, (theorem, score) in enumerate(zip(theorems, scores, strict=True)):
        relevant = score >= config.judge_threshold or (i == best and score >= config.judge_top_threshold)
        rationale = f"not a key tool here (P(yes)={score:.2f})"
        if relevant:
            quoted = prompts.quote_theorem(theorem.id, theorem.title, theorem.text[:RATIONALE_THEOREM_CHARS])
            reply, used, _ = _chat(llm, prompts.RATIONALE_SYSTEM,
                                   prompts.rationale_prompt(problem, steps, quoted), max_tokens=32)
            tokens += used
            rationale = (reply.strip().splitlines() or [""])[0][:200] or f"P(yes)={score:.2f}"
        judgments.append(Judgment(theorem.id, relevant, rationale, round(score, 4)))
    return judgments, tokens, events


def _thoughts(state: AgentState) -> list[str]:
    return [s["thought"] for s in state.get("steps", [])]


def _notes(state: AgentState) -> list[str]:
    """Calculator results, shown to the model after the steps that asked for them."""
    return [f"Calculator: {c['input']} -> {c['output']}" for s in state.get("steps", [])
            for c in s["tool_calls"]]


def build_graph(llm: BaseChatModel, retriever: Any = None, settings: AgentConfig | None = None,
                checkpointer: Any = None):
    """A compiled LangGraph graph that solves ``{"problem": {"id", "text", "answer"?}}``.

    ``retriever`` is a `rader.retriever.Retriever` (or anything with ``search(Query, k)`` and
    ``theorem(id)``), or None for no retrieval. The graph streams like any LangGraph graph
    (``stream_mode="updates"`` per node, ``"messages"`` for tokens) and takes a checkpointer.
    """
    config = settings or AgentConfig()

    def elapsed(state: AgentState) -> float:
        return time.time() - state.get("started", time.time())

    def over_budget(state: AgentState) -> str | None:
        steps = len(state.get("steps", []))
        if steps >= config.max_steps:
            return f"max_steps ({config.max_steps})"
        if state.get("tokens", 0) >= config.max_tokens:
            return f"max_tokens ({config.max_tokens})"
        if elapsed(state) >= config.max_seconds:
            return f"max_seconds ({config.max_seconds:g})"
        return None

    def wants_retrieval(state: AgentState) -> bool:
        if retriever is None:
            return False
        steps = len(state.get("steps", []))
        return {"every_step": True, "first_k": steps < config.first_k,
                "model": bool(state.get("search_request")), "never": False}[config.retrieval]

    # -- nodes -----------------------------------------------------------------------------
    def retrieve(state: AgentState) -> dict[str, Any]:
        problem = state["problem"]["text"]
        steps = _thoughts(state)
        started, tokens, events = time.perf_counter(), 0, []
        try:
            reply, tokens, _ = _chat(llm, prompts.QUERY_SYSTEM, prompts.query_prompt(problem, steps),
                                     max_tokens=48, stop=["\n"])
            text, events = parse_query(reply)
        except LLMFailure as err:
            text, events = "", [f"query writing failed: {err}"]
        queries = [Query(text, "llm_query")] if text else []
        if state.get("search_request"):
            queries.append(Query(state["search_request"], "llm_query"))
        queries.append(Query(steps[-1], "cot_step") if steps else Query(problem, "problem"))
        keywords = lexical_keywords(steps[-1] if steps else problem)
        if keywords:
            queries.append(Query(keywords, "lexical"))
        best: dict[str, Hit] = {}
        for query in queries:
            for hit in retriever.search(query, k=config.k):
                if hit.theorem_id not in best or hit.rank < best[hit.theorem_id].rank:
                    best[hit.theorem_id] = hit
        hits = sorted(best.values(), key=lambda h: (h.rank, -h.score))[: config.k]
        pending = {"queries": [q.to_dict() for q in queries], "hits": [h.to_dict() for h in hits],
                   "judgments": [], "events": events,
                   "elapsed_s": time.perf_counter() - started, "tokens": tokens}
        return {"pending": pending, "retrievals": state.get("retrievals", 0) + 1,
                "tokens": state.get("tokens", 0) + tokens, "search_request": None}

    def judge(state: AgentState) -> dict[str, Any]:
        pending = dict(state["pending"])
        started, events = time.perf_counter(), list(pending["events"])
        theorems = [retriever.theorem(hit["theorem_id"]) for hit in pending["hits"]]
        try:
            judgments, tokens, more = judge_hits(llm, state["problem"]["text"], _thoughts(state), theorems,
                                                 config)
        except LLMFailure as err:
            judgments, tokens, more = [], 0, [f"relevance check failed: {err}"]
        pending.update(judgments=[j.to_dict() for j in judgments], events=events + more,
                       tokens=pending["tokens"] + tokens,
                       elapsed_s=pending["elapsed_s"] + time.perf_counter() - started)
        return {"pending": pending, "tokens": state.get("tokens", 0) + tokens}

    def context_theorems(state: AgentState) -> list[str]:
        relevant: list[str] = []
        for source in [*state.get("steps", []), state.get("pending") or {}]:
            for judgment in source.get("judgments", []):
                if judgment["relevant"] and judgment["theorem_id"] not in relevant:
                    relevant.append(judgment["theorem_id"])
        if retriever is None:
            return []
        return [prompts.quote_theorem(t.id, t.title, t.text)
                for t in map(retriever.theorem, relevant[-config.max_context_theorems:])]

    def reason(state: AgentState) -> dict[str, Any]:
        pending = state.get("pending") or {"queries": [], "hits": [], "judgments": [], "events": [],
                                           "elapsed_s": 0.0, "tokens": 0}
        problem, steps = state["problem"]["text"], _thoughts(state)
        started = time.perf_counter()
        user = prompts.reason_prompt(problem, steps, _notes(state), context_theorems(state))
        events = list(pending["events"])
        try:
            reply, tokens, _ = _chat(llm, prompts.REASON_SYSTEM, user, max_tokens=config.step_tokens,
                                     stop=["\nStep", "\nProblem:", "\nQuery:"])
            parsed = parse_reason(reply)
            events += parsed.events
        except LLMFailure as err:
            events.append(f"reasoning failed: {err}")
            parsed, tokens = ReasonReply(""), 0
        total_tokens = state.get("tokens", 0) + tokens
        if not parsed.step and parsed.answer is None:
            reasks = state.get("reasks", 0) + 1
            if reasks > config.reasks:
                return {"status": "error", "stop_reason": "no usable reply after re-asking",
                        "pending": {**pending, "events": events}, "tokens": total_tokens}
            return {"reasks": reasks, "tokens": total_tokens,
                    "pending": {**pending, "events": [*events, "re-asking"]}}
        step = Step(
            index=len(steps) + 1, thought=parsed.step,
            queries=[Query.from_dict(q) for q in pending["queries"]],
            hits=[Hit.from_dict(h) for h in pending["hits"]],
            judgments=[Judgment.from_dict(j) for j in pending["judgments"]],
            events=events, elapsed_s=round(pending["elapsed_s"] + time.perf_counter() - started, 3),
            completion_tokens=pending["tokens"] + tokens,
        )
        return {"steps": [*state.get("steps", []), step.to_dict()], "pending": None,
                "compute_request": parsed.compute, "final_answer": parsed.answer,
                "search_request": parsed.search,
                "tokens": total_tokens, "reasks": 0}

    def run_compute(state: AgentState) -> dict[str, Any]:
        steps = list(state["steps"])
        last = dict(steps[-1])
        call = compute(state["compute_request"], limits=config.compute_limits)
        last["tool_calls"] = [*last["tool_calls"], call.to_dict()]
        steps[-1] = last
        return {"steps": steps, "compute_request": None}

    def finish(state: AgentState) -> dict[str, Any]:
        answer = state.get("final_answer")
        gold = state["problem"].get("answer")
        verified = verify_answer(answer, str(gold), answer_type=state["problem"].get("answer_type"),
                                 limits=config.compute_limits) if answer and gold is not None else None
        if state.get("status") == "error":
            status = "error"
        elif answer is not None:
            status = "done"
        else:
            status = "budget_exhausted"
        return {"status": status, "verified": verified,
                "stop_reason": state.get("stop_reason") or ("answered" if answer else over_budget(state))}

    # -- routing ---------------------------------------------------------------------------
    def next_step(state: AgentState) -> Literal["retrieve", "reason", "finish"]:
        if state.get("final_answer") is not None or state.get("status") == "error":
            return "finish"
        if over_budget(state):
            return "finish"
        if wants_retrieval(state):
            if state.get("retrievals", 0) >= config.max_retrievals:
                return "finish"
            return "retrieve"
        return "reason"

    def after_retrieve(state: AgentState) -> Literal["judge", "reason"]:
        return "judge" if config.judge and state["pending"]["hits"] else "reason"

    def after_reason(state: AgentState) -> Literal["compute", "retrieve", "reason", "finish"]:
        if state.get("status") != "error" and state.get("compute_request"):
            return "compute"
        if state.get("pending") is not None and state.get("reasks", 0) > 0:
            return "reason" if state.get("status") != "error" else "finish"
        return next_step(state)

    def start(state: AgentState) -> dict[str, Any]:
        return {"started": state.get("started") or time.time(), "steps": state.get("steps", []),
                "tokens": state.get("tokens", 0), "retrievals": state.get("retrievals", 0),
                "status": "running"}

    graph = StateGraph(AgentState)
    graph.add_node("start", start)
    graph.add_node("retrieve", retrieve)
    graph.add_node("judge", judge)
    graph.add_node("reason", reason)
    graph.add_node("compute", run_compute)
    graph.add_node("finish", finish)
    graph.add_edge(START, "start")
    graph.add_conditional_edges("start", next_step)
    graph.add_conditional_edges("retrieve", after_retrieve)
    graph.add_edge("judge", "reason")
    graph.add_conditional_edges("reason", after_reason)
    graph.add_conditional_edges("compute", next_step)
    graph.add_edge("finish", END)
    return graph.compile(checkpointer=checkpointer, name="rader")
