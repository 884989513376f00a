"""Writes that land whole or not at all, and messages that name the disk when one fails.

Example:
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
    >>> with atomic_file(target) as scratch:
    ...     _ = scratch.write_text("hello")
    >>> target.read_text()
    'hello'
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import RaderError


def free_space(path: Path) -> str:
    """How much room the disk holding ``path`` has left, for messages about failed writes."""
    for folder in (path, *path.parents):
        if folder.exists():
            return f"{shutil.disk_usage(folder).free / 2**20:.0f} MiB free on the disk holding {folder}"
    return "disk space unknown"


@contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a scratch path beside ``path``; on success it replaces ``path``, on any failure it
    is removed (a write error becomes a `RaderError` naming the free space) and ``path`` is
    left as it was."""
    path = Path(path)
    scratch = path.with_name(path.name + ".partial")
    try:
        yield scratch
        scratch.replace(path)
    except BaseException as err:
        scratch.unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise RaderError(f"could not write {path}: {err} ({free_space(path.parent)})") from err
        raise
