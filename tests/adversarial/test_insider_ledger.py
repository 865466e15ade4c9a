"""The insider with the ledger file, or with superuser access to the ledger's PostgreSQL
database: drop the newest entries (and rewrite the unsigned head record), delete the WAL file,
re-sign the whole ledger with keys of their own, empty the file. Each is detected by `lsssdc
audit verify` given the head that travelled with a delivery, or by verifying against the
agency's keys; verification never writes to what it reads. Every probe that is not about the
SQLite file runs on both stores."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from lsssdc import release
from lsssdc.cli import run
from lsssdc.ledger.chain import Ledger
from tests.adversarial.conftest import SIGNERS
from tests.conftest import ACTOR_SECRET
from tests.pg import create_database, postgres_server, postgres_url  # noqa: F401 - fixtures
from tests.release.conftest import (
    CUSTODIAN,
    DAGLIG,
    PASSPHRASE,
    make_keystore,
    order_path,
    policy_path,
    prepare_order,
)

STORES = ("sqlite", "postgresql")


def _is_postgres(target: Path | str) -> bool:
    return isinstance(target, str) and target.startswith("postgresql://")


def _new_ledger_target(request: pytest.FixtureRequest, folder: Path) -> Path | str:
    if request.param == "sqlite":
        folder.mkdir(parents=True, exist_ok=True)
        return folder / "ledger.sqlite"
    return create_database(request.getfixturevalue("postgres_server"))


@pytest.fixture(params=STORES)
def site(request: pytest.FixtureRequest, tmp_path: Path, small) -> dict:  # noqa: F811 - fixtures
    """tests/adversarial/conftest.py's site (a key store, a ledger, one releasable candidate
    prepared on it) with the ledger on either store; ``ledger_path`` is the file or the URL."""
    store = make_keystore(tmp_path / "keys" / "k.json", SIGNERS)
    # the ordering service also holds the reviewer role: only the ledger's four-eyes rule stops it
    store.add_signer("preparer-reviewer", ACTOR_SECRET, ("preparer", "reviewer"), by=CUSTODIAN)
    target = _new_ledger_target(request, tmp_path / "ledger")
    book = Ledger.open(target, actor_keys=store.public_keys(), origin="lsssdc-release-tests")
    cand = prepare_order(small, policy_path(DAGLIG[0]), order_path(DAGLIG[1]), store, tmp_path / "work", book)
    assert cand.verdict == "releasable"
    yield {"root": tmp_path, "store": store, "ledger": book, "cand": cand.path, "small": small,
           "ledger_path": target, "new_target": lambda name: _new_ledger_target(request, tmp_path / name)}  # fmt: skip
    book.close()


#: for the probes that are about the SQLite file itself
sqlite_only = pytest.mark.parametrize("site", ["sqlite"], indirect=True)


@pytest.fixture
def delivered(site, monkeypatch) -> dict:
    release.approve(site["cand"], "reviewer-a", site["store"], site["ledger"])
    to = site["root"] / "out" / "pkg"
    release.deliver(site["cand"], to, site["store"], site["ledger"], "ordering-service")
    site["ledger"].close()
    monkeypatch.setenv("LSSSDC_PASSPHRASE", PASSPHRASE)
    site["head"] = to / "ledger-head.json"
    return site


def _verify(site, *extra: str, keys: bool = True) -> tuple[int, str]:
    args = ["audit", "verify", "--ledger", str(site["ledger_path"]), "--json", *extra]
    if keys:
        args += ["--key-store", str(site["store"].path)]
    code = run(args)
    return code, ""


def _sha(target: Path | str) -> str:
    """The file's bytes; for PostgreSQL, every row of every table (what an insider could change)."""
    if not _is_postgres(target):
        return hashlib.sha256(Path(target).read_bytes()).hexdigest()
    import psycopg

    digest = hashlib.sha256()
    with psycopg.connect(str(target)) as con:
        tables = con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1"
        ).fetchall()
        for (t,) in tables:
            digest.update(t.encode())
            for row in con.execute(f'SELECT * FROM "{t}" ORDER BY 1').fetchall():
                digest.update(repr(row).encode())
    return digest.hexdigest()


def _drop_tail_postgres(url: str, keep: int, rewrite_head: bool) -> None:
    """The same, as a database superuser: every trigger dropped, the rows deleted, the head record
    rewritten; tables and columns found in the catalogue."""
    import psycopg

    with psycopg.connect(url) as con:  # one transaction, committed at the end
        triggers = con.execute(
            "SELECT tgname, tgrelid::regclass::text FROM pg_trigger WHERE NOT tgisinternal"
        )
        for name, table in triggers.fetchall():
            con.execute(f'DROP TRIGGER "{name}" ON {table}')
        tables = {
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        }
        for t in tables:
            cols = {
                r[0]
                for r in con.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' "
                    "AND table_name = %s",
                    (t,),
                )
            }
            if "seq" in cols:
                con.execute(f'DELETE FROM "{t}" WHERE seq > %s', (keep,))
            elif "size" in cols:
                con.execute(f'DELETE FROM "{t}" WHERE size > %s', (keep,))
        if rewrite_head and "meta" in tables:
            body = con.execute("SELECT body FROM entries WHERE seq = %s", (keep,)).fetchone()[0]
            con.execute("UPDATE meta SET value = %s WHERE name = 'size'", (str(keep),))
            con.execute(
                "UPDATE meta SET value = %s WHERE name = 'head'", (hashlib.sha256(body.encode()).hexdigest(),)
            )


def _drop_tail(path: Path | str, keep: int, rewrite_head: bool) -> None:
    """Delete every entry after ``keep`` the way an insider with the file would (triggers off)."""
    if _is_postgres(path):
        _drop_tail_postgres(str(path), keep, rewrite_head)
        return
    db = sqlite3.connect(path)
    triggers = [r[0] for r in db.execute("select name from sqlite_master where type='trigger'")]
    for t in triggers:
        db.execute(f'DROP TRIGGER "{t}"')
    tables = {r[0] for r in db.execute("select name from sqlite_master where type='table'")}
    for t in tables:
        cols = [r[1] for r in db.execute(f'pragma table_info("{t}")')]
        if "seq" in cols:
            db.execute(f'DELETE FROM "{t}" WHERE seq > ?', (keep,))
        elif "size" in cols:
            db.execute(f'DELETE FROM "{t}" WHERE size > ?', (keep,))
    if rewrite_head and "meta" in tables:
        body = db.execute("select body from entries where seq = ?", (keep,)).fetchone()[0]
        db.execute("UPDATE meta SET value = ? WHERE name = 'size'", (str(keep),))
        db.execute(
            "UPDATE meta SET value = ? WHERE name = 'head'", (hashlib.sha256(body.encode()).hexdigest(),)
        )
    db.commit()
    db.close()


@pytest.mark.parametrize("rewrite_head", [False, True])
def test_a_dropped_tail_is_caught_by_the_head_that_travelled_with_the_package(
    delivered, capsys, rewrite_head
) -> None:
    assert _verify(delivered, "--checkpoint", str(delivered["head"]))[0] == 0
    size = json.loads(delivered["head"].read_text(encoding="utf-8"))["size"]
    _drop_tail(delivered["ledger_path"], size - 1, rewrite_head)
    capsys.readouterr()
    code, _ = _verify(delivered, "--checkpoint", str(delivered["head"]))
    out = capsys.readouterr().out
    assert code == 1 and '"verified": false' in out


@sqlite_only  # the -wal file
def test_deleting_the_wal_file_drops_nothing(delivered, capsys) -> None:
    wal = delivered["ledger_path"].with_name("ledger.sqlite-wal")
    if wal.exists():
        wal.unlink()
    code, _ = _verify(delivered, "--checkpoint", str(delivered["head"]))
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["size"] == json.loads(delivered["head"].read_text(encoding="utf-8"))["size"]


def test_a_ledger_re_signed_with_an_attackers_keys_is_never_called_intact(
    delivered, capsys, tmp_path
) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    mine = Ed25519PrivateKey.generate()
    forged = delivered["new_target"]("forged")
    with (
        Ledger.open(delivered["ledger_path"], create=False) as real,
        Ledger.open(forged, signer=mine) as fake,
    ):
        for e in real.entries():
            if e.kind != "deliver":  # (a delivery needs its person index; the rest is enough)
                fake.append(e.kind, e.actor, e.payload, signer=mine)
    delivered["ledger_path"] = forged
    capsys.readouterr()
    assert _verify(delivered, keys=False)[0] == 1  # without trusted keys: "not verified"
    assert '"verified": false' in capsys.readouterr().out
    assert run(["audit", "verify", "--ledger", str(forged)]) == 1
    assert "NOT VERIFIED" in capsys.readouterr().out
    assert _verify(delivered)[0] == 1  # with the agency's keys: tampering


def test_verify_never_writes_to_an_empty_file(tmp_path, capsys) -> None:  # SQLite: an empty file
    empty = tmp_path / "ledger.sqlite"
    empty.write_bytes(b"")
    code = run(["audit", "verify", "--ledger", str(empty)])
    assert code in (1, 2) and empty.stat().st_size == 0
    assert "empty" in capsys.readouterr().err


def test_verify_never_writes_to_an_empty_database(postgres_url, capsys) -> None:  # noqa: F811
    import psycopg

    code = run(["audit", "verify", "--ledger", postgres_url])
    assert code in (1, 2) and "no ledger" in capsys.readouterr().err
    with psycopg.connect(postgres_url) as con:
        assert con.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone() == (0,)


def test_verify_leaves_the_file_byte_for_byte(delivered) -> None:
    before = _sha(delivered["ledger_path"])
    _verify(delivered, "--checkpoint", str(delivered["head"]))
    assert _sha(delivered["ledger_path"]) == before


def test_an_entry_signed_with_a_stray_key_blocks_nothing_and_is_reported(site, capsys, monkeypatch) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = site["ledger_path"]
    with Ledger.open(path, create=False) as raw:  # no trusted keys: anyone with the file can append
        raw.append(
            "reject", "nobody", {"order_id": "x", "content_hash": "y"}, signer=Ed25519PrivateKey.generate()
        )
    release.approve(site["cand"], "reviewer-a", site["store"], site["ledger"])
    release.deliver(
        site["cand"], site["root"] / "out" / "p", site["store"], site["ledger"], "ordering-service"
    )
    assert (site["root"] / "out" / "p" / "ledger-head.json").is_file()
    site["ledger"].close()
    monkeypatch.setenv("LSSSDC_PASSPHRASE", PASSPHRASE)
    assert run(["audit", "verify", "--ledger", str(path), "--key-store", str(site["store"].path)]) == 1


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_a_tail_dropped_before_any_delivery_is_caught_by_the_decisions_exported_head(
    site, capsys, monkeypatch, tmp_path, decision
) -> None:
    """No delivery yet: the approval (or rejection) exported the head to the checkpoint folder,
    and cutting the ledger back to before the decision no longer extends it."""
    heads = tmp_path / "heads"
    if decision == "approve":
        rec = release.approve(site["cand"], "reviewer-a", site["store"], site["ledger"], heads)
    else:
        rec = release.reject(site["cand"], "reviewer-a", "no", site["store"], site["ledger"], heads)
    exported = Path(rec["exported_head"])
    assert exported.parent == heads and exported.name.endswith(f"-{decision}.json")
    site["ledger"].close()
    monkeypatch.setenv("LSSSDC_PASSPHRASE", PASSPHRASE)
    assert _verify(site, "--checkpoint", str(heads))[0] == 0
    size = json.loads(exported.read_text(encoding="utf-8"))["size"]
    _drop_tail(site["ledger_path"], size - 1, rewrite_head=True)
    capsys.readouterr()
    code, _ = _verify(site, "--checkpoint", str(heads))
    assert code == 1 and '"verified": false' in capsys.readouterr().out


def test_an_exported_head_is_never_overwritten(site, tmp_path) -> None:
    heads = tmp_path / "heads"
    rec = release.approve(site["cand"], "reviewer-a", site["store"], site["ledger"], heads)
    before = Path(rec["exported_head"]).read_bytes()
    rec2 = release.approve(site["cand"], "reviewer-b", site["store"], site["ledger"], heads)
    assert rec2["exported_head"] != rec["exported_head"]
    assert Path(rec["exported_head"]).read_bytes() == before
