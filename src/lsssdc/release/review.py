"""The review queue: candidates waiting for a decision, read from the ledger so that every
reviewer (on a shared PostgreSQL ledger) sees the same queue. Only entries signed by their
actor's key from the key store count, as for every release decision."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from lsssdc.ledger.chain import Ledger
from lsssdc.release.decisions import trusted


@dataclass
class QueueItem:
    """One prepared candidate and where its review stands."""

    order_id: str
    project_id: str
    content_hash: str
    verdict: str
    prepared_by: str
    prepared_at: str
    prepare_entry: int
    reviewers_required: int
    approved_by: list[str] = field(default_factory=list)
    rejected_by: list[str] = field(default_factory=list)
    delivered: int = 0

    @property
    def status(self) -> str:
        if self.verdict != "releasable":
            return "refused by the gate"
        if self.rejected_by:
            return "rejected"
        if self.delivered:
            return "delivered"
        if len(self.approved_by) >= self.reviewers_required:
            return "approved, not delivered"
        return "waiting for review"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status}


def queue(ledger: Ledger, keys: Mapping[str, Ed25519PublicKey]) -> list[QueueItem]:
    """Every prepared candidate on the ledger with its decisions, oldest first."""
    items: dict[str, QueueItem] = {}
    for e in ledger.entries():
        if not trusted(e, keys):
            continue
        p = e.payload
        h = p.get("content_hash")
        if not isinstance(h, str):
            continue
        if e.kind in ("prepare", "refuse") and h not in items:
            items[h] = QueueItem(
                order_id=str(p.get("order_id")),
                project_id=str(p.get("project_id")),
                content_hash=h,
                verdict=str(p.get("verdict")),
                prepared_by=e.actor,
                prepared_at=e.time,
                prepare_entry=e.seq,
                reviewers_required=int(p.get("reviewers_required") or 1),
            )
        item = items.get(h)
        if item is None:
            continue
        if e.kind == "approve" and e.actor != item.prepared_by and e.actor not in item.approved_by:
            item.approved_by.append(e.actor)
        elif e.kind == "reject" and e.actor not in item.rejected_by:
            item.rejected_by.append(e.actor)
        elif e.kind == "deliver":
            item.delivered += 1
    return list(items.values())
