"""Indexes on disk, each a folder with a manifest that says what built it.

``<home>/indexes/<corpus>/<bm25 | dense-<encoder>>/`` holds the index files, ``ids.json``
and ``manifest.json`` (corpus hash, encoder name and weights hash, dimension, index type,
parameters, created, versions). Loading checks the manifest against the corpus and
encoder at hand: an index of another corpus content (a new rader's built-in corpus, a
corpus added again) counts as no index, so the retriever builds a fresh one; any other
mismatch is refused with the command that rebuilds. The manifest records each file's size
and sha256, checked on load, so flipped bytes are refused instead of ranking silently
differently. A build writes into a scratch folder and renames it into place; a failed build
(a full disk, an exceeded file-size limit, a crash of faiss) removes its scratch folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from .atomic import free_space
from .bm25 import BM25Index
from .corpus import Corpus
from .dense import DenseIndex
from .encoders import Encoder
from .errors import RaderError
from .types import IndexType

log = logging.getLogger(__name__)
MANIFEST_VERSION = 2  # 2: per-file sizes and sha256 (`files`)


@dataclass(frozen=True, slots=True)
class IndexManifest:
    kind: str
    corpus_name: str
    corpus_hash: str
    corpus_size: int
    created: str
    encoder: str | None = None
    encoder_hash: str | None = None
    dim: int | None = None
    index_type: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {"size", "sha256"}
    manifest_version: int = MANIFEST_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> IndexManifest:
        """A manifest from its JSON; ``ValueError`` names the first field of the wrong type."""
        if not isinstance(data, dict):
            raise ValueError(f"a JSON object was expected, not {type(data).__name__}")
        manifest = cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})
        for name, kind in _FIELD_TYPES.items():
            value = getattr(manifest, name)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise ValueError(f"field {name!r} is {type(value).__name__}")
        return manifest


_FIELD_TYPES = {"kind": str, "corpus_name": str, "corpus_hash": str, "corpus_size": int, "created": str,
                "encoder": str | None, "encoder_hash": str | None, "dim": int | None,
                "index_type": str | None, "params": dict, "versions": dict, "files": dict,
                "manifest_version": int}


def file_digests(folder: Path) -> dict[str, dict[str, Any]]:
    """Size and sha256 of every file of an index folder but its manifest."""
    digests = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.name != "manifest.json":
            with path.open("rb") as source:
                digests[path.name] = {"size": path.stat().st_size,
                                      "sha256": hashlib.file_digest(source, "sha256").hexdigest()}
    return digests


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name.strip("/").split("/")[-1] or "encoder")[:60]


def _versions(*packages: str) -> dict[str, str]:
    return {p: version(p) for p in ("rader", *packages)}


class IndexStore:
    """Builds, saves and loads indexes under ``<home>/indexes``."""

    def __init__(self, home: str | Path) -> None:
        self.root = Path(home) / "indexes"

    def folder(self, corpus: Corpus, kind: str, encoder: Encoder | None = None) -> Path:
        leaf = "bm25" if kind == "bm25" else f"dense-{_slug(encoder.name)}"
        return self.root / _slug(corpus.name) / leaf

    # -- build -----------------------------------------------------------------------------
    def build_bm25(self, corpus: Corpus, *, show_progress: bool = True) -> BM25Index:
        index = BM25Index.build(corpus, show_progress=show_progress)
        manifest = self._manifest(corpus, "bm25", params=index.params, versions=_versions("bm25s"))
        self._write(self.folder(corpus, "bm25"), manifest, corpus.ids, index.save)
        return index

    def build_dense(
        self, corpus: Corpus, encoder: Encoder, *, index_type: IndexType = "flat",
        show_progress: bool = True, **options,
    ) -> DenseIndex:
        index = DenseIndex.build(corpus, encoder, index_type=index_type,
                                 show_progress=show_progress, **options)
        manifest = self._manifest(
            corpus, "dense", encoder=encoder.name, encoder_hash=encoder.fingerprint,
            dim=encoder.dim, index_type=index_type, params=options,
            versions=_versions("faiss-cpu", "sentence-transformers"),
        )
        self._write(self.folder(corpus, "dense", encoder), manifest, corpus.ids, index.save)
        return index

    @staticmethod
    def _manifest(corpus: Corpus, kind: str, **fields: Any) -> IndexManifest:
        return IndexManifest(
            kind=kind, corpus_name=corpus.name, corpus_hash=corpus.content_hash,
            corpus_size=len(corpus), created=datetime.now(UTC).isoformat(timespec="seconds"),
            **fields,
        )

    @staticmethod
    def _write(folder: Path, manifest: IndexManifest, ids: list[str], save) -> None:
        scratch = folder.with_name(folder.name + ".partial")
        shutil.rmtree(scratch, ignore_errors=True)
        try:
            scratch.mkdir(parents=True)
            save(scratch)
            (scratch / "ids.json").write_text(json.dumps(ids))
            manifest = replace(manifest, files=file_digests(scratch))
            (scratch / "manifest.json").write_text(json.dumps(manifest.to_dict(), indent=2))
            shutil.rmtree(folder, ignore_errors=True)
            scratch.rename(folder)
        except BaseException as err:  # faiss reports a failed write as RuntimeError; Ctrl-C too
            shutil.rmtree(scratch, ignore_errors=True)
            if not isinstance(err, OSError | RuntimeError):
                raise
            raise RaderError(f"could not write the index to {folder}: {err} "
                             f"({free_space(folder)}; nothing was left behind)") from err

    # -- load ------------------------------------------------------------------------------
    def read_manifest(self, folder: Path) -> IndexManifest | None:
        file = folder / "manifest.json"
        if not file.is_file():
            return None
        try:
            return IndexManifest.from_dict(json.loads(file.read_text()))
        except (OSError, ValueError, TypeError) as err:
            raise RaderError(f"index manifest {file} is corrupt ({err}); {_rebuild_hint(folder)}") from None

    def _manifest_for(self, folder: Path, corpus: Corpus) -> IndexManifest | None:
        """The folder's manifest; None when there is no index, or one of another content of the
        corpus (the built-in corpus changes with rader): the caller builds a fresh one."""
        manifest = self.read_manifest(folder)
        if manifest is not None and not manifest.files:
            log.info("index at %s predates file checksums: building it again", folder)
            return None
        if manifest is not None and manifest.corpus_hash != corpus.content_hash:
            log.info("index at %s was built for %d entries of corpus %r (hash %s), which now has %d "
                     "(hash %s): building it again", folder, manifest.corpus_size, manifest.corpus_name,
                     manifest.corpus_hash[:12], len(corpus), corpus.content_hash[:12])
            return None
        return manifest

    def load_bm25(self, corpus: Corpus) -> BM25Index | None:
        folder = self.folder(corpus, "bm25")
        manifest = self._manifest_for(folder, corpus)
        if manifest is None:
            return None
        ids = self._check(folder, manifest, corpus)
        try:
            return BM25Index.load(folder, ids, tokenizer=manifest.params.get("tokenizer"))
        except Exception as err:  # the files passed their checksums: any failure here is a bad build
            raise RaderError(
                f"BM25 index at {folder} is unreadable ({err}); {_rebuild_hint(folder)}") from None

    def load_dense(self, corpus: Corpus, encoder: Encoder) -> DenseIndex | None:
        folder = self.folder(corpus, "dense", encoder)
        manifest = self._manifest_for(folder, corpus)
        if manifest is None:
            return None
        ids = self._check(folder, manifest, corpus)
        if manifest.encoder_hash != encoder.fingerprint or manifest.dim != encoder.dim:
            raise RaderError(
                f"dense index at {folder} was built with encoder {manifest.encoder!r} "
                f"(weights {str(manifest.encoder_hash)[:12]}, dim {manifest.dim}), not with "
                f"{encoder.name!r} (weights {encoder.fingerprint[:12]}, dim {encoder.dim}); "
                f"{_rebuild_hint(folder)}"
            )
        return DenseIndex.load(folder, ids, encoder)

    @staticmethod
    def _check(folder: Path, manifest: IndexManifest, corpus: Corpus) -> list[str]:
        try:
            found = file_digests(folder)
        except OSError as err:
            raise RaderError(f"index at {folder} is unreadable ({err}); {_rebuild_hint(folder)}") from None
        if found != manifest.files:
            changed = sorted(name for name in found.keys() | manifest.files.keys()
                             if found.get(name) != manifest.files.get(name))
            raise RaderError(f"index at {folder} does not match its manifest's checksums "
                             f"({', '.join(changed)} changed: a corrupt file?); {_rebuild_hint(folder)}")
        try:
            ids = json.loads((folder / "ids.json").read_text())
        except (OSError, ValueError) as err:
            raise RaderError(
                f"index ids at {folder} are unreadable ({err}); {_rebuild_hint(folder)}") from None
        if ids != corpus.ids:
            raise RaderError(f"index ids at {folder} do not match the corpus; {_rebuild_hint(folder)}")
        return ids


def _rebuild_hint(folder: Path) -> str:
    kind = "bm25" if folder.name == "bm25" else "dense"
    return f"rebuild it with `rader index build --retriever {kind} --force`"
