"""Registered encoders: a trained model folder given a name under the data directory.

`register_encoder` copies the folder to ``<home>/encoders/<name>`` (written beside and
renamed into place), so the name keeps working after the training folder is deleted.
Anything that takes an encoder name (``retriever.encoder`` in settings, ``--encoder``)
resolves registered names through `encoder_location`, which also fetches a catalog encoder
(``mpnet``) into ``<home>/models/`` on first use; indexes are keyed by the weights'
sha256, so selecting a new encoder builds its own index and never reuses a stale one.

Example:
    >>> import tempfile
    >>> home = tempfile.mkdtemp()
    >>> registered_encoders(home)
    {}
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from .encoders import BUILTIN_ENCODERS, ENCODER_CATALOG, fetch_encoder
from .errors import RaderError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _root(home: str | Path) -> Path:
    return Path(home).expanduser() / "encoders"


def register_encoder(folder: str | Path, name: str, home: str | Path, *, replace: bool = False) -> Path:
    """Copy a sentence-transformers model folder into the registry under ``name``."""
    folder = Path(folder).expanduser()
    if not _NAME.match(name) or name in BUILTIN_ENCODERS or name in ENCODER_CATALOG:
        raise RaderError(f"encoder name {name!r}: use letters, digits, '.', '_' or '-' "
                         f"(not a built-in name: {', '.join({**BUILTIN_ENCODERS, **ENCODER_CATALOG})})")
    if not folder.is_dir() or (not any(folder.glob("*.safetensors")) and not any(folder.glob("*.bin"))):
        raise RaderError(f"{folder} is not a model folder (no .safetensors or .bin weights)")
    target = _root(home) / name
    if target.exists() and not replace:
        raise RaderError(f"encoder {name!r} is already registered ({target}); pass --replace to overwrite")
    partial = target.with_name(name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(folder, partial)
    if target.exists():
        shutil.rmtree(target)
    partial.rename(target)
    return target


def registered_encoders(home: str | Path) -> dict[str, dict[str, Any]]:
    """name -> {"path", "base", "metrics"} for every registered encoder (from its training manifest)."""
    root = _root(home)
    found = {}
    for folder in sorted(root.iterdir()) if root.is_dir() else ():
        if not folder.is_dir() or folder.name.endswith(".partial"):
            continue
        manifest = folder / "rader_training.json"
        info = json.loads(manifest.read_text()) if manifest.is_file() else {}
        found[folder.name] = {"path": str(folder), "base": info.get("base"),
                              "metrics": info.get("metrics", {}).get("after")}
    return found


def encoder_location(name: str, home: str | Path) -> str:
    """A registered name becomes its folder, a catalog name its fetched folder (fetched now on
    first use); anything else passes through unchanged."""
    if name in ENCODER_CATALOG:
        return str(fetch_encoder(name, home))
    folder = _root(home) / name
    return str(folder) if _NAME.match(name) and folder.is_dir() else name
