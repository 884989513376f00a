"""Tolerant reading of what the model writes: its solution cut into steps, the requests it
makes, its answer; a missing or malformed piece is an event, not a crash.

Example:
    >>> paragraphs("We factor.\\n\\nThe roots are 2 and 3, so the sum is $\\\\boxed{5}$.")
    ['We factor.', 'The roots are 2 and 3, so the sum is $\\\\boxed{5}$.']
    >>> find_request("First we need a formula.\\nSearch: law of cosines\\n")
    Request(kind='search', argument='law of cosines', end=48)
"""

from __future__ import annotations

import re
from typing import NamedTuple

_REQUEST = re.compile(r"^[ \t]*(?:\*\*)?(search|compute)(?:\*\*)?[ \t]*:[ \t]*(.+?)[ \t]*\n", re.I | re.M)
_QUERY = re.compile(r"^\s*(?:\*\*)?query(?:\*\*)?\s*:\s*(.+)$", re.I | re.M)
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
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


class Request(NamedTuple):
    """A tool request the model wrote on a line of its own: ``Search: ...`` or ``Compute: ...``."""

    kind: str  # "search" or "compute"
    argument: str
    end: int  # where the request line ends in the text (after its newline)


def find_request(text: str, kinds: tuple[str, ...] = ("search", "compute")) -> Request | None:
    """The first whole request line of one of ``kinds`` in ``text``, or None."""
    for match in _REQUEST.finditer(text):
        kind = match.group(1).lower()
        if kind in kinds:
            return Request(kind, match.group(2).strip().strip("`").strip(), match.end())
    return None


def clean(text: str) -> str:
    """Model text without control characters (a garbage reply must not reach prompts or files)."""
    return _CONTROL.sub("", text)


def paragraphs(text: str) -> list[str]:
    """The paragraphs of a solution text (blank-line separated), empty ones dropped."""
    return [part.strip() for part in _PARAGRAPH_BREAK.split(text) if part.strip()]


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
