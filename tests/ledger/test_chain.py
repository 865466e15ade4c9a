"""The ledger: appends, signatures, checkpoints, and every kind of tampering done on the store
itself. Each test that is not about the SQLite file runs on both stores: a SQLite file and a
PostgreSQL database on a throwaway server (tests/pg.py), tampered with as an insider with
superuser access would (triggers dropped, rows changed)."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import sqlite3
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from lsssdc import refdata
from lsssdc.errors import InputDataError, KeyStoreError, LedgerIntegrityError
from lsssdc.ledger import merkle
from lsssdc.ledger.chain import Checkpoint, Ledger, find_personnummer, public_bytes
from tests.pg import create_database, postgres_server, postgres_url  # noqa: F401 - fixtures

ORIGIN = "lsssdc-ledger/test"
STORES = ("sqlite", "postgresql")
Target = Path | str  # a SQLite file, or a postgresql:// URL


def _key(seed: int) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"test key %d" % seed).digest())


ALICE, BOB, MALLORY = _key(1), _key(2), _key(3)
TRUSTED = {"alice": ALICE.public_key(), "bob": BOB.public_key()}

#: ledgers a test opened, closed when its ``target`` is torn down (an open PostgreSQL connection
#: left to the garbage collector warns, and warnings are errors here)
_opened: list[Ledger] = []


def is_postgres(target: Target) -> bool:
    return isinstance(target, str) and target.startswith("postgresql://")


def make_clock() -> Callable[[], dt.datetime]:
    ticks = itertools.count()
    start = dt.datetime(2024, 5, 1, 8, 0, tzinfo=dt.UTC)
    return lambda: start + dt.timedelta(seconds=next(ticks))


def build(target: Target, n: int = 10, **kwargs) -> Ledger:
    ledger = Ledger.open(
        target, signer=ALICE, actor_keys=TRUSTED, clock=make_clock(), origin=ORIGIN, **kwargs
    )
    _opened.append(ledger)
    for i in range(1, n + 1):
        actor, key = ("alice", ALICE) if i % 2 else ("bob", BOB)
        ledger.append(
            "prepare" if i % 3 else "approve",
            actor,
            {"order": f"O-{i:03d}", "policy_sha256": hashlib.sha256(b"p").hexdigest(), "risk": 0.01 * i},
            signer=key,
        )
    return ledger


@pytest.fixture(params=STORES)
def new_target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Target]]:
    """Fresh, empty places for a ledger on the store under test."""
    if request.param == "sqlite":
        names = itertools.count()
        yield lambda: tmp_path / ("ledger.sqlite" if (i := next(names)) == 0 else f"ledger-{i}.sqlite")
    else:
        server = request.getfixturevalue("postgres_server")
        yield lambda: create_database(server)
    while _opened:
        _opened.pop().close()


@pytest.fixture
def target(new_target: Callable[[], Target]) -> Target:
    return new_target()


@pytest.fixture
def ledger(target: Target) -> Ledger:
    led = build(target)
    yield led
    led.close()


def drop_guards(con) -> None:
    """Drop every trigger in the PostgreSQL database, found in the catalogue (not by the names
    lsssdc gives them), as a superuser can."""
    found = con.execute("SELECT tgname, tgrelid::regclass::text FROM pg_trigger WHERE NOT tgisinternal")
    for name, table in found.fetchall():
        con.execute(f'DROP TRIGGER "{name}" ON {table}')


def _run(target: Target, statements: tuple[str, ...], params: tuple, *, guards_off: bool) -> None:
    """Run SQL on the store directly, in one transaction; ``?`` marks the parameters."""
    if is_postgres(target):
        import psycopg

        with psycopg.connect(str(target)) as con:  # committed when the block ends
            if guards_off:
                drop_guards(con)
            for statement in statements:
                con.execute(statement.replace("?", "%s"), params if "?" in statement else None)
        return
    db = sqlite3.connect(target)
    try:
        if guards_off:
            for table in ("entries", "checkpoints", "person_index"):
                for op in ("update", "delete"):
                    db.execute(f"DROP TRIGGER IF EXISTS {table}_no_{op}")
        for statement in statements:
            db.execute(statement, params if "?" in statement else ())
        db.commit()
    finally:
        db.close()


def tamper(target: Target, *statements: str, params: tuple = ()) -> None:
    """What an attacker with write access to the file, or superuser access to the database, does:
    drop the guards, change rows."""
    _run(target, statements, params, guards_off=True)


def db_error(target: Target) -> type[Exception]:
    if is_postgres(target):
        import psycopg

        return psycopg.Error
    return sqlite3.DatabaseError


def wipe(target: Target) -> None:
    """The whole database removed: the SQLite file (and its -wal and -shm), or every table."""
    if is_postgres(target):
        import psycopg

        with psycopg.connect(str(target)) as con:
            con.execute("DROP SCHEMA public CASCADE")
            con.execute("CREATE SCHEMA public")
        return
    path = Path(target)
    path.unlink()
    for suffix in ("-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)


def reopen(target: Target, **kwargs) -> Ledger:
    led = Ledger.open(target, actor_keys=kwargs.pop("actor_keys", TRUSTED), create=False, **kwargs)
    _opened.append(led)
    return led


def codes(report) -> set[str]:
    return {p.code for p in report.problems}


# --- appending --------------------------------------------------------------------------------


def test_clean_ledger_verifies(ledger: Ledger) -> None:
    report = ledger.verify()
    assert report.ok, report.to_dict()
    assert report.size == 10 and report.first_divergent is None
    assert report.root == ledger.root().hex()
    report.raise_for_problems()


def test_entries_chain_hash_and_sign_canonical_json(ledger: Ledger) -> None:
    first, second = ledger.entry(1), ledger.entry(2)
    assert first.prev == "0" * 64 and second.prev == first.hash
    assert hashlib.sha256(second.body).hexdigest() == second.hash
    body = {k: v for k, v in second.to_dict().items() if k not in ("hash", "signature")} | {"v": 1}
    assert rfc8785.dumps(body) == second.body
    BOB.public_key().verify(bytes.fromhex(second.signature), second.body)
    assert second.time == "2024-05-01T08:00:01.000000Z"
    assert [e.seq for e in ledger.entries("approve")] == [3, 6, 9]
    assert ledger.head().seq == 10 and len(ledger) == 10


def test_same_inputs_keys_and_clock_give_identical_entries(new_target: Callable[[], Target]) -> None:
    a, b = build(new_target()), build(new_target())
    assert [e.hash for e in a.entries()] == [e.hash for e in b.entries()]
    assert a.root() == b.root()


def test_append_refuses_unknown_kind_bad_actor_and_unsigned(target: Target) -> None:
    led = Ledger.open(target, clock=make_clock())
    _opened.append(led)
    with pytest.raises(KeyStoreError):
        led.append("prepare", "alice", {})
    with pytest.raises(InputDataError, match="unknown ledger entry kind"):
        led.append("delete_everything", "alice", {}, signer=ALICE)
    with pytest.raises(InputDataError):
        led.append("prepare", "", {}, signer=ALICE)
    with pytest.raises(InputDataError):
        led.append("prepare", "alice", {"x": float("nan")}, signer=ALICE)
    with pytest.raises(InputDataError):
        led.append("prepare", "alice", {"x": object()}, signer=ALICE)
    assert len(led) == 0


def test_append_refuses_a_key_that_is_not_the_actors(ledger: Ledger) -> None:
    with pytest.raises(KeyStoreError, match="registered key"):
        ledger.append("approve", "bob", {"x": 1}, signer=MALLORY)
    with pytest.raises(KeyStoreError):
        ledger.append("approve", "mallory", {"x": 1}, signer=MALLORY)
    assert len(ledger) == 10


def test_append_accepts_numpy_scalars(ledger: Ledger) -> None:
    import numpy as np

    entry = ledger.append("prepare", "alice", {"k": np.int64(5), "risk": np.float64(0.5)})
    assert entry.payload == {"k": 5, "risk": 0.5}


def test_append_is_all_or_nothing(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(ledger.store, "set_meta", boom)
    with pytest.raises(RuntimeError):
        ledger.append("deliver", "alice", {"delivery": "D-1"})
    monkeypatch.undo()
    assert len(ledger) == 10
    assert ledger.verify().ok
    assert ledger.append("deliver", "alice", {"delivery": "D-1"}).seq == 11


def test_extend_appends_in_one_transaction(ledger: Ledger) -> None:
    entries = ledger.extend([("prepare", "alice", {"i": i}) for i in range(3)])
    assert [e.seq for e in entries] == [11, 12, 13]
    assert entries[1].prev == entries[0].hash
    with pytest.raises(InputDataError):
        ledger.extend([("prepare", "alice", {"i": 1}), ("bogus", "alice", {})])
    assert len(ledger) == 13 and ledger.verify().ok


def test_rows_cannot_be_updated_or_deleted_through_sql(target: Target, ledger: Ledger) -> None:
    ledger.checkpoint()
    refused = [
        "UPDATE entries SET actor = 'x' WHERE seq = 1",
        "DELETE FROM entries WHERE seq = 10",
        "UPDATE checkpoints SET size = 11",
        "DELETE FROM checkpoints",
    ]
    if is_postgres(target):  # (SQLite has no TRUNCATE)
        refused += [f"TRUNCATE {table}" for table in ("entries", "checkpoints", "person_index")]
    for statement in refused:
        with pytest.raises(db_error(target), match="append-only"):
            _run(target, (statement,), (), guards_off=False)
    assert len(ledger) == 10 and ledger.verify().ok


def test_concurrent_writers_keep_one_chain(target: Target) -> None:
    build(target, n=0).close()
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            led = Ledger.open(target, signer=ALICE)
            for i in range(15):
                led.append("prepare", "alice", {"writer": name, "i": i})
            led.close()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    led = reopen(target)
    assert len(led) == 30 and led.verify().ok


def test_writers_starting_a_new_ledger_at_once_never_reset_it(new_target: Callable[[], Target]) -> None:
    """Several writers (threads, a connection each) open the same not-yet-existing ledger at the same moment and append: the
    one that starts it first is never undone by another (its record reset, its entries then
    "unrecorded"). On PostgreSQL every writer succeeds; on SQLite a writer that opens the file
    while its creator is still writing the schema may be refused (loudly), never more."""

    def writer(target: Target, name: str, start: threading.Barrier, done: list, refused: list) -> None:
        start.wait()
        try:
            led = Ledger.open(target, signer=ALICE)
        except LedgerIntegrityError as exc:
            refused.append(exc.problems[0].code)
            return
        try:
            for i in range(5):
                led.append("prepare", "alice", {"writer": name, "i": i})
            done.append(name)
        finally:
            led.close()

    for _round in range(5):
        target, start = new_target(), threading.Barrier(4)
        done: list[str] = []
        refused: list[str] = []
        threads = [
            threading.Thread(target=writer, args=(target, str(w), start, done, refused)) for w in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        led = reopen(target)
        report = led.verify()
        assert report.ok, report.to_dict()
        assert len(led) == 5 * len(done) and len(done) + len(refused) == 4
        assert len(done) == 4, refused  # nobody sees a half-made ledger


# --- no personnummer --------------------------------------------------------------------------


PNR = list(refdata.test_personnummer().iloc[::97])


@given(st.sampled_from(PNR), st.sampled_from(["{}", "order {} x", "{}.csv", "id:{}"]), st.integers(0, 2))
def test_payloads_with_a_personnummer_are_refused(p12: str, template: str, form: int) -> None:
    value = [p12, p12[2:], f"{p12[:8]}-{p12[8:]}"][form]
    assert find_personnummer({"a": [{"b": template.format(value)}]}) == ["/a/0/b"]
    assert find_personnummer({template.format(value): 1}) == ["/<key>"]
    assert find_personnummer({"n": int(p12)}) == ["/n"]


def test_hashes_sizes_and_dates_are_not_mistaken_for_personnummer() -> None:
    payload = {
        "sha256": "1234567890" * 6 + "abcd",
        "files": {"data.parquet": {"bytes": 1234567890, "sha256": "f" + "0" * 63}},
        "seed": 20240101,
        "time": "2024-05-01T08:00:00Z",
        "risk": 0.0123456789,
        "rows": 2_000_000_000_000,
    }
    assert find_personnummer(payload) == []


def test_append_refuses_a_personnummer_without_echoing_it(ledger: Ledger) -> None:
    p = PNR[0]
    with pytest.raises(InputDataError) as info:
        ledger.append("prepare", "alice", {"note": f"person {p}"})
    assert p not in str(info.value) and p[2:] not in str(info.value)
    assert p not in json.dumps(info.value.to_dict())
    with pytest.raises(InputDataError):
        ledger.append("prepare", p, {})
    assert len(ledger) == 10


# --- checkpoints and receipts -----------------------------------------------------------------


def test_checkpoint_is_signed_stored_and_exported(ledger: Ledger, tmp_path: Path) -> None:
    cp = ledger.checkpoint()
    assert (cp.origin, cp.size, cp.root) == (ORIGIN, 10, ledger.root())
    assert cp.signature_ok() and cp.key == public_bytes(ALICE.public_key())
    out = cp.write(tmp_path / "out" / "cp.json")
    assert Checkpoint.read(out) == cp
    assert ledger.checkpoints() == [cp]
    assert ledger.checkpoint() == cp  # nothing new to sign
    ledger.append("deliver", "alice", {"delivery": "D-1"})
    report = ledger.verify([Checkpoint.read(out)])
    assert report.ok and report.given_checkpoints == 1


def test_append_with_checkpoint_signs_the_new_head(ledger: Ledger) -> None:
    entry = ledger.append("approve", "bob", {"candidate": "c"}, signer=BOB, checkpoint=True)
    cp = ledger.checkpoints()[-1]
    assert cp.size == entry.seq and cp.root == ledger.root()
    assert cp.key == public_bytes(ALICE.public_key())  # the ledger's signer signs heads


def test_checkpoint_file_errors(tmp_path: Path) -> None:  # no store involved: runs once
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputDataError):
        Checkpoint.read(bad)
    bad.write_text(json.dumps({"type": "something else"}))
    with pytest.raises(InputDataError):
        Checkpoint.read(bad)


def test_forged_foreign_and_untrusted_checkpoints_are_flagged(ledger: Ledger) -> None:
    cp = ledger.checkpoint()
    forged = Checkpoint(cp.origin, cp.size, b"\x00" * 32, cp.time, cp.key, cp.signature)
    assert "checkpoint_signature" in codes(ledger.verify([forged]))
    other = Checkpoint(
        "lsssdc-ledger/other", 3, cp.root, cp.time, cp.key, ALICE.sign(b"lsssdc-ledger/other\n3\nx\n")
    )
    assert codes(ledger.verify([other])) & {"checkpoint_signature", "checkpoint_origin"}
    note = b"%s\n10\n" % ORIGIN.encode()
    import base64

    note += base64.b64encode(cp.root) + b"\n"
    by_mallory = Checkpoint(
        ORIGIN, 10, cp.root, cp.time, public_bytes(MALLORY.public_key()), MALLORY.sign(note)
    )
    assert by_mallory.signature_ok()
    assert "checkpoint_untrusted_key" in codes(ledger.verify([by_mallory]))


def test_receipt_proves_inclusion(ledger: Ledger) -> None:
    cp = ledger.checkpoint()
    receipt = ledger.receipt(4, cp)
    receipt.verify(ledger.entry(4).body)
    assert receipt.to_dict()["checkpoint"]["size"] == 10
    with pytest.raises(LedgerIntegrityError):
        receipt.verify(ledger.entry(5).body)
    with pytest.raises(InputDataError):
        ledger.receipt(11, cp)


# --- tampering, each done with SQL on the store (sqlite3 on the file, psycopg as superuser) ----


def test_edited_payload_byte(target: Target, ledger: Ledger) -> None:
    tamper(target, "UPDATE entries SET body = replace(body, 'O-004', 'O-404') WHERE seq = 4")
    report = reopen(target).verify()
    assert not report.ok and report.first_divergent == 4
    assert "ledger_edited" in codes(report)
    with pytest.raises(LedgerIntegrityError, match="entry 4"):
        report.raise_for_problems()


def test_edited_entry_with_its_hash_recomputed(target: Target, ledger: Ledger) -> None:
    body = ledger.entry(4).body.replace(b"O-004", b"O-404").decode()
    digest = hashlib.sha256(body.encode()).hexdigest()
    tamper(target, "UPDATE entries SET body = ?, hash = ? WHERE seq = 4", params=(body, digest))
    report = reopen(target).verify()
    assert report.first_divergent == 4
    assert {"ledger_signature", "ledger_chain"} <= codes(report)


def test_edited_listing_column(target: Target, ledger: Ledger) -> None:
    tamper(target, "UPDATE entries SET kind = 'reject' WHERE seq = 6")
    report = reopen(target).verify()
    assert report.first_divergent == 6 and "ledger_edited" in codes(report)


def test_deleted_middle_entry(target: Target, ledger: Ledger) -> None:
    tamper(target, "DELETE FROM entries WHERE seq = 5")
    report = reopen(target).verify()
    assert report.first_divergent == 5
    assert {"ledger_missing", "ledger_chain"} <= codes(report)


def test_deleted_tail_without_exported_checkpoint(target: Target, ledger: Ledger) -> None:
    tamper(target, "DELETE FROM entries WHERE seq > 7")
    report = reopen(target).verify()
    assert report.first_divergent == 8 and "ledger_truncated" in codes(report)


def test_deleted_tail_with_stored_checkpoint(target: Target, ledger: Ledger) -> None:
    ledger.checkpoint()
    tamper(target, "DELETE FROM entries WHERE seq > 7", "UPDATE meta SET value = '7' WHERE name = 'size'")
    report = reopen(target).verify()
    # the recorded head (entry 10) no longer matches entry 7, the last one left
    assert "ledger_truncated" in codes(report) and report.first_divergent == 7


def test_deleted_tail_covered_up_is_caught_only_by_an_exported_checkpoint(
    target: Target, ledger: Ledger, tmp_path: Path
) -> None:
    exported = ledger.checkpoint().write(tmp_path / "cp.json")
    # a careful attacker also rewrites the ledger's own record and its stored checkpoints
    frontier = merkle.CompactRange()
    for leaf in ledger.leaf_hashes()[:7]:
        frontier.append(leaf)
    head = ledger.entry(7).hash
    tamper(
        target,
        "DELETE FROM entries WHERE seq > 7",
        "DELETE FROM checkpoints",
        "UPDATE meta SET value = '7' WHERE name = 'size'",
        f"UPDATE meta SET value = '{head}' WHERE name = 'head'",
        f"UPDATE meta SET value = '{frontier.to_bytes().hex()}' WHERE name = 'frontier'",
    )
    assert reopen(target).verify().ok  # nothing inside the store can tell
    report = reopen(target).verify([Checkpoint.read(exported)])
    assert "ledger_truncated" in codes(report) and report.first_divergent == 8


def test_inserted_forged_entry_at_the_end(target: Target, ledger: Ledger) -> None:
    body = rfc8785.dumps(
        {
            "v": 1,
            "seq": 11,
            "time": "2024-05-01T09:00:00.000000Z",
            "actor": "bob",
            "kind": "approve",
            "payload": {"order": "O-999"},
            "prev": ledger.entry(10).hash,
            "key": public_bytes(MALLORY.public_key()).hex(),
        }
    )
    row = (
        11,
        "2024-05-01T09:00:00.000000Z",
        "bob",
        "approve",
        hashlib.sha256(body).hexdigest(),
        MALLORY.sign(body).hex(),
        body.decode(),
    )
    tamper(target, "INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?)", params=row)
    report = reopen(target).verify()
    assert report.first_divergent == 11
    assert {"ledger_untrusted_key", "ledger_unrecorded"} <= codes(report)


def test_inserted_forged_entry_in_the_middle(target: Target, ledger: Ledger) -> None:
    forged = ledger.entry(3)
    tamper(
        target,
        "CREATE TABLE shifted AS SELECT * FROM entries WHERE seq >= 4",
        "DELETE FROM entries WHERE seq >= 4",
        "INSERT INTO entries SELECT seq + 1, time, actor, kind, hash, signature, body FROM shifted",
        "INSERT INTO entries VALUES (4, ?, ?, ?, ?, ?, ?)",
        params=(forged.time, forged.actor, forged.kind, forged.hash, forged.signature, forged.body.decode()),
    )
    report = reopen(target).verify()
    assert report.first_divergent == 4
    assert "ledger_reordered" in codes(report)


def test_swapped_entries(target: Target, ledger: Ledger) -> None:
    tamper(
        target,
        "CREATE TABLE pair AS SELECT * FROM entries WHERE seq IN (3, 4)",
        "DELETE FROM entries WHERE seq IN (3, 4)",
        "INSERT INTO entries SELECT 7 - seq, time, actor, kind, hash, signature, body FROM pair",
    )
    report = reopen(target).verify()
    assert report.first_divergent == 3
    assert {"ledger_reordered", "ledger_chain"} <= codes(report)


def test_changed_signature(target: Target, ledger: Ledger) -> None:
    sig = bytearray(bytes.fromhex(ledger.entry(6).signature))
    sig[10] ^= 1
    tamper(target, "UPDATE entries SET signature = ? WHERE seq = 6", params=(sig.hex(),))
    report = reopen(target).verify()
    assert report.first_divergent == 6 and codes(report) == {"ledger_signature"}


def test_whole_database_replaced_by_a_shorter_consistent_one(
    target: Target, ledger: Ledger, tmp_path: Path
) -> None:
    exported = ledger.checkpoint().write(tmp_path / "cp.json")
    ledger.close()
    wipe(target)
    build(target, n=6).close()  # same keys, same origin, fully consistent, but shorter
    assert reopen(target).verify().ok
    report = reopen(target).verify([Checkpoint.read(exported)])
    assert "ledger_truncated" in codes(report) and report.first_divergent == 7


def test_whole_database_rewritten_with_other_content(target: Target, ledger: Ledger, tmp_path: Path) -> None:
    exported = ledger.checkpoint().write(tmp_path / "cp.json")
    ledger.close()
    wipe(target)
    led = build(target, n=12)
    led.append("prepare", "alice", {"extra": True})
    report = reopen(target).verify([Checkpoint.read(exported)])
    # build() writes the same first ten entries, so the checkpoint is consistent ...
    assert report.ok
    led.close()
    wipe(target)
    led = Ledger.open(target, signer=ALICE, clock=make_clock(), origin=ORIGIN)
    _opened.append(led)
    for i in range(12):
        led.append("prepare", "alice", {"order": f"X-{i}"})
    report = reopen(target).verify([Checkpoint.read(exported)])
    # ... while different entries under the same origin are not
    assert "ledger_rewritten" in codes(report)


def test_stored_checkpoint_contradicting_the_entries(target: Target, ledger: Ledger) -> None:
    ledger.checkpoint()
    body = ledger.entry(2).body.replace(b"O-002", b"O-202").decode()
    tamper(target, "UPDATE entries SET body = ? WHERE seq = 2", params=(body,))
    report = reopen(target).verify()
    assert report.first_divergent == 2 and {"ledger_edited", "ledger_checkpoint"} <= codes(report)


def test_append_refuses_to_continue_a_tampered_ledger(target: Target, ledger: Ledger) -> None:
    tamper(target, "DELETE FROM entries WHERE seq = 10")
    led = reopen(target, signer=ALICE)
    with pytest.raises(LedgerIntegrityError, match="head"):
        led.append("prepare", "alice", {"x": 1})


def test_not_a_ledger_file(tmp_path: Path) -> None:  # SQLite only: junk bytes in a file
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(LedgerIntegrityError):
        Ledger.open(junk)
    with pytest.raises(InputDataError):
        Ledger.open(tmp_path / "missing.sqlite", create=False)


def test_a_database_without_a_ledger_is_not_taken_for_one(postgres_url: str) -> None:  # noqa: F811
    """PostgreSQL's counterpart: an empty database is refused, and left as it was."""
    import psycopg

    with pytest.raises(InputDataError, match="no ledger"):
        Ledger.open(postgres_url, create=False)
    with pytest.raises(InputDataError, match="no ledger"):
        Ledger.open(postgres_url, readonly=True)
    with psycopg.connect(postgres_url) as con:
        assert con.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone() == (0,)


def test_verify_without_trusted_keys_checks_self_consistency(target: Target, ledger: Ledger) -> None:
    report = reopen(target, actor_keys=None).verify()
    assert report.ok and report.trusted_keys is False


@pytest.fixture(scope="module", params=STORES)
def template(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> bytes | str:
    """A six-entry ledger: the bytes of a SQLite file (each example changes a copy), or a
    PostgreSQL database (each example changes it and puts the entry back)."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("template") / "ledger.sqlite"
        build(path, n=6).close()
        return path.read_bytes()
    url = create_database(request.getfixturevalue("postgres_server"))
    build(url, n=6).close()
    return url


@contextmanager
def scratch(template: bytes | str) -> Iterator[Target]:
    if isinstance(template, str):
        yield template
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ledger.sqlite"
        path.write_bytes(template)
        yield path


@given(seq=st.integers(1, 6), position=st.integers(0, 10_000), char=st.sampled_from("0aZ{ \"'"))
def test_any_changed_character_of_any_entry_is_detected(
    template: bytes | str, seq: int, position: int, char: str
) -> None:
    with scratch(template) as target:
        with Ledger.open(target, create=False) as led:
            body = led.entry(seq).body.decode()
        i = position % len(body)
        if body[i] == char:
            char = "1" if char != "1" else "2"
        changed = body[:i] + char + body[i + 1 :]
        tamper(target, "UPDATE entries SET body = ? WHERE seq = ?", params=(changed, seq))
        try:
            with Ledger.open(target, actor_keys=TRUSTED, create=False) as led:
                report = led.verify()
            assert not report.ok and report.first_divergent == seq
        finally:  # the next example starts from the intact ledger
            tamper(target, "UPDATE entries SET body = ? WHERE seq = ?", params=(body, seq))
        with Ledger.open(target, actor_keys=TRUSTED, create=False) as led:
            assert led.verify().ok
