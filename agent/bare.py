"""The bare model: one plain chain-of-thought call, the baseline every agent result stands beside.

What a student gets without rader: the same model, asked once to reason step by step and
box the answer, with the same token budget and the same answer check. It is a graph like
the agent's (same records, store, streaming and benchmarks), built on its own code path —
one non-streamed ``invoke`` — so that the agent's equivalence to it is measured, not
assumed.

Example:
    >>> graph = build_bare_graph(llm)  # doctest: +SKIP
    >>> graph.invoke({"problem": {"id": "p", "text": "2+3?", "answer": "5"}})["verified"]  # doctest: +SKIP
    True
"""

from __future__ import annotations

import time
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage
from langgraph.graph import END, START, StateGraph

from rader.agent import prompts
from rader.agent.calls import Usage
from rader.agent.llm.chat import whole_prompt_options
from rader.agent.protocol import clean, last_boxed
from rader.agent.records import Step
from rader.agent.sandbox import verify_answer
from rader.agent.state import AgentConfig, AgentState


def build_bare_graph(llm: BaseChatModel, settings: AgentConfig | None = None, checkpointer: Any = None):
    """A compiled graph that answers ``{"problem": ...}`` with one call of ``solution_tokens``."""
    config = settings or AgentConfig()

    def answer(state: AgentState) -> dict[str, Any]:
        started = time.perf_counter()
        problem = state["problem"]
        try:
            message = llm.invoke([SystemMessage(prompts.SOLVE_SYSTEM), HumanMessage(problem["text"])],
                                 max_tokens=config.solution_tokens, **whole_prompt_options(llm))
        except Exception as err:  # every client error ends the run the same way
            return {"status": "error", "stop_reason": f"{type(err).__name__}: {str(err)[:200]}", "steps": []}
        text = clean(message.content if isinstance(message.content, str) else str(message.content))
        usage = Usage.of(message)
        cut_short = (message.response_metadata or {}).get("finish_reason") == "length"
        step = Step(index=1, thought=text.strip(), elapsed_s=round(time.perf_counter() - started, 3),
                    prompt_tokens=usage.prompt, completion_tokens=usage.completion,
                    cached_tokens=usage.cached)
        final = last_boxed(text)
        gold = problem.get("answer")
        verified = verify_answer(final, str(gold), answer_type=problem.get("answer_type"),
                                 limits=config.compute_limits) if final and gold is not None else None
        return {"steps": [step.to_dict()], "solution": text, "final_answer": final, "verified": verified,
                "tokens": usage.total, "solution_tokens": usage.completion,
                "status": "budget_exhausted" if cut_short else "done",
                "stop_reason": f"solution_tokens ({config.solution_tokens})" if cut_short
                else "answered" if final is not None else "ended without a boxed answer"}

    graph = StateGraph(AgentState)
    graph.add_node("answer", answer)
    graph.add_edge(START, "answer")
    graph.add_edge("answer", END)
    return graph.compile(checkpointer=checkpointer, name="rader-bare")
