"""The ledger on PostgreSQL, for several reviewers and an ordering service at once.

The same rows as the SQLite store (:mod:`lsssdc.ledger.store`), so entries, hashes, signatures,
the Merkle tree and signed heads are identical on both. Appends are serialised by the database,
never by a lock file: every write transaction first takes a transaction-scoped advisory lock,
so two appends can never read the same head. Triggers refuse UPDATE, DELETE and TRUNCATE on
the entry, checkpoint and person-index tables, and :func:`init_schema` grants an appending role
only SELECT and INSERT on them. Nothing here is trusted: ``Ledger.verify`` re-checks every row.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from lsssdc.errors import InputDataError, Problem
from lsssdc.ledger.store import SCHEMA_VERSION, CheckpointRow, EntryRow, LedgerStore, PersonIndexRow

#: the advisory lock every append takes (one writer at a time per database)
LOCK_ID = 0x6C737364  # "lssd"
SCHEMES = ("postgresql://", "postgres://")

_TABLES = (
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS entries (
    seq BIGINT PRIMARY KEY,
    time TEXT NOT NULL,
    actor TEXT NOT NULL,
    kind TEXT NOT NULL,
    hash TEXT NOT NULL,
    signature TEXT NOT NULL,
    body TEXT NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS entries_kind ON entries (kind)",
    """CREATE TABLE IF NOT EXISTS checkpoints (
    size BIGINT PRIMARY KEY,
    origin TEXT NOT NULL,
    root TEXT NOT NULL,
    time TEXT NOT NULL,
    key TEXT NOT NULL,
    signature TEXT NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS person_index (
    seq BIGINT PRIMARY KEY,
    key_id TEXT NOT NULL,
    tag_bytes INTEGER NOT NULL,
    persons BIGINT NOT NULL,
    tags BYTEA NOT NULL
)""",
    """CREATE OR REPLACE FUNCTION lsssdc_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the audit ledger is append-only';
END;
$$ LANGUAGE plpgsql""",
)
_GUARDED = ("entries", "checkpoints", "person_index")


def is_url(target: object) -> bool:
    return isinstance(target, str) and target.startswith(SCHEMES)


def _guards() -> list[str]:
    out = []
    for table in _GUARDED:
        out.append(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        out.append(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION lsssdc_append_only()"
        )
        out.append(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        out.append(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION lsssdc_append_only()"
        )
    return out


def _connect(url: str) -> Any:
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a declared dependency
        raise InputDataError(
            Problem("no_psycopg", "a PostgreSQL ledger needs psycopg", hint="pip install 'psycopg[binary]'")
        ) from None
    try:
        return psycopg.connect(url, autocommit=True)
    except psycopg.Error as exc:
        # the message names host and database, never a password (psycopg leaves it out)
        raise InputDataError(
            Problem("ledger_unreachable", f"cannot connect to the ledger database ({type(exc).__name__})")
        ) from None


def init_schema(url: str, appender_role: str | None = None) -> None:
    """Create (or bring up to date) the ledger's tables and guards; grant an appending role
    SELECT and INSERT only on the append-only tables (and what the meta record needs)."""
    import re

    con = _connect(url)
    try:
        with con.transaction():
            # under the appends' lock: two processes creating the tables at once would collide
            # (CREATE TABLE IF NOT EXISTS is not safe against a concurrent CREATE)
            con.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_ID,))
            for statement in (*_TABLES, *_guards()):
                con.execute(statement)
            if appender_role is not None:
                if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", appender_role):
                    raise InputDataError(
                        Problem("bad_role", "a role name is lower-case letters, digits and _")
                    )
                for table in _GUARDED:
                    con.execute(f"REVOKE ALL ON {table} FROM {appender_role}")
                    con.execute(f"GRANT SELECT, INSERT ON {table} TO {appender_role}")
                con.execute(f"GRANT SELECT, INSERT, UPDATE ON meta TO {appender_role}")
    finally:
        con.close()


class PostgresStore(LedgerStore):
    """Ledger rows in a PostgreSQL database; each append is one transaction under an advisory lock."""

    def __init__(self, url: str, *, create: bool = True) -> None:
        self.url = url
        self._db = _connect(url)
        try:
            self._open(create)
        except BaseException:
            self._db.close()  # a refused database leaves no connection behind
            raise

    def _open(self, create: bool) -> None:
        exists = self._db.execute("SELECT to_regclass('entries') IS NOT NULL").fetchone()[0]
        if not exists and not create:
            raise InputDataError(
                Problem(
                    "no_ledger",
                    "the database holds no ledger",
                    hint="run lsssdc audit init --ledger URL",
                )
            )
        self.created = False
        if not exists:
            init_schema(self.url)
        has_meta = self._db.execute("SELECT count(*) FROM meta WHERE name = 'schema'").fetchone()[0]
        if not has_meta:
            if not create:
                raise InputDataError(Problem("no_ledger", "the database holds no ledger"))
            with self.write():
                self.set_meta("schema", SCHEMA_VERSION)
            self.created = True
        version = self.get_meta("schema")
        if version != SCHEMA_VERSION:  # as on SQLite: a ledger of another lsssdc release (exit 2)
            raise InputDataError(Problem("ledger_version", f"unknown ledger schema version {version!r}"))

    @contextmanager
    def write(self) -> Iterator[None]:
        if self._db.info.transaction_status != 0:  # nested use joins the open transaction
            yield
            return
        with self._db.transaction():
            self._db.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_ID,))
            yield

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        if self._db.info.transaction_status != 0:
            yield
            return
        with self._db.transaction():
            self._db.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield

    def get_meta(self, name: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE name = %s", (name,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, name: str, value: str) -> None:
        self._db.execute(
            "INSERT INTO meta (name, value) VALUES (%s, %s) ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
            (name, value),
        )

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM entries").fetchone()[0])

    _COLUMNS = "seq, time, actor, kind, hash, signature, body"

    def last(self) -> EntryRow | None:
        row = self._db.execute(f"SELECT {self._COLUMNS} FROM entries ORDER BY seq DESC LIMIT 1").fetchone()
        return None if row is None else EntryRow(*row)

    def get(self, seq: int) -> EntryRow | None:
        row = self._db.execute(f"SELECT {self._COLUMNS} FROM entries WHERE seq = %s", (seq,)).fetchone()
        return None if row is None else EntryRow(*row)

    def scan(self, kind: str | None = None) -> Iterator[EntryRow]:
        sql = f"SELECT {self._COLUMNS} FROM entries" + (" WHERE kind = %s" if kind else "") + " ORDER BY seq"
        rows = self._db.execute(sql, (kind,) if kind else ()).fetchall()
        for row in rows:
            yield EntryRow(*row)

    def insert_entry(self, row: EntryRow) -> None:
        self._db.execute(
            f"INSERT INTO entries ({self._COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (row.seq, row.time, row.actor, row.kind, row.hash, row.signature, row.body),
        )

    def insert_checkpoint(self, row: CheckpointRow) -> None:
        self._db.execute(
            "INSERT INTO checkpoints (size, origin, root, time, key, signature) VALUES (%s, %s, %s, %s, %s, %s)",
            (row.size, row.origin, row.root, row.time, row.key, row.signature),
        )

    def checkpoints(self) -> list[CheckpointRow]:
        cur = self._db.execute(
            "SELECT size, origin, root, time, key, signature FROM checkpoints ORDER BY size"
        )
        return [CheckpointRow(*r) for r in cur.fetchall()]

    def insert_person_index(self, row: PersonIndexRow) -> None:
        self._db.execute(
            "INSERT INTO person_index (seq, key_id, tag_bytes, persons, tags) VALUES (%s, %s, %s, %s, %s)",
            (row.seq, row.key_id, row.tag_bytes, row.persons, row.tags),
        )

    def person_indexes(self) -> Iterator[PersonIndexRow]:
        rows = self._db.execute("SELECT seq, key_id, tag_bytes, persons, tags FROM person_index ORDER BY seq")
        for r in rows.fetchall():
            yield PersonIndexRow(int(r[0]), str(r[1]), int(r[2]), int(r[3]), bytes(r[4]))

    def close(self) -> None:
        self._db.close()
