"""The release workflow: prepare a candidate, approve or reject it, deliver it, all on the ledger."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from lsssdc.audit import person_index as pindex
from lsssdc.release import approval, package
from lsssdc.release.candidate import Candidate, load

__all__ = ["Candidate", "approve", "deliver", "load", "reject"]


def approve(path: str | Path, reviewer: str, keystore: Any, ledger: Any) -> dict:
    """A reviewer signs the candidate's content hash; the decision goes on the ledger."""
    c = load(path)
    record = approval.approve(c, reviewer, keystore.get_signing_key(reviewer))
    ledger.append(
        "approve",
        reviewer,
        {
            "order_id": c.order_id,
            "project_id": c.project_id,
            "content_hash": c.content_hash,
            "signature": record["signature"],
        },
        signer=keystore.get_signing_key(reviewer),
    )
    return record


def reject(path: str | Path, reviewer: str, reason: str, keystore: Any, ledger: Any) -> dict:
    """A reviewer rejects the candidate with a reason; it can never be delivered."""
    c = load(path)
    record = approval.reject(c, reviewer, reason, keystore.get_signing_key(reviewer))
    ledger.append(
        "reject",
        reviewer,
        {
            "order_id": c.order_id,
            "project_id": c.project_id,
            "content_hash": c.content_hash,
            "reason": reason,
        },
        signer=keystore.get_signing_key(reviewer),
    )
    return record


def deliver(path: str | Path, to: str | Path, keystore: Any, ledger: Any, actor: str) -> dict[str, Any]:
    """Write the package of an approved, unchanged candidate and record the delivery.

    The package appears in one rename; if the ledger entry cannot be written, the package is
    removed again, so there is never a package without its entry or an entry without a package.
    """
    c = load(path)
    record = approval.verify_approval(c, keystore.public_keys())
    target = Path(to)
    files = package.build_package(c, target)
    tags = (c.path / "person_index.bin").read_bytes()
    index = pindex.PersonIndex(
        tags=tags, persons=len(tags) // pindex.TAG_BYTES, key_id=pindex.key_id(keystore.audit_index_key())
    )
    payload = {
        "order_id": c.order_id,
        "project_id": c.project_id,
        "content_hash": c.content_hash,
        "approved_by": record["reviewer"],
        "approval_signature": record["signature"],
        "package": str(target.name),
        "files": files,
        "manifest_hash": package.manifest_hash(files),
        "persons": c.manifest.get("persons"),
    }
    try:
        entry = ledger.append(
            "deliver", actor, payload, signer=keystore.get_signing_key(actor), persons=index
        )
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return {"package": str(target), "files": files, "ledger_entry": entry.seq}
