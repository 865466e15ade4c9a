"""The one place for lsssdc's errors.

Every error carries a list of :class:`Problem` records (a stable code, a message, where it
happened and a hint) so that the command line, ``--json`` output and reports render the same
facts. Messages never contain an identifier: code that raises these errors passes row numbers
and column names, never the offending value.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

#: Exit codes, the same for every command.
EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_UNUSABLE = 2

# A personnummer as people write it: 10 or 12 digits, the date parts optionally split by a space
# or a dot, the last four after an optional separator (-, +, a space, a dot, any dash). Used on
# free text and as a last line of defence when rendering messages from outside lsssdc.
PNR_PATTERN = r"(?<!\d)(?:\d{2})?\d{2}[ .]?\d{2}[ .]?\d{2}[ \-+.\u2010-\u2015\u2212]?\d{4}(?!\d)"
_PNR_LIKE = re.compile(PNR_PATTERN)
# characters that hide a number from a pattern without changing how it reads
_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u200b\u200c\u200d\u200e\u200f\u2060\ufeff"), None)


def has_personnummer_shape(text: str) -> bool:
    """True when free text holds something shaped like a personnummer (10 or 12 digits)."""
    return _PNR_LIKE.search(text.translate(_INVISIBLE)) is not None


def scrub(text: str) -> str:
    """Mask anything in ``text`` that could be a personnummer (last line of defence)."""
    return _PNR_LIKE.sub("<redacted>", text.translate(_INVISIBLE))


@dataclass(frozen=True)
class Problem:
    """One thing that is wrong, with where it is and what to do about it."""

    code: str
    message: str
    file: str | None = None
    line: int | None = None
    column: str | None = None
    rows: tuple[int, ...] = field(default_factory=tuple)
    row_count: int | None = None
    hint: str | None = None

    def where(self) -> str:
        parts: list[str] = []
        if self.file:
            parts.append(self.file + (f":{self.line}" if self.line else ""))
        if self.column:
            parts.append(f"column '{self.column}'")
        if self.rows:
            shown = ", ".join(str(r) for r in self.rows[:10])
            total = self.row_count if self.row_count is not None else len(self.rows)
            more = f" and {total - 10} more" if total > 10 else ""
            parts.append(f"row{'s' if total > 1 else ''} {shown}{more}")
        return ", ".join(parts)

    def render(self) -> str:
        where = self.where()
        text = f"{where}: {self.message}" if where else self.message
        if self.hint:
            text += f" ({self.hint})"
        return scrub(text)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["rows"] = list(self.rows)
        d["message"] = scrub(self.message)
        return {k: v for k, v in d.items() if v not in (None, [], ())}


class LsssdcError(Exception):
    """Root of every error lsssdc raises on purpose."""

    exit_code = EXIT_UNUSABLE
    kind = "error"

    def __init__(self, problems: Problem | list[Problem] | str, *, code: str = "error") -> None:
        if isinstance(problems, str):
            problems = [Problem(code=code, message=problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: list[Problem] = list(problems)
        super().__init__("; ".join(p.render() for p in self.problems))

    def to_dict(self) -> dict[str, Any]:
        return {
            "error": self.kind,
            "exit_code": self.exit_code,
            "problems": [p.to_dict() for p in self.problems],
        }


class PolicyError(LsssdcError):
    """A policy or order file is broken or asks for something the policy does not allow."""

    kind = "policy"


class PolicyRefused(PolicyError):
    """An order asks for something its policy does not allow: refused by name (exit code 1)."""

    exit_code = EXIT_REFUSED
    kind = "refused"


class InputDataError(LsssdcError):
    """An input file cannot be used: unreadable, wrong format, missing columns, bad values."""

    kind = "input"


class KeyStoreError(LsssdcError):
    """A key store is missing, damaged, or the passphrase is wrong."""

    kind = "keystore"


class DisclosureRefused(LsssdcError):
    """A candidate release does not meet its policy and is refused."""

    exit_code = EXIT_REFUSED
    kind = "refused"


class LedgerIntegrityError(LsssdcError):
    """The audit ledger has been changed, truncated or reordered."""

    exit_code = EXIT_REFUSED
    kind = "ledger"
