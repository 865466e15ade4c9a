"""Record keys: the secret 32-bit key of every person, from which every cell key is summed.

A cell's key is the sum modulo 2**32 of the record keys of what it counts
(:func:`~lsssdc.disclosure.tables.from_register.build_table` sums them); here live the key space,
the key-store label of the secret, and the keyed PRF that makes one key per register row.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from lsssdc.errors import InputDataError, KeyStoreError, Problem
from lsssdc.identity.pseudonym import personnummer_digits

#: The key space: a cell key ``k`` (uint32) stands for the point ``k / 2**32`` of [0, 1).
KEY_SPACE = 1 << 32
#: Key-store label of the secret behind the record keys.
KEY_LABEL = "table-record-keys"
_LABEL = b"CKY1"  # cell key, version 1: keeps these AES blocks apart from other uses of AES
_SUBKEY_INFO = b"lsssdc cell key record keys v1"


def record_keys(
    personnummer: pd.Series | Sequence[Any], secret: bytes, reference_date: Any = None
) -> np.ndarray:
    """One uint32 key per row: a keyed AES PRF of the normalised personnummer, 32 bits of it.

    The key depends on the person only (same in every year, table and row order), so a cell of
    the same persons gets the same cell key everywhere. Without ``secret`` (32 bytes from the
    key store, label :data:`KEY_LABEL`) the keys cannot be computed, even though the
    personnummer space is small enough to enumerate. An invalid value refuses the whole
    column, naming rows, never values. (:func:`lsssdc.ledger.person_index.tags` uses the same
    construction but returns sorted unique tags, not one per row, so the block is built here.)
    """
    if not isinstance(secret, bytes | bytearray) or len(secret) < 16:
        raise KeyStoreError(
            Problem(
                "record_key_secret",
                "the record-key secret must be at least 16 bytes",
                hint=f"take it from the key store: derive_key('{KEY_LABEL}')",
            )
        )
    try:
        digits = personnummer_digits(personnummer, reference_date)
    except InputDataError as err:  # the same problems (rows, never values), this step's hint
        raise InputDataError(
            [replace(p, hint="correct or remove them; no record key was made") for p in err.problems]
        ) from None
    n = len(digits)
    if n == 0:
        return np.zeros(0, np.uint32)
    aes_key = hmac.new(bytes(secret), _SUBKEY_INFO, hashlib.sha256).digest()
    blocks = np.empty((n, 16), dtype=np.uint8)
    blocks[:, :12] = digits
    blocks[:, 12:] = np.frombuffer(_LABEL, dtype=np.uint8)
    enc = Cipher(algorithms.AES(aes_key), modes.ECB()).encryptor()
    out = np.frombuffer(enc.update(blocks.tobytes()) + enc.finalize(), dtype=np.uint8).reshape(n, 16)
    return np.ascontiguousarray(out[:, :4]).view(">u4").ravel().astype(np.uint32)
