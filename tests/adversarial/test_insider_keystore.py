"""The insider who holds the key store's passphrase: they can decrypt and re-seal the whole store
file, so they can write any actor into it, with a secret of their own. None of that may make a
reviewer whose approval counts: the ledger pins the store's custodians, and only actors a pinned
custodian signed for count.

The forgeries are made the way that insider would: the store document is edited and re-sealed
with the master key the passphrase opens; endorsements are written with code of the test's own.
Outcomes are read from the raw SQLite ledger and the delivery folder."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import sqlite3
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from lsssdc import release
from lsssdc.errors import LsssdcError
from lsssdc.identity.keystore import KdfParams, KeyStore
from lsssdc.ledger.chain import Ledger
from lsssdc.release.candidate import MANIFEST
from tests.release.conftest import (
    CUSTODIAN,
    DAGLIG,
    PASSPHRASE,
    make_keystore,
    open_ledger,
    order_path,
    policy_path,
    prepare_order,
)

MALLORY_SECRET = "mallory's own secret, twelve+"


def _raw_entries(path: Path) -> list[dict]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        cols = [r[1] for r in con.execute("pragma table_info(entries)")]
        rows = con.execute("select * from entries order by seq").fetchall()
    finally:
        con.close()
    return [dict(zip(cols, r, strict=True)) for r in rows]


def _statement(store_id: str, name: str, pub: str, roles: list[str], by: str) -> bytes:
    """The attacker's own rendering of what a custodian signs (they can read the format)."""
    body = {
        "by": by,
        "kind": "lsssdc-actor",
        "name": name,
        "public_key": pub,
        "roles": sorted(roles),
        "store_id": store_id,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode("ascii")


def _forge(
    store: KeyStore,
    name: str,
    roles: list[str],
    *,
    endorse_with: tuple[str, Ed25519PrivateKey] | None = None,
    keep_endorsement_of: str | None = None,
) -> Ed25519PrivateKey:
    """Write an actor straight into the store document and re-seal it with the master key."""
    doc = json.loads(json.dumps(store._doc))
    private = Ed25519PrivateKey.generate()
    pub = private.public_key().public_bytes_raw().hex()
    params = dataclasses.replace(KdfParams.from_dict(doc["kdf"], store.path), salt=os.urandom(16))
    nonce = os.urandom(12)
    aad = json.dumps(
        {"kind": "signer", "name": name, "roles": sorted(roles), "store_id": doc["store_id"]},
        sort_keys=True,
        separators=(",", ":"),
    ).encode("ascii")
    entry = {
        "added_by": None,
        "created": "2026-12-01T00:00:00Z",
        "public_key": pub,
        "roles": sorted(roles),
        "wrap": "actor-secret",
        "kdf": params.to_dict(),
        "nonce": base64.b64encode(nonce).decode(),
        "ciphertext": base64.b64encode(
            AESGCM(params.derive(MALLORY_SECRET)).encrypt(nonce, private.private_bytes_raw(), aad)
        ).decode(),
    }
    if keep_endorsement_of is not None:
        entry["endorsement"] = doc["signers"][keep_endorsement_of].get("endorsement")
    if endorse_with is not None:
        by, key = endorse_with
        sig = key.sign(_statement(doc["store_id"], name, pub, roles, by)).hex()
        entry["endorsement"] = {"by": by, "signature": sig}
    doc["signers"][name] = entry
    store._commit(doc)  # the passphrase holder can seal anything
    return private


@pytest.fixture
def rig(site) -> dict:
    ledger_path = site["root"] / "ledger" / "ledger.sqlite"
    assert [e["kind"] for e in _raw_entries(ledger_path)][:2] == ["custodians", "prepare"]
    return site | {"ledger_path": ledger_path, "to": site["root"] / "delivery" / "pkg"}


def _attacker_store(rig: dict) -> KeyStore:
    return KeyStore.open(rig["store"].path, PASSPHRASE)


def _assert_nothing_delivered(rig: dict) -> None:
    kinds = [e["kind"] for e in _raw_entries(rig["ledger_path"])]
    assert "deliver" not in kinds and not rig["to"].exists()


def _deliver(rig: dict, store: KeyStore) -> None:
    with open_ledger(rig["ledger_path"], store) as book, pytest.raises(LsssdcError):
        release.deliver(rig["cand"], rig["to"], store, book, "ordering-service")


def test_a_reviewer_written_into_the_store_by_the_passphrase_holder_cannot_approve(rig) -> None:
    store = _attacker_store(rig)
    _forge(store, "mallory", ["reviewer"])
    store = _attacker_store(rig)
    store.unlock("mallory", MALLORY_SECRET)  # the forged key opens: the wrap itself is sound
    with open_ledger(rig["ledger_path"], store) as book, pytest.raises(LsssdcError) as info:
        release.approve(rig["cand"], "mallory", store, book)
    assert info.value.problems[0].code == "actor_not_anchored"
    assert [e["actor"] for e in _raw_entries(rig["ledger_path"]) if e["kind"] == "approve"] == []


def test_an_approval_entry_signed_by_a_forged_reviewer_does_not_count(rig) -> None:
    store = _attacker_store(rig)
    key = _forge(store, "mallory", ["reviewer"])
    store = _attacker_store(rig)
    manifest = json.loads((rig["cand"] / MANIFEST).read_text(encoding="utf-8"))
    # written straight onto the ledger (the ledger trusts the key store's public keys)
    with Ledger.open(rig["ledger_path"], actor_keys=store.public_keys()) as book:
        book.append(
            "approve",
            "mallory",
            {"order_id": manifest["order_id"], "content_hash": manifest["content_hash"]},
            signer=key,
        )
    _deliver(rig, store)
    _assert_nothing_delivered(rig)


def test_a_replaced_reviewer_key_keeping_the_old_endorsement_cannot_approve(rig) -> None:
    store = _attacker_store(rig)
    _forge(store, "reviewer-a", ["reviewer"], keep_endorsement_of="reviewer-a")
    store = _attacker_store(rig)
    store.unlock("reviewer-a", MALLORY_SECRET)
    with open_ledger(rig["ledger_path"], store) as book, pytest.raises(LsssdcError):
        release.approve(rig["cand"], "reviewer-a", store, book)
    assert [e for e in _raw_entries(rig["ledger_path"]) if e["kind"] == "approve"] == []


def test_a_forged_custodian_endorsing_a_forged_reviewer_counts_for_nothing(rig) -> None:
    store = _attacker_store(rig)
    boss = _forge(store, "cust-z", ["custodian"])
    store = _attacker_store(rig)
    boss_pub = boss.public_key().public_bytes_raw().hex()
    doc = json.loads(json.dumps(store._doc))  # the forged custodian endorses itself, too
    sig = boss.sign(_statement(doc["store_id"], "cust-z", boss_pub, ["custodian"], "cust-z")).hex()
    doc["signers"]["cust-z"]["endorsement"] = {"by": "cust-z", "signature": sig}
    store._commit(doc)
    store = _attacker_store(rig)
    _forge(store, "mallory", ["reviewer"], endorse_with=("cust-z", boss))
    store = _attacker_store(rig)
    store.unlock("mallory", MALLORY_SECRET)
    with open_ledger(rig["ledger_path"], store) as book, pytest.raises(LsssdcError) as info:
        release.approve(rig["cand"], "mallory", store, book)
    assert info.value.problems[0].code == "actor_not_anchored"
    _deliver(rig, store)
    _assert_nothing_delivered(rig)


def test_a_later_pin_of_forged_custodians_is_ignored(rig) -> None:
    """Appending a second `custodians` entry naming the forger's custodian changes nothing: the
    first pin for the store counts."""
    store = _attacker_store(rig)
    boss = _forge(store, "cust-z", ["custodian"])
    store = _attacker_store(rig)
    with Ledger.open(rig["ledger_path"], actor_keys=store.public_keys()) as book:
        book.append(
            "custodians",
            "cust-z",
            {
                "store_id": store.store_id,
                "custodians": {"cust-z": boss.public_key().public_bytes_raw().hex()},
            },
            signer=boss,
        )
    _forge(store, "mallory", ["reviewer"], endorse_with=("cust-z", boss))
    store = _attacker_store(rig)
    store.unlock("mallory", MALLORY_SECRET)
    with open_ledger(rig["ledger_path"], store) as book, pytest.raises(LsssdcError):
        release.approve(rig["cand"], "mallory", store, book)


def test_a_whole_other_key_store_under_the_same_names_is_refused(rig) -> None:
    """The insider swaps in a store of their own with the same actor names (and custodian)."""
    ours = rig["store"].path
    os.replace(ours, ours.with_suffix(".real"))
    other = make_keystore(ours, ("ordering-service", "reviewer-a", "reviewer-b"))
    with open_ledger(rig["ledger_path"], other) as book, pytest.raises(LsssdcError) as info:
        release.approve(rig["cand"], "reviewer-b", other, book)
    assert info.value.problems[0].code == "foreign_key_store"
    _deliver(rig, other)
    _assert_nothing_delivered(rig)


def test_stripping_the_custodian_from_the_store_does_not_lift_the_anchor(rig) -> None:
    store = _attacker_store(rig)
    doc = json.loads(json.dumps(store._doc))
    del doc["signers"][CUSTODIAN]
    for entry in doc["signers"].values():
        entry.pop("endorsement", None)
    store._commit(doc)
    store = _attacker_store(rig)
    _forge(store, "mallory", ["reviewer"])
    store = _attacker_store(rig)
    store.unlock("mallory", MALLORY_SECRET)
    with open_ledger(rig["ledger_path"], store) as book, pytest.raises(LsssdcError):
        release.approve(rig["cand"], "mallory", store, book)
    _deliver(rig, store)
    _assert_nothing_delivered(rig)


def test_a_reviewer_the_custodian_adds_after_the_pin_does_approve(rig) -> None:
    """Not vacuous: the honest way of adding a reviewer still works on the anchored ledger."""
    store = _attacker_store(rig)
    store.unlock(CUSTODIAN, os.environ["LSSSDC_ACTOR_SECRET"])
    store.add_signer("reviewer-c", "reviewer c's own secret!", ("reviewer",), by=CUSTODIAN)
    store.unlock("ordering-service", os.environ["LSSSDC_ACTOR_SECRET"])
    with open_ledger(rig["ledger_path"], store) as book:
        release.approve(rig["cand"], "reviewer-c", store, book)
        release.deliver(rig["cand"], rig["to"], store, book, "ordering-service")
    kinds = [(e["kind"], e["actor"]) for e in _raw_entries(rig["ledger_path"])]
    assert ("approve", "reviewer-c") in kinds and kinds[-1][0] == "deliver" and rig["to"].is_dir()


def test_a_ledger_started_without_a_custodian_is_anchored_by_one_later(tmp_path: Path, small) -> None:
    """A store that had no custodian when its ledger started: the custodian pins it afterwards
    with `lsssdc keys anchor`, and from then on a forged reviewer counts for nothing."""
    from typer.testing import CliRunner

    from lsssdc.cli import app
    from tests.release.conftest import fast_kdf

    path = tmp_path / "keys" / "k.json"
    store = KeyStore.create(path, PASSPHRASE, kdf=fast_kdf())
    secret = os.environ["LSSSDC_ACTOR_SECRET"]
    store.add_signer("ordering-service", secret, ("preparer",))
    store.add_signer("reviewer-a", secret, ("reviewer",))
    ledger_path = tmp_path / "ledger" / "l.sqlite"
    with open_ledger(ledger_path, store) as book:
        cand = prepare_order(
            small, policy_path(DAGLIG[0]), order_path(DAGLIG[1]), store, tmp_path / "work", book
        )
    assert [e["kind"] for e in _raw_entries(ledger_path)] == ["prepare"]  # nothing to pin yet
    store.add_signer(CUSTODIAN, secret, ("custodian",))
    env = {"LSSSDC_PASSPHRASE": PASSPHRASE, "LSSSDC_CUSTODIAN_SECRET": secret}
    args = ["keys", "anchor", "--key-store", str(path), "--ledger", str(ledger_path), "--by", CUSTODIAN]
    done = CliRunner().invoke(app, args, env=env)
    assert done.exit_code == 0, done.output
    assert CliRunner().invoke(app, args, env=env).exit_code != 0  # once only
    assert [e["kind"] for e in _raw_entries(ledger_path)] == ["prepare", "custodians"]
    assert "endorsed by key-custodian: reviewer-a (reviewer)" in done.output
    store = KeyStore.open(path, PASSPHRASE)
    _forge(store, "mallory", ["reviewer"])
    store = KeyStore.open(path, PASSPHRASE)
    store.unlock("mallory", MALLORY_SECRET)
    for name in ("ordering-service", "reviewer-a"):
        store.unlock(name, secret)
    with open_ledger(ledger_path, store) as book:
        with pytest.raises(LsssdcError):
            release.approve(cand.path, "mallory", store, book)
        release.approve(cand.path, "reviewer-a", store, book)  # the actors vouched for still act
        release.deliver(cand.path, tmp_path / "out" / "pkg", store, book, "ordering-service")
    assert [e["kind"] for e in _raw_entries(ledger_path)][-2:] == ["approve", "deliver"]


def test_a_substitute_ledger_started_with_a_forged_custodian_is_refused_by_the_sites_heads(
    rig, tmp_path: Path
) -> None:
    """The insider cannot add a reviewer to the real ledger, so they start a ledger of their own
    from a store with a forged custodian and reviewer, prepare the order again on it and approve.
    The site's checkpoint folder keeps the real ledger's heads: the decision is refused."""
    heads = tmp_path / "heads"
    release.approve(rig["cand"], "reviewer-a", rig["store"], rig["ledger"], heads)  # the real ledger's head
    forged_path = tmp_path / "forged" / "k.json"
    forged = make_keystore(forged_path, ("ordering-service", "reviewer-a"))  # all theirs
    fake = tmp_path / "fake-ledger" / "l.sqlite"
    fake.parent.mkdir()
    # under a name of its own (under the real ledger's name it fails as a fork: ledger_tampered)
    with Ledger.open(fake, actor_keys=forged.public_keys(), origin="insider-ledger") as book:
        cand = prepare_order(
            rig["small"], policy_path(DAGLIG[0]), order_path(DAGLIG[1]), forged, tmp_path / "work2", book
        )
        with pytest.raises(LsssdcError) as info:
            release.approve(cand.path, "reviewer-a", forged, book, heads)
        assert info.value.problems[0].code == "foreign_ledger"
        with pytest.raises(LsssdcError):
            release.deliver(cand.path, tmp_path / "out" / "pkg", forged, book, "ordering-service", heads)
    assert [e["kind"] for e in _raw_entries(fake)] == ["custodians", "prepare"]
    assert not (tmp_path / "out" / "pkg").exists()
