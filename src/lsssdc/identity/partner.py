"""Linkage by project key: a partner agency pseudonymises its own extract with the project's key.

Deliveries to one project share pseudonyms. When another agency (Försäkringskassan, SCB, ...)
delivers its own part of a project, it can be given the project's pseudonym key so that it
pseudonymises its extract exactly as lsssdc does; lsssdc then joins the two on the pseudonym
and no personnummer crosses between the agencies.

The key travels in a **key file** encrypted for the partner's X25519 public key:

* an ephemeral X25519 key pair per export; ``shared = X25519(ephemeral, recipient)``;
* ``K = HKDF-SHA256(shared, salt = ephemeral public || recipient public, info = INFO)``;
* ``ciphertext = AES-256-GCM(K, nonce, pseudonym key)`` with the file's header as associated
  data: format and format version, pseudonym scheme, project, key version, recipient, the
  recipient key's fingerprint and the ephemeral public key. Changing any of them, or a byte of
  the ciphertext, or using another private key, fails authentication.

Only the pseudonym sub-key of one project and key version is exported, never the project
secret, so the partner can make (and, like any key holder, reverse) that project's pseudonyms
and nothing else. Every export is written to the audit ledger first (kind ``key_export``: the
project, key version, recipient and the recipient key's fingerprint, never the key).

The partner's side needs only this module and :mod:`lsssdc.identity.pseudonym`:
:func:`open_key_file` with its private key, then :func:`pseudonymise_extract`. lsssdc's side
checks the returned extract with :func:`import_extract` (every pseudonym must carry the
project's check tag; no column may hold anything that looks like a personnummer) and joins it
with :func:`lsssdc.linkage.link_on_pseudonym`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from lsssdc.errors import InputDataError, KeyStoreError, Problem
from lsssdc.identity import pseudonym as ps

FORMAT = "lsssdc-partner-key"
FORMAT_VERSION = 1
INFO = b"lsssdc partner key v1"
RECIPIENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._@()-]{0,99}")
_NONCE = 12
_HEADER_FIELDS = (
    "format",
    "format_version",
    "scheme",
    "project",
    "key_version",
    "recipient",
    "recipient_fingerprint",
    "ephemeral_public_key",
)
_FIELDS = frozenset((*_HEADER_FIELDS, "nonce", "ciphertext"))
# 10 or 12 digits, optionally with a separator: anything a personnummer could be written as
_PNR_LIKE = r"(^|[^0-9])([0-9]{6}|[0-9]{8})[-+]?[0-9]{4}([^0-9]|$)"
_SHOWN_ROWS = 20


# --------------------------------------------------------------------------------------------
# X25519 keys of the partner


def generate_private_key() -> X25519PrivateKey:
    """A new X25519 key pair for a partner agency (kept by the partner; only the public half is sent)."""
    return X25519PrivateKey.generate()


def private_key_pem(key: X25519PrivateKey, passphrase: str | None = None) -> bytes:
    """PKCS#8 PEM of a partner's private key, encrypted when a passphrase is given."""
    enc = (
        serialization.BestAvailableEncryption(passphrase.encode("utf-8"))
        if passphrase
        else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)


def public_key_pem(key: X25519PublicKey | X25519PrivateKey) -> bytes:
    pub = key.public_key() if isinstance(key, X25519PrivateKey) else key
    return pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_private_key(
    data: bytes, passphrase: str | None = None, source: str | None = None
) -> X25519PrivateKey:
    """A partner's X25519 private key from PEM; a wrong passphrase or another kind of key is refused."""
    try:
        key = serialization.load_pem_private_key(
            data, password=passphrase.encode("utf-8") if passphrase else None
        )
    except TypeError:
        raise KeyStoreError(
            Problem(
                "bad_passphrase",
                "the private key is encrypted: a passphrase is needed"
                if not passphrase
                else "the passphrase does not open the private key",
                file=source,
            )
        ) from None
    except ValueError:
        raise KeyStoreError(
            Problem("bad_key", "not a PEM private key, or the passphrase is wrong", file=source)
        ) from None
    if not isinstance(key, X25519PrivateKey):
        raise KeyStoreError(Problem("bad_key", "the private key is not an X25519 key", file=source))
    return key


def load_public_key(data: bytes, source: str | None = None) -> X25519PublicKey:
    """A partner's X25519 public key from PEM (SubjectPublicKeyInfo)."""
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        raise KeyStoreError(Problem("bad_key", "not a PEM public key", file=source)) from None
    if not isinstance(key, X25519PublicKey):
        raise KeyStoreError(Problem("bad_key", "the public key is not an X25519 key", file=source))
    return key


def _raw(key: X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(key: X25519PublicKey | X25519PrivateKey) -> str:
    """``sha256:<hex>`` of the raw public key: what the ledger records and the partner can compare."""
    pub = key.public_key() if isinstance(key, X25519PrivateKey) else key
    return "sha256:" + hashlib.sha256(_raw(pub)).hexdigest()


# --------------------------------------------------------------------------------------------
# the key file


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _canonical(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def _wrapping_key(shared: bytes, ephemeral: bytes, recipient: bytes) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=ephemeral + recipient, info=INFO)
    return hkdf.derive(shared)


def _check_recipient(recipient: str) -> str:
    if not isinstance(recipient, str) or not RECIPIENT.fullmatch(recipient):
        raise InputDataError(
            Problem(
                "bad_recipient",
                "the recipient is 1-100 characters: letters, digits, space, '.', '_', '@', '(', ')' or '-'",
            )
        )
    return recipient


@dataclass(frozen=True)
class KeyExport:
    """An exported key file and the facts the ledger records about it (no key material)."""

    data: bytes
    project: str
    key_version: int
    recipient: str
    recipient_fingerprint: str

    def payload(self) -> dict[str, Any]:
        """The ledger entry's payload: project, key version, recipient, public key fingerprint."""
        return {
            "project": self.project,
            "key_version": self.key_version,
            "recipient": self.recipient,
            "recipient_fingerprint": self.recipient_fingerprint,
            "format": f"{FORMAT}-v{FORMAT_VERSION}",
        }


def export_key(
    key: ps.PseudonymKey,
    recipient: str,
    recipient_key: X25519PublicKey,
    *,
    ledger: Any = None,
    actor: str | None = None,
) -> KeyExport:
    """Encrypt one project's pseudonym key for a partner's public key.

    With ``ledger`` (a :class:`lsssdc.ledger.chain.Ledger`) the export is logged as ``key_export``
    by ``actor`` *before* the file is returned, so no key leaves unlogged. Write ``.data`` with
    :func:`write_key_file`.
    """
    _check_recipient(recipient)
    if not isinstance(recipient_key, X25519PublicKey):
        raise KeyStoreError(Problem("bad_key", "the recipient key must be an X25519 public key"))
    ephemeral = X25519PrivateKey.generate()
    eph_raw, rec_raw = _raw(ephemeral.public_key()), _raw(recipient_key)
    try:
        shared = ephemeral.exchange(recipient_key)
    except ValueError:  # a low-order public key gives no shared secret
        raise KeyStoreError(Problem("bad_key", "the recipient's public key is not usable")) from None
    header: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "scheme": ps.SCHEME,
        "project": key.project,
        "key_version": key.version,
        "recipient": recipient,
        "recipient_fingerprint": fingerprint(recipient_key),
        "ephemeral_public_key": _b64(eph_raw),
    }
    nonce = os.urandom(_NONCE)
    ciphertext = AESGCM(_wrapping_key(shared, eph_raw, rec_raw)).encrypt(nonce, key.key, _canonical(header))
    doc = {**header, "nonce": _b64(nonce), "ciphertext": _b64(ciphertext)}
    data = (json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=True) + "\n").encode("ascii")
    export = KeyExport(data, key.project, key.version, recipient, header["recipient_fingerprint"])
    if ledger is not None:
        if not actor:
            raise InputDataError(Problem("no_actor", "logging a key export needs the actor's name"))
        ledger.append("key_export", actor, export.payload())
    return export


def write_key_file(export: KeyExport, path: str | os.PathLike[str]) -> Path:
    """Write a key file atomically, readable by its owner only; refuse to overwrite one."""
    from lsssdc.fileio import atomic_path

    p = Path(path)
    if p.exists():
        raise InputDataError(Problem("file_exists", "refusing to overwrite an existing file", file=str(p)))
    with atomic_path(p) as tmp:
        os.chmod(tmp, 0o600)
        tmp.write_bytes(export.data)
    return p


def _damaged(source: str | None, what: str) -> KeyStoreError:
    return KeyStoreError(
        Problem(
            "key_file_damaged",
            f"the key file cannot be used: {what}",
            file=source,
            hint="ask the issuing agency for a new key file",
        )
    )


def _b64decode(value: Any, source: str | None, what: str) -> bytes:
    if not isinstance(value, str):
        raise _damaged(source, f"'{what}' is not text")
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise _damaged(source, f"'{what}' is not base64") from None


def _parse(data: bytes, source: str | None) -> dict[str, Any]:
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _damaged(source, "it is not a JSON document") from None
    if not isinstance(doc, dict):
        raise _damaged(source, "it is not a JSON object")
    if doc.get("format") != FORMAT:
        raise _damaged(source, "it is not an lsssdc partner key file")
    if doc.get("format_version") != FORMAT_VERSION or type(doc.get("format_version")) is not int:
        raise KeyStoreError(
            Problem(
                "key_file_version",
                f"unknown key file version (this lsssdc reads version {FORMAT_VERSION})",
                file=source,
            )
        )
    if set(doc) != _FIELDS:
        raise _damaged(source, "its fields are not the expected ones")
    if doc["scheme"] != ps.SCHEME:
        raise _damaged(source, "it is for another pseudonym scheme")
    if not isinstance(doc["key_version"], int) or isinstance(doc["key_version"], bool):
        raise _damaged(source, "the key version is not a number")
    for name in ("project", "recipient", "recipient_fingerprint"):
        if not isinstance(doc[name], str):
            raise _damaged(source, f"'{name}' is not text")
    return doc


def open_key_file(
    data: bytes, private_key: X25519PrivateKey, *, source: str | None = None
) -> ps.PseudonymKey:
    """The partner's side: decrypt a key file with the partner's private key.

    A file for another key, a wrong private key, or any changed byte is a :class:`KeyStoreError`
    (exit code 2); nothing of the key is shown.
    """
    doc = _parse(data, source)
    if doc["recipient_fingerprint"] != fingerprint(private_key):
        raise KeyStoreError(
            Problem(
                "wrong_private_key",
                "the key file is encrypted for another key than this private key",
                file=source,
                hint="use the private key whose public key was sent to the issuing agency",
            )
        )
    eph_raw = _b64decode(doc["ephemeral_public_key"], source, "ephemeral_public_key")
    nonce = _b64decode(doc["nonce"], source, "nonce")
    ciphertext = _b64decode(doc["ciphertext"], source, "ciphertext")
    if len(eph_raw) != 32 or len(nonce) != _NONCE:
        raise _damaged(source, "a field has the wrong length")
    try:
        shared = private_key.exchange(X25519PublicKey.from_public_bytes(eph_raw))
    except ValueError:
        raise _damaged(source, "the ephemeral key is not usable") from None
    header = {k: doc[k] for k in _HEADER_FIELDS}
    aead = AESGCM(_wrapping_key(shared, eph_raw, _raw(private_key.public_key())))
    try:
        secret = aead.decrypt(nonce, ciphertext, _canonical(header))
    except InvalidTag:
        raise _damaged(
            source, "it does not authenticate (it was changed, or the private key is wrong)"
        ) from None
    try:
        return ps.PseudonymKey(doc["project"], doc["key_version"], secret)
    except (KeyStoreError, InputDataError):
        raise _damaged(source, "the key it holds is not a pseudonym key") from None


def read_key_file(path: str | os.PathLike[str], private_key: X25519PrivateKey) -> ps.PseudonymKey:
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError:
        raise KeyStoreError(Problem("no_file", "cannot read the key file", file=str(p))) from None
    return open_key_file(data, private_key, source=str(p))


# --------------------------------------------------------------------------------------------
# the partner's extract


def pseudonymise_extract(
    extract: pd.DataFrame,
    key: ps.PseudonymKey,
    *,
    column: str = "personnummer",
    reference_date: Any = None,
) -> tuple[pd.DataFrame, ps.PseudonymReport]:
    """The partner's side: replace the personnummer column by the project's pseudonym, as lsssdc does.

    ``reference_date`` (one date or one per row) reads 10-digit forms. Any invalid personnummer
    refuses the whole extract, by column and rows.
    """
    return ps.pseudonymise_frame(extract, column, key, reference_date=reference_date)


def _personnummer_like(frame: pd.DataFrame, skip: Iterable[str]) -> list[Problem]:
    """Columns in which some value looks like a personnummer: a partner extract must hold none."""
    problems = []
    for col in frame.columns:
        if col in skip:
            continue
        s = frame[col]
        text_like = s.dtype == object or isinstance(s.dtype, pd.StringDtype)
        int_like = isinstance(s.dtype, np.dtype) and s.dtype.kind in "iu"
        if not (text_like or int_like):
            continue
        text = pa.array(s.astype("string[pyarrow]").array)
        hit = pc.fill_null(pc.match_substring_regex(text, _PNR_LIKE), False).to_numpy(zero_copy_only=False)
        if hit.any():
            rows = np.flatnonzero(hit) + 1
            problems.append(
                Problem(
                    "personnummer_in_partner_extract",
                    "the column holds values that look like personnummer",
                    column=str(col),
                    rows=tuple(int(r) for r in rows[:_SHOWN_ROWS]),
                    row_count=len(rows),
                    hint="a partner extract carries the project pseudonym only",
                )
            )
    return problems


def import_extract(
    extract: pd.DataFrame | str | os.PathLike[str],
    keys: ps.PseudonymKey | Mapping[int, ps.PseudonymKey],
    *,
    column: str = "pseudonym",
) -> pd.DataFrame:
    """lsssdc's side: accept a partner's pseudonymised extract for linkage on the pseudonym.

    Refuses a file with a personnummer column or personnummer-like values anywhere, and every
    pseudonym not made with this project's key (each carries a check tag the key holder can
    verify): joining such an extract would silently match nothing.
    """
    from lsssdc.fileio import read_table

    source = None
    if not isinstance(extract, pd.DataFrame):
        source = str(extract)
        extract = read_table(extract, required=(column,))
    if column not in extract.columns:
        raise InputDataError(
            Problem("missing_column", f"the partner extract has no column '{column}'", file=source)
        )
    problems = []
    if "personnummer" in extract.columns:
        problems.append(
            Problem(
                "personnummer_in_partner_extract",
                "the partner extract has a personnummer column",
                file=source,
                column="personnummer",
                hint="a partner extract carries the project pseudonym only",
            )
        )
    problems += [
        Problem(
            p.code, p.message, file=source, column=p.column, rows=p.rows, row_count=p.row_count, hint=p.hint
        )
        for p in _personnummer_like(extract, skip=(column, "personnummer"))
    ]
    if problems:
        raise InputDataError(problems)
    ps.reidentify(extract[column], keys, column=column)  # the tag check; the numbers are dropped at once
    return extract
