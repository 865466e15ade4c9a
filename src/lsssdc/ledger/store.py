"""Where the ledger keeps its rows: a small storage interface and its SQLite implementation.

The ledger itself (hashing, signing, verifying) never speaks SQL; a store only keeps rows and
gives one exclusive write transaction at a time. That keeps a PostgreSQL store for several
reviewers at once (a trigger refusing UPDATE and DELETE, an advisory lock around appends) a
matter of one more class. Nothing here is trusted: ``Ledger.verify`` re-checks every row.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from lsssdc.errors import InputDataError, LedgerIntegrityError, Problem

SCHEMA_VERSION = "1"


@dataclass(frozen=True)
class EntryRow:
    """One stored entry: the canonical JSON body plus what is derived from it."""

    seq: int
    time: str
    actor: str
    kind: str
    hash: str
    signature: str
    body: str


@dataclass(frozen=True)
class CheckpointRow:
    size: int
    origin: str
    root: str
    time: str
    key: str
    signature: str


@dataclass(frozen=True)
class PersonIndexRow:
    seq: int
    key_id: str
    tag_bytes: int
    persons: int
    tags: bytes


class LedgerStore(ABC):
    """Append-only rows of a ledger. Writes happen only inside :meth:`write`."""

    #: whether opening made a new, empty ledger (set by each store when it opens)
    created: bool

    @abstractmethod
    def write(self) -> AbstractContextManager[None]:
        """One exclusive transaction: committed on success, rolled back on any error."""

    @abstractmethod
    def snapshot(self) -> AbstractContextManager[None]:
        """One read transaction: every read inside sees the same state, whatever others append."""

    @abstractmethod
    def get_meta(self, name: str) -> str | None: ...

    @abstractmethod
    def set_meta(self, name: str, value: str) -> None: ...

    @abstractmethod
    def count(self) -> int: ...

    @abstractmethod
    def last(self) -> EntryRow | None: ...

    @abstractmethod
    def get(self, seq: int) -> EntryRow | None: ...

    @abstractmethod
    def scan(self, kind: str | None = None) -> Iterator[EntryRow]:
        """Every entry in storage order (by sequence number)."""

    @abstractmethod
    def insert_entry(self, row: EntryRow) -> None: ...

    @abstractmethod
    def insert_checkpoint(self, row: CheckpointRow) -> None: ...

    @abstractmethod
    def checkpoints(self) -> list[CheckpointRow]: ...

    @abstractmethod
    def insert_person_index(self, row: PersonIndexRow) -> None: ...

    @abstractmethod
    def person_indexes(self) -> Iterator[PersonIndexRow]: ...

    @abstractmethod
    def close(self) -> None: ...


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY,
    time TEXT NOT NULL,
    actor TEXT NOT NULL,
    kind TEXT NOT NULL,
    hash TEXT NOT NULL,
    signature TEXT NOT NULL,
    body TEXT NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS entries_kind ON entries (kind)",
    """CREATE TABLE IF NOT EXISTS checkpoints (
    size INTEGER PRIMARY KEY,
    origin TEXT NOT NULL,
    root TEXT NOT NULL,
    time TEXT NOT NULL,
    key TEXT NOT NULL,
    signature TEXT NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS person_index (
    seq INTEGER PRIMARY KEY,
    key_id TEXT NOT NULL,
    tag_bytes INTEGER NOT NULL,
    persons INTEGER NOT NULL,
    tags BLOB NOT NULL
)""",
)
_GUARDED = ("entries", "checkpoints", "person_index")


def _guards() -> list[str]:
    """Triggers that refuse UPDATE and DELETE: append-only even for a careless SQL client."""
    out: list[str] = []
    for table in _GUARDED:
        for op in ("UPDATE", "DELETE"):
            out.append(
                f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, 'the audit ledger is append-only'); END"
            )
    return out


class SQLiteStore(LedgerStore):
    """One SQLite file in WAL mode; each append is one ``BEGIN IMMEDIATE`` transaction."""

    def __init__(self, path: str | Path, *, create: bool = True, readonly: bool = False) -> None:
        self.path = Path(path)
        if readonly:
            self._open_readonly()
            return
        if not self.path.exists() and not create:
            raise InputDataError(Problem("no_ledger", "the ledger file does not exist", file=str(self.path)))
        fresh = not self.path.exists() or self.path.stat().st_size == 0
        if fresh and not create:
            # an existing empty file is evidence too (a ledger emptied?): never written to here
            raise LedgerIntegrityError(
                Problem(
                    "ledger_empty", "the ledger file is empty: there is nothing to read", file=str(self.path)
                )
            )
        self.created = fresh
        if fresh:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self.path.exists():
                # built under a name of its own and linked into place whole: another process
                # creating the same ledger at once never sees a file without its tables
                self.created = self._build_aside()
                fresh = False
        try:
            self._db = sqlite3.connect(str(self.path), isolation_level=None, timeout=30.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")  # a recorded delivery survives a power cut
            if fresh:  # an existing file is never altered on opening: it may be evidence
                with self.write():
                    for statement in (*_SCHEMA, *_guards()):
                        self._db.execute(statement)
                    self.set_meta("schema", SCHEMA_VERSION)
            version = self.get_meta("schema")
        except sqlite3.DatabaseError as exc:
            raise self._unreadable(exc) from None
        self._check_version(version)

    def _build_aside(self) -> bool:
        """Create the ledger file with its schema under a temporary name, then link it to its
        path; False when another process's file got there first (then that one is opened)."""
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.new")
        db = sqlite3.connect(str(tmp), isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("BEGIN IMMEDIATE")
            for statement in (*_SCHEMA, *_guards()):
                db.execute(statement)
            db.execute("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", ("schema", SCHEMA_VERSION))
            db.execute("COMMIT")
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            db.close()
        try:
            os.link(tmp, self.path)
            return True
        except FileExistsError:
            return False
        finally:
            for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
                leftover.unlink(missing_ok=True)

    def _unreadable(self, exc: Exception) -> LedgerIntegrityError:
        return LedgerIntegrityError(
            Problem(
                "ledger_unreadable",
                f"the file is not a readable lsssdc ledger ({type(exc).__name__})",
                file=str(self.path),
            )
        )

    def _check_version(self, version: str | None) -> None:
        if version != SCHEMA_VERSION:
            raise InputDataError(
                Problem("ledger_version", f"unknown ledger schema version {version!r}", file=str(self.path))
            )

    def _open_readonly(self) -> None:
        """Open an existing ledger for reading only: nothing (not even the journal mode) is
        written to a file that may be evidence."""
        self.created = False
        if not self.path.is_file():
            raise InputDataError(Problem("no_ledger", "there is no ledger file here", file=str(self.path)))
        if self.path.stat().st_size == 0:
            raise LedgerIntegrityError(
                Problem(
                    "ledger_empty", "the ledger file is empty: there is nothing to read", file=str(self.path)
                )
            )
        try:
            self._db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=30.0)
            version = self.get_meta("schema")
            self.count()
        except sqlite3.DatabaseError as exc:
            raise self._unreadable(exc) from None
        self._check_version(version)

    @contextmanager
    def write(self) -> Iterator[None]:
        if self._db.in_transaction:  # nested use joins the open transaction
            yield
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        # move the committed pages into the main file at once: deleting the -wal file must not
        # drop the newest entries
        self._db.execute("PRAGMA wal_checkpoint(FULL)")

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        if self._db.in_transaction:
            yield
            return
        self._db.execute("BEGIN")  # deferred: in WAL mode the first read fixes what it sees
        try:
            yield
        finally:
            self._db.execute("COMMIT")

    def get_meta(self, name: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, name: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", (name, value))

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM entries").fetchone()[0])

    _COLUMNS = "seq, time, actor, kind, hash, signature, body"

    def last(self) -> EntryRow | None:
        row = self._db.execute(f"SELECT {self._COLUMNS} FROM entries ORDER BY seq DESC LIMIT 1").fetchone()
        return None if row is None else EntryRow(*row)

    def get(self, seq: int) -> EntryRow | None:
        row = self._db.execute(f"SELECT {self._COLUMNS} FROM entries WHERE seq = ?", (seq,)).fetchone()
        return None if row is None else EntryRow(*row)

    def scan(self, kind: str | None = None) -> Iterator[EntryRow]:
        if kind is None:
            cur = self._db.execute(f"SELECT {self._COLUMNS} FROM entries ORDER BY seq")
        else:
            cur = self._db.execute(
                f"SELECT {self._COLUMNS} FROM entries WHERE kind = ? ORDER BY seq", (kind,)
            )
        while rows := cur.fetchmany(4096):
            for row in rows:
                yield EntryRow(*row)

    def insert_entry(self, row: EntryRow) -> None:
        self._db.execute(
            f"INSERT INTO entries ({self._COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (row.seq, row.time, row.actor, row.kind, row.hash, row.signature, row.body),
        )

    def insert_checkpoint(self, row: CheckpointRow) -> None:
        self._db.execute(
            "INSERT INTO checkpoints (size, origin, root, time, key, signature) VALUES (?, ?, ?, ?, ?, ?)",
            (row.size, row.origin, row.root, row.time, row.key, row.signature),
        )

    def checkpoints(self) -> list[CheckpointRow]:
        cur = self._db.execute(
            "SELECT size, origin, root, time, key, signature FROM checkpoints ORDER BY size"
        )
        return [CheckpointRow(*r) for r in cur.fetchall()]

    def insert_person_index(self, row: PersonIndexRow) -> None:
        self._db.execute(
            "INSERT INTO person_index (seq, key_id, tag_bytes, persons, tags) VALUES (?, ?, ?, ?, ?)",
            (row.seq, row.key_id, row.tag_bytes, row.persons, row.tags),
        )

    def person_indexes(self) -> Iterator[PersonIndexRow]:
        cur = self._db.execute("SELECT seq, key_id, tag_bytes, persons, tags FROM person_index ORDER BY seq")
        while rows := cur.fetchmany(64):
            for r in rows:
                yield PersonIndexRow(int(r[0]), str(r[1]), int(r[2]), int(r[3]), bytes(r[4]))

    def close(self) -> None:
        self._db.close()
