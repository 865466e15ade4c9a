"""The ledger on both stores: SQLite (a file) and PostgreSQL (a real throwaway server).

The same entries, hashes, signatures, Merkle root and signed heads; appends serialised by the
database; append-only enforced by the database; tampering found by verification."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lsssdc.ledger.chain import Checkpoint, Ledger
from tests.pg import postgres_server, postgres_url  # noqa: F401 - fixtures
from tests.release.conftest import small  # noqa: F401 - fixture

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
TRUSTED = {"reviewer": KEY.public_key()}


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "ledger.sqlite")
    return request.getfixturevalue("postgres_url")


def _raw(target: str, statement: str) -> None:
    """Run SQL on the store directly, as an insider with database access would."""
    if target.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(target, autocommit=True) as con:
            con.execute(statement)
    else:
        con = sqlite3.connect(target)
        try:
            con.execute(statement)
            con.commit()
        finally:
            con.close()


def _fill(target: str, n: int = 5) -> Ledger:
    led = Ledger.open(target, signer=KEY, actor_keys=TRUSTED, origin="lsssdc-store-tests")
    for i in range(n):
        led.append("approve", "reviewer", {"order_id": f"O-{i}", "content_hash": "sha256:" + f"{i:064x}"})
    return led


def test_append_verify_and_checkpoint(target: str) -> None:
    led = _fill(target)
    assert len(led) == 5 and led.verify().ok
    cp = led.checkpoint()
    assert cp.size == 5 and cp.signature_ok()
    led.close()
    again = Ledger.open(target, actor_keys=TRUSTED, create=False)
    assert again.verify([cp]).ok and [e.payload["order_id"] for e in again.entries()][-1] == "O-4"
    again.close()


def test_both_stores_hold_the_same_entries_and_root(tmp_path: Path, postgres_url: str) -> None:  # noqa: F811
    from lsssdc.ledger import chain as L

    frozen = L.utc_now()
    roots = []
    for t in (str(tmp_path / "a.sqlite"), postgres_url):
        led = Ledger.open(t, signer=KEY, actor_keys=TRUSTED, origin="same-origin", clock=lambda: frozen)
        for i in range(4):
            led.append("prepare", "reviewer", {"order_id": f"O-{i}"})
        roots.append((led.root(), [e.hash for e in led.entries()]))
        led.close()
    assert roots[0] == roots[1]


def test_the_database_refuses_update_and_delete(target: str) -> None:
    _fill(target).close()
    for statement in ("UPDATE entries SET actor = 'x' WHERE seq = 1", "DELETE FROM entries WHERE seq = 5"):
        with pytest.raises(Exception, match="append-only"):
            _raw(target, statement)


def test_tampering_with_the_guards_off_is_found(target: str) -> None:
    led = _fill(target)
    cp = led.checkpoint()
    led.close()
    if target.startswith("postgresql://"):
        _raw(target, "ALTER TABLE entries DISABLE TRIGGER ALL")
    else:
        _raw(target, "DROP TRIGGER entries_no_update")
        _raw(target, "DROP TRIGGER entries_no_delete")
    _raw(target, "UPDATE entries SET body = replace(body, 'O-2', 'O-9') WHERE seq = 3")
    _raw(target, "DELETE FROM entries WHERE seq = 5")
    led = Ledger.open(target, actor_keys=TRUSTED, create=False)
    report = led.verify([cp])
    assert not report.ok and report.first_divergent == 3
    led.close()


def _append_many(target: str, worker: int, n: int) -> None:
    led = Ledger.open(target, signer=KEY, actor_keys=TRUSTED, create=False)
    for i in range(n):
        led.append("approve", "reviewer", {"order_id": f"W{worker}-{i}"})
    led.close()


def test_concurrent_appends_from_several_processes_serialise(target: str) -> None:
    _fill(target, 1).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(target, w, 8)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert all(p.exitcode == 0 for p in procs)
    led = Ledger.open(target, actor_keys=TRUSTED, create=False)
    assert len(led) == 33 and led.verify().ok
    assert sorted(e.seq for e in led.entries()) == list(range(1, 34))
    led.close()


def test_a_checkpoint_detects_a_truncated_postgres_ledger(postgres_url: str) -> None:  # noqa: F811
    led = _fill(postgres_url)
    cp = led.checkpoint()
    led.close()
    _raw(postgres_url, "ALTER TABLE entries DISABLE TRIGGER ALL")
    _raw(postgres_url, "DELETE FROM entries WHERE seq = 5")
    _raw(postgres_url, "UPDATE meta SET value = '4' WHERE name = 'size'")
    led = Ledger.open(postgres_url, actor_keys=TRUSTED, create=False)
    report = led.verify([Checkpoint.from_dict(cp.to_dict())])
    assert not report.ok
    led.close()


def test_a_release_through_the_command_line_on_a_postgres_ledger(  # noqa: F811
    postgres_url: str,  # noqa: F811
    tmp_path,
    small,  # noqa: F811
    monkeypatch,
) -> None:
    """prepare, approve, deliver and verify with --ledger postgresql://..., and audit init grants."""
    from lsssdc.cli import run
    from lsssdc.register import files
    from tests.release.conftest import DAGLIG, PASSPHRASE, make_keystore, order_path, policy_path

    monkeypatch.setenv("LSSSDC_PASSPHRASE", PASSPHRASE)
    files.write_registers({"lss": small.register}, tmp_path / "data", "parquet")
    keys = tmp_path / "keys" / "k.json"
    make_keystore(keys)
    common = ["--key-store", str(keys), "--ledger", postgres_url]
    assert run(["audit", "init", "--ledger", postgres_url]) == 0
    assert run([
        "prepare", "--policy", str(policy_path(DAGLIG[0])), "--order", str(order_path(DAGLIG[1])),
        "--register", str(tmp_path / "data" / "lss.parquet"), "--work", str(tmp_path / "work"), *common,
    ]) == 0  # fmt: skip
    cand = tmp_path / "work" / "B2026-0017" / "1"
    assert run(["approve", str(cand), "--reviewer", "reviewer-a", *common]) == 0
    assert run(["deliver", str(cand), "--to", str(tmp_path / "out"), *common]) == 0
    head = tmp_path / "out" / "ledger-head.json"
    assert run(["audit", "verify", *common, "--checkpoint", str(head)]) == 0


def test_copy_between_stores_keeps_every_proof(tmp_path: Path, postgres_url: str) -> None:  # noqa: F811
    from lsssdc.ledger.chain import copy_ledger

    src = _fill(str(tmp_path / "a.sqlite"))
    cp = src.checkpoint()
    copied = copy_ledger(src, postgres_url)
    assert copied.root() == src.root() and copied.verify([cp]).ok
    assert [e.body for e in copied.entries()] == [e.body for e in src.entries()]
    back = copy_ledger(copied, str(tmp_path / "b.sqlite"))
    assert back.root() == src.root()
    with pytest.raises(Exception, match="not empty"):
        copy_ledger(src, str(tmp_path / "b.sqlite"))
    for led in (src, copied, back):
        led.close()


def test_the_review_queue_is_read_from_the_ledger(target: str) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey as K

    from lsssdc.release.review import queue

    prep, rev_a, rev_b, outsider = (K.generate() for _ in range(4))
    keys = {
        "ordering-service": prep.public_key(),
        "reviewer-a": rev_a.public_key(),
        "reviewer-b": rev_b.public_key(),
    }
    led = Ledger.open(target, actor_keys=keys, origin="queue-tests")
    base = {"project_id": "p", "verdict": "releasable", "reviewers_required": 2}
    led.append("prepare", "ordering-service", {**base, "order_id": "O-1", "content_hash": "h1"}, signer=prep)
    led.append("prepare", "ordering-service", {**base, "order_id": "O-2", "content_hash": "h2"}, signer=prep)
    led.append("approve", "reviewer-a", {"order_id": "O-1", "content_hash": "h1"}, signer=rev_a)
    led.append("reject", "reviewer-b", {"order_id": "O-2", "content_hash": "h2"}, signer=rev_b)
    items = {i.order_id: i for i in queue(led, keys)}
    assert items["O-1"].status == "waiting for review" and items["O-1"].approved_by == ["reviewer-a"]
    assert items["O-2"].status == "rejected"
    led.append("approve", "reviewer-b", {"order_id": "O-1", "content_hash": "h1"}, signer=rev_b)
    assert {i.order_id: i for i in queue(led, keys)}["O-1"].status == "approved, not delivered"
    # an entry signed by a key that is not the actor's in the key store does not count
    forged_keys = {**keys, "reviewer-b": outsider.public_key()}
    assert {i.order_id: i for i in queue(led, forged_keys)}["O-1"].approved_by == ["reviewer-a"]
    led.close()
