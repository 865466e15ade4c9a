"""The release workflow: prepare a candidate, approve or reject it, deliver it, all on the ledger."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from lsssdc.audit import person_index as pindex
from lsssdc.errors import InputDataError, KeyStoreError, Problem
from lsssdc.release import approval, package
from lsssdc.release.candidate import APPROVAL, Candidate, load

PERSON_INDEX = "person_index.bin"

__all__ = ["Candidate", "approve", "deliver", "load", "reject"]


def approve(path: str | Path, reviewer: str, keystore: Any, ledger: Any) -> dict:
    """A reviewer signs the candidate's content hash; the decision goes on the ledger."""
    c = load(path)
    key = keystore.get_signing_key(reviewer)
    record = approval.approve(c, reviewer, key)
    try:
        ledger.append(
            "approve",
            reviewer,
            {
                "order_id": c.order_id,
                "project_id": c.project_id,
                "content_hash": c.content_hash,
                "signature": record["signature"],
            },
            signer=key,
        )
    except BaseException:
        # an approval that is not on the ledger must not make the candidate deliverable
        (c.path / APPROVAL).unlink(missing_ok=True)
        raise
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
    index = _person_index(c, keystore) if c.manifest.get("kind") != "tables" else None
    signer = keystore.get_signing_key(actor)
    files = package.build_package(c, target)
    try:
        payload = {
            "order_id": c.order_id,
            "project_id": c.project_id,
            "content_hash": c.content_hash,
            "approved_by": record["reviewer"],
            "approval_signature": record["signature"],
            "package": str(target.name),
            "files": files,
            "manifest_hash": package.manifest_hash(files),
            "persons": index.persons if index is not None else 0,
        }
        entry = ledger.append("deliver", actor, payload, signer=signer, persons=index)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return {"package": str(target), "files": files, "ledger_entry": entry.seq}


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
