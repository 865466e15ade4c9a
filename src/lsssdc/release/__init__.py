"""The release workflow: prepare a candidate, approve or reject it, deliver it, all on the ledger."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from lsssdc import faults
from lsssdc import policy as P
from lsssdc.errors import (
    DisclosureRefused,
    InputDataError,
    KeyStoreError,
    LsssdcError,
    Problem,
    has_personnummer_shape,
)
from lsssdc.identity import actors
from lsssdc.ledger import kinds
from lsssdc.ledger import person_index as pindex
from lsssdc.release import approval, decisions, heads, package
from lsssdc.release.candidate import HEAD, REJECTION, Candidate, approval_name, load

PERSON_INDEX = "person_index.bin"

__all__ = ["Candidate", "approve", "deliver", "load", "reject"]


def _where(c: Candidate) -> str:
    return str(c.path)


def _history(
    c: Candidate, keystore: Any, ledger: Any, where: Path | None = None, acting: tuple[str, str] | None = None
) -> decisions.History:
    """The ledger's trusted history of the candidate; ``acting`` (actor, role) must be vouched for
    by the ledger's anchored custodians (see lsssdc.identity.actors)."""
    decisions.check_ledger(ledger, heads.known(where, ledger.origin))
    t = actors.trust(keystore, ledger, _where(c))
    if acting is not None:
        t.require(*acting, where=_where(c))
    return decisions.history(ledger, t.keys, c.content_hash, c.order_id, t.roles)


def approve(
    path: str | Path, reviewer: str, keystore: Any, ledger: Any, checkpoints: str | Path | None = None
) -> dict:
    """A reviewer signs the candidate's content hash; the decision goes on the ledger first.

    Approvable only when the ledger holds a signed, releasable ``prepare`` entry for exactly
    these bytes, no rejection of them, and the reviewer is not the one who prepared them.
    """
    c = load(path)
    key = keystore.get_signing_key(reviewer, role="reviewer")
    approval.check_intact(c)
    where = heads.folder(checkpoints, c.path)
    h = _history(c, keystore, ledger, where, (reviewer, "reviewer"))
    prepared = decisions.require_prepared(h, _where(c))
    decisions.require_not_rejected(h, _where(c))
    if not approval.gate_said_yes(c):
        raise DisclosureRefused(
            Problem("refused", "the candidate did not meet its policy and cannot be approved", file=_where(c))
        )
    if reviewer == prepared.actor:
        raise DisclosureRefused(
            Problem(
                "own_candidate",
                f"'{reviewer}' prepared this candidate and cannot also approve it (four eyes)",
                file=_where(c),
                hint="another reviewer approves it",
            )
        )
    if reviewer in h.reviewers:
        raise DisclosureRefused(
            Problem("already_approved", f"'{reviewer}' has already approved this candidate", file=_where(c))
        )
    record = approval.approval_record(c, reviewer, key)
    faults.point("approve.checked")
    approve_payload: kinds.ApprovePayload = {
        "order_id": c.order_id,
        "project_id": c.project_id,
        "content_hash": c.content_hash,
        "prepare_entry": prepared.seq,
        "signature": record["signature"],
    }
    entry = ledger.append("approve", reviewer, dict(approve_payload), signer=key)
    faults.point("approve.entry")
    head = heads.export(ledger, key, where, entry.seq, "approve")
    # the file is a copy for people reading the work area; decisions are read from the ledger
    approval.write_record(c, approval_name(not h.reviewers, reviewer), record)
    faults.point("approve.done")
    # a rejection of an earlier candidate of the same order is shown to the reviewer
    earlier = [
        {"by": e.actor, "reason": str(kinds.rejected(e).get("reason", "")), "entry": e.seq}
        for e in h.order_rejections
    ]
    out = {**record, "earlier_rejections": earlier} if earlier else dict(record)
    return out | ({"exported_head": str(head)} if head else {})


def reject(
    path: str | Path,
    reviewer: str,
    reason: str,
    keystore: Any,
    ledger: Any,
    checkpoints: str | Path | None = None,
) -> dict:
    """A reviewer rejects the candidate with a reason; its content can never be delivered."""
    if has_personnummer_shape(reason):
        raise InputDataError(
            Problem(
                "identifier_in_text",
                "the reason holds something shaped like a personnummer; write it without identifiers",
            )
        )
    c = load(path)
    key = keystore.get_signing_key(reviewer, role="reviewer")
    approval.check_intact(c)  # a rejection is of exactly these bytes
    where = heads.folder(checkpoints, c.path)
    decisions.check_ledger(ledger, heads.known(where, ledger.origin))
    actors.trust(keystore, ledger, _where(c)).require(reviewer, "reviewer", _where(c))
    record = approval.rejection_record(c, reviewer, reason, key)
    reject_payload: kinds.RejectPayload = {
        "order_id": c.order_id,
        "project_id": c.project_id,
        "content_hash": c.content_hash,
        "reason": reason,
    }
    entry = ledger.append("reject", reviewer, dict(reject_payload), signer=key)
    faults.point("reject.entry")
    head = heads.export(ledger, key, where, entry.seq, "reject")
    approval.write_record(c, REJECTION, record)
    faults.point("reject.done")
    return dict(record) | ({"exported_head": str(head)} if head else {})


def deliverable(
    c: Candidate, keystore: Any, ledger: Any, where: Path | None = None, actor: str | None = None
) -> tuple[decisions.History, int]:
    """Everything that makes a candidate deliverable, re-derived from the ledger and the bytes.

    Returns the ledger's history of the content and the number of reviewers the policy needs.
    """
    approval.check_intact(c)
    h = _history(c, keystore, ledger, where, (actor, "preparer") if actor is not None else None)
    decisions.require_prepared(h, _where(c))
    decisions.require_not_rejected(h, _where(c))
    if not approval.gate_said_yes(c):
        raise DisclosureRefused(Problem("refused", "the candidate did not meet its policy", file=_where(c)))
    needed = max(
        int((h.prepared.payload if h.prepared else {}).get("reviewers_required") or 1), _reviewers(c)
    )
    if len(h.reviewers) < needed:
        own = [e.actor for e in h.approvals if e.actor == h.preparer]
        raise DisclosureRefused(
            Problem(
                "not_approved",
                f"the candidate needs {needed} approval(s) by reviewers other than its preparer; "
                f"the ledger holds {len(h.reviewers)}"
                + (f" (the preparer's own approval does not count: {own[0]})" if own else ""),
                file=_where(c),
                hint="a reviewer runs: lsssdc approve CANDIDATE --reviewer NAME",
            )
        )
    _require_no_delivery_since(c, ledger, h)
    return h, needed


def _require_no_delivery_since(c: Candidate, ledger: Any, h: decisions.History) -> None:
    """A microdata candidate was measured together with the project's deliveries before its
    prepare entry; one delivered since (from a candidate prepared at the same time) was not part
    of that measure, so this one must be prepared again."""
    if c.manifest.get("kind") == "tables" or h.prepared is None:
        return
    for e in ledger.entries("deliver"):
        p = e.payload
        if (
            e.seq > h.prepared.seq
            and p.get("project_id") == c.project_id
            and p.get("content_hash") != c.content_hash
            and p.get("persons")
        ):
            raise DisclosureRefused(
                Problem(
                    "history_changed",
                    f"project {c.project_id} got another delivery (ledger entry {e.seq}, order "
                    f"{p.get('order_id')}) after this candidate was prepared; it was not measured "
                    "together with it",
                    file=_where(c),
                    hint="prepare the order again; the new candidate is measured with every delivery",
                )
            )


def _reviewers(c: Candidate) -> int:
    """How many reviewers the candidate's own (sealed) policy asks for: the prepare entry's
    figure is the preparer's word, so the larger of the two counts."""
    path = c.path / "policy.yaml"
    if not path.is_file():
        return 1
    try:
        pol = P.load_policy(path)
    except LsssdcError:
        raise DisclosureRefused(
            Problem(
                "candidate_policy_unreadable", "the candidate's policy file does not load", file=str(path)
            )
        ) from None
    if c.manifest.get("policy_hash") not in (None, pol.hash):
        raise DisclosureRefused(
            Problem(
                "candidate_changed",
                "the candidate's policy file is not the policy it was prepared under",
                file=str(path),
            )
        )
    return pol.delivery.reviewers


def deliver(
    path: str | Path,
    to: str | Path,
    keystore: Any,
    ledger: Any,
    actor: str,
    checkpoints: str | Path | None = None,
) -> dict[str, Any]:
    """Write the package of an approved, unchanged candidate and record the delivery.

    Every condition is re-derived from the ledger and the bytes (never from decision files).
    The entry is written first, while the package is still a temporary folder; the package then
    appears in one rename with the ledger's signed head (``ledger-head.json``) inside, so there
    is never a package without its entry.
    """
    c = load(path)
    where = heads.folder(checkpoints, c.path)
    h, _needed = deliverable(c, keystore, ledger, where, actor)
    target = Path(to)
    index = _person_index(c, keystore) if c.manifest.get("kind") != "tables" else None
    signer = keystore.get_signing_key(actor, role="preparer")
    identifiers = (h.prepared.payload if h.prepared else {}).get("identifiers") or ["personnummer"]
    first = h.reviewers[0]
    recorded: dict[str, Any] = {}

    def record(tmp: Path, files: dict[str, str]) -> None:
        # entry first: the package becomes visible only after its entry is on the ledger, and it
        # carries the ledger's signed head as a receipt (outside MANIFEST.sha256, which the entry holds)
        payload: kinds.DeliverPayload = {
            "order_id": c.order_id,
            "project_id": c.project_id,
            "content_hash": c.content_hash,
            "approved_by": first,
            "reviewers": h.reviewers,
            "approval_signature": kinds.approved(next(e for e in h.approvals if e.actor == first)).get(
                "signature"
            ),
            "package": str(target.name),
            "files": files,
            "manifest_hash": package.manifest_hash(files),
            "persons": index.persons if index is not None else 0,
        }
        faults.point("deliver.built")
        recorded["entry"] = ledger.append("deliver", actor, dict(payload), signer=signer, persons=index)
        faults.point("deliver.entry")
        ledger.checkpoint(signer).write(tmp / HEAD)

    columns = (h.prepared.payload if h.prepared else {}).get("columns") or None
    files = package.build_package(c, target, identifiers=identifiers, before_publish=record, columns=columns)
    faults.point("deliver.done")
    entry = recorded["entry"]
    head = heads.export(ledger, signer, where, entry.seq, "deliver")
    out = {"package": str(target), "files": files, "ledger_entry": entry.seq}
    return out | ({"exported_head": str(head)} if head else {})


def _person_index(c: Candidate, keystore: Any) -> pindex.PersonIndex:
    """The candidate's person index, checked against its sealed summary and the key store's key.

    A candidate indexed under another audit-index key would make "which deliveries held this
    person" silently answer "none", so it is refused before anything is written.
    """
    listed = (c.manifest.get("files") or {}).get(PERSON_INDEX)
    meta_path = c.path / "metadata.json"
    try:
        tags = (c.path / PERSON_INDEX).read_bytes()
        meta = json.loads(meta_path.read_text(encoding="utf-8")).get("person_index") or {}
    except (OSError, ValueError, AttributeError):
        raise InputDataError(
            Problem(
                "bad_candidate", "the candidate's person index is missing or unreadable", file=str(c.path)
            )
        ) from None
    key_id = pindex.key_id(keystore.audit_index_key())
    if listed is not None and listed != hashlib.sha256(tags).hexdigest():
        # the bytes read now are not the sealed ones (swapped after the checks)
        raise DisclosureRefused(
            Problem("candidate_changed", "the person index changed after it was sealed", file=str(c.path))
        )
    if listed is None or meta.get("sha256") != hashlib.sha256(tags).hexdigest():
        raise InputDataError(
            Problem(
                "bad_candidate", "the candidate's person index does not match its metadata", file=str(c.path)
            )
        )
    if meta.get("key_id") != key_id:
        raise KeyStoreError(
            Problem(
                "index_key",
                "the candidate was indexed with another audit-index key than this key store's",
                file=str(c.path),
                hint="deliver with the key store the candidate was prepared with",
            )
        )
    return pindex.PersonIndex(tags=tags, persons=len(tags) // pindex.TAG_BYTES, key_id=key_id)
