"""What a ledger payload may hold: canonical JSON (RFC 8785) and never a personnummer
(payloads that look like they hold one are refused before anything is written)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import rfc8785

from lsssdc.errors import InputDataError, Problem

# --- no personnummer in a payload -----------------------------------------------------------

_HEX_RUN = re.compile(r"[0-9A-Fa-f]{32,}")  # hashes: digit runs inside them are chance
_PNR_STR = re.compile(r"(?<!\d)(?:\d{10}|\d{12}|\d{6}[-+]\d{4}|\d{8}[-+]\d{4})(?!\d)")


def _plausible_int(value: int) -> bool:
    """A 10- or 12-digit integer whose last ten digits pass the date and Luhn checks."""
    text = str(abs(value))
    if len(text) not in (10, 12):
        return False
    ten = text[-10:]
    month, day = int(ten[2:4]), int(ten[4:6])
    if not (1 <= month <= 12 and (1 <= day <= 31 or 61 <= day <= 91)):
        return False
    total = 0
    for i, ch in enumerate(ten[:9]):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d // 10 + d % 10
    return (10 - total % 10) % 10 == int(ten[9])


def find_personnummer(obj: Any, path: str = "") -> list[str]:
    """Paths (never values) of the places in ``obj`` that look like a personnummer.

    Strings: any run of 10 or 12 digits, or 6/8 digits, '-' or '+', 4 digits, outside hex
    hashes. Integers: 10 or 12 digits that pass the date and check-digit tests (so byte
    counts and seeds pass unless they happen to be valid personnummer).
    """
    found: list[str] = []
    if isinstance(obj, str):
        if _PNR_STR.search(_HEX_RUN.sub("x", obj)):
            found.append(path or "/")
    elif isinstance(obj, bool) or obj is None:
        pass
    elif isinstance(obj, int):
        if _plausible_int(obj):
            found.append(path or "/")
    elif isinstance(obj, float):
        if math.isfinite(obj) and obj.is_integer() and _plausible_int(int(obj)):
            found.append(path or "/")
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            sub = f"{path}/{k}" if not find_personnummer(str(k)) else f"{path}/<key>"
            if sub.endswith("<key>"):
                found.append(sub)
            found.extend(find_personnummer(v, sub))
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            found.extend(find_personnummer(v, f"{path}/{i}"))
    return found


def jsonable(obj: Any, path: str = "") -> Any:
    """Plain JSON values (numpy scalars become Python numbers); anything else is refused."""
    if obj is None or isinstance(obj, bool | str):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        if not math.isfinite(obj):
            raise InputDataError(
                Problem("ledger_payload", f"payload field '{path or '/'}' is not a finite number")
            )
        return float(obj)
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise InputDataError(
                    Problem("ledger_payload", f"payload key under '{path or '/'}' is not a string")
                )
            out[k] = jsonable(v, f"{path}/{k}")
        return out
    if isinstance(obj, list | tuple):
        return [jsonable(v, f"{path}/{i}") for i, v in enumerate(obj)]
    item = getattr(obj, "item", None)  # numpy scalars
    if callable(item):
        return jsonable(item(), path)
    raise InputDataError(
        Problem(
            "ledger_payload", f"payload field '{path or '/'}' holds a {type(obj).__name__}, not a JSON value"
        )
    )


def canonical(obj: Any) -> bytes:
    """RFC 8785 canonical JSON."""
    try:
        return rfc8785.dumps(obj)
    except rfc8785.CanonicalizationError as exc:
        raise InputDataError(Problem("ledger_payload", f"payload cannot be canonicalised ({exc})")) from None
