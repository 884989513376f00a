"""The one exception type for errors a user can cause (bad input, missing files, stale indexes)."""

from __future__ import annotations


class RaderError(Exception):
    """An error the user can fix; the message says what to do next.

    Tracebacks are for bugs: the CLI prints a `RaderError` as one clear line and exits 2.
    """
