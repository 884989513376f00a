"""A BM25 tokenizer that keeps the mathematics.

bm25s' default pattern (``\\b\\w\\w+\\b``) throws away ``\\binom``'s backslash meaning,
single digits and exponents. This one keeps LaTeX command names (``\\binom`` -> ``binom``,
``\\pmod`` -> ``mod``), exponents (``x^2`` -> ``^2``), numbers, and English words with
stopwords removed and Snowball stems.

Example:
    >>> MathTokenizer().tokenize(r"Find $\\binom{5}{2} + x^2 \\pmod 7$ for the integers")
    ['find', 'binom', 'mod', 'integ']
    >>> MathTokenizer().tokenize(r"$a^{p-1} \\equiv 1$ and $\\sin^2 x$")
    ['^p', 'equiv', 'sin']
"""

from __future__ import annotations

import re
from functools import lru_cache

import Stemmer
from bm25s.stopwords import STOPWORDS_EN

_TOKEN = re.compile(
    r"""
      \\(?P<cmd>[A-Za-z]+)                          # a LaTeX command
    | \^\s*\{?\s*(?P<exp>[A-Za-z0-9]+)              # an exponent: ^2, ^{n}, ^{p-1} -> p
    | (?P<num>\d+(?:\.\d+)?)                        # a number: matched so that it is skipped
    | (?P<word>[^\W\d_]{2,})                        # a word of two or more letters
    """,
    re.VERBOSE,
)
# Commands that only lay out a formula; they carry no meaning a query could match.
_LAYOUT_COMMANDS = frozenset({
    "left", "right", "big", "bigg", "Big", "Bigg", "displaystyle", "textstyle", "text", "textbf",
    "textit", "mathrm", "mathbf", "mathit", "mathcal", "mathbb", "operatorname", "quad", "qquad",
    "cdot", "cdots", "ldots", "dots", "begin", "end", "hline", "limits", "nolimits",
})
_COMMAND_ALIASES = {"pmod": "mod", "bmod": "mod", "tfrac": "frac", "dfrac": "frac", "lvert": "abs",
                    "rvert": "abs", "vert": "abs", "le": "leq", "ge": "geq", "ne": "neq"}


class MathTokenizer:
    """Text and LaTeX to BM25 tokens; the same instance must index and query."""

    def __init__(self, *, stem: bool = True, stopwords: bool = True) -> None:
        self.stem = stem
        self.stopwords = frozenset(STOPWORDS_EN) if stopwords else frozenset()
        stemmer = Stemmer.Stemmer("english") if stem else None
        self._stem_word = lru_cache(maxsize=200_000)(stemmer.stemWord) if stemmer else str

    @property
    def config(self) -> dict[str, object]:
        """What an index records, so a query is tokenized the way its corpus was."""
        return {"name": "math", "stem": self.stem, "stopwords": bool(self.stopwords)}

    def tokenize(self, text: str) -> list[str]:
        tokens: list[str] = []
        for match in _TOKEN.finditer(text):
            kind = match.lastgroup
            value = match.group(kind)
            if kind == "cmd":
                if value in _LAYOUT_COMMANDS:
                    continue
                tokens.append(_COMMAND_ALIASES.get(value, value).lower())
            elif kind == "exp":
                if not value.isdigit():
                    tokens.append("^" + value.lower())
            elif kind == "word":
                word = value.lower()
                if word not in self.stopwords:
                    tokens.append(self._stem_word(word))
        return tokens

    def tokenize_many(self, texts: list[str]) -> list[list[str]]:
        return [self.tokenize(t) for t in texts]
