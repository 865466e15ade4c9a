"""The key store's file: its format and version, the one byte form it is written in, how it is
read back and checked field by field, and the errors and limits the store's parts share. Apart
from :mod:`lsssdc.identity.keystore` so that reading the file can be followed on its own, and so
that the signing keys (:mod:`lsssdc.identity.signing_keys`) need not import the store."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from lsssdc.errors import KeyStoreError, Problem
from lsssdc.identity.kdf import _damaged
from lsssdc.identity.pseudonym import MAX_VERSION

FORMAT = "lsssdc-keystore"
STORE_VERSION = 1
MIN_PASSPHRASE = 12

_NONCE = 12


def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def _canonical(obj: Any) -> bytes:
    """The bytes that are authenticated: sorted keys, no whitespace, ASCII only."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def _serialise(doc: dict[str, Any]) -> bytes:
    """The one form in which a store is written; any other byte sequence is refused on reading."""
    return (json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=True) + "\n").encode("ascii")


def _tampered(path: Path) -> KeyStoreError:
    return KeyStoreError(
        Problem(
            "keystore_tampered",
            "the key store has been tampered with: its content does not match its seal",
            file=str(path),
            hint="restore the key store from its backup",
        )
    )


def _changed(path: Path) -> KeyStoreError:
    return KeyStoreError(
        Problem(
            "keystore_changed",
            "the key store was changed by someone else since it was opened; nothing was written",
            file=str(path),
            hint="run the command again",
        )
    )


def _parse(p: Path, raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        raise KeyStoreError(Problem("keystore_truncated", "the key store is empty (truncated)", file=str(p)))
    if not raw.endswith(b"\n}\n"):  # the writer always ends the top-level object on its own line
        raise KeyStoreError(
            Problem(
                "keystore_truncated",
                "the key store is truncated (or edited): it does not end the way lsssdc writes it",
                file=str(p),
                hint="restore the key store from its backup",
            )
        )
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise KeyStoreError(
            Problem(
                "keystore_not_json",
                "the key store is not valid JSON (damaged or edited)",
                file=str(p),
                hint="restore the key store from its backup",
            )
        ) from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise KeyStoreError(Problem("not_a_keystore", "the file is not an lsssdc key store", file=str(p)))
    version = doc.get("version")
    if type(version) is not int or version != STORE_VERSION:
        shown = str(version) if isinstance(version, int) and not isinstance(version, bool) else "?"
        raise KeyStoreError(
            Problem(
                "keystore_version",
                f"unknown key store version {shown} (this lsssdc reads version {STORE_VERSION})",
                file=str(p),
                hint="use the lsssdc release that wrote it",
            )
        )
    expected = {
        "format": str,
        "version": int,
        "store_id": str,
        "created": str,
        "kdf": dict,
        "master": dict,
        "master_history": list,
        "projects": dict,
        "deleted_projects": dict,
        "signers": dict,
        "root": dict,
        "seal": str,
    }
    if set(doc) != set(expected) or not all(isinstance(doc[k], t) for k, t in expected.items()):
        raise _damaged(p, "unexpected or missing fields")
    if _serialise(doc) != raw:
        raise _damaged(p, "it is not byte for byte as lsssdc wrote it")
    master = doc["master"]
    if not isinstance(master.get("version"), int) or not 1 <= master["version"] <= MAX_VERSION:
        raise _damaged(p, "bad master key version")
    return doc
