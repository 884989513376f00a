"""Seeded hash splits: a key (a problem id, a theorem name) lands on one side for good.

The learning loop harvests one part of a labelled set and evaluates on the other; splitting
by a field such as TheoremQA's ``theorem`` keeps every question of a theorem on one side, so
a gain on the held-out part is generalisation, not memory. The same `HeldOut` given to the
harvest (which skips the held-out rows) and to the evaluation (which keeps only them) agrees
row for row.

Example:
    >>> held_out = HeldOut("theorem", fraction=0.5)
    >>> rows = [{"theorem": f"theorem {n}"} for n in range(1000)]
    >>> 400 < sum(map(held_out.holds, rows)) < 600
    True
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import RaderError


def hash_fraction(key: str, seed: int = 0) -> float:
    """A stable pseudo-random number in [0, 1) for ``key`` (the same on every machine)."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True, slots=True)
class HeldOut:
    """Rows whose ``field`` hashes below ``fraction`` are held out."""

    field: str
    fraction: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.fraction < 1:
            raise RaderError(f"held-out fraction must be in (0, 1), got {self.fraction}")

    def holds(self, row: dict[str, Any]) -> bool:
        value = row.get(self.field)
        if value is None:
            raise RaderError(f"row {row.get('id', row.get('query_id', '?'))!r} has no field "
                             f"{self.field!r} to split on")
        return hash_fraction(str(value), self.seed) < self.fraction


def held_out_rows(held_out: HeldOut | None) -> Callable[[dict[str, Any]], bool] | None:
    """The row filter that keeps the rows ``held_out`` holds, or None (keep every row) when
    there is no split: what the ``where`` of `load_judged_queries` and `load_problems` takes.

    Example:
        >>> held_out_rows(None) is None
        True
        >>> held_out_rows(HeldOut("theorem"))({"theorem": "theorem 1"}) in (True, False)
        True
    """
    return held_out.holds if held_out else None
