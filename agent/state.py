"""The graph state (plain JSON-able values, so any LangGraph checkpointer can store it), the
agent's settings, and a run's context (the models and retrievers it works with)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypedDict

from rader.agent.sandbox import ComputeLimits


class Pending(TypedDict):
    """What is gathered for the next step before it is written: the retrieval (queries, hits,
    the judge's verdicts as dicts), protocol events, and the time and tokens spent on them."""

    queries: list[dict[str, Any]]  # Query.to_dict()
    hits: list[dict[str, Any]]  # Hit.to_dict(); worked examples have retriever "examples/<name>"
    judgments: list[dict[str, Any]]  # Judgment.to_dict()
    events: list[str]
    elapsed_s: float
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int


def empty_pending() -> Pending:
    return Pending(queries=[], hits=[], judgments=[], events=[], elapsed_s=0.0, prompt_tokens=0,
                   completion_tokens=0, cached_tokens=0)


def merge_steps(steps: list[dict[str, Any]], changed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The steps' reducer: a node returns only the steps it wrote or changed; a changed step
    replaces the one of the same index, a new one is appended.

    Example:
        >>> merge_steps([{"index": 1, "thought": "a"}], [{"index": 1, "thought": "a!"}, {"index": 2}])
        [{'index': 1, 'thought': 'a!'}, {'index': 2}]
    """
    by_index = {step["index"]: step for step in steps}
    by_index.update((step["index"], step) for step in changed)
    return [by_index[index] for index in sorted(by_index)]


class AgentState(TypedDict, total=False):
    problem: dict[str, Any]  # a Problem as a dict; the only required input (+ "exclude_ids": [...])
    steps: Annotated[list[dict[str, Any]], merge_steps]  # finished Steps as dicts: the paragraphs so far
    solution: str  # the solution text as the model reads it (paragraphs, search results, results)
    references: list[str]  # quoted examples and theorems in the prompt before the solution
    pending: Pending | None  # gathered for the next step
    request: dict[str, str] | None  # what the model asked for at the end of its text: search or compute
    final_answer: str | None
    verified: bool | None
    status: str
    stop_reason: str
    started: float
    tokens: int  # prompt + completion tokens of every call
    solution_tokens: int  # completion tokens of the solution itself (the bare model's budget)
    retrievals: int
    last_retrieval_step: int  # steps written when the last retrieval ran (for retrieve_every)
    reasks: int
    done_writing: bool  # the model ended its solution (end of text)
    looping: bool  # the model was repeating itself when its text was cut
    forced_answer: bool  # the answer was asked for after the budget ran out
    confidence: float | None  # the lowest window confidence of the solution so far (retrieve_when "unsure")
    attempt_start: int  # steps written before the current attempt at the solution (0: the first)
    attempt: int  # which attempt at the solution this is (1: the first; retrieve_when "unsure")
    earlier_answers: list[list[Any]]  # [answer, confidence] of each attempt set aside (None: none, forced)
    stopped_unsure: bool  # this attempt was ended where its confidence fell under unsure_below


@dataclass(frozen=True, kw_only=True)
class AgentConfig:
    """How the agent runs; every field has a safe default.

    The model writes its solution in its own words, in as few calls as the graph's actions
    allow; steps are the paragraphs cut out of it. Retrieval happens before the solution
    starts (the problem's worked examples and theorems), when the model writes a
    ``Search:`` line (``retrieve_on_request``) and every ``retrieve_every`` paragraphs.
    """

    solution_tokens: int = 1024  # completion tokens of the solution: the bare model's own budget
    max_tokens: int = 40000  # prompt + completion tokens over the whole run (judging included)
    max_seconds: float = 600.0  # wall time of the whole run
    max_steps: int = 64  # paragraphs of an attempt: a safety net far above what solutions need
    max_retrievals: int = 4  # retrievals in a run (the one before the solution included)
    retrieve_before: bool = True  # retrieve for the problem before the solution starts
    retrieve_when: Literal["always", "unsure"] = "always"  # unsure: only after an unsure first attempt
    unsure_below: float = 0.8  # the confidence under which a first attempt is unsure (RESULTS.md)
    confidence_window: int = 32  # tokens of the window that confidence is the lowest over
    stop_when_unsure: bool = True  # end an attempt that another may follow at its first unsure window
    max_attempts: int = 2  # attempts at the solution: the bare one, then with retrieval, then sampled
    retry_temperature: float = 0.7  # temperature of sampled attempts (all after the first with no references)
    choose: Literal["surest", "vote"] = "surest"  # the answer of several attempts: surest, or most given
    retrieve_on_request: bool = False  # tell the model it may write "Search: ..." and act on it
    retrieve_every: int = 0  # also retrieve after every N paragraphs (0: never)
    write_query: bool = True  # before theorem retrieval the model names the theorem it needs (llm_query)
    k: int = 3  # theorems retrieved (and judged) per retrieval
    examples_k: int = 3  # worked examples retrieved (and judged) for the problem
    max_examples: int = 2  # worked examples shown to the model
    judge: bool = True  # run the self-reflective relevance check; without it every hit enters
    judge_threshold: float = 0.75  # P(yes) that makes any hit relevant (calibrated, RESULTS.md)
    judge_top_threshold: float = 0.05  # P(yes) that makes a retrieval's best-scored theorem relevant
    example_threshold: float = 0.75  # P(yes) that makes a worked example relevant (no best-hit rule)
    twin_similarity: float = 0.0  # dense cosine that shows a worked example without judging (0: off)
    judge_concurrency: int = 1  # verdicts sent at once (raise it for a server that batches, e.g. vLLM)
    judge_chars: int = 0  # statement characters shown to the judge beside a theorem's title
    theorem_chars: int = 300  # statement characters of a relevant theorem shown to the model
    example_chars: int = 1500  # worked-solution characters of a relevant example shown
    compute: bool = False  # tell the model it may write "Compute: <expression>" lines (sympy)
    force_answer: bool = True  # out of budget (or looping) with no boxed answer: ask for the answer alone
    answer_tokens: int = 40  # tokens of that forced answer
    reasks: int = 2  # re-asks after an empty or failed reply before the run errors
    compute_limits: ComputeLimits = field(default_factory=ComputeLimits)


@dataclass(frozen=True)
class AgentContext:
    """What one run works with: LangGraph's run-time context of the agent's graph.

    ``llm`` writes the solution and ``aux_llm`` (default ``llm``) makes the short calls
    (queries, verdicts); ``retriever`` searches theorems and ``examples`` worked examples
    (each a `rader.retriever.Retriever`, anything with ``search(Query, k)``, ``theorem(id)``
    and ``name``, or None); ``config`` holds the run's settings and budgets.
    """

    llm: Any
    retriever: Any = None
    examples: Any = None
    aux_llm: Any = None
    config: AgentConfig = field(default_factory=AgentConfig)

    @property
    def aux(self) -> Any:
        return self.aux_llm or self.llm
