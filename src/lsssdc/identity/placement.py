"""Where a key store may live: never next to data, never inside a data or delivery tree, and
written under a lock on its folder. Checked on every write, not only when a store is made."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from lsssdc.errors import KeyStoreError, Problem

try:  # cryptography >= 44
    from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
except ImportError:  # pragma: no cover - depends on the installed cryptography
    Argon2id = None  # type: ignore[assignment,misc]

DATA_SUFFIXES = frozenset(
    {".csv", ".parquet", ".pq", ".dta", ".xpt", ".sas7bdat", ".sav", ".xlsx", ".xls", ".tsv", ".zip"}
)


# --------------------------------------------------------------------------------------------
# where a key store may live


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def check_apart(key_store: str | os.PathLike[str], data_locations: Iterable[str | os.PathLike[str]]) -> None:
    """Refuse a key store next to data: keys are never written next to data.

    ``data_locations`` are data or delivery directories, or data files (their directory counts).
    The key store's directory and a data directory must not be the same and must not lie one
    inside the other.
    """
    store_dir = Path(key_store).expanduser().resolve().parent
    for loc in data_locations:
        p = Path(loc).expanduser().resolve()
        data_dir = p if p.is_dir() or (not p.exists() and not p.suffix) else p.parent
        if _inside(store_dir, data_dir) or _inside(data_dir, store_dir):
            raise KeyStoreError(
                Problem(
                    "keys_next_to_data",
                    "the key store would be next to data: keys are never written next to data",
                    file=str(key_store),
                    hint=f"keep the key store in a directory of its own, apart from {p}",
                )
            )


def _refuse_data_neighbours(path: Path) -> None:
    directory = path.parent
    if not directory.is_dir():
        return
    for entry in directory.iterdir():
        suffixes = {s.lower() for s in entry.suffixes}
        if entry.is_file() and suffixes & DATA_SUFFIXES:
            raise KeyStoreError(
                Problem(
                    "keys_next_to_data",
                    "the key store's directory holds data files: keys are never written next to data",
                    file=str(path),
                    hint="keep the key store in a directory of its own",
                )
            )


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """An exclusive lock on the key store's directory while the file is read and replaced."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
