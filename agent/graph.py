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

With ``retrieve_when="unsure"`` the first pass is the bare model's call, without retrieval,
streamed with its token log-probabilities; when its answer is missing, forced or unsure
(`rader.agent.confidence`), **retry** sets it aside and the run starts again from the problem
with retrieval first. Confidence can only fall as a text grows, so (``stop_when_unsure``) an
attempt that another may follow ends as soon as it falls under ``unsure_below``: the rest of a
solution that would be set aside is never written. With ``max_attempts`` over 2, the third
attempt on are sampled with the second's references, until one is sure; with nothing to
retrieve (or no reference kept), the second is sampled too: self-consistency alone, the plain
alternative that retrieval must beat. Every attempt's steps stay in the record; where several
have an answer, the surest stands (DeepConf's confidence-weighted choice), and an earlier
one's when the last ends without one. With ``choose="vote"`` every attempt is written to its
answer instead, later attempts follow until one answer (math-verify equivalence) has a
majority of ``max_attempts``, and the answer most attempts gave stands, a tie going to the
earliest: the bare call's answer is replaced only where two later attempts agree on another.

Nodes and routers are module-level functions of the state and LangGraph's run-time context
(`AgentContext`: the chat models, the retrievers and the settings of one run), so one
compiled graph, `AGENT_GRAPH`, serves every run and every choice of model, corpus and budget.

Example:
    >>> from rader.agent import AgentConfig, AgentContext
    >>> state = AGENT_GRAPH.invoke({"problem": {"id": "p", "text": "2+3?"}},
    ...                            context=AgentContext(llm=my_chat_model, retriever=my_theorems,
    ...                                                 config=AgentConfig(max_steps=8)))  # doctest: +SKIP
    >>> graph = build_graph(llm=my_chat_model, retriever=my_theorems)  # doctest: +SKIP
    >>> for update in graph.stream({"problem": {"id": "p", "text": "2+3?"}},
    ...                            stream_mode="updates"):  # doctest: +SKIP
    ...     print(update)
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from rader.agent import prompts
from rader.agent.calls import LLMFailure, Usage, chat, write
from rader.agent.confidence import falls_under, lowest_window_confidence
from rader.agent.judge import is_example, judge_hits
from rader.agent.protocol import clean, find_request, last_boxed, lexical_keywords, paragraphs, parse_query
from rader.agent.records import Step
from rader.agent.sandbox import compute, verify_answer
from rader.agent.state import AgentConfig, AgentContext, AgentState, Pending, empty_pending
from rader.retriever import Hit, Query, Theorem, twin_key

EXAMPLES_PREFIX = "examples/"  # Hit.retriever of a worked example: examples/<retriever name>
EARLIER_STANDS = "an earlier attempt's answer stands"  # the event that names the answer set aside
VOTED = "voted: "  # the event that gives the answer of a vote, and every attempt's answer
_GIVEN_BY = re.compile(r"(.+?) \(given by attempt\(s\) ([\d, ]+)\)(?:, of \d+)?(?:; set aside: |; |$)")
SOLUTION_NODES = frozenset({"reason", "conclude"})  # the nodes whose streamed tokens are the solution
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


def _system(context: AgentContext, state: AgentState) -> str:
    return prompts.solve_system(search=_search_tool(context, state), compute=_compute_tool(context, state))


def _search_tool(context: AgentContext, state: AgentState) -> bool:
    """Whether the model may ask for a search (never in the unsure mode's first attempt, which
    is the bare model's call)."""
    config = context.config
    return context.retriever is not None and config.retrieve_on_request and not _bare_attempt(state, config)


def _compute_tool(context: AgentContext, state: AgentState) -> bool:
    """Whether the model may ask for a computation (never in the unsure mode's first attempt)."""
    return context.config.compute and not _bare_attempt(state, context.config)


def _requests(context: AgentContext, state: AgentState) -> tuple[str, ...]:
    """The request lines the model was told it may write."""
    offered = (("search", _search_tool(context, state)), ("compute", _compute_tool(context, state)))
    return tuple(kind for kind, on in offered if on)


def _item(context: AgentContext, hit: dict[str, Any]) -> Theorem:
    source = context.examples if hit["retriever"].startswith(EXAMPLES_PREFIX) else context.retriever
    return source.theorem(hit["theorem_id"])


def attempt_steps(state: AgentState) -> list[dict[str, Any]]:
    """The steps of the current attempt at the solution (a second attempt, after an unsure
    first one, starts from the problem again; the first one's steps stay in the record)."""
    return state.get("steps", [])[state.get("attempt_start", 0):]


def elapsed(state: AgentState) -> float:
    return time.time() - state.get("started", time.time())


def over_budget(state: AgentState, config: AgentConfig) -> str | None:
    """The budget a run has spent (None: none yet). Steps and solution tokens are the current
    attempt's (each attempt is a solution of its own); tokens and seconds the whole run's."""
    if len(attempt_steps(state)) >= config.max_steps:
        return f"max_steps ({config.max_steps})"
    if state.get("solution_tokens", 0) >= config.solution_tokens:
        return f"solution_tokens ({config.solution_tokens})"
    if state.get("tokens", 0) >= config.max_tokens:
        return f"max_tokens ({config.max_tokens})"
    if elapsed(state) >= config.max_seconds:
        return f"max_seconds ({config.max_seconds:g})"
    return None


def can_retrieve(state: AgentState, config: AgentConfig) -> bool:
    return state.get("retrievals", 0) < config.max_retrievals


# -- retrieve ---------------------------------------------------------------------------------
def theorem_queries(state: AgentState, context: AgentContext, pending: Pending) -> list[Query]:
    """The queries of one theorem retrieval: the model's request or the query it writes
    (llm_query), the problem or the last step, and the step's keywords (lexical)."""
    problem, steps = state["problem"]["text"], [s["thought"] for s in attempt_steps(state)]
    request = state.get("request") or {}
    queries = []
    if request.get("kind") == "search":
        queries.append(Query(request["argument"], "llm_query"))
    elif context.config.write_query:
        started = time.perf_counter()
        try:
            reply, usage, _ = chat(context.aux, prompts.QUERY_SYSTEM, prompts.query_prompt(problem, steps),
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


def search(engine: Any, queries: list[Query], k: int, prefix: str = "", keep=lambda hit: True) -> list[Hit]:
    """The best ``k`` hits of several queries (ordered by each item's best rank, then renumbered
    1..k so a hit's rank is its place in the merged list); ``prefix`` marks worked examples,
    which ``keep`` may drop. A theorem takes one slot: its twin from another corpus (the
    built-in "Quadratic formula" beside TheoremQA's "Quadratic Formula") is left out."""
    depth = k + 5  # room for what ``keep`` and the twins leave out
    many = getattr(engine, "search_many", None)  # one batch (one encoder call) for all the queries
    rankings = many(queries, k=depth) if many else [engine.search(query, k=depth) for query in queries]
    best: dict[str, Hit] = {}
    for hits in rankings:
        for hit in hits:
            if keep(hit) and (hit.theorem_id not in best or hit.rank < best[hit.theorem_id].rank):
                best[hit.theorem_id] = hit
    ranked = sorted(best.values(), key=lambda h: (h.rank, -h.score))
    if not prefix:
        ranked = _without_twins(engine, ranked)
    return [hit._replace(rank=place, retriever=prefix + hit.retriever)
            for place, hit in enumerate(ranked[:k], 1)]


def _without_twins(engine: Any, hits: list[Hit]) -> list[Hit]:
    """``hits`` less each one that bears the name of a better one (an untitled entry is unique)."""
    names: set[str] = set()
    kept = []
    for hit in hits:
        name = twin_key(engine.theorem(hit.theorem_id).title)
        if name in names:
            continue
        kept.append(hit)
        if name:
            names.add(name)
    return kept


def retrieve(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    context = runtime.context
    config, examples = context.config, context.examples
    started = time.perf_counter()
    pending = empty_pending()
    problem = state["problem"]
    queries: list[Query] = []
    hits: list[Hit] = []
    if examples is not None and not attempt_steps(state):
        example_query = Query(problem["text"], "problem")

        def not_the_problem(hit: Hit) -> bool:
            return hit.theorem_id != problem.get("id") and not near_identical(
                examples.theorem(hit.theorem_id).text, problem["text"])

        hits += search(examples, [example_query], config.examples_k, EXAMPLES_PREFIX, not_the_problem)
        queries.append(example_query)
    if context.retriever is not None:
        more = theorem_queries(state, context, pending)
        queries += [q for q in more if q not in queries]
        hits += search(context.retriever, more, config.k)
    pending.update(queries=[q.to_dict() for q in queries], hits=[h.to_dict() for h in hits])
    pending = _charge(pending, Usage(), time.perf_counter() - started)
    return {"pending": pending, "retrievals": state.get("retrievals", 0) + 1,
            "last_retrieval_step": len(state.get("steps", [])),
            "tokens": state.get("tokens", 0) + pending["prompt_tokens"] + pending["completion_tokens"]}


# -- judge: what enters the context ---------------------------------------------------------
def near_twins(hits: list[dict[str, Any]], config: AgentConfig) -> dict[str, float]:
    """The worked examples that the dense retriever scored at ``twin_similarity`` (cosine) or
    more, by id: the same kind of problem with other numbers, shown without asking the judge
    (on MATH the judge's P(yes) did not tell a helpful example from a harmful one, RESULTS.md).
    Other retrievers' scores are not cosines, so their hits are never twins; with
    ``max_examples`` 0 no example is shown, so none is a twin either."""
    if not config.twin_similarity or not config.max_examples:
        return {}
    return {hit["theorem_id"]: hit["score"] for hit in hits
            if hit["retriever"] == EXAMPLES_PREFIX + "dense" and hit["score"] >= config.twin_similarity}


def judge(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    context = runtime.context
    config = context.config
    started = time.perf_counter()
    pending = dict(state["pending"])
    items = [_item(context, hit) for hit in pending["hits"]]
    steps = [s["thought"] for s in attempt_steps(state)]
    twins = near_twins(pending["hits"], config)
    judgments, usage, events = [], Usage(), [
        f"worked example {item} is a near-twin of the problem (similarity {score:.3f} >= "
        f"{config.twin_similarity:g}): shown without judging" for item, score in twins.items()]
    if config.judge and items:
        judged = [i for i in items if i.id not in twins]
        for group in ([i for i in judged if is_example(i)], [i for i in judged if not is_example(i)]):
            if not group:
                continue
            try:
                found, used, more = judge_hits(context.aux, state["problem"]["text"], steps, group, config)
            except LLMFailure as err:
                found, used, more = [], Usage(), [f"relevance check failed: {err}"]
            judgments += found
            usage += used
            events += more
        relevant = {j.theorem_id for j in judgments if j.relevant} | twins.keys()
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
    if steps:  # mid-solution: the result follows the model's request in its own text
        update["solution"] = state.get("solution", "") + prompts.search_result(quoted)
    else:
        update["references"] = quoted
    return update


# -- reason: the model writes until the graph has something to do -----------------------------
def cut_point(state: AgentState, context: AgentContext) -> Callable[[str], int | None]:
    """Where to stop the stream: after a request line, or after the paragraph that makes a
    scheduled retrieval due."""
    config, requests = context.config, _requests(context, state)
    written = len(state.get("steps", []))
    due_in = config.max_steps - len(attempt_steps(state))  # the step cap: a safety net, but a real bound
    if (context.retriever is not None and config.retrieve_every and can_retrieve(state, config)
            and not _bare_attempt(state, config)):
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


def reason(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    context = runtime.context
    config, requests = context.config, _requests(context, state)
    pending = state.get("pending") or empty_pending()
    started = time.perf_counter()
    solution = state.get("solution", "")
    budget = max(1, config.solution_tokens - state.get("solution_tokens", 0))
    events = list(pending["events"])
    user = prompts.solve_prompt(state["problem"]["text"], state.get("references", []))
    stop = (falls_under(config.unsure_below, config.confidence_window)  # a vote needs every answer
            if config.stop_when_unsure and config.choose != "vote" and _may_retry(state, config) else None)
    try:
        written = write(context.llm, _system(context, state), user, solution, max_tokens=budget,
                        cut=cut_point(state, context), logprobs=config.retrieve_when == "unsure", stop=stop,
                        **_sampling(state, config))
        text, usage, ended = clean(written.text), written.usage, written.ended
    except LLMFailure as err:
        events.append(f"reasoning failed: {err}")
        written, text, usage, ended = None, "", Usage(), False
    pending = _charge({**pending, "events": events}, usage, time.perf_counter() - started)
    totals = {"tokens": state.get("tokens", 0) + usage.total,
              "solution_tokens": state.get("solution_tokens", 0) + usage.completion}
    if written is not None and written.logprobs:  # the least sure window of any call of the attempt
        found = lowest_window_confidence(written.logprobs, config.confidence_window)
        earlier = state.get("confidence")
        totals["confidence"] = found if earlier is None else min(earlier, found)
    if written is not None and written.stopped:  # unsure already: a second attempt follows
        totals["stopped_unsure"] = True
    request = find_request(text, requests) if requests else None
    if request is not None and request.kind == "search" and not can_retrieve(state, config):
        text += "Search result: no more searches in this run; go on without it.\n\n"
        request = None
    new = paragraphs(text)
    if not new:
        if totals.get("stopped_unsure"):
            return {**totals, "pending": None}
        if ended and attempt_steps(state):  # the model ended its solution
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
    return {**totals, "steps": steps, "pending": None, "reasks": 0,
            "solution": solution + separator + text.rstrip() + tail,
            "request": request._asdict() if request else None, "done_writing": ended,
            "looping": looping(text)}


def run_compute(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    request = state["request"]
    call = compute(request["argument"], limits=runtime.context.config.compute_limits)
    last = state["steps"][-1]
    result = call.output if call.status == "ok" else f"{call.status}: {call.output}"
    return {"steps": [{**last, "tool_calls": [*last["tool_calls"], call.to_dict()]}], "request": None,
            "solution": state["solution"] + f"Result: {result}\n\n"}


def conclude(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    """The budget ran out (or the model looped) before a boxed answer: ask for the answer
    itself, a few tokens after the solution so far, instead of ending with none."""
    context = runtime.context
    started = time.perf_counter()
    solution = state.get("solution", "").rstrip() + prompts.FORCED_ANSWER
    user = prompts.solve_prompt(state["problem"]["text"], state.get("references", []))
    last = state["steps"][-1]
    try:
        written = write(context.llm, _system(context, state), user, solution,
                        max_tokens=context.config.answer_tokens, cut=_closing_brace)
    except LLMFailure as err:
        return {"steps": [{**last, "events": [*last["events"], f"forcing an answer failed: {err}"]}]}
    last = {**last, "events": [*last["events"], "answer forced at the end of the budget"],
            "completion_tokens": last["completion_tokens"] + written.usage.completion,
            "prompt_tokens": last["prompt_tokens"] + written.usage.prompt,
            "cached_tokens": last["cached_tokens"] + written.usage.cached,
            "elapsed_s": round(last["elapsed_s"] + time.perf_counter() - started, 3)}
    return {"steps": [last], "solution": solution + clean(written.text),
            "tokens": state.get("tokens", 0) + written.usage.total, "forced_answer": True}


def _shown(confidence: float | None) -> str:
    return "forced or unknown" if confidence is None else f"{confidence:.3f}"


def _attempt_confidence(state: AgentState) -> float | None:
    """The current attempt's confidence as a claim on its answer: none for a forced answer."""
    return None if state.get("forced_answer") else state.get("confidence")


def surest_answer(state: AgentState) -> tuple[str | None, str | None]:
    """The run's answer and, after more than one attempt, why: the last attempt's answer, unless
    it has none or an earlier one was written at a higher confidence (a forced or unknown
    confidence never wins)."""
    answer = last_boxed(state.get("solution", ""))
    attempt = state.get("attempt", 1)
    if attempt == 1:
        return answer, None
    confidence = _attempt_confidence(state)
    earlier = [(i, a, c) for i, (a, c) in enumerate(state.get("earlier_answers", []), 1) if a is not None]
    known = [e for e in earlier if e[2] is not None]
    surest = max(known, key=lambda e: e[2], default=None)
    if answer is None:
        fallback = surest or (earlier[-1] if earlier else None)
        if fallback is None:
            return None, None
        return fallback[1], f"attempt {attempt} has no answer: attempt {fallback[0]}'s stands"
    if surest is None or (confidence is not None and confidence >= surest[2]):
        return answer, f"the answer of attempt {attempt} stands (confidence {_shown(confidence)})"
    return surest[1], (f"{EARLIER_STANDS} (attempt {surest[0]}, confidence {surest[2]:.3f}) over "
                       f"attempt {attempt}'s ({_shown(confidence)}), whose answer was: {answer}")


def _same_answer(a: str, b: str, state: AgentState, config: AgentConfig) -> bool:
    return a.strip() == b.strip() or verify_answer(
        a, b, answer_type=state["problem"].get("answer_type"), limits=config.compute_limits) is True


def answer_votes(state: AgentState, config: AgentConfig) -> list[list[tuple[int, str]]]:
    """Every attempt's answer as (attempt, answer), grouped by equivalence (math-verify; a
    forced answer counts, a missing one does not): the group most attempts gave first, ties
    to the group whose first answer came earliest."""
    given = [(i, a) for i, (a, _) in enumerate(state.get("earlier_answers", []), 1) if a is not None]
    answer = last_boxed(state.get("solution", ""))
    if answer is not None:
        given.append((state.get("attempt", 1), answer))
    groups: list[list[tuple[int, str]]] = []
    for attempt, this in given:
        group = next((g for g in groups if _same_answer(g[0][1], this, state, config)), None)
        if group is None:
            groups.append([(attempt, this)])
        else:
            group.append((attempt, this))
    return sorted(groups, key=lambda g: (-len(g), g[0][0]))


def voted_answer(state: AgentState, config: AgentConfig) -> tuple[str | None, str | None]:
    """The run's answer under ``choose="vote"`` and, after more than one attempt, why: the
    earliest wording of the answer most attempts gave."""
    groups = answer_votes(state, config)
    if state.get("attempt", 1) == 1 or not groups:
        return (groups[0][0][1] if groups else None), None

    def given_by(group: list[tuple[int, str]]) -> str:
        return f"{group[0][1]} (given by attempt(s) {', '.join(str(i) for i, _ in group)})"

    others = "; ".join(given_by(g) for g in groups[1:])
    why = f"{VOTED}{given_by(groups[0])}, of {state['attempt']}"
    return groups[0][0][1], why + (f"; set aside: {others}" if others else "")


def read_vote(event: str) -> dict[int, str]:
    """Each attempt's answer, read back from the event `voted_answer` wrote (attempts without an
    answer are absent).

    Example:
        >>> read_vote("voted: 7 (given by attempt(s) 1, 3), of 3; set aside: 5 (given by attempt(s) 2)")
        {1: '7', 3: '7', 2: '5'}
    """
    found = _GIVEN_BY.findall(event.removeprefix(VOTED))
    return {int(i): answer for answer, ids in found for i in ids.split(", ")}


def _has_majority(state: AgentState, config: AgentConfig) -> bool:
    groups = answer_votes(state, config)
    return bool(groups) and len(groups[0]) > config.max_attempts // 2


def finish(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    config = runtime.context.config
    answer, why = voted_answer(state, config) if config.choose == "vote" else surest_answer(state)
    gold = state["problem"].get("answer")
    verified = verify_answer(answer, str(gold), answer_type=state["problem"].get("answer_type"),
                             limits=config.compute_limits) if answer and gold is not None else None
    if state.get("status") == "error":
        status, reason_ = "error", state.get("stop_reason") or "error"
    elif state.get("done_writing"):
        status, reason_ = "done", "answered" if answer is not None else "ended without a boxed answer"
    elif answer is not None:  # the budget (or a loop) cut the text after its answer, or forced one
        cause = "a loop" if state.get("looping") else over_budget(state, config) or "the budget"
        status = "done"
        forced = state.get("forced_answer")
        reason_ = f"answer forced after {cause}" if forced else f"answered; cut by {cause}"
    else:
        status, reason_ = "budget_exhausted", over_budget(state, config) or "budget"
    update = {"status": status, "verified": verified, "final_answer": answer, "stop_reason": reason_}
    confidence, steps = state.get("confidence"), state.get("steps")
    sure = confidence is not None and confidence >= config.unsure_below
    voted = config.choose == "vote" and why is not None  # the vote's event says why the run stopped
    if _may_retry(state, config) and sure and not voted:
        why = f"sure of {_attempt_name(state)} (confidence {confidence:.3f} >= {config.unsure_below:g})"
    if why and steps:
        last = steps[-1]
        update["steps"] = [{**last, "events": [*last["events"], why]}]
    return update


def start(state: AgentState) -> dict[str, Any]:
    return {"started": state.get("started") or time.time(), "solution": state.get("solution", ""),
            "references": state.get("references", []), "tokens": state.get("tokens", 0),
            "solution_tokens": state.get("solution_tokens", 0), "retrievals": state.get("retrievals", 0),
            "status": "running"}


# -- routing ----------------------------------------------------------------------------------
def _has_sources(context: AgentContext) -> bool:
    return context.retriever is not None or context.examples is not None


def first_move(state: AgentState, runtime: Runtime[AgentContext]) -> Literal["retrieve", "reason"]:
    context = runtime.context
    config = context.config
    wanted = config.retrieve_before and _has_sources(context) and config.retrieve_when == "always"
    return "retrieve" if wanted and can_retrieve(state, config) else "reason"


def after_retrieve(state: AgentState) -> Literal["judge", "reason"]:
    return "judge" if state["pending"]["hits"] or attempt_steps(state) else "reason"


def _bare_attempt(state: AgentState, config: AgentConfig) -> bool:
    """Whether this is the first attempt of a run that retrieves only when unsure of it: the
    bare model's call (no retrieval, no Search tool, no scheduled cut)."""
    return config.retrieve_when == "unsure" and state.get("attempt", 1) == 1


def _may_retry(state: AgentState, config: AgentConfig) -> bool:
    """Whether, in a run that retrieves only when unsure, another attempt may follow this one."""
    return config.retrieve_when == "unsure" and state.get("attempt", 1) < config.max_attempts


def _retrieves_first(attempt: int, state: AgentState, context: AgentContext) -> bool:
    """Whether that attempt starts with a retrieval: the second does, where there is something
    to retrieve and the retrieval budget allows (without, later attempts are only sampled)."""
    return attempt == 2 and _has_sources(context) and can_retrieve(state, context.config)


def _attempt_name(state: AgentState) -> str:
    attempt = state.get("attempt", 1)
    return "the first attempt" if attempt == 1 else f"attempt {attempt}"


def _sampling(state: AgentState, config: AgentConfig) -> dict[str, Any]:
    """Attempts after the first are sampled, each with a seed of its own so a run is reproducible,
    except the second when it has retrieved references to differ from the first by (greedy)."""
    attempt = state.get("attempt", 1)
    sampled = attempt > 2 or (attempt == 2 and not state.get("references"))
    return {"temperature": config.retry_temperature, "seed": attempt} if sampled else {}


def settle(state: AgentState, runtime: Runtime[AgentContext]) -> Literal["retry", "finish"]:
    """After an attempt of ``retrieve_when="unsure"`` that another may follow: try again when its
    answer is missing, forced, or written at a confidence under ``unsure_below`` (unknown
    confidence, from a runtime without log-probabilities, counts as unsure). Under
    ``choose="vote"`` an attempt after the first is followed by another until one answer has a
    majority."""
    context = runtime.context
    config = context.config
    if (not _may_retry(state, config) or state.get("status") == "error"
            or elapsed(state) >= config.max_seconds or state.get("tokens", 0) >= config.max_tokens):
        return "finish"
    if config.choose == "vote" and state.get("attempt", 1) > 1:  # the first attempt is the gate
        return "finish" if _has_majority(state, config) else "retry"
    confidence = state.get("confidence")
    answered = last_boxed(state.get("solution", "")) is not None and not state.get("forced_answer")
    sure = answered and confidence is not None and confidence >= config.unsure_below
    return "finish" if sure else "retry"


def retry(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    """Set the unsure attempt aside (its steps and answer stay in the record) and start again
    from the problem: with retrieval first after the first attempt (sampled where there is
    nothing to retrieve), with the same references (sampled) after a later one."""
    context = runtime.context
    config = context.config
    answer = last_boxed(state.get("solution", ""))
    confidence = state.get("confidence")
    under = None if confidence is None else f"confidence {confidence:.3f} < {config.unsure_below:g}"
    tokens = state.get("solution_tokens", 0)
    steps, attempt = state.get("steps", []), state.get("attempt", 1)
    why = (f"{under}, {tokens} tokens in: stopped it there" if state.get("stopped_unsure")
           else f"no answer has a majority of {config.max_attempts} yet"
           if config.choose == "vote" and attempt > 1
           else "no answer" if answer is None else "a forced answer" if state.get("forced_answer")
           else under or "confidence unknown")
    this = [answer, _attempt_confidence(state)]
    update: dict[str, Any] = {
        "attempt": attempt + 1, "earlier_answers": [*state.get("earlier_answers", []), this],
        "attempt_start": len(steps), "solution": "", "confidence": None, "solution_tokens": 0,
        "done_writing": False, "looping": False, "forced_answer": False, "stopped_unsure": False,
        "request": None, "pending": None, "reasks": 0}
    if attempt == 1:
        update["references"] = []
    if steps:
        last = steps[-1]
        then = ("retrieving, solving again" if _retrieves_first(attempt + 1, state, context)
                else "solving again, sampled")
        event = f"unsure of {_attempt_name(state)} ({why}): {then}"
        update["steps"] = [{**last, "events": [*last["events"], event]}]
    return update


def after_retry(state: AgentState, runtime: Runtime[AgentContext]) -> Literal["retrieve", "reason"]:
    """The second attempt retrieves first (where there is something to retrieve); later ones
    keep its references."""
    return "retrieve" if _retrieves_first(state["attempt"], state, runtime.context) else "reason"


def after_reason(state: AgentState, runtime: Runtime[AgentContext]
                 ) -> Literal["compute", "retrieve", "reason", "conclude", "retry", "finish"]:
    context = runtime.context
    config = context.config
    if state.get("status") == "error" or state.get("done_writing") or state.get("stopped_unsure"):
        return settle(state, runtime)
    request = state.get("request") or {}
    if request.get("kind") == "compute":
        return "compute"
    if over_budget(state, config) or state.get("looping"):
        answered = last_boxed(state.get("solution", "")) is not None
        wanted = config.force_answer and attempt_steps(state) and not answered
        return "conclude" if wanted and elapsed(state) < config.max_seconds else settle(state, runtime)
    if request.get("kind") == "search" or scheduled(state, context):
        return "retrieve" if can_retrieve(state, config) else "reason"
    return "reason"


def scheduled(state: AgentState, context: AgentContext) -> bool:
    """Whether ``retrieve_every`` paragraphs have been written since the last retrieval."""
    if context.retriever is None or not context.config.retrieve_every or _bare_attempt(state, context.config):
        return False
    return len(state.get("steps", [])) - state.get("last_retrieval_step", 0) >= context.config.retrieve_every


def _with_default(function: Callable[..., Any], default: AgentContext) -> Callable[..., Any]:
    """``function`` (a node or router) run with ``default`` when a run passes no context."""

    def with_default(state: AgentState, runtime: Runtime[AgentContext]) -> Any:
        return function(state, runtime if runtime.context is not None else runtime.override(context=default))

    with_default.__name__ = function.__name__
    return with_default


def compile_graph(checkpointer: Any = None, context: AgentContext | None = None):
    """The agent's compiled graph. Every run passes its `AgentContext` (models, retrievers,
    settings) as LangGraph's run-time context (``graph.invoke(state, context=...)``), so one
    compiled graph serves them all; ``context`` is the one a run gets when it passes none."""
    def bound(function):  # nodes and routers that read the context
        return _with_default(function, context) if context is not None else function

    graph = StateGraph(AgentState, context_schema=AgentContext)
    graph.add_node("start", start)
    for name, node in (("retrieve", retrieve), ("judge", judge), ("reason", reason), ("compute", run_compute),
                       ("conclude", conclude), ("retry", retry), ("finish", finish)):
        graph.add_node(name, bound(node))
    graph.add_edge(START, "start")
    graph.add_conditional_edges("start", bound(first_move), ["retrieve", "reason"])
    graph.add_conditional_edges("retrieve", after_retrieve)
    graph.add_edge("judge", "reason")
    graph.add_conditional_edges("reason", bound(after_reason), ["compute", "retrieve", "reason", "conclude",
                                                                 "retry", "finish"])
    graph.add_edge("compute", "reason")
    graph.add_conditional_edges("conclude", bound(settle), ["retry", "finish"])
    graph.add_conditional_edges("retry", bound(after_retry), ["retrieve", "reason"])
    graph.add_edge("finish", END)
    return graph.compile(checkpointer=checkpointer, name="rader")


AGENT_GRAPH = compile_graph()


def build_graph(llm: BaseChatModel, retriever: Any = None, settings: AgentConfig | None = None,
                checkpointer: Any = None, examples: Any = None, aux_llm: BaseChatModel | None = None):
    """The agent's graph, compiled with a default context: it solves
    ``{"problem": {"id", "text", "answer"?}}``.

    ``retriever`` searches theorems and ``examples`` worked examples (solved problems); each
    is a `rader.retriever.Retriever` (or anything with ``search(Query, k)``, ``theorem(id)``
    and ``name``) or None. With neither, the agent asks exactly what the bare model is asked.
    ``aux_llm`` (default ``llm``) makes the short calls: queries and verdicts (`chat_models`
    gives llama.cpp's a slot of its own, so they leave the solution's cached prefix alone).
    A run may still pass a context of its own (``graph.invoke(state, context=...)``). The
    graph streams like any LangGraph graph (``stream_mode="updates"`` per node,
    ``"messages"`` for tokens) and takes a checkpointer.
    """
    return compile_graph(checkpointer, AgentContext(llm=llm, retriever=retriever, examples=examples,
                                                    aux_llm=aux_llm, config=settings or AgentConfig()))
