"""The tamper-evident audit ledger of every prepare, decision, delivery and key event."""

from lsssdc.audit.ledger import KINDS, Checkpoint, Entry, Ledger, Receipt, VerifyReport
from lsssdc.audit.person_index import PersonIndex
from lsssdc.audit.person_index import build as build_person_index

__all__ = [
    "KINDS",
    "Checkpoint",
    "Entry",
    "Ledger",
    "PersonIndex",
    "Receipt",
    "VerifyReport",
    "build_person_index",
]
