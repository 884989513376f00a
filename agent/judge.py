"""The self-reflective relevance check: does a retrieved theorem or worked example help here, and why.

Each item gets a one-word verdict whose score is P(yes) from the log-probabilities (one
generated token: cheap). A theorem is relevant when its score reaches ``judge_threshold``,
or when it is the retrieval's best-scored theorem and reaches ``judge_top_threshold``: on
the TheoremQA dev labels the model ranks the gold theorem above a wrong one far more
reliably than it scores either in isolation (benchmarks/RESULTS.md). A worked example must
reach ``example_threshold`` on its own: the best-hit rule does not hold for examples (on
held-out MATH problems the examples it admitted lost more problems than they won, at the
same P(yes) as those that helped). Relevant items then get a one-line rationale.

Example:
    >>> judgments, usage, events = judge_hits(llm, "Sum of the roots of x^2-5x+6?", [],
    ...                                       [vieta, cosines], AgentConfig())  # doctest: +SKIP
"""

from __future__ import annotations

import math

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage

from rader.agent import prompts
from rader.agent.calls import Usage, chat_many, token_logprobs
from rader.agent.protocol import parse_verdict
from rader.agent.records import Judgment
from rader.agent.state import AgentConfig
from rader.retriever import Theorem

RATIONALE_CHARS = 300  # long entries are cut for the rationale: prefill is slow


def yes_probability(message: AIMessage) -> float | None:
    """P(yes) / (P(yes) + P(no)) at the first token of a one-word verdict."""
    content = token_logprobs(message)
    if not content:
        return None
    probs = {"yes": 0.0, "no": 0.0}
    for alt in content[0].get("top_logprobs") or [content[0]]:
        word = alt.get("token", "").strip().lower()
        if word in probs:
            probs[word] += math.exp(alt["logprob"])
    total = probs["yes"] + probs["no"]
    return probs["yes"] / total if total > 0 else None


def is_example(item: Theorem) -> bool:
    """Whether a corpus entry is a worked example (a solved problem) rather than a theorem."""
    return "solution" in item.metadata


def quoted(item: Theorem, chars: int) -> str:
    """How the judge sees an item: a theorem by title (and ``chars`` of statement), an example
    by its problem statement (whether it is solved the same way shows there)."""
    if is_example(item):
        return prompts.quote_example(item.id, prompts.shorten(item.text, 600))
    return prompts.quote_theorem(item.id, item.title, item.text[:chars])


def judge_hits(llm: BaseChatModel, problem: str, steps: list[str], items: list[Theorem],
               config: AgentConfig) -> tuple[list[Judgment], Usage, list[str]]:
    """Judge one retrieval's items together (theorems and worked examples alike); the calls go
    out ``config.judge_concurrency`` at a time."""
    verdicts = chat_many(llm, [(prompts.EXAMPLE_JUDGE_SYSTEM if is_example(item) else prompts.JUDGE_SYSTEM,
                                prompts.judge_prompt(problem, steps, quoted(item, config.judge_chars)))
                               for item in items],
                         concurrency=config.judge_concurrency, max_tokens=1, logprobs=True, top_logprobs=10)
    scores, usage, events = [], Usage(), []
    for item, (reply, used, message) in zip(items, verdicts, strict=True):
        usage += used
        score = yes_probability(message)
        if score is None:  # a server without log-probabilities: fall back on the word itself
            verdict, _ = parse_verdict("Relevant: " + reply)
            if verdict is None:
                events.append(f"no yes/no verdict for {item.id}: counted as not relevant")
            score = 1.0 if verdict else 0.0
        scores.append(score)
    theorems = [i for i, item in enumerate(items) if not is_example(item)]
    best = max(theorems, key=scores.__getitem__, default=None)
    relevant = [score >= config.example_threshold if is_example(item) else
                score >= config.judge_threshold or (i == best and score >= config.judge_top_threshold)
                for i, (item, score) in enumerate(zip(items, scores, strict=True))]
    chosen = [item for item, keep in zip(items, relevant, strict=True) if keep]
    rationales = chat_many(llm, [(prompts.RATIONALE_SYSTEM,
                                  prompts.rationale_prompt(problem, steps, quoted(item, RATIONALE_CHARS)))
                                 for item in chosen], concurrency=config.judge_concurrency, max_tokens=32)
    why = {}
    for item, (reply, used, _) in zip(chosen, rationales, strict=True):
        usage += used
        why[item.id] = (reply.strip().splitlines() or [""])[0][:200]
    judgments = [Judgment(item.id, keep, (why.get(item.id) or f"P(yes)={score:.2f}") if keep
                          else f"not a key tool here (P(yes)={score:.2f})", round(score, 4))
                 for item, score, keep in zip(items, scores, relevant, strict=True)]
    return judgments, usage, events
