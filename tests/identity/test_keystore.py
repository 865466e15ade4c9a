"""The key store: keys encrypted at rest, every change of a byte detected, keys kept apart from data.

Most tests use cheap KDF parameters (the store records them, so this changes nothing else); the
command-line tests use the real defaults.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from lsssdc.errors import KeyStoreError
from lsssdc.identity.keystore import KdfParams, KeyStore, check_apart
from lsssdc.identity.pseudonym import pseudonymise, reidentify

PASS = "correct horse battery staple"
ACTOR_A = "reviewer A's own secret"
ACTOR_B = "somebody else's secret"


def _fast() -> KdfParams:
    return KdfParams(algorithm="argon2id", salt=os.urandom(16), iterations=1, lanes=1, memory_kib=64)


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "keys" / "lsssdc-keys.json"


@pytest.fixture
def store(store_path: Path) -> KeyStore:
    return KeyStore.create(store_path, PASS, kdf=_fast())


def _code(exc: pytest.ExceptionInfo[KeyStoreError]) -> str:
    return exc.value.problems[0].code


def test_create_open_and_keys_are_stable(store: KeyStore, store_path: Path) -> None:
    key = store.pseudonym_key("PRJ-1", create=True)
    again = KeyStore.open(store_path, PASS)
    assert again.pseudonym_key("PRJ-1").key == key.key
    assert again.pseudonym_key("PRJ-1").version == 1
    other = again.pseudonym_key("PRJ-2", create=True)
    assert other.key != key.key
    assert KeyStore.open(store_path, PASS).projects() == ["PRJ-1", "PRJ-2"]
    assert stat.S_IMODE(store_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store_path.parent.stat().st_mode) == 0o700


def test_default_kdf_is_argon2id_or_scrypt() -> None:
    params = KdfParams.default()
    assert params.algorithm in ("argon2id", "scrypt")
    assert len(params.salt) == 16
    if params.algorithm == "argon2id":
        assert (params.iterations, params.lanes, params.memory_kib) == (3, 4, 65536)


def test_scrypt_stores_open_too(tmp_path: Path) -> None:
    kdf = KdfParams(algorithm="scrypt", salt=os.urandom(16), log2_n=10, r=8, p=1)
    path = tmp_path / "k" / "s.json"
    key = KeyStore.create(path, PASS, kdf=kdf).pseudonym_key("P", create=True)
    assert KeyStore.open(path, PASS).pseudonym_key("P").key == key.key


def test_wrong_passphrase(store: KeyStore, store_path: Path) -> None:
    with pytest.raises(KeyStoreError) as err:
        KeyStore.open(store_path, PASS + "!")
    assert _code(err) == "wrong_passphrase"
    assert PASS not in str(err.value)


def test_every_changed_byte_is_detected(store: KeyStore, store_path: Path) -> None:
    store.pseudonym_key("PRJ-1", create=True)
    store.add_signer("reviewer-a", ACTOR_A, ("reviewer",))
    raw = store_path.read_bytes()
    seen = set()
    for i in range(len(raw)):  # flip the lowest bit: a digit stays a digit, a letter a letter
        store_path.write_bytes(raw[:i] + bytes([raw[i] ^ 1]) + raw[i + 1 :])
        with pytest.raises(KeyStoreError) as err:
            KeyStore.open(store_path, PASS)
        seen.add(_code(err))
    assert "keystore_tampered" in seen and "keystore_damaged" in seen
    store_path.write_bytes(raw)
    KeyStore.open(store_path, PASS)


def test_edited_but_valid_json_is_refused(store: KeyStore, store_path: Path) -> None:
    store.pseudonym_key("PRJ-1", create=True)
    doc = json.loads(store_path.read_text())
    doc["projects"]["PRJ-9"] = doc["projects"].pop("PRJ-1")  # a key moved to another project
    store_path.write_text(json.dumps(doc, sort_keys=True, indent=2) + "\n")
    with pytest.raises(KeyStoreError) as err:
        KeyStore.open(store_path, PASS)
    assert _code(err) == "keystore_tampered"


def test_every_truncation_is_detected(store: KeyStore, store_path: Path) -> None:
    raw = store_path.read_bytes()
    for n in range(len(raw)):
        store_path.write_bytes(raw[:n])
        with pytest.raises(KeyStoreError) as err:
            KeyStore.open(store_path, PASS)
        assert _code(err) in ("keystore_truncated", "keystore_not_json")
    store_path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(KeyStoreError) as err:
        KeyStore.open(store_path, PASS)
    assert _code(err) == "keystore_truncated"


def test_missing_not_json_and_unknown_version(store: KeyStore, store_path: Path, tmp_path: Path) -> None:
    with pytest.raises(KeyStoreError) as err:
        KeyStore.open(tmp_path / "keys" / "nothing.json", PASS)
    assert _code(err) == "no_keystore"
    doc = json.loads(store_path.read_text())
    doc["version"] = 2
    store_path.write_text(json.dumps(doc, sort_keys=True, indent=2) + "\n")
    with pytest.raises(KeyStoreError) as err:
        KeyStore.open(store_path, PASS)
    assert _code(err) == "keystore_version"
    store_path.write_text("not json at all\n}\n")
    with pytest.raises(KeyStoreError) as err:
        KeyStore.open(store_path, PASS)
    assert _code(err) == "keystore_not_json"
    store_path.write_text('{"format": "something else"\n}\n')
    with pytest.raises(KeyStoreError) as err:
        KeyStore.open(store_path, PASS)
    assert _code(err) == "not_a_keystore"


def test_store_readable_by_others_is_refused(store: KeyStore, store_path: Path) -> None:
    store_path.chmod(0o644)
    with pytest.raises(KeyStoreError) as err:
        KeyStore.open(store_path, PASS)
    assert _code(err) == "keystore_permissions"


def test_refuses_to_overwrite_and_weak_passphrases(store: KeyStore, store_path: Path, tmp_path: Path) -> None:
    with pytest.raises(KeyStoreError) as err:
        KeyStore.create(store_path, PASS, kdf=_fast())
    assert _code(err) == "keystore_exists"
    with pytest.raises(KeyStoreError) as err:
        KeyStore.create(tmp_path / "k2" / "s.json", "short", kdf=_fast())
    assert _code(err) == "weak_passphrase"


def test_keys_are_never_written_next_to_data(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "deliveries").mkdir(parents=True)
    for inside in (data / "k.json", data / "deliveries" / "k.json"):
        with pytest.raises(KeyStoreError) as err:
            KeyStore.create(inside, PASS, apart_from=[data], kdf=_fast())
        assert _code(err) == "keys_next_to_data"
    with pytest.raises(KeyStoreError):
        check_apart(tmp_path / "k.json", [data / "x.csv"])  # data below the key store's directory
    check_apart(tmp_path / "keys" / "k.json", [data, data / "x.csv"])
    (tmp_path / "mixed").mkdir()
    (tmp_path / "mixed" / "register.parquet").write_bytes(b"x")
    with pytest.raises(KeyStoreError) as err:
        KeyStore.create(tmp_path / "mixed" / "k.json", PASS, kdf=_fast())
    assert _code(err) == "keys_next_to_data"
    assert not (tmp_path / "mixed" / "k.json").exists()


def test_missing_project_and_version(store: KeyStore) -> None:
    with pytest.raises(KeyStoreError) as err:
        store.pseudonym_key("PRJ-1")
    assert _code(err) == "missing_project_key"
    store.pseudonym_key("PRJ-1", create=True)
    with pytest.raises(KeyStoreError) as err:
        store.pseudonym_key("PRJ-1", 2)
    assert _code(err) == "missing_key_version"


def test_project_rotation_keeps_old_versions(store: KeyStore, store_path: Path) -> None:
    v1 = store.pseudonym_key("PRJ-1", create=True)
    assert store.rotate_project("PRJ-1") == 2
    reopened = KeyStore.open(store_path, PASS)
    v2 = reopened.pseudonym_key("PRJ-1")
    assert v2.version == 2 and v2.key != v1.key
    assert reopened.pseudonym_key("PRJ-1", 1).key == v1.key
    assert sorted(reopened.pseudonym_keys("PRJ-1")) == [1, 2]


def test_master_rotation_rewraps_and_keeps_pseudonyms(store: KeyStore, store_path: Path) -> None:
    key = store.pseudonym_key("PRJ-1", create=True)
    index_key = store.audit_index_key()
    store.add_signer("keyholder", ACTOR_A, ("custodian",))
    public = store.public_key("keyholder").public_bytes(Encoding.Raw, PublicFormat.Raw)
    old_doc = json.loads(store_path.read_text())
    assert store.rotate_master() == 2
    new_doc = json.loads(store_path.read_text())
    assert new_doc["master"]["ciphertext"] != old_doc["master"]["ciphertext"]
    assert (
        new_doc["projects"]["PRJ-1"]["versions"]["1"]["ciphertext"]
        != old_doc["projects"]["PRJ-1"]["versions"]["1"]["ciphertext"]
    )
    reopened = KeyStore.open(store_path, PASS)
    assert reopened.master_version == 2
    assert reopened.pseudonym_key("PRJ-1").key == key.key
    assert reopened.audit_index_key() == index_key
    reopened.unlock("keyholder", ACTOR_A)  # an actor's key is not under the master key: unchanged
    signer = reopened.get_signing_key("keyholder")
    assert signer.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw) == public
    assert reopened.info()["master_history"][0]["version"] == 1
    # with a new passphrase the old one no longer opens the store
    reopened.rotate_master("a brand new passphrase")
    with pytest.raises(KeyStoreError):
        KeyStore.open(store_path, PASS)
    assert KeyStore.open(store_path, "a brand new passphrase").pseudonym_key("PRJ-1").key == key.key


def test_deleting_a_project_makes_its_pseudonyms_unrecoverable(store: KeyStore, store_path: Path) -> None:
    key = store.pseudonym_key("PRJ-1", create=True)
    p = pseudonymise(["191212121212"], key)
    assert reidentify(p, KeyStore.open(store_path, PASS).pseudonym_keys("PRJ-1"))[0] == "191212121212"
    assert store.delete_project("PRJ-1") == [1]
    reopened = KeyStore.open(store_path, PASS)
    doc = store_path.read_text()
    assert "PRJ-1" in reopened.info()["deleted_projects"]
    for call in (
        lambda: reopened.pseudonym_keys("PRJ-1"),
        lambda: reopened.pseudonym_key("PRJ-1", create=True),
    ):
        with pytest.raises(KeyStoreError) as err:
            call()
        assert _code(err) == "project_deleted"
    assert json.loads(doc)["projects"] == {}


def test_a_concurrent_change_is_not_overwritten(store: KeyStore, store_path: Path) -> None:
    other = KeyStore.open(store_path, PASS)
    store.pseudonym_key("PRJ-1", create=True)
    # a first key is made on the file as it is now (read again under the lock): both projects stay
    assert other.pseudonym_key("PRJ-2", create=True).project == "PRJ-2"
    assert other.pseudonym_key("PRJ-1", create=True) == store.pseudonym_key("PRJ-1")
    assert KeyStore.open(store_path, PASS).projects() == ["PRJ-1", "PRJ-2"]
    # any other change on a store opened before someone else's write is refused
    with pytest.raises(KeyStoreError) as err:
        store.rotate_project("PRJ-1")
    assert _code(err) == "keystore_changed"
    assert KeyStore.open(store_path, PASS).project_versions("PRJ-1") == [1]


def test_signing_keys(store: KeyStore, store_path: Path) -> None:
    public = store.add_signer("reviewer-a", ACTOR_A, ("reviewer",))
    reopened = KeyStore.open(store_path, PASS)
    with pytest.raises(KeyStoreError) as err:  # the store's passphrase alone signs as nobody
        reopened.get_signing_key("reviewer-a")
    assert _code(err) == "actor_locked"
    with pytest.raises(KeyStoreError) as err:
        reopened.unlock("reviewer-a", ACTOR_B)
    assert _code(err) == "wrong_actor_secret"
    reopened.unlock("reviewer-a", ACTOR_A)
    private = reopened.get_signing_key("reviewer-a", role="reviewer")
    public.verify(private.sign(b"approve"), b"approve")
    with pytest.raises(KeyStoreError) as err:
        reopened.get_signing_key("reviewer-a", role="preparer")
    assert _code(err) == "wrong_role"
    assert set(store.public_keys()) == {"reviewer-a"}
    with pytest.raises(KeyStoreError) as err:
        store.get_signing_key("reviewer-b")
    assert _code(err) == "missing_signing_key"
    with pytest.raises(KeyStoreError):
        store.add_signer("reviewer-a", ACTOR_A, ("reviewer",))


def test_labelled_sub_keys(store: KeyStore) -> None:
    a = store.derive_key("audit-index")
    assert a == store.audit_index_key() and len(a) == 32
    assert store.derive_key("other") != a
    with pytest.raises(KeyStoreError):
        store.derive_key("Bad Label")


def test_wrapped_keys_are_bound_to_their_slot(store: KeyStore) -> None:
    store.pseudonym_key("PRJ-1", create=True)
    entry = store._doc["projects"]["PRJ-1"]["versions"]["1"]
    with pytest.raises(KeyStoreError) as err:
        store._unwrap(entry, {"kind": "project", "project": "PRJ-2", "version": 1})
    assert _code(err) == "keystore_damaged"


def test_info_holds_no_key_material(store: KeyStore, store_path: Path) -> None:
    store.pseudonym_key("PRJ-1", create=True)
    store.add_signer("a", ACTOR_A)
    shown = json.dumps(store.info())
    doc = json.loads(store_path.read_text())
    wrapped = [doc["master"]["ciphertext"], doc["root"]["ciphertext"], doc["kdf"]["salt"], doc["seal"]]
    wrapped += [doc["projects"]["PRJ-1"]["versions"]["1"]["ciphertext"], doc["signers"]["a"]["ciphertext"]]
    secrets = [store._master, store._kek, store.pseudonym_key("PRJ-1").key, store.audit_index_key()]
    assert not any(w in shown for w in wrapped)
    assert not any(s.hex() in shown for s in secrets)
    assert "ciphertext" not in shown and "nonce" not in shown


def test_roles_are_bound_to_the_key(store: KeyStore, store_path: Path) -> None:
    """Editing an actor's roles in the file (and resealing, as the passphrase holder could)
    makes that actor's key unusable rather than giving it the new role."""
    store.add_signer("reviewer-a", ACTOR_A, ("reviewer",))
    doc = store._copy()
    doc["signers"]["reviewer-a"]["roles"] = ["preparer", "reviewer"]
    store._commit(doc)
    reopened = KeyStore.open(store_path, PASS)
    with pytest.raises(KeyStoreError) as err:
        reopened.unlock("reviewer-a", ACTOR_A)
    assert _code(err) == "wrong_actor_secret"


def test_an_actor_needs_a_real_secret_and_known_roles(store: KeyStore) -> None:
    with pytest.raises(KeyStoreError):
        store.add_signer("a", "short", ("reviewer",))
    with pytest.raises(KeyStoreError):
        store.add_signer("a", ACTOR_A, ("superuser",))
    with pytest.raises(KeyStoreError):
        store.add_signer("a", ACTOR_A, ())
