"""Named corpora under the data directory: `rader corpus add/list/show`.

A corpus added by name is validated once, normalised to our JSON Lines form and kept at
``<home>/corpora/<name>/corpus.jsonl`` with a ``meta.json`` (kind, source file, counts,
hash). A corpus is of theorems or of worked examples (solved problems, `rader.retriever.examples`).
The names ``builtin`` (theorems) and ``math-train`` (worked examples) always mean the
corpora that ship with rader.

Example:
    >>> import tempfile
    >>> store = CorpusStore(tempfile.mkdtemp())
    >>> [(c.name, c.kind) for c in store.list()]
    [('builtin', 'theorems'), ('math-train', 'examples')]
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from .atomic import free_space
from .corpus import BUILTIN_NAME, Corpus, CorpusReport, ErrorPolicy, builtin_corpus, read_corpus
from .errors import RaderError
from .examples import EXAMPLES_NAME, MATH_ATTRIBUTION, builtin_examples, read_examples

CorpusKind = Literal["theorems", "examples"]
BUILTINS = {BUILTIN_NAME: ("theorems", builtin_corpus, "rader"),
            EXAMPLES_NAME: ("examples", builtin_examples, MATH_ATTRIBUTION)}

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True, slots=True)
class CorpusInfo:
    name: str
    size: int
    content_hash: str
    source: str
    kind: CorpusKind = "theorems"


class CorpusStore:
    """The corpora a user has added, plus the built-in one."""

    def __init__(self, home: str | Path) -> None:
        self.root = Path(home) / "corpora"

    def add(self, file: str | Path, name: str, *, errors: ErrorPolicy = "raise",
            kind: CorpusKind = "theorems") -> CorpusReport:
        """Validate ``file`` (theorems, or solved problems for ``kind="examples"``) and keep it."""
        if not _NAME.match(name) or name in BUILTINS:
            raise RaderError(
                f"invalid corpus name {name!r}: use letters, digits, '_', '-', '.' "
                f"(up to 64), and not {' or '.join(map(repr, BUILTINS))}"
            )
        if kind not in ("theorems", "examples"):
            raise RaderError(f"unknown corpus kind {kind!r}; choose theorems or examples")
        reader = read_examples if kind == "examples" else read_corpus
        corpus, report = reader(file, errors=errors, name=name)
        folder = self.root / name
        staging = self.root / f".{name}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            staging.mkdir(parents=True)
            corpus.write_jsonl(staging / "corpus.jsonl")
            meta = {
                "name": name,
                "kind": kind,
                "source": str(Path(file).resolve()),
                "size": len(corpus),
                "content_hash": corpus.content_hash,
                "added": datetime.now(UTC).isoformat(timespec="seconds"),
                "report": {"lines": report.lines, "kept": report.kept,
                           "rejected": [[r.line, r.reason] for r in report.rejected]},
            }
            (staging / "meta.json").write_text(json.dumps(meta, indent=2))
            shutil.rmtree(folder, ignore_errors=True)
            staging.rename(folder)  # atomic: a crash never leaves a half corpus under its name
        except BaseException as err:  # a full disk, Ctrl-C: no half-written staging folder stays
            shutil.rmtree(staging, ignore_errors=True)
            if not isinstance(err, OSError):
                raise
            raise RaderError(f"could not store corpus {name!r} in {self.root}: {err} "
                             f"({free_space(self.root)})") from err
        return report

    def names(self) -> list[str]:
        added = sorted(meta.parent.name for meta in self.root.glob("*/meta.json"))
        return [*BUILTINS, *added]

    def list(self) -> list[CorpusInfo]:
        infos = []
        for name in self.names():
            if name in BUILTINS:
                kind, load, source = BUILTINS[name]
                corpus = load()
                infos.append(CorpusInfo(name, len(corpus), corpus.content_hash, source, kind))
                continue
            meta = json.loads((self.root / name / "meta.json").read_text())
            infos.append(CorpusInfo(name, meta["size"], meta["content_hash"], meta["source"],
                                    meta.get("kind", "theorems")))
        return infos

    def load(self, name: str) -> Corpus:
        if name in BUILTINS:
            return BUILTINS[name][1]()
        file = self.root / name / "corpus.jsonl"
        if not file.is_file():
            raise RaderError(
                f"unknown corpus {name!r}; known: {', '.join(self.names())}. "
                f"Add one with `rader corpus add FILE --name {name}`"
            )
        return read_corpus(file, name=name)[0]

    def load_many(self, names: list[str]) -> Corpus:
        """The named corpora merged, in order (ids must stay unique across them)."""
        if not names:
            raise RaderError("no corpus selected; set `corpora` (e.g. RADER_CORPORA='[\"builtin\"]')")
        corpora = [self.load(n) for n in names]
        return corpora[0] if len(corpora) == 1 else Corpus.merge(corpora)
