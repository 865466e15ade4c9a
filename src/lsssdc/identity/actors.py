"""Who may act: actors anchored on the ledger, so that the key store's passphrase makes no reviewer.

Whoever holds the key store's passphrase can rewrite the store file: add an actor with a secret
of their own, or replace an actor's public key. Roles bound into an actor's wrapped key do not
stop that, because the forger wraps a key of their own. The trust therefore starts outside the
store:

* every actor's record carries an **endorsement**: the actor's name, public key, roles and key
  store, signed by the key custodian who added the actor (the first custodian signs their own);
* the ledger holds, once, a ``custodians`` entry that **pins** the key store's custodians (names
  and public keys). It is written when a ledger starts with a store that has a custodian, or by a
  custodian with ``lsssdc keys anchor``; only the first pin for a store counts, and the ledger's
  hash chain, Merkle tree and exported heads keep it from being changed or pushed back;
* a release decision counts an actor only when a chain of endorsements leads from a pinned
  custodian to that actor's key and roles. A forged actor has no custodian's signature, a
  replaced key no longer matches its endorsement, a whole other key store has another id.

A ledger with no pin (started before the store had a custodian) trusts the store as it is; the
review queue and reports say so, and a custodian anchors it with ``lsssdc keys anchor``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from lsssdc.errors import KeyStoreError, Problem
from lsssdc.ledger.entries import public_bytes

#: the ledger entry kind that pins a key store's custodians
PIN = "custodians"
CUSTODIAN = "custodian"


def statement(store_id: str, name: str, public_key: str, roles: list[str], by: str) -> bytes:
    """The bytes a custodian signs to endorse an actor (canonical JSON, ASCII)."""
    body = {
        "kind": "lsssdc-actor",
        "store_id": store_id,
        "name": name,
        "public_key": public_key,
        "roles": sorted(roles),
        "by": by,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def endorse(
    key: Ed25519PrivateKey, store_id: str, name: str, public_key: str, roles: list[str], by: str
) -> str:
    """The custodian's signature (hex) over the actor's statement."""
    return key.sign(statement(store_id, name, public_key, roles, by)).hex()


@dataclass(frozen=True)
class Actor:
    """An actor whose key and roles a chain of custodian endorsements vouches for."""

    name: str
    public_key: Ed25519PublicKey
    roles: tuple[str, ...]


@dataclass(frozen=True)
class Trust:
    """The actors a decision may count, and whether they are anchored on the ledger."""

    keys: dict[str, Ed25519PublicKey]
    roles: dict[str, list[str]]
    anchored: bool
    pin_entry: int | None = None

    def require(self, name: str, role: str, where: str | None = None) -> None:
        """Refuse an actor the ledger's anchor does not vouch for in ``role``."""
        if role in self.roles.get(name, []):
            return
        why = (
            "no endorsement from a key custodian pinned on this ledger vouches for that key and role"
            if self.anchored
            else "the key store gives the actor no such role"
        )
        raise KeyStoreError(
            Problem(
                "actor_not_anchored" if self.anchored else "wrong_role",
                f"actor '{name}' may not act as {role} here: {why}",
                file=where,
                hint="a key custodian adds the actor with: lsssdc keys add-signer --by CUSTODIAN",
            )
        )


def _public(hex_key: Any) -> Ed25519PublicKey | None:
    try:
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(str(hex_key)))
    except ValueError:
        return None


def _verifies(key: Ed25519PublicKey, signature: Any, message: bytes) -> bool:
    try:
        key.verify(bytes.fromhex(str(signature)), message)
    except (InvalidSignature, ValueError):
        return False
    return True


def endorsed(
    store_id: str, records: Mapping[str, Mapping[str, Any]], pins: Mapping[str, str]
) -> dict[str, Actor]:
    """The actors reachable from the pinned custodians by valid endorsements.

    ``records`` are the key store's actor records (public key, roles, endorsement); ``pins`` the
    pinned custodians' public keys. A pinned custodian must endorse itself with the pinned key;
    every other actor must be endorsed by an actor already trusted as a custodian.
    """
    trusted: dict[str, Actor] = {}
    changed = True
    while changed:
        changed = False
        for name, rec in sorted(records.items()):
            if name in trusted:
                continue
            endorsement = rec.get("endorsement") or {}
            by = str(endorsement.get("by", ""))
            roles = [str(r) for r in rec.get("roles") or []]
            pub_hex = str(rec.get("public_key", ""))
            pub = _public(pub_hex)
            if pub is None:
                continue
            if by == name and pins.get(name) == pub_hex and CUSTODIAN in roles:
                signer = pub
            elif by in trusted and CUSTODIAN in trusted[by].roles:
                signer = trusted[by].public_key
            else:
                continue
            if _verifies(signer, endorsement.get("signature"), statement(store_id, name, pub_hex, roles, by)):
                trusted[name] = Actor(name, pub, tuple(sorted(roles)))
                changed = True
    return trusted


def pin_of(ledger: Any, store_id: str) -> tuple[int, dict[str, str]] | None:
    """The first ``custodians`` entry for this key store on the ledger: (entry, name -> key)."""
    for e in ledger.entries():
        if e.kind == PIN and e.payload.get("store_id") == store_id:
            custodians = e.payload.get("custodians")
            if isinstance(custodians, dict):
                return e.seq, {str(k): str(v) for k, v in custodians.items()}
    return None


def pinned_stores(ledger: Any) -> list[str]:
    """Every key store id pinned on the ledger (a ledger is meant for one)."""
    return sorted({str(e.payload.get("store_id")) for e in ledger.entries() if e.kind == PIN})


def custodians(store: Any) -> dict[str, str]:
    """The store's custodians that endorse themselves or are endorsed by another of them."""
    records = store.actor_records()
    roots = {
        n: str(r.get("public_key"))
        for n, r in records.items()
        if CUSTODIAN in (r.get("roles") or []) and (r.get("endorsement") or {}).get("by") == n
    }
    found = endorsed(store.store_id, records, roots)
    return {n: public_bytes(a.public_key).hex() for n, a in found.items() if CUSTODIAN in a.roles}


def anchor(ledger: Any, store: Any, actor: str, key: Ed25519PrivateKey) -> int:
    """Pin the store's custodians on the ledger (one entry, signed by ``actor``)."""
    found = custodians(store)
    if not found:
        raise KeyStoreError(
            Problem(
                "no_custodian",
                "the key store has no key custodian to pin",
                file=str(store.path),
                hint="add one with: lsssdc keys add-signer --role custodian",
            )
        )
    entry = ledger.append(PIN, actor, {"store_id": store.store_id, "custodians": found}, signer=key)
    return int(entry.seq)


def trust(store: Any, ledger: Any, where: str | None = None) -> Trust:
    """The actors whose entries a decision on ``ledger`` may count.

    With a pin for this store on the ledger: only actors endorsed from the pinned custodians, with
    the endorsed roles. A ledger that pins another store refuses (a swapped key store). With no pin
    at all: the store's actors and roles as they are (a ledger that predates its custodian).
    """
    pin = pin_of(ledger, store.store_id)
    if pin is None:
        others = pinned_stores(ledger)
        if others:
            raise KeyStoreError(
                Problem(
                    "foreign_key_store",
                    "this ledger anchors the actors of another key store "
                    f"({', '.join(others)}), not of this one ({store.store_id})",
                    file=where,
                    hint="use the key store the ledger was started with",
                )
            )
        return Trust(
            keys=store.public_keys(),
            roles={n: store.roles(n) for n in store.signers()},
            anchored=False,
        )
    seq, pins = pin
    found = endorsed(store.store_id, store.actor_records(), pins)
    return Trust(
        keys={n: a.public_key for n, a in found.items()},
        roles={n: list(a.roles) for n, a in found.items()},
        anchored=True,
        pin_entry=seq,
    )


def anchor_new_ledger(ledger: Any, store: Any, actor: str, key: Ed25519PrivateKey) -> None:
    """A ledger that starts empty pins the store's custodians before its first entry, if it has any."""
    if len(ledger) == 0 and custodians(store):
        anchor(ledger, store, actor, key)
