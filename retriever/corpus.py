"""Theorem corpora: read and validate JSON Lines (ours, BEIR's or BRIGHT's), merge, hash.

Validation reports every rejected line with its number and reason. With ``errors="raise"``
the first bad line stops the load; with ``errors="skip"`` bad lines are skipped and
counted in the `CorpusReport`, so nothing is dropped silently.

Example:
    >>> from rader.retriever import builtin_corpus
    >>> corpus = builtin_corpus()
    >>> len(corpus) >= 400
    True
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Literal

from .aliases import alias_index
from .errors import RaderError
from .types import Theorem

ErrorPolicy = Literal["raise", "skip"]
BUILTIN_NAME = "builtin"
_BINARY_SNIFF_BYTES = 8192


@dataclass(frozen=True, slots=True)
class RejectedLine:
    """A corpus line that was not loaded, and why."""

    line: int
    reason: str


@dataclass(slots=True)
class CorpusReport:
    """What a load kept and what it rejected (with line numbers and reasons)."""

    path: str
    lines: int = 0
    kept: int = 0
    rejected: list[RejectedLine] = field(default_factory=list)

    def reasons(self) -> Counter[str]:
        """How many lines were rejected for each kind of reason."""
        return Counter(r.reason.split(":", 1)[0] for r in self.rejected)

    def summary(self) -> str:
        text = f"{self.path}: kept {self.kept} of {self.lines} lines"
        if self.rejected:
            kinds = ", ".join(f"{n} {why}" for why, n in self.reasons().most_common())
            text += f"; rejected {len(self.rejected)} ({kinds})"
        return text


class Corpus:
    """An ordered, id-unique collection of theorems."""

    def __init__(self, theorems: Iterable[Theorem], name: str = "corpus") -> None:
        self.name = name
        self.theorems: list[Theorem] = list(theorems)
        self._by_id = {t.id: t for t in self.theorems}
        if len(self._by_id) != len(self.theorems):
            dupes = [i for i, n in Counter(t.id for t in self.theorems).items() if n > 1]
            raise RaderError(f"corpus {name!r} has duplicate ids: {dupes[:5]}")
        self._by_id.update(alias_index(self.theorems, self._by_id))  # merged-away ids still resolve
        self._hash: str | None = None

    def __len__(self) -> int:
        return len(self.theorems)

    def __iter__(self) -> Iterator[Theorem]:
        return iter(self.theorems)

    def __contains__(self, theorem_id: object) -> bool:
        return theorem_id in self._by_id

    def get(self, theorem_id: str) -> Theorem:
        try:
            return self._by_id[theorem_id]
        except KeyError:
            raise RaderError(
                f"no theorem {theorem_id!r} in corpus {self.name!r}; "
                "`rader corpus list` shows the corpora, `rader search` finds ids"
            ) from None

    @property
    def ids(self) -> list[str]:
        return [t.id for t in self.theorems]

    @property
    def content_hash(self) -> str:
        """sha256 over ids, titles and texts in order: indexes are tied to it."""
        if self._hash is None:
            digest = hashlib.sha256()
            for t in self.theorems:
                digest.update(json.dumps([t.id, t.title, t.text]).encode())
            self._hash = digest.hexdigest()
        return self._hash

    @classmethod
    def merge(cls, corpora: Iterable[Corpus]) -> Corpus:
        parts = list(corpora)
        name = "+".join(c.name for c in parts)
        return cls((t for c in parts for t in c), name=name)

    def write_jsonl(self, path: Path) -> None:
        with path.open("w", encoding="utf-8") as out:
            for t in self.theorems:
                out.write(json.dumps(t.to_dict(), ensure_ascii=False) + "\n")


def _parse_line(raw: bytes, source: str) -> Theorem:
    """One corpus line to a Theorem; raises ValueError with a short reason."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"not UTF-8: byte {raw[err.start]:#04x} at column {err.start + 1}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"malformed JSON: {err.msg} at column {err.colno}") from None
    except RecursionError:
        raise ValueError("malformed JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise ValueError(f"malformed JSON: expected an object, got {type(data).__name__}")
    data = _renamed(_renamed(data, "_id", "id"), "content", "text")  # BEIR's id; BRIGHT's text
    doc_id = data.get("id")
    if isinstance(doc_id, int) and not isinstance(doc_id, bool):
        doc_id = data["id"] = str(doc_id)  # BEIR files sometimes number their ids
    if doc_id is None or (isinstance(doc_id, str) and not doc_id.strip()):
        raise ValueError("missing id: needs `id` (or BEIR `_id`)")
    if not isinstance(doc_id, str):
        raise ValueError(f"bad id: `id` must be a string, not {type(doc_id).__name__}")
    body = data.get("text")
    if not isinstance(body, str) or not body.strip():
        raise ValueError("missing text: `text` (or BRIGHT's `content`) is absent or empty")
    for key, kinds, what in (("title", (str,), "a string"), ("source", (str,), "a string"),
                             ("subject", (str,), "a string"), ("metadata", (dict,), "an object"),
                             ("tags", (list,), "a list of strings")):
        if data.get(key) is not None and not isinstance(data[key], kinds):
            raise ValueError(f"bad {key}: `{key}` must be {what}, not {type(data[key]).__name__}")
    if not all(isinstance(tag, str) for tag in data.get("tags") or ()):
        raise ValueError("bad tags: `tags` must be a list of strings")
    for key in ("id", "title", "text"):
        if isinstance(data.get(key), str) and _has_lone_surrogate(data[key]):
            raise ValueError(f"bad {key}: `{key}` holds an unpaired surrogate (\\udXXX), not text")
    data.setdefault("source", source)
    return Theorem.from_dict(data)


def _renamed(data: dict, field_name: str, ours: str) -> dict:
    """``data`` with another format's ``field_name`` as our ``ours``, unless it has ``ours`` already.
    BEIR names the id ``_id``; BRIGHT's documents are ``id`` and ``content``, with no title (the
    title stays empty: BRIGHT scores the content alone, and its ids are not names)."""
    if field_name not in data or ours in data:
        return data
    return {(ours if key == field_name else key): value for key, value in data.items()}


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def read_corpus(
    path: str | Path, *, errors: ErrorPolicy = "raise", name: str | None = None
) -> tuple[Corpus, CorpusReport]:
    """Load a JSON Lines corpus (`id,title,text,source,tags`, BEIR `_id,title,text` or BRIGHT `id,content`).

    Returns the corpus and a report of kept and rejected lines. With ``errors="raise"``
    the first bad line raises `RaderError` naming the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise RaderError(f"corpus file not found: {path}")
    data = path.read_bytes()
    if b"\x00" in data[:_BINARY_SNIFF_BYTES]:
        raise RaderError(f"{path} looks like a binary file, not JSON Lines text")
    report = CorpusReport(path=str(path))
    theorems: list[Theorem] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(data.splitlines(), start=1):
        if not raw.strip():
            continue
        report.lines += 1
        try:
            theorem = _parse_line(raw, source=path.stem)
            if theorem.id in seen:
                raise ValueError(f"duplicate id: {theorem.id!r} first seen on line {seen[theorem.id]}")
        except ValueError as err:
            if errors == "raise":
                raise RaderError(
                    f"{path}:{number}: {err}. Fix the line, or load with errors='skip' "
                    "(CLI: --skip-bad-lines) to skip bad lines and report them"
                ) from None
            report.rejected.append(RejectedLine(number, str(err)))
            continue
        seen[theorem.id] = number
        theorems.append(theorem)
    report.kept = len(theorems)
    if not theorems:
        raise RaderError(f"{path} has no usable corpus entries ({report.summary()})")
    return Corpus(theorems, name=name or path.stem), report


def builtin_corpus() -> Corpus:
    """The theorem corpus that ships with rader: all seven MATH subjects."""
    folder = resources.files("rader.retriever") / "data" / "builtin"
    parts = []
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".jsonl"):
            with resources.as_file(entry) as file:
                parts.append(read_corpus(file, name=entry.name.removesuffix(".jsonl"))[0])
    return Corpus((t for c in parts for t in c), name=BUILTIN_NAME)
