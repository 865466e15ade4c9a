"""What the ledger says about one candidate: the source of truth for every release decision.

Files in a work area can be deleted, restored or rewritten by anyone who can write there, so no
decision is read from them. A candidate is known by its content hash; the ledger holds, signed
by their actors, the ``prepare`` entry that produced that hash (with the gate's verdict), each
``approve`` and ``reject`` of it and each ``deliver``. Only entries whose signature verifies with
the actor's key from the key store count: an entry someone wrote with a key of their own is
ignored, and an entry that was removed is caught by the ledger's own verification.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from lsssdc.errors import DisclosureRefused, LedgerIntegrityError, Problem
from lsssdc.ledger import kinds
from lsssdc.ledger.chain import Checkpoint, Entry, Ledger
from lsssdc.ledger.entries import public_bytes


@dataclass(frozen=True)
class History:
    """The trusted ledger entries about one content hash."""

    content_hash: str
    prepared: Entry | None = None
    refused: Entry | None = None
    approvals: list[Entry] = field(default_factory=list)
    rejections: list[Entry] = field(default_factory=list)
    deliveries: list[Entry] = field(default_factory=list)
    #: rejections of earlier candidates of the same order (shown to the next reviewer)
    order_rejections: list[Entry] = field(default_factory=list)
    #: data hash -> the rejection of a candidate that released exactly that data
    rejected_data: dict[str, Entry] = field(default_factory=dict)

    @property
    def preparer(self) -> str | None:
        return self.prepared.actor if self.prepared is not None else None

    @property
    def reviewers(self) -> list[str]:
        """Who approved, each once, never the preparer (four eyes)."""
        seen: list[str] = []
        for e in self.approvals:
            if e.actor != self.preparer and e.actor not in seen:
                seen.append(e.actor)
        return seen


def trusted(entry: Entry, keys: Mapping[str, Ed25519PublicKey]) -> bool:
    """True when the entry is signed by its actor's key from the key store and matches its hash."""
    key = keys.get(entry.actor)
    if key is None or public_bytes(key).hex() != entry.key:
        return False
    if hashlib.sha256(entry.body).hexdigest() != entry.hash:
        return False
    try:
        key.verify(bytes.fromhex(entry.signature), entry.body)
    except (InvalidSignature, ValueError):
        return False
    return True


#: the role an entry's actor must hold for the entry to count
ROLE_OF = {
    "prepare": "preparer",
    "refuse": "preparer",
    "deliver": "preparer",
    "approve": "reviewer",
    "reject": "reviewer",
}


def history(
    ledger: Ledger,
    keys: Mapping[str, Ed25519PublicKey],
    content_hash: str,
    order_id: str,
    roles: Mapping[str, list[str]] | None = None,
) -> History:
    """Every trusted entry about ``content_hash`` (and the rejections of its order). With
    ``roles`` (actor -> roles from the key store), an entry counts only when its actor holds
    the role its kind needs: a prepare by a preparer, an approval by a reviewer."""
    h = History(content_hash)
    prepared = refused = None
    data_of: dict[str, str] = {}
    rejected: list[Entry] = []
    for e in ledger.entries():
        p = e.payload
        if not trusted(e, keys):
            continue
        need = ROLE_OF.get(e.kind)
        if roles is not None and need is not None and need not in roles.get(e.actor, []):
            continue
        same = p.get("content_hash") == content_hash
        if e.kind == "prepare" and p.get("data_hash"):
            data_of.setdefault(str(p.get("content_hash")), str(p["data_hash"]))
        if e.kind == "reject":
            rejected.append(e)
        if e.kind == "prepare" and same and prepared is None:
            prepared = e
        elif e.kind == "refuse" and same and refused is None:
            refused = e
        elif e.kind == "approve" and same:
            h.approvals.append(e)
        elif e.kind == "reject" and same:
            h.rejections.append(e)
        elif e.kind == "deliver" and same:
            h.deliveries.append(e)
        if e.kind == "reject" and p.get("order_id") == order_id and not same:
            h.order_rejections.append(e)
    rejected_data = {data_of[c]: e for e in rejected if (c := str(e.payload.get("content_hash"))) in data_of}
    return History(
        content_hash,
        prepared,
        refused,
        h.approvals,
        h.rejections,
        h.deliveries,
        h.order_rejections,
        rejected_data,
    )


def check_ledger(ledger: Ledger, heads: Sequence[Checkpoint] = ()) -> None:
    """Refuse to decide on a ledger that fails its own verification (an entry removed or edited)
    or does not extend every head exported earlier (cut back, or a copy that forked)."""
    report = ledger.verify(heads)
    # an entry signed by a key that is not its actor's counts for nothing (see `trusted`); it is
    # reported by `lsssdc audit verify`, but lets nobody block every later decision by appending one
    blocking = [p for p in report.problems if p.code not in ("ledger_untrusted_key", "ledger_signature")]
    if blocking:
        first = blocking[0].render()
        raise LedgerIntegrityError(
            Problem(
                "ledger_tampered",
                f"the ledger does not verify ({first}); no decision is taken on it",
                hint="run lsssdc audit verify",
            )
        )


def require_prepared(h: History, where: str) -> Entry:
    """The releasable ``prepare`` entry for this content, or a refusal that says what is missing."""
    if h.prepared is None:
        if h.refused is not None:
            raise DisclosureRefused(
                Problem(
                    "refused",
                    "the gate refused this candidate; it cannot be approved or delivered",
                    file=where,
                )
            )
        raise DisclosureRefused(
            Problem(
                "not_prepared",
                "no signed prepare entry on this ledger has this candidate's content: it was changed after "
                "it was prepared, or prepared on another ledger",
                file=where,
                hint="prepare the order again on this ledger",
            )
        )
    if kinds.prepared(h.prepared).get("verdict") != "releasable":
        raise DisclosureRefused(Problem("refused", "the gate refused this candidate", file=where))
    return h.prepared


def require_not_rejected(h: History, where: str) -> None:
    if h.rejections:
        who = ", ".join(sorted({e.actor for e in h.rejections}))
        raise DisclosureRefused(
            Problem(
                "rejected",
                f"a reviewer ({who}) rejected this candidate's content; a rejection is final for it",
                file=where,
            )
        )
    data = (h.prepared.payload if h.prepared is not None else {}).get("data_hash")
    earlier = h.rejected_data.get(str(data)) if data else None
    if earlier is not None:
        raise DisclosureRefused(
            Problem(
                "rejected",
                f"a reviewer ({earlier.actor}) rejected a candidate with exactly this data (ledger entry "
                f"{earlier.seq}, order {kinds.rejected(earlier).get('order_id')}); a new order text does not undo it",
                file=where,
            )
        )
