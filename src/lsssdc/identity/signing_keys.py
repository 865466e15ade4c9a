"""The actors' signing keys in the key store: an Ed25519 key per named actor, wrapped under that
actor's own secret with the actor's roles bound in, and endorsed by a key custodian. Apart from
:mod:`lsssdc.identity.keystore`, whose ``KeyStore`` takes these methods from :class:`SigningKeys`,
so that who may sign can be read without the store's file, master key and project keys."""

from __future__ import annotations

import dataclasses
import os
import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from lsssdc.errors import KeyStoreError, Problem
from lsssdc.identity import actors
from lsssdc.identity.kdf import KdfParams, _b64, _damaged, _decode_b64
from lsssdc.identity.storefile import _NONCE, MIN_PASSPHRASE, _canonical, _now

#: an actor's own secret (opens only that actor's signing key)
ENV_ACTOR_SECRET = "LSSSDC_ACTOR_SECRET"
#: the secret of the custodian who adds an actor (``lsssdc keys add-signer --by``)
ENV_CUSTODIAN_SECRET = "LSSSDC_CUSTODIAN_SECRET"
#: what an actor may sign: prepare and deliver; approve and reject; re-identify and export keys
ROLES = ("custodian", "preparer", "reviewer")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,99}")


class SigningKeys:
    """The signing keys of a :class:`~lsssdc.identity.keystore.KeyStore`, which inherits these
    methods: they read the store's document (``_doc``), change it through the store's ``_copy``
    and ``_commit``, and keep the keys opened in this process in ``_unlocked``."""

    path: Path
    _doc: dict[str, Any]
    _unlocked: dict[str, Ed25519PrivateKey]

    if TYPE_CHECKING:  # given by the KeyStore

        @property
        def store_id(self) -> str: ...

        def _copy(self) -> dict[str, Any]: ...

        def _commit(self, doc: dict[str, Any]) -> None: ...

    # -- signing keys --

    def signers(self) -> list[str]:
        return sorted(self._doc["signers"])

    def add_signer(
        self,
        name: str,
        secret: str,
        roles: Iterable[str] = ("preparer",),
        *,
        by: str | None = None,
        kdf: KdfParams | None = None,
    ) -> Ed25519PublicKey:
        """Generate an Ed25519 signing key for a named actor in the given roles; returns its public key.

        The private key is wrapped under a key derived from the actor's own ``secret``, not under
        the store's master key: whoever opens the store with its passphrase can verify every
        actor but sign as none of them. The roles are bound into the wrapping, so editing them
        in the file makes the key unusable. Once the store has a custodian, a new actor is added
        only ``by`` a custodian whose key is unlocked here (their own secret), so the passphrase
        alone cannot make a reviewer.
        """
        self._check_name(name)
        wanted = self._check_roles(roles)
        custodians = [n for n, e in self._doc["signers"].items() if "custodian" in (e.get("roles") or [])]
        if (custodians or by is not None) and (
            by is None or by not in custodians or by not in self._unlocked
        ):
            raise KeyStoreError(
                Problem(
                    "custodian_needed",
                    "a new actor is added by a key custodian, with that custodian's own secret",
                    file=str(self.path),
                    hint="give --by CUSTODIAN (secret from LSSSDC_CUSTODIAN_SECRET or a prompt)",
                )
            )
        if name in self._doc["signers"]:
            raise KeyStoreError(
                Problem("signer_exists", f"actor '{name}' already has a signing key", file=str(self.path))
            )
        if len(unicodedata.normalize("NFC", secret or "")) < MIN_PASSPHRASE:
            raise KeyStoreError(
                Problem("weak_secret", f"an actor's secret must have at least {MIN_PASSPHRASE} characters")
            )
        params = kdf or dataclasses.replace(
            KdfParams.from_dict(self._doc["kdf"], self.path), salt=os.urandom(16)
        )
        private = Ed25519PrivateKey.generate()
        public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        # the custodian vouches for the actor's key and roles with a signature the passphrase
        # cannot make; the first custodian vouches for itself (see lsssdc.identity.actors)
        endorser = self._unlocked[by] if by is not None else private if "custodian" in wanted else None
        endorsement = (
            {
                "by": by or name,
                "signature": actors.endorse(endorser, self.store_id, name, public.hex(), wanted, by or name),
            }
            if endorser is not None
            else None
        )
        nonce = os.urandom(_NONCE)
        ct = AESGCM(params.derive(secret)).encrypt(
            nonce, private.private_bytes_raw(), self._actor_aad(name, wanted)
        )
        doc = self._copy()
        doc["signers"][name] = {
            "added_by": by,
            "created": _now(),
            "public_key": public.hex(),
            "roles": wanted,
            "wrap": "actor-secret",
            "kdf": params.to_dict(),
            "nonce": _b64(nonce),
            "ciphertext": _b64(ct),
        }
        if endorsement is not None:
            doc["signers"][name]["endorsement"] = endorsement
        self._commit(doc)
        self._unlocked[name] = private
        return private.public_key()

    def endorse_unendorsed(self, by: str) -> list[str]:
        """The custodian ``by`` (unlocked with their own secret) vouches for every actor that has no
        endorsement yet, e.g. actors made before the store had a custodian; returns their names."""
        key = self._unlocked.get(by)
        if key is None or "custodian" not in self.roles(by):
            raise KeyStoreError(
                Problem(
                    "custodian_needed",
                    "actors are endorsed by a key custodian, with that custodian's own secret",
                    file=str(self.path),
                )
            )
        doc = self._copy()
        done = []
        for name, entry in sorted(doc["signers"].items()):
            if entry.get("endorsement"):
                continue
            signer_by = name if name == by else by
            roles = list(entry.get("roles") or [])
            sig = actors.endorse(key, self.store_id, name, str(entry.get("public_key")), roles, signer_by)
            entry["endorsement"] = {"by": signer_by, "signature": sig}
            done.append(name)
        if done:
            self._commit(doc)
        return done

    def actor_records(self) -> dict[str, dict[str, Any]]:
        """Each actor's public key, roles and custodian endorsement (no key material)."""
        return {
            name: {
                "public_key": entry.get("public_key"),
                "roles": list(entry.get("roles") or []),
                "endorsement": entry.get("endorsement"),
            }
            for name, entry in self._doc["signers"].items()
        }

    def _actor_aad(self, name: str, roles: list[str]) -> bytes:
        return _canonical({"store_id": self._doc["store_id"], "kind": "signer", "name": name, "roles": roles})

    def _check_roles(self, roles: Iterable[str]) -> list[str]:
        wanted = sorted(set(roles))
        unknown = [r for r in wanted if r not in ROLES]
        if not wanted or unknown:
            raise KeyStoreError(
                Problem(
                    "bad_role",
                    f"roles are {', '.join(ROLES)}" + (f"; not {', '.join(unknown)}" if unknown else ""),
                )
            )
        return wanted

    def roles(self, name: str) -> list[str]:
        """The roles the actor was given (bound into the wrapping of their key)."""
        return list(self._signer(name).get("roles") or [])

    def unlock(self, name: str, secret: str) -> None:
        """Open an actor's signing key with that actor's own secret, for this process only."""
        entry = self._signer(name)
        if entry.get("wrap") != "actor-secret":
            raise KeyStoreError(
                Problem(
                    "legacy_signer",
                    f"actor '{name}' has no secret of their own (made before per-actor secrets)",
                    file=str(self.path),
                    hint="add the actor again under a new name with: lsssdc keys add-signer",
                )
            )
        params = KdfParams.from_dict(entry.get("kdf"), self.path)
        try:
            raw = AESGCM(params.derive(secret)).decrypt(
                _decode_b64(entry.get("nonce"), self.path, "signer nonce"),
                _decode_b64(entry.get("ciphertext"), self.path, "signer"),
                self._actor_aad(name, list(entry.get("roles") or [])),
            )
        except InvalidTag:
            raise KeyStoreError(
                Problem(
                    "wrong_actor_secret",
                    f"the secret does not open the signing key of '{name}' (or its roles were changed)",
                    file=str(self.path),
                )
            ) from None
        private = Ed25519PrivateKey.from_private_bytes(raw)
        if private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex() != entry["public_key"]:
            raise _damaged(self.path, f"the signing key of '{name}' does not match its public key")
        self._unlocked[name] = private

    def get_signing_key(self, name: str, role: str | None = None) -> Ed25519PrivateKey:
        """The actor's Ed25519 private key, once unlocked with their secret, if they hold ``role``."""
        entry = self._signer(name)
        if role is not None and role not in (entry.get("roles") or []):
            raise KeyStoreError(
                Problem(
                    "wrong_role",
                    f"actor '{name}' does not have the role '{role}' (roles: {', '.join(entry.get('roles') or []) or 'none'})",
                    file=str(self.path),
                )
            )
        private = self._unlocked.get(name)
        if private is None:
            raise KeyStoreError(
                Problem(
                    "actor_locked",
                    f"the signing key of '{name}' needs that actor's own secret",
                    hint=f"set {ENV_ACTOR_SECRET} or answer the prompt",
                )
            )
        return private

    def public_key(self, name: str) -> Ed25519PublicKey:
        entry = self._signer(name)
        try:
            return Ed25519PublicKey.from_public_bytes(bytes.fromhex(entry["public_key"]))
        except (ValueError, KeyError, TypeError):
            raise _damaged(self.path, f"the public key of '{name}'") from None

    def public_keys(self) -> dict[str, Ed25519PublicKey]:
        """Every actor's public key, e.g. for ``Ledger.open(..., actor_keys=store.public_keys())``."""
        return {name: self.public_key(name) for name in self.signers()}

    def _check_name(self, name: str) -> None:
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise KeyStoreError(
                Problem("bad_actor_name", "an actor name is 1-100 letters, digits, '.', '_', '@' or '-'")
            )

    def _signer(self, name: str) -> dict[str, Any]:
        self._check_name(name)
        entry = self._doc["signers"].get(name)
        if entry is None:
            raise KeyStoreError(
                Problem(
                    "missing_signing_key",
                    f"actor '{name}' has no signing key in this key store",
                    file=str(self.path),
                    hint=f"create one with: lsssdc keys add-signer --name {name}",
                )
            )
        return entry
