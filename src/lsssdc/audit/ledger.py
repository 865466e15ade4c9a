"""The audit ledger: every prepare, decision, delivery and key event, chained, signed and in a tree.

Each entry is canonical JSON (RFC 8785) holding its sequence number, time, actor, kind, payload,
the previous entry's hash and the signing key; its hash is SHA-256 over those bytes and the
actor signs the same bytes with Ed25519. The bodies are also the leaves of an RFC 9162 Merkle
tree whose signed heads (checkpoints) can be exported: a checkpoint kept outside the database
detects a truncated or rewritten ledger even when every row was forged consistently.

The API is append-only; :meth:`Ledger.verify` trusts nothing in the file and names the first
entry that diverges. No personnummer is ever stored: payloads that look like they hold one are
refused, and "which deliveries held person X" is answered from keyed tags
(:mod:`lsssdc.audit.person_index`).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import math
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from lsssdc.audit import merkle
from lsssdc.audit import person_index as pindex
from lsssdc.audit.store import CheckpointRow, EntryRow, LedgerStore, PersonIndexRow, SQLiteStore
from lsssdc.errors import InputDataError, KeyStoreError, LedgerIntegrityError, Problem
from lsssdc.fileio import atomic_path

#: The kinds of entry the release workflow writes. Anything else is refused.
KINDS: frozenset[str] = frozenset(
    {
        "prepare",
        "refuse",
        "approve",
        "reject",
        "deliver",
        "key_export",
        "key_delete",
        "reidentify",
        "keys_rotate",
        "custodians",
    }
)
ENTRY_VERSION = 1
GENESIS = "0" * 64  # the "previous hash" of entry 1
_ENTRY_FIELDS = {"v", "seq", "time", "actor", "kind", "payload", "prev", "key"}

Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def format_time(t: dt.datetime) -> str:
    if t.tzinfo is None:
        raise InputDataError(Problem("ledger_clock", "the ledger clock must give timezone-aware times"))
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def public_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def _public_key(raw_hex: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(bytes.fromhex(raw_hex))


# --- no personnummer in a payload -----------------------------------------------------------

_HEX_RUN = re.compile(r"[0-9A-Fa-f]{32,}")  # hashes: digit runs inside them are chance
_PNR_STR = re.compile(r"(?<!\d)(?:\d{10}|\d{12}|\d{6}[-+]\d{4}|\d{8}[-+]\d{4})(?!\d)")


def _plausible_int(value: int) -> bool:
    """A 10- or 12-digit integer whose last ten digits pass the date and Luhn checks."""
    text = str(abs(value))
    if len(text) not in (10, 12):
        return False
    ten = text[-10:]
    month, day = int(ten[2:4]), int(ten[4:6])
    if not (1 <= month <= 12 and (1 <= day <= 31 or 61 <= day <= 91)):
        return False
    total = 0
    for i, ch in enumerate(ten[:9]):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d // 10 + d % 10
    return (10 - total % 10) % 10 == int(ten[9])


def find_personnummer(obj: Any, path: str = "") -> list[str]:
    """Paths (never values) of the places in ``obj`` that look like a personnummer.

    Strings: any run of 10 or 12 digits, or 6/8 digits, '-' or '+', 4 digits, outside hex
    hashes. Integers: 10 or 12 digits that pass the date and check-digit tests (so byte
    counts and seeds pass unless they happen to be valid personnummer).
    """
    found: list[str] = []
    if isinstance(obj, str):
        if _PNR_STR.search(_HEX_RUN.sub("x", obj)):
            found.append(path or "/")
    elif isinstance(obj, bool) or obj is None:
        pass
    elif isinstance(obj, int):
        if _plausible_int(obj):
            found.append(path or "/")
    elif isinstance(obj, float):
        if math.isfinite(obj) and obj.is_integer() and _plausible_int(int(obj)):
            found.append(path or "/")
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            sub = f"{path}/{k}" if not find_personnummer(str(k)) else f"{path}/<key>"
            if sub.endswith("<key>"):
                found.append(sub)
            found.extend(find_personnummer(v, sub))
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            found.extend(find_personnummer(v, f"{path}/{i}"))
    return found


def _jsonable(obj: Any, path: str = "") -> Any:
    """Plain JSON values (numpy scalars become Python numbers); anything else is refused."""
    if obj is None or isinstance(obj, bool | str):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        if not math.isfinite(obj):
            raise InputDataError(
                Problem("ledger_payload", f"payload field '{path or '/'}' is not a finite number")
            )
        return float(obj)
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise InputDataError(
                    Problem("ledger_payload", f"payload key under '{path or '/'}' is not a string")
                )
            out[k] = _jsonable(v, f"{path}/{k}")
        return out
    if isinstance(obj, list | tuple):
        return [_jsonable(v, f"{path}/{i}") for i, v in enumerate(obj)]
    item = getattr(obj, "item", None)  # numpy scalars
    if callable(item):
        return _jsonable(item(), path)
    raise InputDataError(
        Problem(
            "ledger_payload", f"payload field '{path or '/'}' holds a {type(obj).__name__}, not a JSON value"
        )
    )


def canonical(obj: Any) -> bytes:
    """RFC 8785 canonical JSON."""
    try:
        return rfc8785.dumps(obj)
    except rfc8785.CanonicalizationError as exc:
        raise InputDataError(Problem("ledger_payload", f"payload cannot be canonicalised ({exc})")) from None


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


# --- the ledger -----------------------------------------------------------------------------


def open_store(target: str | Path, *, create: bool = True, readonly: bool = False) -> LedgerStore:
    """The store a ledger target names: ``postgresql://...`` a PostgreSQL database, else a SQLite
    file (opened read-only with ``readonly``: verification never writes to what it checks)."""
    from lsssdc.audit import postgres

    if postgres.is_url(target):
        return postgres.PostgresStore(str(target), create=create and not readonly)
    return SQLiteStore(target, create=create and not readonly, readonly=readonly)


class Ledger:
    """An append-only, hash-chained, signed audit ledger.

    Example::

        store = KeyStore.open(key_store_path, passphrase)  # lsssdc.identity.keystore
        ledger = Ledger.open(
            "ledger.sqlite", signer=store.get_signing_key("reviewer-a"), actor_keys=store.public_keys()
        )
        entry = ledger.append("approve", "reviewer-a", {"candidate": "sha256:..."})
        ledger.checkpoint().write("checkpoint-0001.json")
        ledger.verify([Checkpoint.read("checkpoint-0001.json")]).raise_for_problems()
    """

    def __init__(
        self,
        store: LedgerStore,
        signer: Ed25519PrivateKey | None = None,
        actor_keys: Mapping[str, Ed25519PublicKey] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.store = store
        self.signer = signer
        self.actor_keys = dict(actor_keys) if actor_keys is not None else None
        self.clock: Clock = clock or utc_now
        self._keys: dict[str, Ed25519PublicKey] = {}

    @classmethod
    def open(
        cls,
        path: str | Path,
        signer: Ed25519PrivateKey | None = None,
        actor_keys: Mapping[str, Ed25519PublicKey] | None = None,
        *,
        clock: Clock | None = None,
        origin: str | None = None,
        create: bool = True,
        readonly: bool = False,
    ) -> Ledger:
        """Open the ledger at ``path`` (a SQLite file, or a ``postgresql://`` URL), creating it when
        missing (unless ``create=False``).

        ``signer`` signs entries (when :meth:`append` gets none) and checkpoints; ``actor_keys``
        are the trusted public keys: with them, an entry must be signed by its actor's key.
        ``origin`` names a new ledger in its checkpoints (default: a random identifier).
        """
        store = open_store(path, create=create, readonly=readonly)
        ledger = cls(store, signer=signer, actor_keys=actor_keys, clock=clock)
        # a new ledger is started by whoever opens it first with create: also a process that found
        # it just created by another (which may not have started it yet); never one with entries
        if store.created or (
            create and not readonly and store.get_meta("origin") is None and store.count() == 0
        ):
            name = origin or f"lsssdc-ledger/{uuid.uuid4().hex}"
            if not re.fullmatch(r"[\x21-\x7e][\x20-\x7e]{0,199}", name):
                raise InputDataError(
                    Problem("ledger_origin", "the origin must be printable ASCII on one line")
                )
            with store.write():
                # another process may have created the same new ledger at the same moment, and
                # started it (and appended) first: its record is never reset
                if store.get_meta("origin") is None and store.count() == 0:
                    store.set_meta("origin", name)
                    store.set_meta("size", "0")
                    store.set_meta("head", GENESIS)
                    store.set_meta("frontier", "")
        return ledger

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading --

    @property
    def origin(self) -> str:
        return self.store.get_meta("origin") or ""

    def __len__(self) -> int:
        return self.store.count()

    def entry(self, seq: int) -> Entry:
        row = self.store.get(seq)
        if row is None:
            raise InputDataError(Problem("ledger_no_entry", f"the ledger has no entry {seq}", rows=(seq,)))
        return Entry.from_row(row)

    def entries(self, kind: str | None = None) -> Iterator[Entry]:
        for row in self.store.scan(kind):
            yield Entry.from_row(row)

    def head(self) -> Entry | None:
        row = self.store.last()
        return None if row is None else Entry.from_row(row)

    def checkpoints(self) -> list[Checkpoint]:
        return [Checkpoint._from_row(r) for r in self.store.checkpoints()]

    def leaf_hashes(self) -> list[bytes]:
        return [merkle.leaf_hash(row.body.encode("utf-8")) for row in self.store.scan()]

    def root(self) -> bytes:
        return merkle.root(self.leaf_hashes())

    # -- writing --

    def _signer_for(self, actor: str, signer: Ed25519PrivateKey | None) -> Ed25519PrivateKey:
        key = signer or self.signer
        if key is None:
            raise KeyStoreError(
                Problem(
                    "ledger_no_key",
                    "a ledger entry must be signed: no signing key was given",
                    hint="pass signer=",
                )
            )
        if self.actor_keys is not None:
            trusted = self.actor_keys.get(actor)
            if trusted is None or public_bytes(trusted) != public_bytes(key.public_key()):
                raise KeyStoreError(
                    Problem(
                        "ledger_wrong_key", f"the signing key is not the registered key of actor '{actor}'"
                    )
                )
        return key

    def _check(self, kind: str, actor: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        if kind not in KINDS:
            raise InputDataError(
                Problem(
                    "ledger_kind",
                    f"unknown ledger entry kind '{kind}'",
                    hint="one of " + ", ".join(sorted(KINDS)),
                )
            )
        if not isinstance(actor, str) or not re.fullmatch(r"[^\x00-\x1f\x7f]{1,200}", actor):
            raise InputDataError(Problem("ledger_actor", "the actor must be a non-empty name on one line"))
        if not isinstance(payload, Mapping):
            raise InputDataError(Problem("ledger_payload", "the payload must be a mapping"))
        plain = _jsonable(payload)
        where = find_personnummer(actor, "actor") + find_personnummer(plain, "payload")
        if where:
            raise InputDataError(
                Problem(
                    "ledger_personnummer",
                    "refused: the entry looks like it holds a personnummer at " + ", ".join(where[:10]),
                    hint="the ledger never stores a personnummer; pass hashes, counts or a person index",
                )
            )
        return plain

    def _tripwire(self) -> tuple[int, str, merkle.CompactRange]:
        """The recorded head must be the stored head before anything is added after it."""
        size = int(self.store.get_meta("size") or "0")
        head = self.store.get_meta("head") or GENESIS
        last = self.store.last()
        frontier_hex = self.store.get_meta("frontier") or ""
        try:
            frontier = merkle.CompactRange.from_bytes(size, bytes.fromhex(frontier_hex))
        except (ValueError, merkle.ProofError):
            frontier = None
        if (
            frontier is None
            or (last is None and size != 0)
            or (last is not None and (last.seq != size or last.hash != head))
        ):
            raise LedgerIntegrityError(
                Problem(
                    "ledger_head",
                    "the ledger's stored head does not match its record; nothing was appended",
                    hint="run lsssdc audit verify",
                )
            )
        return size, head, frontier

    def _write_entry(
        self,
        kind: str,
        actor: str,
        payload: dict[str, Any],
        key: Ed25519PrivateKey,
        state: tuple[int, str, merkle.CompactRange],
        persons: pindex.PersonIndex | None,
    ) -> Entry:
        size, head, frontier = state
        seq = size + 1
        body_obj = {
            "v": ENTRY_VERSION,
            "seq": seq,
            "time": format_time(self.clock()),
            "actor": actor,
            "kind": kind,
            "payload": payload,
            "prev": head,
            "key": public_bytes(key.public_key()).hex(),
        }
        body = canonical(body_obj)
        digest = hashlib.sha256(body).hexdigest()
        signature = key.sign(body).hex()
        row = EntryRow(seq, body_obj["time"], actor, kind, digest, signature, body.decode("utf-8"))
        self.store.insert_entry(row)
        if persons is not None:
            self.store.insert_person_index(
                PersonIndexRow(seq, persons.key_id, persons.tag_bytes, persons.persons, persons.tags)
            )
        frontier.append(merkle.leaf_hash(body))
        self.store.set_meta("size", str(seq))
        self.store.set_meta("head", digest)
        self.store.set_meta("frontier", frontier.to_bytes().hex())
        return Entry.from_row(row)

    def append(
        self,
        kind: str,
        actor: str,
        payload: Mapping[str, Any],
        signer: Ed25519PrivateKey | None = None,
        *,
        persons: pindex.PersonIndex | None = None,
        checkpoint: bool = False,
    ) -> Entry:
        """Add one signed entry in one transaction and return it.

        ``persons`` (a :class:`~lsssdc.audit.person_index.PersonIndex`) stores the delivery's
        keyed person tags with the entry and its summary under ``payload["person_index"]``.
        ``checkpoint=True`` also stores a signed checkpoint of the new head (same transaction).
        """
        plain = self._check(kind, actor, payload)
        key = self._signer_for(actor, signer)
        if persons is not None:
            if "person_index" in plain:
                raise InputDataError(Problem("ledger_payload", "payload key 'person_index' is reserved"))
            plain["person_index"] = persons.summary()
        with self.store.write():
            entry = self._write_entry(kind, actor, plain, key, self._tripwire(), persons)
            if checkpoint:
                self._store_checkpoint(self.signer or key)
        return entry

    def extend(
        self,
        items: Iterable[tuple[str, str, Mapping[str, Any]]],
        signer: Ed25519PrivateKey | None = None,
    ) -> list[Entry]:
        """Append several (kind, actor, payload) entries in one transaction (all or none)."""
        prepared = [(k, a, self._check(k, a, p), self._signer_for(a, signer)) for k, a, p in items]
        out = []
        with self.store.write():
            state = self._tripwire()
            for kind, actor, plain, key in prepared:
                entry = self._write_entry(kind, actor, plain, key, state, None)
                state = (entry.seq, entry.hash, state[2])
                out.append(entry)
        return out

    def _store_checkpoint(self, key: Ed25519PrivateKey) -> Checkpoint:
        size, _head, frontier = self._tripwire()
        for row in self.store.checkpoints()[::-1]:
            if row.size == size:
                return Checkpoint._from_row(row)
        root = frontier.root()
        origin = self.origin
        cp = Checkpoint(
            origin=origin,
            size=size,
            root=root,
            time=format_time(self.clock()),
            key=public_bytes(key.public_key()),
            signature=key.sign(checkpoint_note(origin, size, root)),
        )
        self.store.insert_checkpoint(
            CheckpointRow(size, origin, root.hex(), cp.time, cp.key.hex(), cp.signature.hex())
        )
        return cp

    def checkpoint(self, signer: Ed25519PrivateKey | None = None) -> Checkpoint:
        """Sign the current head, store it, and return it (write it out with ``.write(path)``)."""
        key = signer or self.signer
        if key is None:
            raise KeyStoreError(
                Problem("ledger_no_key", "a checkpoint must be signed: no signing key was given")
            )
        with self.store.write():
            return self._store_checkpoint(key)

    def receipt(self, seq: int, checkpoint: Checkpoint | None = None) -> Receipt:
        """An inclusion proof of entry ``seq`` against ``checkpoint`` (default: the latest stored)."""
        cps = self.checkpoints()
        cp = checkpoint or (cps[-1] if cps else None)
        if cp is None or not 1 <= seq <= cp.size:
            raise InputDataError(
                Problem(
                    "ledger_no_checkpoint",
                    f"no checkpoint covers entry {seq}",
                    hint="run lsssdc audit checkpoint",
                )
            )
        leaves = self.leaf_hashes()[: cp.size]
        row = self.store.get(seq)
        if row is None:
            raise LedgerIntegrityError(Problem("ledger_missing", f"entry {seq} is missing", rows=(seq,)))
        proof = merkle.inclusion_proof(seq - 1, leaves)
        return Receipt(seq, row.hash, leaves[seq - 1], tuple(proof), cp)

    # -- which deliveries held a person --

    def deliveries_with(self, personnummer: str, index_key: bytes, reference_date: Any = None) -> list[Entry]:
        """The entries (deliveries) whose person index holds this person."""
        kid = pindex.key_id(index_key)
        tag = pindex.person_tag(personnummer, index_key, reference_date)
        found, seen_key, others = [], False, False
        for row in self.store.person_indexes():
            if row.key_id != kid:
                others = True
                continue
            seen_key = True
            if not pindex.contains(row.tags, tag):
                continue
            entry = self.entry(row.seq)
            summary = entry.payload.get("person_index", {})
            if summary.get("sha256") != hashlib.sha256(row.tags).hexdigest():
                raise LedgerIntegrityError(
                    Problem(
                        "ledger_person_index",
                        f"the person index of entry {row.seq} was changed",
                        rows=(row.seq,),
                    )
                )
            found.append(entry)
        if others and not seen_key:
            raise KeyStoreError(
                Problem(
                    "index_key",
                    "no delivery was indexed with this audit-index key",
                    hint="check the key store",
                )
            )
        return found

    # -- verification --

    def _trusted(self, actor: str) -> bytes | None:
        if self.actor_keys is None:
            return None
        key = self.actor_keys.get(actor)
        return None if key is None else public_bytes(key)

    def _checkpoint_keys(self, extra: Iterable[Ed25519PublicKey]) -> set[bytes] | None:
        keys = {public_bytes(k) for k in extra}
        if self.actor_keys:
            keys |= {public_bytes(k) for k in self.actor_keys.values()}
        if self.signer is not None:
            keys.add(public_bytes(self.signer.public_key()))
        return keys or None

    def _verify_signature(self, key_hex: str, signature_hex: str, body: bytes) -> bool:
        try:
            key = self._keys.get(key_hex)
            if key is None:
                key = self._keys[key_hex] = _public_key(key_hex)
            key.verify(bytes.fromhex(signature_hex), body)
        except (InvalidSignature, ValueError):
            return False
        return True

    def verify(
        self,
        checkpoints: Sequence[Checkpoint] = (),
        *,
        checkpoint_keys: Iterable[Ed25519PublicKey] = (),
    ) -> VerifyReport:
        """Re-check everything: hashes, chain, signatures, tree, stored and given checkpoints.

        Trusts nothing in the file. ``checkpoints`` are heads exported earlier; each must be
        consistent with the current tree. Keys are trusted when they are in ``actor_keys``,
        ``checkpoint_keys`` or are the ledger's signer; with none of them, signatures are
        only checked against the keys the file itself names (``trusted_keys`` is False).
        Everything is read in one snapshot, so appends by others meanwhile are not seen as damage.
        """
        with self.store.snapshot():
            return self._verify(checkpoints, checkpoint_keys)

    def _verify(
        self, checkpoints: Sequence[Checkpoint], checkpoint_keys: Iterable[Ed25519PublicKey]
    ) -> VerifyReport:
        problems: list[Problem] = []

        def flag(seq: int | None, code: str, message: str, hint: str | None = None) -> None:
            problems.append(Problem(code, message, rows=(seq,) if seq else (), hint=hint))

        stored = {c.size: Checkpoint._from_row(c) for c in self.store.checkpoints()}
        leaves: list[bytes] = []
        frontier = merkle.CompactRange()
        prev, expected, last_hash = GENESIS, 1, GENESIS
        cp_trust = self._checkpoint_keys(checkpoint_keys)
        indexed: set[int] = set()
        if 0 in stored and stored[0].root != merkle.EMPTY_ROOT:
            flag(None, "ledger_checkpoint", "the stored checkpoint of the empty ledger has a wrong root")
        for row in self.store.scan():
            seq = row.seq
            if seq != expected:
                flag(
                    expected, "ledger_missing", f"entry {expected} is missing: the next stored entry is {seq}"
                )
                expected = seq
            body = row.body.encode("utf-8")
            if hashlib.sha256(body).hexdigest() != row.hash:
                flag(seq, "ledger_edited", f"entry {seq} does not match its recorded hash: it was edited")
            try:
                d = json.loads(body)
                if not isinstance(d, dict) or set(d) != _ENTRY_FIELDS or d["v"] != ENTRY_VERSION:
                    raise ValueError("fields")
            except ValueError:
                flag(seq, "ledger_unreadable", f"entry {seq} is not a readable ledger entry")
                d = None
            if d is not None:
                if d["seq"] != seq:
                    flag(
                        seq,
                        "ledger_reordered",
                        f"entry stored as {seq} says it is entry {d['seq']}: entries were moved or inserted",
                    )
                if d["prev"] != prev:
                    flag(seq, "ledger_chain", f"entry {seq} does not follow the hash of the entry before it")
                if (d["time"], d["actor"], d["kind"]) != (row.time, row.actor, row.kind):
                    flag(
                        seq, "ledger_edited", f"entry {seq}'s listed time, actor or kind differ from its body"
                    )
                if not self._verify_signature(str(d["key"]), row.signature, body):
                    flag(seq, "ledger_signature", f"entry {seq}'s signature is not valid")
                elif self.actor_keys is not None and self._trusted(str(d["actor"])) != bytes.fromhex(
                    d["key"]
                ):
                    flag(
                        seq,
                        "ledger_untrusted_key",
                        f"entry {seq} is not signed by its actor's registered key",
                    )
                if isinstance(d["payload"], dict) and "person_index" in d["payload"]:
                    indexed.add(seq)
            prev = last_hash = row.hash
            leaf = merkle.leaf_hash(body)
            leaves.append(leaf)
            frontier.append(leaf)
            cp = stored.get(len(leaves))
            if cp is not None and cp.root != frontier.root():
                flag(
                    seq,
                    "ledger_checkpoint",
                    f"entries up to {seq} differ from the checkpoint signed at that size",
                )
            expected = seq + 1
        n = len(leaves)
        root = frontier.root()
        origin = self.store.get_meta("origin")

        recorded = self.store.get_meta("size")
        if origin is None or recorded is None or not recorded.isdigit():
            flag(None, "ledger_meta", "the ledger's own record (origin, size, head) is missing or damaged")
        else:
            if int(recorded) > n:
                flag(
                    n + 1,
                    "ledger_truncated",
                    f"the ledger recorded {recorded} entries but only {n} are present",
                )
            elif int(recorded) < n:
                flag(
                    int(recorded) + 1,
                    "ledger_unrecorded",
                    f"entries after {recorded} were not added by the ledger",
                )
            elif self.store.get_meta("head") != last_hash:
                flag(n or None, "ledger_head", "the last entry is not the head the ledger recorded")
            if (self.store.get_meta("frontier") or "") != frontier.to_bytes().hex() and int(recorded) == n:
                flag(None, "ledger_meta", "the ledger's recorded tree does not match its entries")

        def check_checkpoint(cp: Checkpoint, label: str, given: bool) -> None:
            if not cp.signature_ok():
                flag(None, "checkpoint_signature", f"{label}: the signature is not valid")
                return
            if cp_trust is not None and cp.key not in cp_trust:
                flag(None, "checkpoint_untrusted_key", f"{label}: signed by a key that is not trusted")
            if origin is not None and cp.origin != origin:
                flag(None, "checkpoint_origin", f"{label}: it belongs to another ledger ({cp.origin})")
                return
            if cp.size > n:
                flag(n + 1, "ledger_truncated", f"{label} covers {cp.size} entries but only {n} are present")
                return
            if not given:
                return  # its root was compared with the tree at its size during the scan
            try:
                merkle.verify_consistency(
                    cp.size, n, cp.root, root, merkle.consistency_proof(cp.size, leaves)
                )
            except merkle.ProofError:
                flag(
                    None,
                    "ledger_rewritten",
                    f"{label}: the ledger is not an extension of it: entries 1-{cp.size} were changed",
                )

        for size, cp in stored.items():
            check_checkpoint(cp, f"stored checkpoint of size {size}", given=False)
        for cp in checkpoints:
            check_checkpoint(cp, f"checkpoint of size {cp.size} signed {cp.time}", given=True)

        self._verify_person_indexes(flag, indexed)
        return VerifyReport(
            origin=origin,
            size=n,
            root=root.hex(),
            stored_checkpoints=len(stored),
            given_checkpoints=len(checkpoints),
            trusted_keys=self.actor_keys is not None,
            problems=problems,
        )

    def _verify_person_indexes(self, flag: Callable[..., None], indexed: set[int]) -> None:
        """Each stored index matches the summary its entry signed; none is missing."""
        for row in self.store.person_indexes():
            indexed.discard(row.seq)
            source = self.store.get(row.seq)
            summary: Any = None
            if source is not None:
                try:
                    summary = json.loads(source.body)["payload"].get("person_index")
                except (ValueError, KeyError, AttributeError):
                    summary = None
            digest = hashlib.sha256(row.tags).hexdigest()
            if (
                not isinstance(summary, dict)
                or summary.get("sha256") != digest
                or summary.get("persons") != row.persons
                or summary.get("key_id") != row.key_id
                or len(row.tags) != row.persons * row.tag_bytes
            ):
                flag(
                    row.seq,
                    "ledger_person_index",
                    f"the person index stored with entry {row.seq} was changed",
                )
        for seq in sorted(indexed):
            flag(seq, "ledger_person_index", f"the person index of entry {seq} is missing")


__all__ = ["KINDS", "Checkpoint", "Entry", "Ledger", "Receipt", "VerifyReport", "find_personnummer"]


def copy_ledger(source: Ledger, target: str | Path) -> Ledger:
    """Copy every row of ``source`` into a new, empty ledger at ``target`` (SQLite or PostgreSQL),
    byte for byte: the same bodies, hashes, signatures, checkpoints and person indexes, so every
    proof made on the source holds on the copy. The source must verify first; the copy is
    verified after."""
    report = source.verify()
    if not report.ok:
        raise LedgerIntegrityError(
            Problem(
                "ledger_tampered",
                "the source ledger does not verify; nothing was copied",
                hint="run lsssdc audit verify",
            )
        )
    store = open_store(target, create=True)
    if store.count() or store.checkpoints():
        store.close()
        raise InputDataError(
            Problem("ledger_not_empty", "the target ledger is not empty; nothing was copied")
        )
    with store.write():
        for name in ("origin", "size", "head", "frontier"):
            store.set_meta(name, source.store.get_meta(name) or "")
        for row in source.store.scan():
            store.insert_entry(row)
        for cp in source.store.checkpoints():
            store.insert_checkpoint(cp)
        for pi in source.store.person_indexes():
            store.insert_person_index(pi)
    copy = Ledger(store, actor_keys=source.actor_keys)
    if not copy.verify().ok or copy.root() != source.root():
        raise LedgerIntegrityError(Problem("ledger_copy", "the copy does not verify as the source did"))
    return copy
