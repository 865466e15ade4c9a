"""The key store: every lsssdc key, encrypted at rest in one JSON file.

Keys are as sensitive as the old key files (kodnyckel): whoever holds a pseudonym key can
enumerate the personnummer space and re-identify a delivery. Hence:

* A random 256-bit **master key** is wrapped with AES-256-GCM under a key derived from the
  passphrase with Argon2id (RFC 9106 parameters: 64 MiB, 3 passes, 4 lanes; scrypt when the
  installed ``cryptography`` lacks Argon2id). The passphrase comes from ``LSSSDC_PASSPHRASE``
  or a hidden prompt, never from a command-line argument.
* Every **project** has its own random 256-bit secret per key version, wrapped under the
  master key. Pseudonym keys are HKDF sub-keys of it (:class:`~lsssdc.identity.pseudonym.PseudonymKey`).
  Deleting a project removes its wrapped secrets, so its pseudonyms can never be reversed or
  re-made again (retention); a tombstone keeps the id from being reused by accident.
* A random **root secret** gives labelled HKDF sub-keys for other uses (the audit-index key).
* An **Ed25519 signing key** per named actor is wrapped under a key derived (same KDF) from
  that actor's own secret, with the actor's roles (preparer, reviewer, custodian) bound in:
  the store's passphrase verifies every actor but signs as none, so one person cannot act in
  two roles with one secret. The public keys are kept in clear for verification.
* Each wrapped item binds its identity (store id, kind, name, version) as AES-GCM associated
  data, so items cannot be swapped between slots. The master key binds the format, version and
  KDF parameters. The whole document is sealed by an HMAC-SHA256 under a sub-key of the master
  key and written in one canonical form, so that any changed byte is detected.
* Rotating the master key re-wraps everything and forgets the old master key; rotating a
  project key adds a version and keeps the old ones, so the key holder can map old pseudonyms
  to new (:func:`~lsssdc.identity.pseudonym.repseudonymise`).

**Keys are never written next to data.** The store refuses to be created or updated in a
directory that holds data files (CSV, Parquet, Stata, SAS, SPSS, Excel), and :func:`check_apart`
refuses a store that lies inside, or in the same tree as, a given data or delivery directory.
Writes are atomic, file mode 0600, serialised by a lock on the directory, and refused when the
file changed since it was opened. A store readable by others is refused.

Errors are :class:`~lsssdc.errors.KeyStoreError` (exit code 2); no message ever holds key
material or the passphrase.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import os
import re
import stat
import unicodedata
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from lsssdc.errors import KeyStoreError, Problem
from lsssdc.fileio import atomic_path
from lsssdc.identity.kdf import (
    ENV_PASSPHRASE,
    KdfParams,
    _b64,
    _damaged,
    _decode_b64,
)
from lsssdc.identity.placement import _locked, _refuse_data_neighbours, check_apart
from lsssdc.identity.pseudonym import KEY_BYTES, MAX_VERSION, PseudonymKey, check_project_id
from lsssdc.identity.signing_keys import ENV_ACTOR_SECRET, ENV_CUSTODIAN_SECRET, NAME, ROLES, SigningKeys
from lsssdc.identity.storefile import (
    _NONCE,
    FORMAT,
    MIN_PASSPHRASE,
    STORE_VERSION,
    _canonical,
    _changed,
    _now,
    _parse,
    _serialise,
    _tampered,
)

ENV_NEW_PASSPHRASE = "LSSSDC_NEW_PASSPHRASE"
AUDIT_INDEX_LABEL = "audit-index"
LABEL = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")

_SUBKEY_INFO = b"lsssdc subkey v1|"
_SEAL_INFO = b"lsssdc keystore seal v1"

# what other modules import from here, wherever it is defined
__all__ = [
    "AUDIT_INDEX_LABEL",
    "ENV_ACTOR_SECRET",
    "ENV_CUSTODIAN_SECRET",
    "ENV_NEW_PASSPHRASE",
    "ENV_PASSPHRASE",
    "FORMAT",
    "LABEL",
    "MIN_PASSPHRASE",
    "NAME",
    "ROLES",
    "STORE_VERSION",
    "KdfParams",
    "KeyStore",
    "check_apart",
]


# --------------------------------------------------------------------------------------------
# the store


class KeyStore(SigningKeys):
    """An opened key store: the master key is in memory; every change is written at once.

    Create with :meth:`create`, open with :meth:`open`. Example::

        store = KeyStore.open("/secure/keys/lsssdc-keys.json", os.environ["LSSSDC_PASSPHRASE"])
        key = store.pseudonym_key("PRJ-2025-01", create=True)
    """

    def __init__(self, path: Path, doc: dict[str, Any], raw: bytes, kek: bytes, master: bytes) -> None:
        self.path = path
        self._doc = doc
        self._raw = raw
        self._kek = kek
        self._master = master
        #: actors' signing keys opened with their own secrets in this process
        self._unlocked: dict[str, Ed25519PrivateKey] = {}

    def __repr__(self) -> str:
        return f"KeyStore({str(self.path)!r})"

    # -- creating and opening --

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        passphrase: str,
        *,
        apart_from: Iterable[str | os.PathLike[str]] = (),
        kdf: KdfParams | None = None,
    ) -> KeyStore:
        """Create a new key store; refuses to overwrite one, or to be written next to data."""
        p = Path(path).expanduser()
        check_apart(p, apart_from)
        if len(unicodedata.normalize("NFC", passphrase or "")) < MIN_PASSPHRASE:
            raise KeyStoreError(
                Problem("weak_passphrase", f"the passphrase must have at least {MIN_PASSPHRASE} characters")
            )
        if p.exists() or p.is_symlink():
            raise KeyStoreError(
                Problem(
                    "keystore_exists", "a file already exists there; refusing to overwrite it", file=str(p)
                )
            )
        p.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _refuse_data_neighbours(p)
        params = kdf or KdfParams.default()
        kek = params.derive(passphrase)
        master = os.urandom(KEY_BYTES)
        store_id = uuid.uuid4().hex
        created = _now()
        doc: dict[str, Any] = {
            "format": FORMAT,
            "version": STORE_VERSION,
            "store_id": store_id,
            "created": created,
            "kdf": params.to_dict(),
            "master": {"version": 1, "created": created},
            "master_history": [],
            "projects": {},
            "deleted_projects": {},
            "signers": {},
        }
        store = cls(p, doc, b"", kek, master)
        store._wrap_master()
        doc["root"] = store._wrap(os.urandom(KEY_BYTES), {"kind": "root"})
        with _locked(p.parent):
            if p.exists():
                raise KeyStoreError(
                    Problem(
                        "keystore_exists",
                        "a file already exists there; refusing to overwrite it",
                        file=str(p),
                    )
                )
            store._write(doc)
        return store

    @classmethod
    def open(cls, path: str | os.PathLike[str], passphrase: str) -> KeyStore:
        """Open and verify a key store; every failure is a :class:`KeyStoreError` saying which."""
        p = Path(path).expanduser()
        if p.is_symlink():
            # writes replace the file by rename: through a link they would fork the store (a
            # project would get a second key, so other pseudonyms)
            raise KeyStoreError(
                Problem(
                    "keystore_symlink",
                    "the key store path is a symbolic link; give the real file's path",
                    file=str(p),
                )
            )
        if p.is_file() and p.stat().st_nlink > 1:
            # a second name for the same file: a write through one name replaces only that name,
            # and the store forks (two keys for one project)
            raise KeyStoreError(
                Problem(
                    "keystore_hardlink",
                    "the key store file has another name (a hard link); refused",
                    file=str(p),
                )
            )
        if not p.is_file():
            raise KeyStoreError(
                Problem(
                    "no_keystore",
                    "there is no key store at this path",
                    file=str(p),
                    hint="create one with: lsssdc keys init --key-store PATH",
                )
            )
        if os.name == "posix" and stat.S_IMODE(p.stat().st_mode) & 0o077:
            raise KeyStoreError(
                Problem(
                    "keystore_permissions",
                    "the key store can be read or written by other users",
                    file=str(p),
                    hint="restrict it: chmod 600",
                )
            )
        raw = p.read_bytes()
        doc = _parse(p, raw)
        params = KdfParams.from_dict(doc["kdf"], p)
        kek = params.derive(passphrase)
        master = cls._unwrap_master(doc, kek, p)
        if master is None:
            raise KeyStoreError(
                Problem(
                    "wrong_passphrase",
                    "the passphrase is wrong (or the key store's header has been altered)",
                    file=str(p),
                    hint=f"check {ENV_PASSPHRASE} or the passphrase typed",
                )
            )
        store = cls(p, doc, raw, kek, master)
        store._check_seal(doc)
        return store

    @classmethod
    def _unwrap_master(cls, doc: dict[str, Any], kek: bytes, p: Path) -> bytes | None:
        """The master key of ``doc``, or None when ``kek`` does not open it."""
        try:
            return AESGCM(kek).decrypt(
                _decode_b64(doc["master"].get("nonce"), p, "master nonce"),
                _decode_b64(doc["master"].get("ciphertext"), p, "master key"),
                cls._master_aad(doc),
            )
        except InvalidTag:
            return None

    def _check_seal(self, doc: dict[str, Any]) -> None:
        if not hmac.compare_digest(self._seal(doc), _decode_b64(doc.get("seal"), self.path, "seal")):
            raise _tampered(self.path)

    # -- wrapping --

    @staticmethod
    def _master_aad(doc: dict[str, Any]) -> bytes:
        return _canonical(
            {
                "format": doc["format"],
                "version": doc["version"],
                "store_id": doc["store_id"],
                "kdf": doc["kdf"],
                "kind": "master",
                "master_version": doc["master"]["version"],
            }
        )

    def _wrap_master(self) -> None:
        nonce = os.urandom(_NONCE)
        ct = AESGCM(self._kek).encrypt(nonce, self._master, self._master_aad(self._doc))
        self._doc["master"].update({"nonce": _b64(nonce), "ciphertext": _b64(ct)})

    def _aad(self, ident: dict[str, Any]) -> bytes:
        return _canonical(
            {"store_id": self._doc["store_id"], "master_version": self._doc["master"]["version"], **ident}
        )

    def _wrap(
        self, secret: bytes, ident: dict[str, Any], extra: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        nonce = os.urandom(_NONCE)
        ct = AESGCM(self._master).encrypt(nonce, secret, self._aad(ident))
        return {**(extra or {}), "nonce": _b64(nonce), "ciphertext": _b64(ct)}

    def _unwrap(self, entry: Any, ident: dict[str, Any]) -> bytes:
        what = ident.get("kind", "key")
        if not isinstance(entry, dict):
            raise _damaged(self.path, f"{what} entry")
        try:
            return AESGCM(self._master).decrypt(
                _decode_b64(entry.get("nonce"), self.path, f"{what} nonce"),
                _decode_b64(entry.get("ciphertext"), self.path, what),
                self._aad(ident),
            )
        except InvalidTag:
            raise _damaged(self.path, f"a wrapped {what} key does not open") from None

    def _seal(self, doc: dict[str, Any]) -> bytes:
        key = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=_SEAL_INFO).derive(
            self._master
        )
        body = {k: v for k, v in doc.items() if k != "seal"}
        return hmac.new(key, _canonical(body), hashlib.sha256).digest()

    def _write(self, doc: dict[str, Any]) -> None:
        """Seal and write ``doc`` atomically (mode 0600); the caller holds the directory lock."""
        if self.path.is_symlink():
            raise KeyStoreError(
                Problem("keystore_symlink", "the key store path became a symbolic link", file=str(self.path))
            )
        _refuse_data_neighbours(self.path)  # on every write, not only when the store is created
        doc = {k: v for k, v in doc.items() if k != "seal"}
        doc["seal"] = _b64(self._seal(doc))
        data = _serialise(doc)
        with atomic_path(self.path) as tmp:
            os.chmod(tmp, 0o600)
            tmp.write_bytes(data)
        self._doc, self._raw = doc, data

    def _commit(self, doc: dict[str, Any]) -> None:
        """Write a changed document unless the file changed since it was opened."""
        with _locked(self.path.parent):
            _refuse_data_neighbours(self.path)
            current = self.path.read_bytes() if self.path.is_file() else None
            if current != self._raw:
                raise _changed(self.path)
            self._write(doc)

    def _copy(self) -> dict[str, Any]:
        return json.loads(json.dumps(self._doc))

    # -- metadata --

    @property
    def store_id(self) -> str:
        return str(self._doc["store_id"])

    @property
    def master_version(self) -> int:
        return int(self._doc["master"]["version"])

    def info(self) -> dict[str, Any]:
        """Everything about the store except key material (for ``lsssdc keys show``)."""
        kdf = {k: v for k, v in self._doc["kdf"].items() if k != "salt"}
        return {
            "format": FORMAT,
            "version": STORE_VERSION,
            "path": str(self.path),
            "store_id": self.store_id,
            "created": self._doc["created"],
            "kdf": kdf,
            "master_version": self.master_version,
            "master_created": self._doc["master"].get("created"),
            "master_history": list(self._doc["master_history"]),
            "projects": {
                name: {
                    "current_version": entry["current"],
                    "versions": sorted(int(v) for v in entry["versions"]),
                    "created": {
                        v: e.get("created")
                        for v, e in sorted(entry["versions"].items(), key=lambda x: int(x[0]))
                    },
                }
                for name, entry in sorted(self._doc["projects"].items())
            },
            "deleted_projects": dict(sorted(self._doc["deleted_projects"].items())),
            "signers": {
                name: {
                    "public_key": entry["public_key"],
                    "created": entry.get("created"),
                    "roles": entry.get("roles"),
                    "added_by": entry.get("added_by"),
                }
                for name, entry in sorted(self._doc["signers"].items())
            },
        }

    # -- projects and pseudonym keys --

    def projects(self) -> list[str]:
        return sorted(self._doc["projects"])

    def _project(self, project: str) -> dict[str, Any]:
        check_project_id(project)
        entry = self._doc["projects"].get(project)
        if entry is None:
            deleted = project in self._doc["deleted_projects"]
            raise KeyStoreError(
                Problem(
                    "project_deleted" if deleted else "missing_project_key",
                    f"project '{project}' has {'had its keys deleted' if deleted else 'no key in this key store'}",
                    file=str(self.path),
                    hint=None
                    if deleted
                    else "check the project id; a project's first pseudonymisation creates its key",
                )
            )
        return entry

    def project_versions(self, project: str) -> list[int]:
        return sorted(int(v) for v in self._project(project)["versions"])

    def current_version(self, project: str) -> int:
        return int(self._project(project)["current"])

    def add_project(self, project: str) -> int:
        """Create a project's first key (version 1); refuses a known or deleted project."""
        check_project_id(project)
        if project in self._doc["projects"] or project in self._doc["deleted_projects"]:
            raise KeyStoreError(
                Problem(
                    "project_exists",
                    f"project '{project}' already has (or had) a key",
                    file=str(self.path),
                    hint="a deleted project's id cannot be reused: choose a new project id",
                )
            )
        doc = self._copy()
        doc["projects"][project] = {"current": 1, "versions": {}}
        self._add_project_version(doc, project, 1)
        self._commit(doc)
        return 1

    def _ensure_project(self, project: str) -> None:
        """Create a project's first key unless another process just did: under the store's lock the
        file is read again (and verified), so concurrent first deliveries of one project share one
        key instead of forking it or failing."""
        with _locked(self.path.parent):
            self._refresh()
            if project in self._doc["projects"] or project in self._doc["deleted_projects"]:
                return
            _refuse_data_neighbours(self.path)
            doc = self._copy()
            doc["projects"][project] = {"current": 1, "versions": {}}
            self._add_project_version(doc, project, 1)
            self._write(doc)

    def _refresh(self) -> None:
        """Adopt what another process wrote since this store was opened, after verifying it under
        the same passphrase-derived key and seal (the caller holds the directory lock)."""
        raw = self.path.read_bytes() if self.path.is_file() else None
        if raw == self._raw:
            return
        changed = _changed(self.path)
        if raw is None:
            raise changed
        doc = _parse(self.path, raw)
        # another passphrase or master key now: the store must be opened again
        if self._unwrap_master(doc, self._kek, self.path) != self._master or doc["store_id"] != self.store_id:
            raise changed
        self._check_seal(doc)
        self._doc, self._raw = doc, raw

    def _add_project_version(self, doc: dict[str, Any], project: str, version: int) -> None:
        ident = {"kind": "project", "project": project, "version": version}
        doc["projects"][project]["versions"][str(version)] = self._wrap(
            os.urandom(KEY_BYTES), ident, {"created": _now()}
        )
        doc["projects"][project]["current"] = version

    def rotate_project(self, project: str) -> int:
        """Add a new key version for a project (new pseudonyms); old versions stay for mapping."""
        versions = self.project_versions(project)
        new = max(versions) + 1
        if new > MAX_VERSION:
            raise KeyStoreError(
                Problem("too_many_versions", f"project '{project}' has used every key version")
            )
        doc = self._copy()
        self._add_project_version(doc, project, new)
        self._commit(doc)
        return new

    def delete_project(self, project: str) -> list[int]:
        """Remove every key of a project: its pseudonyms can no longer be reversed or re-made."""
        versions = self.project_versions(project)
        doc = self._copy()
        del doc["projects"][project]
        doc["deleted_projects"][project] = {"deleted": _now(), "versions": versions}
        self._commit(doc)
        return versions

    def pseudonym_key(
        self, project: str, version: int | None = None, *, create: bool = False
    ) -> PseudonymKey:
        """A project's pseudonym key (current version by default); ``create`` makes the first one."""
        check_project_id(project)
        if create and project not in self._doc["projects"] and project not in self._doc["deleted_projects"]:
            self._ensure_project(project)
        entry = self._project(project)
        v = int(entry["current"]) if version is None else version
        wrapped = entry["versions"].get(str(v))
        if wrapped is None:
            raise KeyStoreError(
                Problem(
                    "missing_key_version",
                    f"project '{project}' has no key version {v} (versions: "
                    + ", ".join(str(x) for x in self.project_versions(project))
                    + ")",
                    file=str(self.path),
                )
            )
        secret = self._unwrap(wrapped, {"kind": "project", "project": project, "version": v})
        return PseudonymKey.derive(secret, project, v)

    def pseudonym_keys(self, project: str) -> dict[int, PseudonymKey]:
        """Every key version of a project, for reversal and rotation by the key holder."""
        return {v: self.pseudonym_key(project, v) for v in self.project_versions(project)}

    # -- labelled sub-keys --

    def derive_key(self, label: str, length: int = KEY_BYTES) -> bytes:
        """A sub-key for another use, by label (HKDF of the store's root secret; stable across rotations)."""
        if not isinstance(label, str) or not LABEL.fullmatch(label) or not 16 <= length <= 64:
            raise KeyStoreError(
                Problem("bad_label", "a sub-key label is 1-64 lower-case letters, digits, '.', '_', '-'")
            )
        root = self._unwrap(self._doc["root"], {"kind": "root"})
        info = _SUBKEY_INFO + label.encode("ascii")
        return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(root)

    def audit_index_key(self) -> bytes:
        """The key of the ledger's person index ("which deliveries held person X")."""
        return self.derive_key(AUDIT_INDEX_LABEL)

    # -- master key rotation --

    def rotate_master(self, new_passphrase: str | None = None) -> int:
        """Replace the master key (and optionally the passphrase); re-wrap every key under it.

        The old master key is forgotten: nothing is wrapped under it any more. Pseudonyms do not
        change (project keys are the same, only wrapped anew).
        """
        secrets: dict[str, Any] = {
            "root": self._unwrap(self._doc["root"], {"kind": "root"}),
            "projects": {
                (p, int(v)): self._unwrap(e, {"kind": "project", "project": p, "version": int(v)})
                for p, entry in self._doc["projects"].items()
                for v, e in entry["versions"].items()
            },
            "signers": {
                n: self._unwrap(e, {"kind": "signer", "name": n})
                for n, e in self._doc["signers"].items()
                if e.get("wrap") != "actor-secret"  # under the actor's own secret: unchanged
            },
        }
        if new_passphrase is not None and len(unicodedata.normalize("NFC", new_passphrase)) < MIN_PASSPHRASE:
            raise KeyStoreError(
                Problem("weak_passphrase", f"the passphrase must have at least {MIN_PASSPHRASE} characters")
            )
        old = (self._doc, self._kek, self._master)
        doc = self._copy()
        new_version = self.master_version + 1
        doc["master_history"].append(
            {"version": self.master_version, "created": doc["master"].get("created"), "retired": _now()}
        )
        doc["master"] = {"version": new_version, "created": _now()}
        if new_passphrase is not None:
            params = KdfParams.from_dict(doc["kdf"], self.path)
            fresh = dataclasses.replace(params, salt=os.urandom(16))
            doc["kdf"] = fresh.to_dict()
            kek = fresh.derive(new_passphrase)
        else:
            kek = self._kek
        try:
            self._doc, self._kek, self._master = doc, kek, os.urandom(KEY_BYTES)
            self._wrap_master()
            doc["root"] = self._wrap(secrets["root"], {"kind": "root"})
            for (p, v), secret in secrets["projects"].items():
                entry = doc["projects"][p]["versions"][str(v)]
                doc["projects"][p]["versions"][str(v)] = self._wrap(
                    secret, {"kind": "project", "project": p, "version": v}, {"created": entry.get("created")}
                )
            for n, secret in secrets["signers"].items():
                entry = doc["signers"][n]
                doc["signers"][n] = self._wrap(
                    secret,
                    {"kind": "signer", "name": n},
                    {"created": entry.get("created"), "public_key": entry["public_key"]},
                )
            self._doc = old[0]  # _commit compares against what was opened
            self._commit(doc)
        except BaseException:
            self._doc, self._kek, self._master = old
            raise
        return new_version
