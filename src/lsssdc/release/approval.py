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

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from lsssdc.errors import DisclosureRefused, Problem
from lsssdc.release.candidate import Candidate, canonical, write_json

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


def approval_record(
    candidate: Candidate, reviewer: str, key: Ed25519PrivateKey, clock: dt.datetime | None = None
) -> dict:
    """The reviewer's signed approval of the candidate's content hash (not yet recorded anywhere)."""
    body = _decision(candidate, reviewer, "approve", clock)
    return {**body, "public_key": _raw(key.public_key()), "signature": key.sign(canonical(body)).hex()}


def rejection_record(
    candidate: Candidate, reviewer: str, reason: str, key: Ed25519PrivateKey, clock: dt.datetime | None = None
) -> dict:
    """The reviewer's signed rejection, with its reason."""
    body = {**_decision(candidate, reviewer, "reject", clock), "reason": reason}
    return {**body, "public_key": _raw(key.public_key()), "signature": key.sign(canonical(body)).hex()}


def write_record(candidate: Candidate, name: str, record: dict) -> None:
    """A decision's copy in the work area, for people; the ledger entry is what counts."""
    write_json(candidate.path / name, record)
