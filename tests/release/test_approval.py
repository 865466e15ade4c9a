"""Approve and reject: nothing but a valid approval of exactly these bytes makes a candidate
deliverable, and every refusal leaves no package and no ledger entry."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lsssdc import release
from lsssdc.errors import DisclosureRefused, KeyStoreError
from lsssdc.identity.keystore import KeyStore
from lsssdc.release import approval
from lsssdc.release.candidate import APPROVAL, MANIFEST, REJECTION, content_hash, load, write_json
from tests.release.conftest import (
    DAGLIG,
    MORTALITY,
    copy_candidate,
    make_keystore,
    open_ledger,
    order_path,
    policy_path,
    prepare_order,
)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory, small) -> dict:
    """A releasable and a refused candidate of the small register, and their key store."""
    root = tmp_path_factory.mktemp("approval")
    store = make_keystore(root / "keys" / "lsssdc-keys.json")
    ledger_path = root / "audit" / "ledger.sqlite"
    with open_ledger(ledger_path, store) as book:
        good = prepare_order(small, policy_path(DAGLIG[0]), order_path(DAGLIG[1]), store, root / "work", book)
        bad = prepare_order(
            small, policy_path(MORTALITY[0]), order_path(MORTALITY[1]), store, root / "work", book
        )
    assert (good.verdict, bad.verdict) == ("releasable", "refused")
    return {"store": store, "good": good.path, "bad": bad.path, "ledger": ledger_path}


@pytest.fixture
def env(tmp_path: Path, prepared: dict):
    """Fresh copies of the candidates, a fresh ledger, and the place a package would go."""
    store: KeyStore = prepared["store"]
    (tmp_path / "audit").mkdir()
    shutil.copyfile(prepared["ledger"], tmp_path / "audit" / "ledger.sqlite")  # its prepare entries
    book = open_ledger(tmp_path / "audit" / "ledger.sqlite", store)
    yield {
        "store": store,
        "ledger": book,
        "good": copy_candidate(prepared["good"], tmp_path / "work"),
        "bad": copy_candidate(prepared["bad"], tmp_path / "work-refused"),
        "to": tmp_path / "delivery" / "pkg",
    }
    book.close()


def _deliver(env: dict, which: str = "good") -> dict:
    return release.deliver(env[which], env["to"], env["store"], env["ledger"], "ordering-service")


def _refused(env: dict, code: str, which: str = "good") -> None:
    """Delivery is refused with ``code``; nothing was written, nothing was logged."""
    before = len(env["ledger"])
    with pytest.raises(DisclosureRefused) as info:
        _deliver(env, which)
    assert code in {p.code for p in info.value.problems}, info.value.problems
    assert not env["to"].exists()
    if env["to"].parent.exists():
        assert not any(env["to"].parent.iterdir())  # no temporary directory either
    assert len(env["ledger"]) == before
    assert env["ledger"].verify().ok


def _reseal(path: Path) -> None:
    """What a careful forger does after editing content: make candidate.json agree with it."""
    manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    files = {rel: hashlib.sha256((path / rel).read_bytes()).hexdigest() for rel in manifest["files"]}
    meta = {k: v for k, v in manifest.items() if k not in ("files", "content_hash")}
    write_json(path / MANIFEST, {**meta, "files": files, "content_hash": content_hash(files, meta)})


def test_an_approved_unchanged_candidate_is_delivered(env) -> None:
    record = release.approve(env["good"], "reviewer-a", env["store"], env["ledger"])
    assert record["decision"] == "approve" and record["content_hash"] == load(env["good"]).content_hash
    done = _deliver(env)
    assert Path(done["package"]).is_dir()
    assert [e.kind for e in env["ledger"].entries()] == [
        "custodians",
        "prepare",
        "refuse",
        "approve",
        "deliver",
    ]


def test_never_approved_is_refused(env) -> None:
    _refused(env, "not_approved")


def test_rejected_is_refused(env) -> None:
    release.approve(env["good"], "reviewer-a", env["store"], env["ledger"])
    release.reject(env["good"], "reviewer-a", "the purpose does not need kommun", env["store"], env["ledger"])
    assert (env["good"] / REJECTION).exists()
    _refused(env, "rejected")
    # and a rejected candidate cannot be approved again
    with pytest.raises(DisclosureRefused):
        release.approve(env["good"], "reviewer-a", env["store"], env["ledger"])
    assert [e.kind for e in env["ledger"].entries()][3:] == ["approve", "reject"]


def test_an_approval_file_beside_a_rejection_is_ignored(env) -> None:
    release.approve(env["good"], "reviewer-a", env["store"], env["ledger"])
    saved = (env["good"] / APPROVAL).read_bytes()
    release.reject(env["good"], "reviewer-a", "no", env["store"], env["ledger"])
    (env["good"] / APPROVAL).write_bytes(saved)
    _refused(env, "rejected")


def test_a_changed_byte_after_approval_is_refused(env) -> None:
    release.approve(env["good"], "reviewer-a", env["store"], env["ledger"])
    data = env["good"] / "data.parquet"
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    data.write_bytes(bytes(raw))
    _refused(env, "candidate_changed")


def test_changed_data_with_a_consistent_manifest_is_refused(env) -> None:
    """Edit a value, re-seal candidate.json to match: the approval signed other content."""
    release.approve(env["good"], "reviewer-a", env["store"], env["ledger"])
    data = env["good"] / "data.parquet"
    df = pd.read_parquet(data)
    df.loc[0, "sex"] = "2" if df.loc[0, "sex"] == "1" else "1"
    df.to_parquet(data, index=False)
    _reseal(env["good"])
    assert load(env["good"]).recompute()[1] == []  # the forgery is self-consistent
    _refused(env, "not_prepared")  # no signed prepare entry has the forged content
    # and rewriting the hash inside the approval file changes nothing: files decide nothing
    rec = json.loads((env["good"] / APPROVAL).read_text(encoding="utf-8"))
    rec["content_hash"] = load(env["good"]).content_hash
    (env["good"] / APPROVAL).write_text(json.dumps(rec), encoding="utf-8")
    _refused(env, "not_prepared")


@pytest.mark.parametrize("change", ["edit report", "add file", "remove file"])
def test_any_change_to_the_content_is_refused(env, change: str) -> None:
    release.approve(env["good"], "reviewer-a", env["store"], env["ledger"])
    c = env["good"]
    if change == "edit report":
        (c / "report.html").write_text(
            (c / "report.html").read_text(encoding="utf-8") + " ", encoding="utf-8"
        )
    elif change == "add file":
        (c / "extra.csv").write_text("a\n1\n", encoding="utf-8")
    else:
        (c / "report.json").unlink()
    _refused(env, "candidate_changed")


def test_an_approval_signed_by_another_key_is_refused(env) -> None:
    """The signature is checked with the reviewer's key from the key store, not the file's."""
    forger = Ed25519PrivateKey.generate()
    c = load(env["good"])
    approval.write_record(c, APPROVAL, approval.approval_record(c, "reviewer-a", forger))
    rec = json.loads((env["good"] / APPROVAL).read_text(encoding="utf-8"))
    assert rec["public_key"] != env["store"].public_keys()["reviewer-a"].public_bytes_raw().hex()
    _refused(env, "not_approved")


def test_an_approval_from_another_key_store_is_refused(env, tmp_path) -> None:
    """Same reviewer name, another key store: its key is not the reviewer's in ours."""
    other = make_keystore(tmp_path / "other-keys" / "k.json")
    c = load(env["good"])
    approval.write_record(
        c, APPROVAL, approval.approval_record(c, "reviewer-a", other.get_signing_key("reviewer-a"))
    )
    _refused(env, "not_approved")


def test_an_approval_by_an_unknown_reviewer_is_refused(env) -> None:
    c = load(env["good"])
    approval.write_record(
        c, APPROVAL, approval.approval_record(c, "reviewer-x", Ed25519PrivateKey.generate())
    )
    _refused(env, "not_approved")
    with pytest.raises(KeyStoreError):
        release.approve(env["good"], "reviewer-x", env["store"], env["ledger"])


def test_a_damaged_approval_is_unusable(env) -> None:
    (env["good"] / APPROVAL).write_text("{not json", encoding="utf-8")
    _refused(env, "not_approved")  # the file is not read: the ledger holds no approval


def test_a_refused_candidate_can_be_neither_approved_nor_delivered(env) -> None:
    with pytest.raises(DisclosureRefused) as info:
        release.approve(env["bad"], "reviewer-a", env["store"], env["ledger"])
    assert info.value.problems[0].code == "refused"
    assert not (env["bad"] / APPROVAL).exists() and len(env["ledger"]) == 3
    # an approval made around the gate (a valid signature of the refused content) does not help
    body = approval._decision(load(env["bad"]), "reviewer-a", "approve", None)
    key = env["store"].get_signing_key("reviewer-a")
    signature = key.sign(approval.canonical(body)).hex()
    public = key.public_key().public_bytes_raw().hex()
    write_json(env["bad"] / APPROVAL, {**body, "public_key": public, "signature": signature})
    _refused(env, "refused", which="bad")


def test_a_forged_verdict_in_the_manifest_does_not_make_a_refused_candidate_approvable(env) -> None:
    manifest = json.loads((env["bad"] / MANIFEST).read_text(encoding="utf-8"))
    manifest["verdict"] = "releasable"
    (env["bad"] / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    _reseal(env["bad"])
    assert load(env["bad"]).verdict == "releasable"
    with pytest.raises(DisclosureRefused):
        release.approve(env["bad"], "reviewer-a", env["store"], env["ledger"])
    assert len(env["ledger"]) == 3


def test_an_approval_the_ledger_did_not_take_leaves_no_approval(env, monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise OSError("the ledger's disk is full")

    monkeypatch.setattr(env["ledger"], "append", broken)
    with pytest.raises(OSError):
        release.approve(env["good"], "reviewer-a", env["store"], env["ledger"])
    monkeypatch.undo()
    assert not (env["good"] / APPROVAL).exists()
    _refused(env, "not_approved")


def test_delivery_with_another_key_store_is_refused(env, tmp_path) -> None:
    """A candidate indexed under another audit-index key would hide its persons from the ledger."""
    release.approve(env["good"], "reviewer-a", env["store"], env["ledger"])
    other = make_keystore(tmp_path / "other-keys" / "k.json")
    # the other store trusts our reviewer's key, so only the index key differs
    other_keys = dict(env["store"].public_keys())

    class Mixed:
        def public_keys(self):
            return other_keys

        def audit_index_key(self):
            return other.audit_index_key()

        def get_signing_key(self, name, role=None):
            return env["store"].get_signing_key(name, role=role)

        def signers(self):
            return env["store"].signers()

        def roles(self, name):
            return env["store"].roles(name)

        store_id = env["store"].store_id

        def actor_records(self):
            return env["store"].actor_records()

    with pytest.raises(KeyStoreError):
        release.deliver(env["good"], env["to"], Mixed(), env["ledger"], "ordering-service")
    assert not env["to"].exists() and len(env["ledger"]) == 4
