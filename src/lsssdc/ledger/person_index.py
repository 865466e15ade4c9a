"""Which deliveries held person X, answered without storing any personnummer.

Per delivery the ledger keeps a sorted list of keyed tags, one per person: AES-256 under a
separate audit-index key over one 16-byte block (the normalised 12-digit personnummer and a
4-byte label), truncated to 8 bytes. AES over all persons is one bulk call (a per-value HMAC
is an order of magnitude slower, see SECURITY.md). Without the key the tags say nothing: the
personnummer space is small enough to enumerate, so an unkeyed hash would not do. With 8-byte
tags and 75,000 persons per delivery, a false match has a probability of about 4e-15 per
delivery asked. The key's fingerprint is stored so that asking with a wrong key is an error,
not a silent "no delivery".
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from lsssdc.errors import InputDataError, KeyStoreError, Problem
from lsssdc.identity import personnummer as pnr

TAG_BYTES = 8
KEY_BYTES = 32
_LABEL = b"AIX1"  # audit index, version 1: keeps these blocks apart from pseudonym blocks
_DTYPE = np.dtype(">u8")  # tags compare as big-endian unsigned integers, so sorting is bytewise


def key_id(index_key: bytes) -> str:
    """A short fingerprint of the audit-index key (it reveals nothing usable about the key)."""
    _check_key(index_key)
    return hmac.new(index_key, b"lsssdc audit-index key id", hashlib.sha256).hexdigest()[:16]


def _check_key(index_key: bytes) -> None:
    if not isinstance(index_key, bytes | bytearray) or len(index_key) != KEY_BYTES:
        raise KeyStoreError(
            Problem(
                "index_key",
                f"the audit-index key must be {KEY_BYTES} bytes",
                hint="take it from the key store",
            )
        )


def _normalise(values: Any, reference_date: Any = None) -> np.ndarray:
    """Unique normalised 12-digit personnummer as an (n x 12) byte matrix; fails on any invalid."""
    parsed = pnr.parse(values if isinstance(values, pd.Series) else pd.Series(values), reference_date)
    bad = ~parsed["valid"].to_numpy(dtype=bool)
    if bad.any():
        rows = tuple(int(i) + 1 for i in np.flatnonzero(bad)[:10])
        raise InputDataError(
            Problem(
                "index_personnummer",
                "the person index needs valid personnummer; some values are not",
                column="personnummer",
                rows=rows,
                row_count=int(bad.sum()),
                hint="normalise and validate the delivery's persons first",
            )
        )
    digits = parsed["personnummer"].astype("string[pyarrow]").to_numpy(dtype=object)
    packed = np.unique(np.asarray(digits, dtype="S12"))
    return packed.view(np.uint8).reshape(-1, 12)


def tags(values: Any, index_key: bytes, reference_date: Any = None) -> np.ndarray:
    """Sorted unique 8-byte tags (big-endian uint64) of the persons in ``values``."""
    _check_key(index_key)
    mat = _normalise(values, reference_date)
    n = mat.shape[0]
    if n == 0:
        return np.zeros(0, dtype=_DTYPE)
    blocks = np.empty((n, 16), dtype=np.uint8)
    blocks[:, :12] = mat
    blocks[:, 12:] = np.frombuffer(_LABEL, dtype=np.uint8)
    enc = Cipher(algorithms.AES(bytes(index_key)), modes.ECB()).encryptor()
    out = np.frombuffer(enc.update(blocks.tobytes()) + enc.finalize(), dtype=np.uint8).reshape(n, 16)
    result = np.unique(np.ascontiguousarray(out[:, :TAG_BYTES]).view(_DTYPE).ravel())
    return result.astype(_DTYPE)


@dataclass(frozen=True)
class PersonIndex:
    """The keyed tags of one delivery's persons, ready to be stored with its ledger entry."""

    tags: bytes
    persons: int
    key_id: str
    tag_bytes: int = TAG_BYTES

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.tags).hexdigest()

    def summary(self) -> dict[str, Any]:
        """What goes into the entry's payload: enough to check the stored blob, nothing more."""
        return {
            "persons": self.persons,
            "sha256": self.sha256,
            "key_id": self.key_id,
            "tag_bytes": self.tag_bytes,
        }

    def contains(self, tag: int) -> bool:
        return contains(self.tags, tag)


def build(values: Iterable[Any] | pd.Series, index_key: bytes, reference_date: Any = None) -> PersonIndex:
    """Index the persons of one delivery (duplicates count once).

    Example: ``build(delivery["personnummer"], keystore_audit_key)``
    """
    t = tags(values, index_key, reference_date)
    return PersonIndex(tags=t.tobytes(), persons=int(t.size), key_id=key_id(index_key))


def person_tag(personnummer: str, index_key: bytes, reference_date: Any = None) -> int:
    """The tag of one person (the value is never echoed in an error)."""
    t = tags([personnummer], index_key, reference_date)
    if t.size != 1:
        raise InputDataError(Problem("index_personnummer", "expected exactly one personnummer"))
    return int(t[0])


def contains(blob: bytes, tag: int) -> bool:
    """Binary search in a stored, sorted tag blob."""
    arr = np.frombuffer(blob, dtype=_DTYPE)
    i = int(np.searchsorted(arr, np.uint64(tag)))
    return i < arr.size and int(arr[i]) == tag
