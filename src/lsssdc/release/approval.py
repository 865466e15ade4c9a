"""Approving or rejecting a candidate: the reviewer signs its content hash.

Nothing but a valid approval makes a candidate deliverable: delivery checks the signature
against the reviewer's public key from the key store (not the key written in the approval
file), that the content hash signed is the hash of the bytes on disk now, and that the
candidate was neither refused by the gate nor rejected by a reviewer.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from lsssdc.errors import DisclosureRefused, InputDataError, Problem
from lsssdc.release.candidate import APPROVAL, REJECTION, Candidate, canonical, write_json

DATA = "data.parquet"
REPORT = "report.json"
SIGNED_FIELDS = ("candidate", "content_hash", "order_id", "project_id", "reviewer", "decision", "time")


def _raw(public: Ed25519PublicKey) -> str:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def _now(clock: dt.datetime | None) -> str:
    return (clock or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _decision(
    candidate: Candidate, reviewer: str, decision: str, clock: dt.datetime | None
) -> dict[str, Any]:
    return {
        "candidate": candidate.path.name,
        "content_hash": candidate.content_hash,
        "order_id": candidate.order_id,
        "project_id": candidate.project_id,
        "reviewer": reviewer,
        "decision": decision,
        "time": _now(clock),
    }


def gate_said_yes(candidate: Candidate) -> bool:
    """The gate's verdict, from the manifest and the sealed report both (a forged manifest alone
    does not make a refused candidate approvable), and the data it would deliver is there."""
    files = candidate.manifest.get("files", {})
    has_content = (
        any(name.startswith("tables/") for name in files)
        if candidate.manifest.get("kind") == "tables"
        else DATA in files
    )
    if candidate.verdict != "releasable" or not has_content:
        return False
    try:
        report = json.loads((candidate.path / REPORT).read_text(encoding="utf-8"))
        return report["verdict"]["decision"] == "releasable"
    except (OSError, ValueError, KeyError, TypeError):
        return False


def check_intact(candidate: Candidate) -> None:
    """Refuse when any content byte differs from the manifest."""
    now, changed = candidate.recompute()
    if now != candidate.content_hash:
        raise DisclosureRefused(
            Problem(
                "candidate_changed",
                "the candidate changed after it was prepared: " + ", ".join(changed[:10]),
                file=str(candidate.path),
                hint="prepare it again; a reviewer decides on exactly these bytes",
            )
        )


def approve(
    candidate: Candidate, reviewer: str, key: Ed25519PrivateKey, clock: dt.datetime | None = None
) -> dict:
    """Sign the candidate's content hash; only a candidate that passed the gate can be approved."""
    if (candidate.path / REJECTION).exists():
        raise DisclosureRefused(
            Problem("rejected", "the candidate was rejected; prepare a new one", file=str(candidate.path))
        )
    check_intact(candidate)
    if not gate_said_yes(candidate):
        raise DisclosureRefused(
            Problem(
                "refused",
                "the candidate did not meet its policy and cannot be approved",
                file=str(candidate.path),
                hint="see the reasons in report.html",
            )
        )
    body = _decision(candidate, reviewer, "approve", clock)
    signature = key.sign(canonical(body)).hex()
    record = {**body, "public_key": _raw(key.public_key()), "signature": signature}
    write_json(candidate.path / APPROVAL, record)
    return record


def reject(
    candidate: Candidate, reviewer: str, reason: str, key: Ed25519PrivateKey, clock: dt.datetime | None = None
) -> dict:
    """Record a reviewer's rejection (signed); a rejected candidate can never be delivered."""
    body = {**_decision(candidate, reviewer, "reject", clock), "reason": reason}
    signature = key.sign(canonical(body)).hex()
    record = {**body, "public_key": _raw(key.public_key()), "signature": signature}
    write_json(candidate.path / REJECTION, record)
    (candidate.path / APPROVAL).unlink(missing_ok=True)
    return record


def verify_approval(candidate: Candidate, reviewer_keys: dict[str, Ed25519PublicKey]) -> dict:
    """The approval record, after checking everything that makes a candidate deliverable."""
    path = candidate.path
    if (path / REJECTION).exists():
        raise DisclosureRefused(
            Problem("rejected", "the candidate was rejected by a reviewer", file=str(path))
        )
    if candidate.verdict != "releasable":
        raise DisclosureRefused(Problem("refused", "the candidate did not meet its policy", file=str(path)))
    if not (path / APPROVAL).exists():
        raise DisclosureRefused(
            Problem(
                "not_approved",
                "the candidate has not been approved",
                file=str(path),
                hint="a reviewer runs: lsssdc approve CANDIDATE --reviewer NAME",
            )
        )
    try:
        record = json.loads((path / APPROVAL).read_text(encoding="utf-8"))
        body = {k: record[k] for k in SIGNED_FIELDS}
        signature = bytes.fromhex(record["signature"])
    except (ValueError, KeyError, TypeError):
        raise InputDataError(
            Problem("bad_approval", "approval.json is damaged", file=str(path / APPROVAL))
        ) from None
    if body["decision"] != "approve":
        raise DisclosureRefused(
            Problem("not_approved", "the decision recorded is not an approval", file=str(path))
        )
    public = reviewer_keys.get(body["reviewer"])
    if public is None:
        raise DisclosureRefused(
            Problem(
                "unknown_reviewer",
                "the approving reviewer has no key in the key store",
                file=str(path / APPROVAL),
            )
        )
    try:
        public.verify(signature, canonical(body))
    except InvalidSignature:
        raise DisclosureRefused(
            Problem("bad_signature", "the approval's signature is not valid", file=str(path / APPROVAL))
        ) from None
    if body["content_hash"] != candidate.content_hash:
        raise DisclosureRefused(
            Problem(
                "candidate_changed", "the approval is for other content than this candidate", file=str(path)
            )
        )
    check_intact(candidate)
    if not gate_said_yes(candidate):
        raise DisclosureRefused(Problem("refused", "the candidate did not meet its policy", file=str(path)))
    return record
