"""The tamper-evident audit ledger of every prepare, decision, delivery and key event."""

from lsssdc.ledger.chain import KINDS, Checkpoint, Entry, Ledger, Receipt, VerifyReport
from lsssdc.ledger.person_index import PersonIndex
from lsssdc.ledger.person_index import build as build_person_index

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
