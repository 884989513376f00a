"""The agent graph: retrieve, judge, reason, compute, finish.

The model writes its solution in its own words, as the bare model would, and the graph cuts
steps (paragraphs) out of it. Before the solution starts, **retrieve** looks up worked
examples of similar problems and theorems for the problem; **judge** asks the same model
whether each one helps (the self-reflective check, P(yes) from one token), and only what
it keeps enters the prompt, short and quoted as data. **reason** streams the solution and
stops only where the graph acts: a ``Search:`` line the model wrote (``retrieve_on_request``),
a ``Compute:`` line (``compute``), or a paragraph after which a retrieval is scheduled
(``retrieve_every``); the result is added to the solution and the model continues from its
own cached text. **finish** takes the last ``\\boxed{}`` answer and verifies it against the
gold answer with math-verify. Budgets: the solution's tokens (the bare model's budget),
all tokens, wall time, and a step cap far above what solutions need.

Example:
    >>> from rader.agent import AgentConfig, build_graph  # doctest: +SKIP
    >>> graph = build_graph(llm=my_chat_model, retriever=my_theorems, examples=my_examples)  # doctest: +SKIP
    >>> for update in graph.stream({"problem": {"id": "p", "text": "2+3?"}},
    ...                            stream_mode="updates"):  # doctest: +SKIP
    ...     print(update)
"""

from __future__ import annotations

import re
import time
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langgraph.graph import END, START, StateGraph

from rader.agent import prompts
from rader.agent.calls import LLMFailure, Usage, chat, write
from rader.agent.judge import is_example, judge_hits
from rader.agent.protocol import clean, find_request, last_boxed, lexical_keywords, paragraphs, parse_query
from rader.agent.records import Step
from rader.agent.sandbox import compute, verify_answer
from rader.agent.state import AgentConfig, AgentState, Pending, empty_pending
from rader.retriever import Hit, Query, Theorem

EXAMPLES_PREFIX = "examples/"  # Hit.retriever of a worked example: examples/<retriever name>
_WORDS = re.compile(r"\w+")
_BREAK = re.compile(r"\n[ \t]*\n")


def near_identical(a: str, b: str, threshold: float = 0.8) -> bool:
    """Whether two problem texts are the same problem (word-set Jaccard at or over ``threshold``):
    a problem must never be shown itself, or a copy of itself, as a worked example."""
    left, right = set(_WORDS.findall(a.lower())), set(_WORDS.findall(b.lower()))
    return bool(left | right) and len(left & right) / len(left | right) >= threshold


def looping(text: str, times: int = 4) -> bool:
    """Whether the text's last line (of some length) has been written ``times`` times already:
    a small model caught in a loop, which would spend the whole budget repeating itself."""
    lines = text.rstrip("\n").splitlines()
    last = lines[-1].strip() if lines else ""
    return len(last) >= 8 and sum(line.strip() == last for line in lines) >= times


def _closing_brace(text: str) -> int | None:
    """Where the ``\\boxed{`` a forced answer opened closes in ``text`` (None: not yet)."""
    depth = 1
    for i, char in enumerate(text):
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth == 0:
            return i + 1
    return None


def _charge(pending: Pending, usage: Usage, seconds: float) -> Pending:
    return {**pending, "prompt_tokens": pending["prompt_tokens"] + usage.prompt,
            "completion_tokens": pending["completion_tokens"] + usage.completion,
            "cached_tokens": pending["cached_tokens"] + usage.cached,
            "elapsed_s": pending["elapsed_s"] + seconds}


def build_graph(llm: BaseChatModel, retriever: Any = None, settings: AgentConfig | None = None,
                checkpointer: Any = None, examples: Any = None, aux_llm: BaseChatModel | None = None):
    """A compiled LangGraph graph that solves ``{"problem": {"id", "text", "answer"?}}``.

    ``retriever`` searches theorems and ``examples`` worked examples (solved problems); each
    is a `rader.retriever.Retriever` (or anything with ``search(Query, k)``, ``theorem(id)``
    and ``name``) or None. With neither, the agent asks exactly what the bare model is asked.
    ``aux_llm`` (default ``llm``) makes the short calls: queries and verdicts (`chat_models`
    gives llama.cpp's a slot of its own, so they leave the solution's cached prefix alone).
    The graph streams like any LangGraph graph (``stream_mode="updates"`` per node,
    ``"messages"`` for tokens) and takes a checkpointer.
    """
    config = settings or AgentConfig()
    aux = aux_llm or llm
    search_tool = retriever is not None and config.retrieve_on_request
    system = prompts.solve_system(search=search_tool, compute=config.compute)
    requests = tuple(kind for kind, on in (("search", search_tool), ("compute", config.compute)) if on)

    def item(hit: dict[str, Any]) -> Theorem:
        source = examples if hit["retriever"].startswith(EXAMPLES_PREFIX) else retriever
        return source.theorem(hit["theorem_id"])

    def elapsed(state: AgentState) -> float:
        return time.time() - state.get("started", time.time())

    def over_budget(state: AgentState) -> str | None:
        if len(state.get("steps", [])) >= config.max_steps:
            return f"max_steps ({config.max_steps})"
        if state.get("solution_tokens", 0) >= config.solution_tokens:
            return f"solution_tokens ({config.solution_tokens})"
        if state.get("tokens", 0) >= config.max_tokens:
            return f"max_tokens ({config.max_tokens})"
        if elapsed(state) >= config.max_seconds:
            return f"max_seconds ({config.max_seconds:g})"
        return None

    def can_retrieve(state: AgentState) -> bool:
        return state.get("retrievals", 0) < config.max_retrievals

    # -- retrieve ---------------------------------------------------------------------------
    def theorem_queries(state: AgentState, pending: Pending) -> list[Query]:
        problem, steps = state["problem"]["text"], [s["thought"] for s in state.get("steps", [])]
        request = state.get("request") or {}
        queries = []
        if request.get("kind") == "search":
            queries.append(Query(request["argument"], "llm_query"))
        elif config.write_query:
            started = time.perf_counter()
            try:
                reply, usage, _ = chat(aux, prompts.QUERY_SYSTEM, prompts.query_prompt(problem, steps),
                                       max_tokens=48, stop=["\n"])
                text, events = parse_query(clean(reply))
                pending.update(_charge(pending, usage, time.perf_counter() - started))
                pending["events"] += events
                if text:
                    queries.append(Query(text, "llm_query"))
            except LLMFailure as err:
                pending["events"].append(f"query writing failed: {err}")
        anchor = steps[-1] if steps else problem
        queries.append(Query(anchor, "cot_step" if steps else "problem"))
        keywords = lexical_keywords(anchor)
        if keywords:
            queries.append(Query(keywords, "lexical"))
        return queries

    def search(engine: Any, queries: list[Query], k: int, prefix: str = "",
               keep=lambda hit: True) -> list[Hit]:
        best: dict[str, Hit] = {}
        for query in queries:
            for hit in engine.search(query, k=k + 5 if prefix else k):
                if keep(hit) and (hit.theorem_id not in best or hit.rank < best[hit.theorem_id].rank):
                    best[hit.theorem_id] = hit
        ranked = sorted(best.values(), key=lambda h: (h.rank, -h.score))[:k]
        return [hit._replace(retriever=prefix + hit.retriever) for hit in ranked]

    def retrieve(state: AgentState) -> dict[str, Any]:
        started = time.perf_counter()
        pending = empty_pending()
        problem = state["problem"]
        queries: list[Query] = []
        hits: list[Hit] = []
        before = not state.get("steps")
        if examples is not None and before:
            example_query = Query(problem["text"], "problem")

            def not_the_problem(hit: Hit) -> bool:
                return hit.theorem_id != problem.get("id") and not near_identical(
                    examples.theorem(hit.theorem_id).text, problem["text"])

            hits += search(examples, [example_query], config.examples_k, EXAMPLES_PREFIX, not_the_problem)
            queries.append(example_query)
        if retriever is not None:
            more = theorem_queries(state, pending)
            queries += [q for q in more if q not in queries]
            hits += search(retriever, more, config.k)
        pending.update(queries=[q.to_dict() for q in queries], hits=[h.to_dict() for h in hits])
        pending = _charge(pending, Usage(), time.perf_counter() - started)
        return {"pending": pending, "retrievals": state.get("retrievals", 0) + 1,
                "last_retrieval_step": len(state.get("steps", [])),
                "tokens": state.get("tokens", 0) + pending["prompt_tokens"] + pending["completion_tokens"]}

    # -- judge: what enters the context ------------------------------------------------------
    def judge(state: AgentState) -> dict[str, Any]:
        started = time.perf_counter()
        pending = dict(state["pending"])
        items = [item(hit) for hit in pending["hits"]]
        steps = [s["thought"] for s in state.get("steps", [])]
        judgments, usage, events = [], Usage(), []
        if config.judge and items:
            for group in (
                    [i for i in items if is_example(i)], [i for i in items if not is_example(i)]):
                if not group:
                    continue
                try:
                    found, used, more = judge_hits(aux, state["problem"]["text"], steps, group, config)
                except LLMFailure as err:
                    found, used, more = [], Usage(), [f"relevance check failed: {err}"]
                judgments += found
                usage += used
                events += more
            relevant = {j.theorem_id for j in judgments if j.relevant}
        else:
            relevant = {i.id for i in items}
        chosen = [i for i in items if i.id in relevant]
        shown_examples = [i for i in chosen if is_example(i)][: config.max_examples]
        quoted = [prompts.quote_example(i.id, i.text, prompts.shorten(i.metadata["solution"],
                                                                      config.example_chars))
                  for i in shown_examples]
        quoted += [prompts.quote_theorem(i.id, i.title, prompts.shorten(i.text, config.theorem_chars))
                   for i in chosen if not is_example(i)]
        pending = _charge({**pending, "judgments": [j.to_dict() for j in judgments],
                           "events": pending["events"] + events}, usage, time.perf_counter() - started)
        update: dict[str, Any] = {"pending": pending, "tokens": state.get("tokens", 0) + usage.total,
                                  "request": None}
        if state.get("steps"):  # mid-solution: the result follows the model's request in its own text
            update["solution"] = state.get("solution", "") + prompts.search_result(quoted)
        else:
            update["references"] = quoted
        return update

    # -- reason: the model writes until the graph has something to do -------------------------
    def cut_point(state: AgentState):
        """Where to stop the stream: after a request line, or after the paragraph that makes a
        scheduled retrieval due."""
        written = len(state.get("steps", []))
        due_in = config.max_steps - written  # the step cap: a safety net, but a real bound
        if retriever is not None and config.retrieve_every and can_retrieve(state):
            since = written - state.get("last_retrieval_step", 0)
            due_in = min(due_in, max(1, config.retrieve_every - since))

        def cut(text: str) -> int | None:
            if text.endswith("\n") and looping(text):
                return len(text)
            request = find_request(text, requests) if requests else None
            if request is not None:
                return request.end
            for paragraph_break in _BREAK.finditer(text):
                if len(paragraphs(text[:paragraph_break.start()])) >= due_in:
                    return paragraph_break.end()
            return None

        return cut

    def reason(state: AgentState) -> dict[str, Any]:
        pending = state.get("pending") or empty_pending()
        started = time.perf_counter()
        solution = state.get("solution", "")
        budget = max(1, config.solution_tokens - state.get("solution_tokens", 0))
        events = list(pending["events"])
        user = prompts.solve_prompt(state["problem"]["text"], state.get("references", []))
        try:
            written = write(llm, system, user, solution, max_tokens=budget, cut=cut_point(state))
            text, usage, ended = clean(written.text), written.usage, written.ended
        except LLMFailure as err:
            events.append(f"reasoning failed: {err}")
            text, usage, ended = "", Usage(), False
        pending = _charge({**pending, "events": events}, usage, time.perf_counter() - started)
        totals = {"tokens": state.get("tokens", 0) + usage.total,
                  "solution_tokens": state.get("solution_tokens", 0) + usage.completion}
        request = find_request(text, requests) if requests else None
        if request is not None and request.kind == "search" and not can_retrieve(state):
            text += "Search result: no more searches in this run; go on without it.\n\n"
            request = None
        new = paragraphs(text)
        if not new:
            if ended and state.get("steps"):  # the model ended its solution
                return {**totals, "done_writing": True, "pending": None}
            reasks = state.get("reasks", 0) + 1
            if reasks > config.reasks:
                return {**totals, "status": "error", "stop_reason": "no usable reply after re-asking",
                        "pending": {**pending, "events": [*events, "no usable reply"]}}
            return {**totals, "reasks": reasks, "pending": {**pending, "events": [*events, "re-asking"]}}
        first = len(state.get("steps", [])) + 1
        steps = [Step(index=first + i, thought=paragraph).to_dict() for i, paragraph in enumerate(new)]
        steps[0].update({key: pending[key] for key in (
            "queries", "hits", "judgments", "events", "prompt_tokens", "completion_tokens", "cached_tokens")})
        steps[0]["elapsed_s"] = round(pending["elapsed_s"], 3)
        separator = "" if not solution or solution.endswith("\n") else "\n\n"
        tail = "\n" if request else "" if ended else "\n\n"  # after a cut paragraph: the model's own break
        return {**totals, "steps": [*state.get("steps", []), *steps], "pending": None, "reasks": 0,
                "solution": solution + separator + text.rstrip() + tail,
                "request": request._asdict() if request else None, "done_writing": ended,
                "looping": looping(text)}

    def run_compute(state: AgentState) -> dict[str, Any]:
        request = state["request"]
        call = compute(request["argument"], limits=config.compute_limits)
        steps = list(state["steps"])
        steps[-1] = {**steps[-1], "tool_calls": [*steps[-1]["tool_calls"], call.to_dict()]}
        result = call.output if call.status == "ok" else f"{call.status}: {call.output}"
        return {"steps": steps, "request": None, "solution": state["solution"] + f"Result: {result}\n\n"}

    def conclude(state: AgentState) -> dict[str, Any]:
        """The budget ran out (or the model looped) before a boxed answer: ask for the answer
        itself, a few tokens after the solution so far, instead of ending with none."""
        started = time.perf_counter()
        solution = state.get("solution", "").rstrip() + prompts.FORCED_ANSWER
        user = prompts.solve_prompt(state["problem"]["text"], state.get("references", []))
        try:
            written = write(llm, system, user, solution, max_tokens=config.answer_tokens, cut=_closing_brace)
        except LLMFailure as err:
            steps = list(state["steps"])
            steps[-1] = {**steps[-1], "events": [*steps[-1]["events"], f"forcing an answer failed: {err}"]}
            return {"steps": steps}
        steps = list(state["steps"])
        steps[-1] = {**steps[-1], "events": [*steps[-1]["events"], "answer forced at the end of the budget"],
                     "completion_tokens": steps[-1]["completion_tokens"] + written.usage.completion,
                     "prompt_tokens": steps[-1]["prompt_tokens"] + written.usage.prompt,
                     "cached_tokens": steps[-1]["cached_tokens"] + written.usage.cached,
                     "elapsed_s": round(steps[-1]["elapsed_s"] + time.perf_counter() - started, 3)}
        return {"steps": steps, "solution": solution + clean(written.text),
                "tokens": state.get("tokens", 0) + written.usage.total, "forced_answer": True}

    def finish(state: AgentState) -> dict[str, Any]:
        answer = last_boxed(state.get("solution", ""))
        gold = state["problem"].get("answer")
        verified = verify_answer(answer, str(gold), answer_type=state["problem"].get("answer_type"),
                                 limits=config.compute_limits) if answer and gold is not None else None
        if state.get("status") == "error":
            status, reason_ = "error", state.get("stop_reason") or "error"
        elif state.get("done_writing"):
            status, reason_ = "done", "answered" if answer is not None else "ended without a boxed answer"
        elif answer is not None:  # the budget (or a loop) cut the text after its answer, or forced one
            cause = "a loop" if state.get("looping") else over_budget(state) or "the budget"
            status = "done"
            forced = state.get("forced_answer")
            reason_ = f"answer forced after {cause}" if forced else f"answered; cut by {cause}"
        else:
            status, reason_ = "budget_exhausted", over_budget(state) or "budget"
        return {"status": status, "verified": verified, "final_answer": answer, "stop_reason": reason_}

    # -- routing ---------------------------------------------------------------------------
    def first_move(state: AgentState) -> Literal["retrieve", "reason"]:
        wanted = config.retrieve_before and (retriever is not None or examples is not None)
        return "retrieve" if wanted and can_retrieve(state) else "reason"

    def after_retrieve(state: AgentState) -> Literal["judge", "reason"]:
        return "judge" if state["pending"]["hits"] or state.get("steps") else "reason"

    def after_reason(state: AgentState) -> Literal["compute", "retrieve", "reason", "conclude", "finish"]:
        if state.get("status") == "error" or state.get("done_writing"):
            return "finish"
        request = state.get("request") or {}
        if request.get("kind") == "compute":
            return "compute"
        if over_budget(state) or state.get("looping"):
            answered = last_boxed(state.get("solution", "")) is not None
            wanted = config.force_answer and state.get("steps") and not answered
            return "conclude" if wanted and elapsed(state) < config.max_seconds else "finish"
        if request.get("kind") == "search" or scheduled(state):
            return "retrieve" if can_retrieve(state) else "reason"
        return "reason"

    def scheduled(state: AgentState) -> bool:
        if retriever is None or not config.retrieve_every:
            return False
        return len(state.get("steps", [])) - state.get("last_retrieval_step", 0) >= config.retrieve_every

    def start(state: AgentState) -> dict[str, Any]:
        return {"started": state.get("started") or time.time(), "steps": state.get("steps", []),
                "solution": state.get("solution", ""), "references": state.get("references", []),
                "tokens": state.get("tokens", 0), "solution_tokens": state.get("solution_tokens", 0),
                "retrievals": state.get("retrievals", 0), "status": "running"}

    graph = StateGraph(AgentState)
    for name, node in (("start", start), ("retrieve", retrieve), ("judge", judge), ("reason", reason),
                       ("compute", run_compute), ("conclude", conclude), ("finish", finish)):
        graph.add_node(name, node)
    graph.add_edge(START, "start")
    graph.add_conditional_edges("start", first_move)
    graph.add_conditional_edges("retrieve", after_retrieve)
    graph.add_edge("judge", "reason")
    graph.add_conditional_edges("reason", after_reason)
    graph.add_edge("compute", "reason")
    graph.add_edge("conclude", "finish")
    graph.add_edge("finish", END)
    return graph.compile(checkpointer=checkpointer, name="rader")
