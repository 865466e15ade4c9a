"""From a passphrase or an actor's secret to a key: Argon2id (RFC 9106) or scrypt, with bounds
so that a damaged file cannot ask for absurd work, and the small encodings the store uses."""

from __future__ import annotations

import base64
import binascii
import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from lsssdc.errors import KeyStoreError, Problem
from lsssdc.identity.pseudonym import KEY_BYTES

try:  # cryptography >= 44
    from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
except ImportError:  # pragma: no cover - depends on the installed cryptography
    Argon2id = None  # type: ignore[assignment,misc]

ENV_PASSPHRASE = "LSSSDC_PASSPHRASE"
# upper bounds so that a damaged file cannot ask for absurd work or memory
_ARGON_MAX = {"iterations": 64, "lanes": 64, "memory_kib": 4 * 1024 * 1024}
_SCRYPT_MAX_LOG2N = 22


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _passphrase_bytes(passphrase: str) -> bytes:
    if not isinstance(passphrase, str) or not passphrase:
        raise KeyStoreError(Problem("no_passphrase", "no passphrase was given", hint=f"set {ENV_PASSPHRASE}"))
    return unicodedata.normalize("NFC", passphrase).encode("utf-8")


def _damaged(path: Path, what: str) -> KeyStoreError:
    return KeyStoreError(
        Problem(
            "keystore_damaged",
            f"the key store is damaged or has been edited: {what}",
            file=str(path),
            hint="restore the key store from its backup",
        )
    )


# --------------------------------------------------------------------------------------------
# passphrase -> key-encryption key


@dataclass(frozen=True)
class KdfParams:
    """How the passphrase becomes the key that wraps the master key (stored in the file)."""

    algorithm: str = "argon2id"
    salt: bytes = b""
    iterations: int = 3  # argon2id passes
    lanes: int = 4
    memory_kib: int = 64 * 1024
    log2_n: int = 17  # scrypt: N = 2**17, r = 8, p = 1
    r: int = 8
    p: int = 1

    @classmethod
    def default(cls) -> KdfParams:
        """Argon2id (RFC 9106 second recommendation) when available, else scrypt."""
        return cls(algorithm="argon2id" if Argon2id is not None else "scrypt", salt=os.urandom(16))

    def to_dict(self) -> dict[str, Any]:
        if self.algorithm == "argon2id":
            params = {"iterations": self.iterations, "lanes": self.lanes, "memory_kib": self.memory_kib}
        else:
            params = {"log2_n": self.log2_n, "r": self.r, "p": self.p}
        return {"algorithm": self.algorithm, "salt": _b64(self.salt), **params}

    @classmethod
    def from_dict(cls, d: Any, path: Path) -> KdfParams:
        if not isinstance(d, dict) or d.get("algorithm") not in ("argon2id", "scrypt"):
            raise _damaged(path, "unknown key derivation")
        salt = _decode_b64(d.get("salt"), path, "kdf salt")
        if len(salt) < 16:
            raise _damaged(path, "kdf salt too short")
        if d["algorithm"] == "argon2id":
            keys = {"algorithm", "salt", "iterations", "lanes", "memory_kib"}
            ints: dict[str, Any] = {k: d.get(k) for k in ("iterations", "lanes", "memory_kib")}
            if set(d) != keys or not all(
                isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= _ARGON_MAX[k]
                for k, v in ints.items()
            ):
                raise _damaged(path, "bad argon2id parameters")
            if ints["memory_kib"] < 8 * ints["lanes"]:
                raise _damaged(path, "bad argon2id parameters")
            return cls("argon2id", salt, ints["iterations"], ints["lanes"], ints["memory_kib"])
        keys = {"algorithm", "salt", "log2_n", "r", "p"}
        ints = {k: d.get(k) for k in ("log2_n", "r", "p")}
        if (
            set(d) != keys
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in ints.values())
            or not (
                1 <= ints["log2_n"] <= _SCRYPT_MAX_LOG2N and 1 <= ints["r"] <= 32 and 1 <= ints["p"] <= 16
            )
        ):
            raise _damaged(path, "bad scrypt parameters")
        return cls("scrypt", salt, log2_n=ints["log2_n"], r=ints["r"], p=ints["p"])

    def derive(self, passphrase: str) -> bytes:
        secret = _passphrase_bytes(passphrase)
        if self.algorithm == "argon2id":
            if Argon2id is None:  # pragma: no cover - depends on the installed cryptography
                raise KeyStoreError(
                    Problem(
                        "kdf_unavailable", "this key store needs Argon2id", hint="install cryptography >= 44"
                    )
                )
            kdf = Argon2id(
                salt=self.salt,
                length=KEY_BYTES,
                iterations=self.iterations,
                lanes=self.lanes,
                memory_cost=self.memory_kib,
            )
            return kdf.derive(secret)
        return Scrypt(salt=self.salt, length=KEY_BYTES, n=2**self.log2_n, r=self.r, p=self.p).derive(secret)


def _decode_b64(value: Any, path: Path, what: str) -> bytes:
    if not isinstance(value, str):
        raise _damaged(path, f"{what} missing")
    try:
        data = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise _damaged(path, f"{what} is not base64") from None
    if _b64(data) != value:  # base64 has spare bits: only the one spelling lsssdc writes is accepted
        raise _damaged(path, f"{what} is not in canonical base64")
    return data
