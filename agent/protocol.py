"""Tolerant parsing of what the model writes: a missing or malformed tag is an event, not a crash.

Example:
    >>> reply = parse_reason("Step: 2+3 is 5.\\nAnswer: \\\\boxed{5}")
    >>> reply.step, reply.answer, reply.events
    ('2+3 is 5.', '5', [])
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_STEP = re.compile(r"^\s*(?:\*\*)?step(?:\s*\d+)?(?:\*\*)?\s*[:.]\s*(.*)", re.I | re.M)
_COMPUTE = re.compile(r"^\s*(?:\*\*)?compute(?:\*\*)?\s*:\s*(.+)$", re.I | re.M)
_SEARCH = re.compile(r"^\s*(?:\*\*)?search(?:\*\*)?\s*:\s*(.+)$", re.I | re.M)
_QUERY = re.compile(r"^\s*(?:\*\*)?query(?:\*\*)?\s*:\s*(.+)$", re.I | re.M)
_VERDICT = re.compile(r"relevant\s*[:=]?\s*\**\s*(yes|no)\b", re.I)
_REASON = re.compile(r"^\s*reason\s*:\s*(.+)$", re.I | re.M)


def last_boxed(text: str) -> str | None:
    r"""The content of the last ``\boxed{...}`` (braces balanced), or None."""
    start = text.rfind("\\boxed")
    while start != -1:
        open_at = text.find("{", start)
        if open_at != -1:
            depth = 0
            for i in range(open_at, len(text)):
                depth += {"{": 1, "}": -1}.get(text[i], 0)
                if depth == 0:
                    return text[open_at + 1:i].strip()
        start = text.rfind("\\boxed", 0, start)
    return None


@dataclass(slots=True)
class ReasonReply:
    step: str
    compute: str | None = None
    answer: str | None = None
    search: str | None = None  # a theorem the model asks to look up (schedule "model")
    events: list[str] = field(default_factory=list)


def parse_reason(text: str) -> ReasonReply:
    text = "".join(ch for ch in text if ch.isprintable() or ch in "\n\t").strip()
    events: list[str] = []
    if not any(ch.isalnum() for ch in text):
        return ReasonReply("", events=["empty or unreadable reply"])
    answer = last_boxed(text)
    if "\\boxed" in text and answer is None:
        events.append("malformed \\boxed{}: unbalanced braces")
    compute_match = _COMPUTE.search(text)
    search_match = _SEARCH.search(text)
    step_match = _STEP.search(text)
    if step_match:
        step = step_match.group(1).strip()
        rest = text[step_match.end():]
        # a step may run over lines until the next tag
        more = re.split(r"^\s*(?:compute|answer|step|search)\b", rest, maxsplit=1, flags=re.I | re.M)[0]
        step = (step + " " + " ".join(more.split())).strip()
    else:
        events.append("missing 'Step:' tag: the whole reply is taken as the step")
        step = re.sub(r"^\s*(compute|answer|search)\s*:.*$", "", text, flags=re.I | re.M).strip() or text
    return ReasonReply(step=step, compute=compute_match.group(1).strip() if compute_match else None,
                       answer=answer, search=search_match.group(1).strip() if search_match else None,
                       events=events)


_WORD = re.compile(r"\\[A-Za-z]+|[A-Za-z]{3,}")
_COMMON = frozenset(
    "the and for with that this then than what which when where find let are is was were has have "
    "how many much its all any each from into our you your can will would should there their these "
    "those such given value number compute determine show prove use using step next".split()
)


def lexical_keywords(text: str, limit: int = 12) -> str:
    r"""Keywords of a text for a ``lexical`` query: words and LaTeX commands, common words out.

    Example:
        >>> lexical_keywords(r"Find the number of ways to choose 3 of 10, i.e. $\binom{10}{3}$.")
        'ways choose \\binom'
    """
    seen: list[str] = []
    for word in _WORD.findall(text):
        key = word.lower()
        if key not in _COMMON and key not in seen:
            seen.append(key)
    return " ".join(seen[:limit])


def parse_query(text: str) -> tuple[str, list[str]]:
    """The model's search query and any protocol events."""
    match = _QUERY.search(text)
    if match:
        return match.group(1).strip(), []
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    if not line:
        return "", ["empty query reply"]
    return line, ["missing 'Query:' tag: the first line is taken as the query"]


def parse_verdict(text: str) -> tuple[bool | None, str]:
    """(relevant or None when no verdict is found, the one-line rationale)."""
    verdicts = _VERDICT.findall(text)
    reason = _REASON.search(text)
    rationale = reason.group(1).strip() if reason else " ".join(text.split())[:200]
    return (verdicts[-1].lower() == "yes" if verdicts else None), rationale
