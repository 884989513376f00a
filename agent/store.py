"""The trajectory store: SQLite in WAL mode under the data directory.

One row per trajectory, rewritten in its own transaction after every finished step, so a
process killed with SIGKILL keeps every finished step and the database stays sound. Each
``running`` row records the process writing it; when a store is opened, running rows whose
process is gone are marked ``interrupted`` (a live harvest or UI beside it keeps its rows).
The schema version is stored; `migrate` brings older files up to date or says why it cannot.
Human judgments (from the UI) are rows of their own, tied to a trajectory step.

Example:
    >>> import tempfile
    >>> from rader.agent.records import Problem, Trajectory
    >>> store = TrajectoryStore(tempfile.mkdtemp() + "/t.db")
    >>> t = Trajectory.start(Problem("p", "1+1?"), model="m", retriever="none")
    >>> store.save(t); store.get(t.id).status
    'running'
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import os
import socket
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rader.agent.records import FINISHED_STATUSES, SCHEMA_VERSION, Judgment, Trajectory, now_iso
from rader.retriever import RaderError
from rader.retriever.atomic import atomic_file, free_space

logger = logging.getLogger(__name__)

# Version 1: trajectories, human judgments. Version 2 adds `writers` (which process owns a
# running row). Every statement below is idempotent, so running it migrates any older file.
STORE_VERSION = 2
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trajectories (
    id TEXT PRIMARY KEY, status TEXT NOT NULL, model TEXT NOT NULL, retriever TEXT NOT NULL,
    problem_id TEXT NOT NULL, verified INTEGER, steps INTEGER NOT NULL,
    started_at TEXT NOT NULL, finished_at TEXT, data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS trajectories_problem ON trajectories (problem_id);
CREATE TABLE IF NOT EXISTS writers (trajectory_id TEXT PRIMARY KEY, pid INTEGER NOT NULL, host TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS human_judgments (
    trajectory_id TEXT NOT NULL REFERENCES trajectories (id), step_index INTEGER NOT NULL,
    theorem_id TEXT NOT NULL, relevant INTEGER NOT NULL, rationale TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (trajectory_id, step_index, theorem_id)
);
"""


class TrajectoryStore:
    """Trajectories in one SQLite file; safe to share between threads of one process.

    ``readonly=True`` (listing, showing, exporting) writes nothing, so it works on a full
    disk; a missing file then reads as an empty store.
    """

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        self.path = Path(path).expanduser()
        self.readonly = readonly
        self._lock = threading.Lock()
        try:
            if readonly:
                self._db = _connect_readonly(self.path)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = _connect(self.path)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except OSError as err:
            raise RaderError(f"cannot open the trajectory store {self.path}: {err}") from None
        except sqlite3.DatabaseError as err:
            if "not a database" in str(err):
                raise RaderError(f"{self.path} is not a rader trajectory store ({err})") from None
            raise RaderError(_store_error(self.path, "open", err)) from None
        if readonly:
            self._check_version(self.schema_version())
            if self.schema_version() is None:  # nothing stored yet: an empty store to read
                self._db = _connect(":memory:")
                self._db.executescript(_SCHEMA)
            self.interrupted_on_open = 0
            return
        self.migrate()
        self.interrupted_on_open = self._mark_interrupted()

    # -- schema ----------------------------------------------------------------------------
    def schema_version(self) -> int | None:
        try:
            row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        except sqlite3.OperationalError:
            return None
        return int(row[0]) if row else None

    def _check_version(self, version: int | None) -> None:
        if version is not None and version > STORE_VERSION:
            raise RaderError(f"{self.path} has schema version {version}, newer than this rader "
                             f"({STORE_VERSION}): upgrade rader to read it")

    def migrate(self) -> None:
        """Bring the file to this rader's schema; a file already there is not written to."""
        version = self.schema_version()
        self._check_version(version)
        if version == STORE_VERSION:
            return
        try:
            with self._lock:
                self._db.executescript(_SCHEMA)
                self._db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)",
                                 (str(STORE_VERSION),))
        except sqlite3.Error as err:
            raise RaderError(_store_error(self.path, "set up", err)) from None

    def _mark_interrupted(self) -> int:
        with self._lock:
            rows = self._db.execute(
                "SELECT t.data, w.pid, w.host FROM trajectories t LEFT JOIN writers w "
                "ON w.trajectory_id = t.id WHERE t.status='running'").fetchall()
            dead = [data for data, pid, host in rows if not _writer_alive(pid, host)]
            try:
                for data in dead:
                    trajectory = Trajectory.from_dict(json.loads(data))
                    trajectory.mark_interrupted()
                    self._write(trajectory)
            except sqlite3.Error as err:  # a full disk: the rows stay `running` until the next open
                logger.warning("%s", _store_error(self.path, "mark dead runs interrupted in", err))
                return 0
        return len(dead)

    # -- trajectories ----------------------------------------------------------------------
    def _write(self, trajectory: Trajectory) -> None:
        verified = None if trajectory.verified is None else int(trajectory.verified)
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute(
                "INSERT OR REPLACE INTO trajectories VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (trajectory.id, trajectory.status, trajectory.model, trajectory.retriever,
                 trajectory.problem.id, verified, len(trajectory.steps), trajectory.started_at,
                 trajectory.finished_at, json.dumps(trajectory.to_dict(), ensure_ascii=False)),
            )
            if trajectory.status == "running":
                self._db.execute("INSERT OR REPLACE INTO writers VALUES (?, ?, ?)",
                                 (trajectory.id, os.getpid(), socket.gethostname()))
            else:
                self._db.execute("DELETE FROM writers WHERE trajectory_id=?", (trajectory.id,))
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:  # SQLite already rolled back on a full disk
                self._db.execute("ROLLBACK")
            raise

    def save(self, trajectory: Trajectory) -> None:
        """Write the whole trajectory in one transaction (atomic: all of it or the old row)."""
        try:
            with self._lock:
                self._write(trajectory)
        except sqlite3.Error as err:  # disk full, read-only file, ...
            raise RaderError(_store_error(self.path, f"write trajectory {trajectory.id} to", err)) from err

    def set_verified(self, trajectory_id: str, verified: bool | None) -> None:
        """Correct one stored run's verification in place (its answer checked again after a
        fix to the answer rules); the rest of its row is left as it is."""
        try:
            with self._lock:
                row = self._db.execute("SELECT data FROM trajectories WHERE id=?",
                                       (trajectory_id,)).fetchone()
                if row is None:
                    raise RaderError(f"no trajectory {trajectory_id!r} in {self.path}")
                data = {**json.loads(row[0]), "verified": verified}
                self._db.execute("UPDATE trajectories SET verified=?, data=? WHERE id=?",
                                 (None if verified is None else int(verified),
                                  json.dumps(data, ensure_ascii=False), trajectory_id))
        except sqlite3.Error as err:
            raise RaderError(_store_error(self.path, f"correct trajectory {trajectory_id} in", err)) from err

    def get(self, trajectory_id: str) -> Trajectory:
        row = self._db.execute("SELECT data FROM trajectories WHERE id=?", (trajectory_id,)).fetchone()
        if row is None:  # a prefix: compared as text, so % and _ are characters, not wildcards
            matches = self._db.execute("SELECT data FROM trajectories WHERE substr(id, 1, ?) = ? LIMIT 2",
                                       (len(trajectory_id), trajectory_id)).fetchall()
            if len(matches) != 1:
                raise RaderError(f"no trajectory {trajectory_id!r} in {self.path}"
                                 + (" (prefix is ambiguous)" if matches else ""))
            row = matches[0]
        trajectory = Trajectory.from_dict(json.loads(row[0]))
        self._apply_human_judgments(trajectory)
        return trajectory

    def statuses(self, trajectory_ids: Iterable[str]) -> dict[str, str]:
        """The status of each of these ids that is stored (a harvest skips the finished ones)."""
        ids = list(trajectory_ids)
        found: dict[str, str] = {}
        for start in range(0, len(ids), 500):  # SQLite caps the number of bound parameters
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            found.update(self._db.execute(f"SELECT id, status FROM trajectories WHERE id IN ({marks})",
                                          chunk).fetchall())
        return found

    def list(self, *, status: str | None = None, model: str | None = None,
             verified: bool | None = None, since: str | None = None, until: str | None = None,
             problem_id: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Summaries, newest first, filtered by status, model, verification and start date."""
        clauses, values = [], []
        for column, value in (("status", status), ("model", model), ("problem_id", problem_id)):
            if value is not None:
                clauses.append(f"{column} = ?")
                values.append(value)
        if verified is not None:
            clauses.append("verified = ?")
            values.append(int(verified))
        if since:
            clauses.append("started_at >= ?")
            values.append(since)
        if until:
            clauses.append("started_at < ?")
            values.append(until)
        sql = ("SELECT id, status, model, retriever, problem_id, verified, steps, started_at, finished_at "
               "FROM trajectories" + (" WHERE " + " AND ".join(clauses) if clauses else "")
               + " ORDER BY started_at DESC" + (f" LIMIT {int(limit)}" if limit else ""))
        names = ("id", "status", "model", "retriever", "problem_id", "verified", "steps",
                 "started_at", "finished_at")
        rows = self._db.execute(sql, values).fetchall()
        return [{**dict(zip(names, row, strict=True)),
                 "verified": None if row[5] is None else bool(row[5])} for row in rows]

    def iter_trajectories(self, *, source: str | None = None, **filters: Any) -> Iterator[Trajectory]:
        """Matching trajectories (``list``'s filters, and what started them: harvest, bench...)."""
        for summary in self.list(**filters):
            trajectory = self.get(summary["id"])
            if source is None or trajectory.source == source:
                yield trajectory

    def export(self, path: str | Path, *, fmt: str = "jsonl", merge: bool = False,
               **filters: Any) -> ExportReport:
        """Write matching trajectories as JSON Lines (gzipped when the name ends in .gz) or
        Parquet. With ``merge`` an existing file keeps its trajectories and takes the store's
        by id, as `merge` does (new ids added, a finished run in place of an unfinished one),
        so a committed harvest export grows session after session without duplicates; a finished
        run the store holds otherwise (its answer checked again by `rader trajectories
        reverify`, a human's judgment added) replaces the file's copy too. Rows are ordered by
        start time, so the file changes only where runs were added or corrected."""
        if fmt not in ("jsonl", "parquet"):
            raise RaderError(f"unknown export format {fmt!r}; choose jsonl or parquet")
        path = Path(path)
        held = {t.id: t for t in read_trajectories(path)} if merge and path.exists() else {}
        report = ExportReport()
        for trajectory in self.iter_trajectories(**filters):
            old = held.get(trajectory.id)
            corrected = (old is not None and old.status in FINISHED_STATUSES
                         and trajectory.status in FINISHED_STATUSES and old.to_dict() != trajectory.to_dict())
            if not (corrected or supersedes(trajectory, old and old.status)):
                report.kept += 1
                continue
            report.added += old is None
            report.replaced += old is not None
            held[trajectory.id] = trajectory
        rows = [t.to_dict() for t in sorted(held.values(), key=lambda t: (t.started_at, t.id))]
        report.written = len(rows)
        with atomic_file(path) as scratch:
            self._write_export(scratch, path.suffix, fmt, rows)
        return report

    @staticmethod
    def _write_export(target: Path, suffix: str, fmt: str, rows: list[dict[str, Any]]) -> None:
        if fmt == "jsonl":
            with _open_text(target, "w", gzipped=suffix == ".gz") as out:
                for row in rows:
                    out.write(json.dumps(row, ensure_ascii=False) + "\n")
        else:
            import pandas as pd

            table = pd.DataFrame([
                {"id": r["id"], "status": r["status"], "model": r["model"], "retriever": r["retriever"],
                 "problem_id": r["problem"]["id"], "verified": r["verified"],
                 "final_answer": r["final_answer"], "steps": len(r["steps"]),
                 "started_at": r["started_at"], "finished_at": r["finished_at"],
                 "data": json.dumps(r, ensure_ascii=False)} for r in rows])
            table.to_parquet(target, index=False)

    def merge(self, trajectories: Iterable[Trajectory]) -> MergeReport:
        """Add trajectories from elsewhere (another machine's export, a Ray shard), by id: a new
        id is added; a finished run replaces a stored unfinished one; otherwise the stored row
        stays. A run still ``running`` in its file has no writer here: it arrives ``interrupted``."""
        report = MergeReport()
        incoming = list(trajectories)
        stored = self.statuses(t.id for t in incoming)
        with self._lock:
            for trajectory in incoming:
                if trajectory.status == "running":
                    trajectory.mark_interrupted()
                held = stored.get(trajectory.id)
                if not supersedes(trajectory, held):
                    report.kept += 1
                    continue
                report.added += held is None
                report.replaced += held is not None
                self._write(trajectory)
                stored[trajectory.id] = trajectory.status
        return report

    # -- human judgments -------------------------------------------------------------------
    def add_human_judgment(self, trajectory_id: str, step_index: int, judgment: Judgment) -> None:
        trajectory = self.get(trajectory_id)
        step = next((s for s in trajectory.steps if s.index == step_index), None)
        if step is None:
            raise RaderError(f"trajectory {trajectory_id} has no step {step_index}")
        if not any(hit.theorem_id == judgment.theorem_id for hit in step.hits):
            # a judgment feeds training data: only on what the student was shown at that step
            raise RaderError(f"theorem {judgment.theorem_id!r} was not retrieved at step {step_index} "
                             f"of trajectory {trajectory_id}")
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO human_judgments VALUES (?, ?, ?, ?, ?, ?)",
                (trajectory.id, step_index, judgment.theorem_id, int(judgment.relevant),
                 judgment.rationale, now_iso()),
            )

    def _apply_human_judgments(self, trajectory: Trajectory) -> None:
        rows = self._db.execute(
            "SELECT step_index, theorem_id, relevant, rationale FROM human_judgments "
            "WHERE trajectory_id=?", (trajectory.id,)).fetchall()
        steps = {s.index: s for s in trajectory.steps}
        for step_index, theorem_id, relevant, rationale in rows:
            if step_index in steps:
                steps[step_index].judgments.append(
                    Judgment(theorem_id, bool(relevant), rationale, None, "human"))

    def close(self) -> None:
        with self._lock:
            self._db.close()


@dataclass
class MergeReport:
    added: int = 0
    replaced: int = 0  # a finished run in place of a stored unfinished one
    kept: int = 0  # the stored row stayed


@dataclass
class ExportReport(MergeReport):
    written: int = 0  # trajectories in the file now (a merged file's earlier ones included)


def supersedes(incoming: Trajectory, held_status: str | None) -> bool:
    """Whether ``incoming`` is written over a held copy of status ``held_status`` (None: no copy):
    a new id always; a finished run over an unfinished one; otherwise the held copy stays."""
    return held_status is None or (held_status not in FINISHED_STATUSES
                                   and incoming.status in FINISHED_STATUSES)


def _connect(target: str | Path, *, uri: bool = False) -> sqlite3.Connection:
    """A connection shared by the store's threads, in autocommit (writes open their own
    transactions), waiting up to 10 s for another process's lock."""
    db = sqlite3.connect(target, uri=uri, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA busy_timeout=10000")
    return db


def _connect_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection. A WAL store needs its -shm index file to be read; where that file
    cannot be created (a full disk, a read-only folder) no process holds the store, so its WAL
    was checkpointed when the last one closed, and the file is read as immutable instead."""
    if not path.is_file():
        return _connect(":memory:")
    db = _connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.OperationalError as err:
        if not any(cause in str(err) for cause in ("I/O error", "unable to open")):
            raise
        db.close()
        db = _connect(f"{path.as_uri()}?immutable=1", uri=True)
    db.execute("PRAGMA query_only=1")
    return db


def _store_error(path: Path, action: str, err: sqlite3.Error) -> str:
    """What went wrong with the store file, naming the disk when it is full."""
    message = f"could not {action} the trajectory store {path}: {err}"
    if "full" in str(err) or "disk I/O" in str(err):
        message += f" ({free_space(path.parent)}: free some space; runs written so far are kept)"
    return message


def _open_text(path: Path, mode: str, *, gzipped: bool | None = None):
    if not (path.suffix == ".gz" if gzipped is None else gzipped):
        return path.open(mode, encoding="utf-8")
    if mode == "r":
        return gzip.open(path, "rt", encoding="utf-8")
    # no file name or time in the gzip header: the same rows give the same bytes, so a
    # committed export changes only when runs were added
    raw = path.open("wb")
    return io.TextIOWrapper(_ClosingGzip(filename="", mode="wb", fileobj=raw, mtime=0), encoding="utf-8")


class _ClosingGzip(gzip.GzipFile):
    """A GzipFile that closes the file object it was handed."""

    def close(self) -> None:
        fileobj = self.fileobj
        try:
            super().close()
        finally:
            if fileobj is not None:
                fileobj.close()


def read_trajectories(path: str | Path) -> list[Trajectory]:
    """Every trajectory of a file `TrajectoryStore.export` wrote (JSON Lines, gzipped or not,
    or Parquet); a bad row or a newer record version stops the read with its line number, so
    a merge never takes half a file."""
    path = Path(path)
    if not path.is_file():
        raise RaderError(f"file not found: {path}")
    try:
        if path.suffix == ".parquet":
            import pandas as pd

            lines = list(pd.read_parquet(path, columns=["data"])["data"])
        else:
            with _open_text(path, "r") as source:
                lines = source.read().splitlines()
    except (OSError, EOFError, UnicodeDecodeError, ValueError) as err:  # EOFError: a truncated .gz
        raise RaderError(f"{path} is not a whole trajectory export ({type(err).__name__}: {err}); "
                         "nothing was imported") from None
    trajectories = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            trajectory = Trajectory.from_dict(data)
        except (ValueError, KeyError, TypeError, AttributeError):
            raise RaderError(f"{path}:{number}: not a trajectory record") from None
        if trajectory.schema_version > SCHEMA_VERSION:
            raise RaderError(f"{path}:{number}: trajectory record version {trajectory.schema_version} "
                             f"is newer than this rader's ({SCHEMA_VERSION}): upgrade rader to read it")
        trajectories.append(trajectory)
    return trajectories


def _writer_alive(pid: int | None, host: str | None) -> bool:
    """Whether the process that wrote a running row still runs (another host's: assume so)."""
    if pid is None:
        return False  # rows from before writers were recorded
    if host != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True
