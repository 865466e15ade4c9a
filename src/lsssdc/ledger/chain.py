"""The audit ledger: every prepare, decision, delivery and key event, chained, signed and in a tree.

Each entry is canonical JSON (RFC 8785) holding its sequence number, time, actor, kind, payload,
the previous entry's hash and the signing key; its hash is SHA-256 over those bytes and the
actor signs the same bytes with Ed25519. The bodies are also the leaves of an RFC 9162 Merkle
tree whose signed heads (checkpoints) can be exported: a checkpoint kept outside the database
detects a truncated or rewritten ledger even when every row was forged consistently.

The API is append-only; :meth:`Ledger.verify` trusts nothing in the file and names the first
entry that diverges. No personnummer is ever stored: payloads that look like they hold one are
refused, and "which deliveries held person X" is answered from keyed tags
(:mod:`lsssdc.ledger.person_index`).
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from lsssdc.errors import InputDataError, KeyStoreError, LedgerIntegrityError, Problem
from lsssdc.ledger import merkle
from lsssdc.ledger import person_index as pindex
from lsssdc.ledger.entries import (
    ENTRY_FIELDS,
    ENTRY_VERSION,
    GENESIS,
    Checkpoint,
    Clock,
    Entry,
    Receipt,
    VerifyReport,
    checkpoint_note,
    format_time,
    public_bytes,
    public_key_from_hex,
    utc_now,
)
from lsssdc.ledger.payload import canonical, find_personnummer, jsonable
from lsssdc.ledger.store import CheckpointRow, EntryRow, LedgerStore, PersonIndexRow, SQLiteStore

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

#: Records one verification problem: (entry or None, code, message, hint=None).
_Flag = Callable[..., None]


class _Scan(NamedTuple):
    """What walking the stored entries rebuilt from their bodies."""

    leaves: list[bytes]
    frontier: merkle.CompactRange
    last_hash: str
    indexed: set[int]


class _Tree(NamedTuple):
    """The tree the entries rebuilt, and what a checkpoint is checked against."""

    origin: str | None
    size: int
    root: bytes
    leaves: list[bytes]
    trusted: set[bytes] | None


def _verify_checkpoint(cp: Checkpoint, label: str, given: bool, tree: _Tree, flag: _Flag) -> None:
    """A checkpoint must be validly signed (by a trusted key), of this ledger, no larger than it,
    and (when given from outside) the tree must be an extension of it: this detects a rewrite
    even when every row was forged consistently."""
    n = tree.size
    if not cp.signature_ok():
        flag(None, "checkpoint_signature", f"{label}: the signature is not valid")
        return
    if tree.trusted is not None and cp.key not in tree.trusted:
        flag(None, "checkpoint_untrusted_key", f"{label}: signed by a key that is not trusted")
    if tree.origin is not None and cp.origin != tree.origin:
        flag(None, "checkpoint_origin", f"{label}: it belongs to another ledger ({cp.origin})")
        return
    if cp.size > n:
        flag(n + 1, "ledger_truncated", f"{label} covers {cp.size} entries but only {n} are present")
        return
    if not given:
        return  # its root was compared with the tree at its size during the scan
    try:
        merkle.verify_consistency(
            cp.size, n, cp.root, tree.root, merkle.consistency_proof(cp.size, tree.leaves)
        )
    except merkle.ProofError:
        flag(
            None,
            "ledger_rewritten",
            f"{label}: the ledger is not an extension of it: entries 1-{cp.size} were changed",
        )


# --- the ledger -----------------------------------------------------------------------------


def open_store(target: str | Path, *, create: bool = True, readonly: bool = False) -> LedgerStore:
    """The store a ledger target names: ``postgresql://...`` a PostgreSQL database, else a SQLite
    file (opened read-only with ``readonly``: verification never writes to what it checks)."""
    from lsssdc.ledger import postgres

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
        plain = jsonable(payload)
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
        body_obj: dict[str, Any] = {
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

        ``persons`` (a :class:`~lsssdc.ledger.person_index.PersonIndex`) stores the delivery's
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
                key = self._keys[key_hex] = public_key_from_hex(key_hex)
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
        cp_trust = self._checkpoint_keys(checkpoint_keys)
        if 0 in stored and stored[0].root != merkle.EMPTY_ROOT:
            flag(None, "ledger_checkpoint", "the stored checkpoint of the empty ledger has a wrong root")
        scan = self._verify_entries(stored, flag)
        n = len(scan.leaves)
        root = scan.frontier.root()
        origin = self.store.get_meta("origin")
        self._verify_record(origin, n, scan, flag)

        tree = _Tree(origin, n, root, scan.leaves, cp_trust)
        for size, cp in stored.items():
            _verify_checkpoint(cp, f"stored checkpoint of size {size}", False, tree, flag)
        for cp in checkpoints:
            _verify_checkpoint(cp, f"checkpoint of size {cp.size} signed {cp.time}", True, tree, flag)

        self._verify_person_indexes(flag, scan.indexed)
        return VerifyReport(
            origin=origin,
            size=n,
            root=root.hex(),
            stored_checkpoints=len(stored),
            given_checkpoints=len(checkpoints),
            trusted_keys=self.actor_keys is not None,
            problems=problems,
        )

    def _verify_entries(self, stored: Mapping[int, Checkpoint], flag: _Flag) -> _Scan:
        """Walk the stored entries in order, rebuilding the chain and the tree from their bodies
        alone (nothing recorded is trusted), and compare the tree with each stored checkpoint at
        its size on the way."""
        leaves: list[bytes] = []
        frontier = merkle.CompactRange()
        prev, expected, last_hash = GENESIS, 1, GENESIS
        indexed: set[int] = set()
        for row in self.store.scan():
            seq = row.seq
            if seq != expected:
                flag(
                    expected, "ledger_missing", f"entry {expected} is missing: the next stored entry is {seq}"
                )
                expected = seq
            body = row.body.encode("utf-8")
            if self._verify_entry(row, body, prev, flag):
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
        return _Scan(leaves, frontier, last_hash, indexed)

    def _verify_entry(self, row: EntryRow, body: bytes, prev: str, flag: _Flag) -> bool:
        """Check one entry against its hash, the entry before it, its listed columns and its
        signature; True when its body says it carries a person index (which must then exist)."""
        seq = row.seq
        if hashlib.sha256(body).hexdigest() != row.hash:
            flag(seq, "ledger_edited", f"entry {seq} does not match its recorded hash: it was edited")
        try:
            d = json.loads(body)
            if not isinstance(d, dict) or set(d) != ENTRY_FIELDS or d["v"] != ENTRY_VERSION:
                raise ValueError("fields")
        except ValueError:
            flag(seq, "ledger_unreadable", f"entry {seq} is not a readable ledger entry")
            return False
        if d["seq"] != seq:
            flag(
                seq,
                "ledger_reordered",
                f"entry stored as {seq} says it is entry {d['seq']}: entries were moved or inserted",
            )
        if d["prev"] != prev:
            flag(seq, "ledger_chain", f"entry {seq} does not follow the hash of the entry before it")
        if (d["time"], d["actor"], d["kind"]) != (row.time, row.actor, row.kind):
            flag(seq, "ledger_edited", f"entry {seq}'s listed time, actor or kind differ from its body")
        if not self._verify_signature(str(d["key"]), row.signature, body):
            flag(seq, "ledger_signature", f"entry {seq}'s signature is not valid")
        elif self.actor_keys is not None and self._trusted(str(d["actor"])) != bytes.fromhex(d["key"]):
            flag(
                seq,
                "ledger_untrusted_key",
                f"entry {seq} is not signed by its actor's registered key",
            )
        return isinstance(d["payload"], dict) and "person_index" in d["payload"]

    def _verify_record(self, origin: str | None, n: int, scan: _Scan, flag: _Flag) -> None:
        """The ledger's own record (size, head, tree) must describe exactly the entries found:
        this is what detects a truncated tail or rows added outside the API."""
        recorded = self.store.get_meta("size")
        if origin is None or recorded is None or not recorded.isdigit():
            flag(None, "ledger_meta", "the ledger's own record (origin, size, head) is missing or damaged")
            return
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
        elif self.store.get_meta("head") != scan.last_hash:
            flag(n or None, "ledger_head", "the last entry is not the head the ledger recorded")
        if (self.store.get_meta("frontier") or "") != scan.frontier.to_bytes().hex() and int(recorded) == n:
            flag(None, "ledger_meta", "the ledger's recorded tree does not match its entries")

    def _verify_person_indexes(self, flag: _Flag, indexed: set[int]) -> None:
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
