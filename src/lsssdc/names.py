"""Names that become parts of paths: one strict pattern, and paths that stay inside their root.

An order id, a project id, a table name or an actor name read from a file or typed on the
command line ends up in a folder or file name. A name is therefore 1-64 letters, digits, '.',
'_' or '-', starting with a letter or digit: no separator, nothing absolute, nothing hidden, never
'.' or '..'. Every path built from one is resolved and must stay inside its root.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from lsssdc.errors import InputDataError, Problem

#: The one pattern for every name that can become part of a path.
PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
NAME = re.compile(PATTERN)
RULE = "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit, not ending in '.part'"


def is_name(value: object) -> bool:
    """True for a string that may be used as a single path component."""
    # ".part" marks a command's unfinished output: a name must never look like one
    return (
        isinstance(value, str) and NAME.fullmatch(value) is not None and not value.lower().endswith(".part")
    )


def check(value: object, what: str, *, file: str | None = None, line: int | None = None) -> str:
    """``value`` if it is a name, else an error that names the field (never a path is built)."""
    if not is_name(value):
        raise InputDataError(
            Problem(
                "bad_name", f"{what} must be {RULE}", file=file, line=line, hint="it names a folder or file"
            )
        )
    return str(value)


def inside(root: str | os.PathLike[str], *names: str) -> Path:
    """``root / name / ...`` after checking each name, resolved, and refused if it leaves ``root``."""
    base = Path(root)
    for n in names:
        check(n, "a name")
    target = base.joinpath(*names)
    real_root = base.resolve()
    real = target.resolve()
    if real != real_root and real_root not in real.parents:
        raise InputDataError(
            Problem("outside_root", "the path leaves its folder (a symbolic link?)", file=str(target))
        )
    return target


def has_digits_like_an_identifier(name: str) -> bool:
    """True when a name holds 10 or more digits in a row once its separators are taken out."""
    return re.search(r"\d{10}", re.sub(r"[._-]", "", name)) is not None
