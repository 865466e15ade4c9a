"""The ledger's records: an entry (canonical body, hash, Ed25519 signature), a signed head
(checkpoint) of the Merkle tree, an inclusion receipt, and what verification found."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from lsssdc.errors import InputDataError, LedgerIntegrityError, Problem
from lsssdc.fileio import atomic_path
from lsssdc.ledger import merkle
from lsssdc.ledger.store import CheckpointRow, EntryRow

ENTRY_VERSION = 1
GENESIS = "0" * 64  # the "previous hash" of entry 1
ENTRY_FIELDS = {"v", "seq", "time", "actor", "kind", "payload", "prev", "key"}

Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def format_time(t: dt.datetime) -> str:
    if t.tzinfo is None:
        raise InputDataError(Problem("ledger_clock", "the ledger clock must give timezone-aware times"))
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def public_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def public_key_from_hex(raw_hex: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(bytes.fromhex(raw_hex))


# --- entries and checkpoints ------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One ledger entry as read back from storage."""

    seq: int
    time: str
    actor: str
    kind: str
    payload: dict[str, Any]
    prev: str
    key: str
    hash: str
    signature: str
    body: bytes = field(repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": self.time,
            "actor": self.actor,
            "kind": self.kind,
            "payload": self.payload,
            "prev": self.prev,
            "key": self.key,
            "hash": self.hash,
            "signature": self.signature,
        }

    @classmethod
    def from_row(cls, row: EntryRow) -> Entry:
        try:
            d = json.loads(row.body)
            return cls(
                seq=int(d["seq"]),
                time=str(d["time"]),
                actor=str(d["actor"]),
                kind=str(d["kind"]),
                payload=dict(d["payload"]),
                prev=str(d["prev"]),
                key=str(d["key"]),
                hash=row.hash,
                signature=row.signature,
                body=row.body.encode("utf-8"),
            )
        except (ValueError, KeyError, TypeError):
            raise LedgerIntegrityError(
                Problem(
                    "ledger_unreadable",
                    f"entry {row.seq} cannot be read",
                    rows=(row.seq,),
                    hint="run lsssdc audit verify",
                )
            ) from None


@dataclass(frozen=True)
class Checkpoint:
    """A signed tree head: the ledger ``origin`` had ``size`` entries with Merkle ``root``.

    The signed text is the checkpoint note of transparency logs: origin, size and the base64
    root on three lines.
    """

    origin: str
    size: int
    root: bytes
    time: str
    key: bytes
    signature: bytes

    def note(self) -> bytes:
        return checkpoint_note(self.origin, self.size, self.root)

    def signature_ok(self) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.key).verify(self.signature, self.note())
        except (InvalidSignature, ValueError):
            return False
        return True

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "lsssdc-ledger-checkpoint",
            "version": 1,
            "origin": self.origin,
            "size": self.size,
            "root": self.root.hex(),
            "time": self.time,
            "key": self.key.hex(),
            "signature": self.signature.hex(),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def write(self, path: str | Path) -> Path:
        """Export the checkpoint to a file outside the ledger (atomically)."""
        target = Path(path)
        with atomic_path(target) as tmp:
            tmp.write_text(self.to_json(), encoding="utf-8")
        return target

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str | None = None) -> Checkpoint:
        try:
            if d.get("type") != "lsssdc-ledger-checkpoint" or d.get("version") != 1:
                raise ValueError("type")
            return cls(
                origin=str(d["origin"]),
                size=int(d["size"]),
                root=bytes.fromhex(d["root"]),
                time=str(d["time"]),
                key=bytes.fromhex(d["key"]),
                signature=bytes.fromhex(d["signature"]),
            )
        except (KeyError, ValueError, TypeError):
            raise InputDataError(
                Problem("checkpoint_unreadable", "not an lsssdc ledger checkpoint", file=source)
            ) from None

    @classmethod
    def read(cls, path: str | Path) -> Checkpoint:
        p = Path(path)
        try:
            d = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError):
            raise InputDataError(
                Problem("checkpoint_unreadable", "cannot read the checkpoint file", file=str(p))
            ) from None
        if not isinstance(d, dict):
            raise InputDataError(
                Problem("checkpoint_unreadable", "not an lsssdc ledger checkpoint", file=str(p))
            )
        return cls.from_dict(d, source=str(p))

    @classmethod
    def _from_row(cls, row: CheckpointRow) -> Checkpoint:
        return cls(
            row.origin,
            row.size,
            bytes.fromhex(row.root),
            row.time,
            bytes.fromhex(row.key),
            bytes.fromhex(row.signature),
        )


def checkpoint_note(origin: str, size: int, root: bytes) -> bytes:
    return f"{origin}\n{size}\n{base64.b64encode(root).decode('ascii')}\n".encode()


@dataclass(frozen=True)
class Receipt:
    """Proof that an entry is in the ledger whose signed head is ``checkpoint``."""

    seq: int
    entry_hash: str
    leaf_hash: bytes
    proof: tuple[bytes, ...]
    checkpoint: Checkpoint

    def verify(self, body: bytes) -> None:
        """Raise :class:`LedgerIntegrityError` unless ``body`` is this entry of that ledger."""
        problems = []
        if not self.checkpoint.signature_ok():
            problems.append(Problem("receipt_signature", "the receipt's checkpoint signature is not valid"))
        leaf = merkle.leaf_hash(body)
        if leaf != self.leaf_hash or hashlib.sha256(body).hexdigest() != self.entry_hash:
            problems.append(
                Problem("receipt_entry", "the entry does not match the receipt", rows=(self.seq,))
            )
        try:
            merkle.verify_inclusion(
                self.seq - 1, self.checkpoint.size, leaf, self.proof, self.checkpoint.root
            )
        except merkle.ProofError as exc:
            problems.append(Problem("receipt_proof", f"the inclusion proof fails: {exc}", rows=(self.seq,)))
        if problems:
            raise LedgerIntegrityError(problems)

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "entry_hash": self.entry_hash,
            "leaf_hash": self.leaf_hash.hex(),
            "proof": [p.hex() for p in self.proof],
            "checkpoint": self.checkpoint.to_dict(),
        }


@dataclass
class VerifyReport:
    """What :meth:`Ledger.verify` found; ``to_dict()`` is the ``--json`` output."""

    origin: str | None
    size: int
    root: str
    stored_checkpoints: int
    given_checkpoints: int
    trusted_keys: bool
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_divergent(self) -> int | None:
        seqs = [p.rows[0] for p in self.problems if p.rows]
        return min(seqs) if seqs else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "origin": self.origin,
            "size": self.size,
            "root": self.root,
            "first_divergent": self.first_divergent,
            "stored_checkpoints": self.stored_checkpoints,
            "given_checkpoints": self.given_checkpoints,
            "trusted_keys": self.trusted_keys,
            "problems": [p.to_dict() for p in self.problems],
        }

    def raise_for_problems(self) -> None:
        if self.problems:
            raise LedgerIntegrityError(self.problems)
