"""The payload of each release entry kind, one type shared by the writer and every reader.

The ledger stores payloads as canonical JSON; these types say which keys each kind holds, so
that the type checker holds the code that writes an entry and the code that reads it to the
same names (a reader once asked for ``order`` and ``delivery`` where the writer wrote
``order_id`` and ``package``). Reading is a view, not a check: an old entry without a key
still reads as missing (``.get``), and verification trusts nothing here.
"""

from __future__ import annotations

from typing import Any, TypedDict, cast

from lsssdc.ledger.entries import Entry


class PreparePayload(TypedDict):
    """``prepare`` (releasable) and ``refuse`` (refused): what was prepared, from what."""

    order_id: str
    project_id: str
    diarienummer: str
    policy: str
    policy_hash: str
    order_hash: str
    inputs: list[dict[str, Any]]
    content_hash: str
    data_hash: str
    verdict: str
    reasons: list[str]
    risk: dict[str, Any] | None
    identifiers: list[str]
    reviewers_required: int
    columns: list[str]


class ApprovePayload(TypedDict):
    """``approve``: a reviewer's approval of exactly these bytes."""

    order_id: str
    project_id: str
    content_hash: str
    prepare_entry: int
    signature: str


class RejectPayload(TypedDict):
    """``reject``: a reviewer's rejection, with the reason (never a personnummer)."""

    order_id: str
    project_id: str
    content_hash: str
    reason: str


class DeliverPayload(TypedDict):
    """``deliver``: the package made, whose approval it rests on, and what it holds."""

    order_id: str
    project_id: str
    content_hash: str
    approved_by: str
    reviewers: list[str]
    approval_signature: str | None
    package: str
    files: dict[str, str]
    manifest_hash: str
    persons: int


def prepared(entry: Entry) -> PreparePayload:
    """The payload of a ``prepare`` or ``refuse`` entry."""
    return cast(PreparePayload, entry.payload)


def approved(entry: Entry) -> ApprovePayload:
    return cast(ApprovePayload, entry.payload)


def rejected(entry: Entry) -> RejectPayload:
    return cast(RejectPayload, entry.payload)


def delivered(entry: Entry) -> DeliverPayload:
    """The payload of a ``deliver`` entry."""
    return cast(DeliverPayload, entry.payload)
