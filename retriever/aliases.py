"""Theorem aliases: the ids of entries merged into another keep resolving to it.

A corpus line may carry ``aliases`` (kept in `Theorem.metadata`): ids that once named
entries since merged into this one (the built-in corpus merged its near-duplicates this
way). Trajectories, exported harvests and datasets refer to theorems by id, so a published
id never stops resolving: `Corpus.get` and ``in`` accept an alias and answer with the
theorem that absorbed it, whose ``id`` is the current one.

Example:
    >>> from rader.retriever import builtin_corpus
    >>> builtin_corpus().get("rader/geometry/point_line_distance").id
    'rader/algebra/point_line_distance'
"""

from __future__ import annotations

import re
from collections.abc import Container, Iterable

from .errors import RaderError
from .types import Theorem


def aliases_of(theorem: Theorem) -> tuple[str, ...]:
    """The former ids that resolve to ``theorem``."""
    return tuple(str(a) for a in theorem.metadata.get("aliases") or ())


def twin_key(title: str) -> str:
    """A theorem's name as any corpus writes it: the built-in "Quadratic formula" and TheoremQA's
    "Quadratic Formula" share one key. Entries of two corpora with one key are twins (one theorem),
    which no merge can alias, since each corpus keeps its own ids.

    >>> twin_key("Liouville's theorem") == twin_key("Liouville’s Theorem")
    True
    """
    return re.sub(r"[^0-9a-z]+", " ", title.lower()).strip()


def alias_index(theorems: Iterable[Theorem], ids: Container[str]) -> dict[str, Theorem]:
    """alias -> the theorem it names; an alias may be neither a current id nor claimed twice."""
    found: dict[str, Theorem] = {}
    for theorem in theorems:
        for alias in aliases_of(theorem):
            if alias in ids:
                raise RaderError(f"{alias!r} is both an entry's id and an alias of {theorem.id!r}: "
                                 "rename one of them")
            if alias in found and found[alias].id != theorem.id:
                raise RaderError(f"alias {alias!r} is claimed by both {found[alias].id!r} and "
                                 f"{theorem.id!r}: keep it on one entry")
            found[alias] = theorem
    return found
