"""Keyed, project-scoped pseudonyms for personnummer, made over whole columns.

Why this construction: the personnummer space is small (about 46 million valid numbers), so
any unkeyed or stored-salt hash can be reversed by enumeration in seconds. A pseudonym is
therefore AES-256 under a per-project key, applied to one 16-byte block per person: a keyed
permutation, so two persons can never share a pseudonym, and the key holder can reverse it.

Scheme, version 1 (stable: changing any of it changes every pseudonym):

* ``K = HKDF-SHA256(project secret, info = b"lsssdc pseudonym v1|" + project + b"|" + version)``;
  the random project secret lives wrapped in the key store (:mod:`lsssdc.identity.keystore`).
* ``block = 12 ASCII digits of the normalised personnummer || version (2 bytes, big-endian)
  || project tag (first 2 bytes of SHA-256(b"lsssdc project|" + project))``.
* ``ciphertext = AES-256-ECB(K, block)``: one encryptor for the whole column, fed in bulk
  chunks (ECB over independent single blocks is exactly a keyed permutation of each block).
* ``pseudonym = "P" + version + "-" + 32 letters``: the high half-bytes of the 16 ciphertext
  bytes, then their low half-bytes, each written as a letter ``a``-``p`` (a = 0 ... p = 15),
  e.g. ``P1-kcogbnpeahdlfmjiplbdoacfgnjkhemb``.

The body holds no digit at all, so a pseudonym can never be mistaken for a personnummer and
never contains a run of its digits; it is lower case, so case-insensitive tools cannot merge
two of them. Within a project and key version the pseudonym is deterministic (deliveries
join); across projects the keys are independent (deliveries do not join). On reversal the
tag and the digits are checked, which detects a wrong key, project or version.

Nothing here ever puts a personnummer or key byte in a message: errors name the column and
rows only.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from lsssdc.errors import InputDataError, KeyStoreError, LsssdcError, Problem
from lsssdc.identity import personnummer as pnr

SCHEME = "lsssdc-pseudonym-v1"
PREFIX = "P"
ALPHABET = "abcdefghijklmnop"  # 16 letters, one per half byte; no digit, no upper case
BODY_LETTERS = 32
KEY_BYTES = 32
MAX_VERSION = 65535
PSEUDONYM_INFO = b"lsssdc pseudonym v1|"
PROJECT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
PSEUDONYM_PATTERN = rf"^{PREFIX}[1-9][0-9]{{0,4}}-[a-p]{{{BODY_LETTERS}}}$"

_CHUNK = 1 << 18  # rows per chunk: parse's temporaries stay warm in memory and cache
_MAX_ROWS_SHOWN = 1000
_DIGITS = 12
_ASCII0 = 48
_LETTER0 = ord(ALPHABET[0])
# half-bytes of 8 bytes at once (SWAR on uint64): no byte crosses into its neighbour
_NIBBLES = np.uint64(0x0F0F0F0F0F0F0F0F)
_LETTERS = np.uint64(0x0101010101010101 * _LETTER0)
_FOUR = np.uint64(4)
_ONES = 0x0101010101010101
_HIGH_BITS = np.uint64(_ONES * 0x80)
_VERSION_DIGITS = 5
_DIGIT_PAD = np.uint64(0x3030303000000000)  # fills the 4 unused bytes of a half-word with "0000"
_WIDTHS = range(len(PREFIX) + 2 + BODY_LETTERS, len(PREFIX) + 2 + BODY_LETTERS + _VERSION_DIGITS)


class PseudonymCollision(LsssdcError):
    """Two different persons would get the same pseudonym: impossible unless something is broken."""

    kind = "pseudonym"


def check_project_id(project: str) -> str:
    """A project id is 1-64 characters of letters, digits, '.', '_' or '-' (no '|': it labels keys)."""
    if not isinstance(project, str) or not PROJECT_ID.fullmatch(project):
        raise InputDataError(
            Problem(
                "bad_project_id",
                "a project id must be 1-64 characters: letters, digits, '.', '_' or '-', starting with a letter or digit",
            )
        )
    return project


@dataclass(frozen=True)
class PseudonymKey:
    """The AES-256 key that makes one project's pseudonyms at one key version.

    Get it from :meth:`lsssdc.identity.keystore.KeyStore.pseudonym_key`; the key bytes never
    appear in ``repr`` or ``str``.
    """

    project: str
    version: int
    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        check_project_id(self.project)
        if not isinstance(self.version, int) or not 1 <= self.version <= MAX_VERSION:
            raise KeyStoreError(Problem("bad_key_version", f"a key version must be 1-{MAX_VERSION}"))
        if not isinstance(self.key, bytes) or len(self.key) != KEY_BYTES:
            raise KeyStoreError(Problem("bad_key", f"a pseudonym key must be {KEY_BYTES} bytes"))

    @classmethod
    def derive(cls, project_secret: bytes, project: str, version: int) -> PseudonymKey:
        """The labelled HKDF sub-key for pseudonyms from a project's random secret."""
        check_project_id(project)
        info = PSEUDONYM_INFO + project.encode("ascii") + b"|" + str(version).encode("ascii")
        key = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=info).derive(project_secret)
        return cls(project, version, key)

    @property
    def tag(self) -> bytes:
        """The 4 bytes after the digits in each block: version and project tag."""
        project_tag = hashlib.sha256(b"lsssdc project|" + self.project.encode("ascii")).digest()[:2]
        return self.version.to_bytes(2, "big") + project_tag

    @property
    def prefix(self) -> str:
        return f"{PREFIX}{self.version}-"


@dataclass(frozen=True)
class PseudonymReport:
    """What a pseudonymisation did, in counts only (the ``--json`` output and the ledger payload)."""

    scheme: str
    project: str
    key_version: int
    column: str
    rows: int
    persons: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "scheme": self.scheme,
            "project": self.project,
            "key_version": self.key_version,
            "column": self.column,
            "rows": self.rows,
            "persons": self.persons,
        }


# --------------------------------------------------------------------------------------------
# personnummer -> packed keys


def _as_series(values: Iterable[Any] | pd.Series) -> pd.Series:
    if isinstance(values, pd.Series):
        return values
    if isinstance(values, pa.Array | pa.ChunkedArray):
        chunked = values if isinstance(values, pa.ChunkedArray) else pa.chunked_array([values])
        return pd.Series(pd.arrays.ArrowStringArray(chunked.cast(pa.string())))
    return pd.Series(values if isinstance(values, np.ndarray) else list(values), dtype=object)


def _reference_slicer(reference_date: Any, n: int) -> Any:
    """One reference date for all rows, or a positional sequence that can be sliced per chunk."""
    if reference_date is None or isinstance(reference_date, str | dt.date | np.datetime64):
        return None
    ref = pd.Series(reference_date).reset_index(drop=True)
    if len(ref) != n:
        raise InputDataError(
            Problem("bad_reference_date", "the reference date must be one date or one date per value")
        )
    return ref


def _pack(digits: np.ndarray) -> np.ndarray:
    """12 ASCII digits -> one uint64 (binary-coded decimal: ordering and equality are the digits')."""
    low = digits & 0x0F
    packed = np.zeros((len(digits), 8), dtype=np.uint8)
    packed[:, 2:] = (low[:, 0::2] << 4) | low[:, 1::2]
    return packed.view(">u8").ravel().astype(np.uint64)


def _digit_chunks(
    values: pd.Series, reference_date: Any, column: str, tail: bytes = b""
) -> Iterator[tuple[int, int, np.ndarray | None]]:
    """Parse a column chunk by chunk: ``(start, stop, rows)``, rows None once a value failed.

    Each row holds the 12 normalised ASCII digits followed by ``tail`` (the key's tag makes the
    rows AES blocks as they are parsed, with no copy in between). Small chunks keep the parser's
    temporaries warm in cache. After the last chunk, any invalid value raises one error naming
    the column, every row (1-based) and the reasons.
    """
    n = len(values)
    ref_rows = _reference_slicer(reference_date, n)
    bad_rows: list[np.ndarray] = []
    reasons = np.zeros(len(pnr.REASONS), dtype=np.int64)
    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        ref = reference_date if ref_rows is None else ref_rows.iloc[start:stop].to_numpy()
        rows = _rows_ending_in(stop - start, tail)
        codes = pnr.parse_into(values.iloc[start:stop], ref, rows[:, :_DIGITS])
        invalid = codes >= 0
        if invalid.any():
            bad_rows.append(np.flatnonzero(invalid) + start + 1)
            reasons += np.bincount(codes[invalid], minlength=len(pnr.REASONS))
        yield start, stop, None if bad_rows else rows
    if bad_rows:
        rows = np.concatenate(bad_rows)
        counts = {r: int(c) for r, c in zip(pnr.REASONS, reasons, strict=True) if c}
        why = ", ".join(f"{pnr.REASON_TEXT.get(r, r)}: {c}" for r, c in sorted(counts.items()))
        raise InputDataError(
            Problem(
                "invalid_personnummer",
                f"{len(rows)} value(s) are not valid personnummer ({why})",
                column=column,
                rows=tuple(int(r) for r in rows[:_MAX_ROWS_SHOWN]),
                row_count=len(rows),
                hint="correct or remove them; nothing was pseudonymised",
            )
        )


def personnummer_digits(
    values: Iterable[Any] | pd.Series, reference_date: Any = None, column: str = "personnummer"
) -> np.ndarray:
    """Parse and check a column; return the normalised personnummer as an (n x 12) ASCII digit matrix.

    Any invalid or missing value refuses the whole column (:class:`~lsssdc.errors.InputDataError`
    naming the column, the rows and the reasons, never a value).
    """
    s = _as_series(values)
    out = np.empty((len(s), _DIGITS), dtype=np.uint8)
    for start, stop, digits in _digit_chunks(s, reference_date, column):
        if digits is not None:
            out[start:stop] = digits
    return out


def _matrix_chunks(digits: np.ndarray, tail: bytes) -> Iterator[tuple[int, int, np.ndarray | None]]:
    """An (n x 12) digit matrix as chunks of rows of the digits followed by ``tail``."""
    for start in range(0, len(digits), _CHUNK):
        yield start, min(start + _CHUNK, len(digits)), _blocks(digits[start : start + _CHUNK], tail)


# --------------------------------------------------------------------------------------------
# the keyed permutation


def _byte_outside(words: np.ndarray, low: int, high: int) -> np.ndarray:
    """Per uint64 word: does any of its 8 bytes lie outside low..high (low <= 128, high <= 127)?

    The classic word-at-a-time tests (any byte < n, any byte > n), exact for these bounds.
    """
    less = (words - np.uint64(_ONES * low)) & ~words & _HIGH_BITS
    more = ((words + np.uint64(_ONES * (127 - high))) | words) & _HIGH_BITS
    return (less | more) != 0


def _filled(n: int, template: bytes) -> np.ndarray:
    """n rows, each a copy of ``template`` (one broadcast copy: faster than filling a field)."""
    return np.broadcast_to(np.frombuffer(template, dtype=np.uint8), (n, len(template))).copy()


def _rows_ending_in(n: int, tail: bytes) -> np.ndarray:
    """n rows of 12 bytes (left for the parser to fill) and ``tail``; a 4-byte tail is written as
    one word per row (numpy copies short strided rows byte by byte)."""
    rows = np.empty((n, _DIGITS + len(tail)), dtype=np.uint8)
    if len(tail) == 4:
        rows[:, _DIGITS:].view("<u4")[:] = np.frombuffer(tail, dtype="<u4")[0]
    elif tail:
        rows[:, _DIGITS:] = np.frombuffer(tail, dtype=np.uint8)
    return rows


def _blocks(digits: np.ndarray, tag: bytes) -> np.ndarray:
    """One 16-byte block per row: the 12 digits, then the 4-byte tag (whole-field copies)."""
    blocks = _filled(len(digits), b"0" * _DIGITS + tag)
    fields = blocks.view([("digits", "S12"), ("tag", "S4")]).ravel()
    fields["digits"] = np.ascontiguousarray(digits).view("S12").ravel()
    return blocks


def _count_persons(packed: np.ndarray) -> int:
    """Distinct personnummer among packed values (one sort)."""
    ordered = np.sort(packed)
    return int(len(ordered) > 0) + int(np.count_nonzero(ordered[1:] != ordered[:-1]))


def _refuse_collisions(
    decryptor: Any, high: np.ndarray, low: np.ndarray, blocks: np.ndarray, column: str
) -> None:
    """Read the written letters back, decode and decrypt them: each row must give back its own block.

    A map that is undone row by row is one-to-one, so this proves that no two different persons
    got the same pseudonym, exactly and in linear time (no sort). It checks what was written,
    letters included, not what should have been.
    """
    m = len(blocks)
    hi = np.ascontiguousarray(high).view("<u8").reshape(m, 2) - _LETTERS
    lo = np.ascontiguousarray(low).view("<u8").reshape(m, 2) - _LETTERS
    cipher = (hi << _FOUR) | lo
    back = np.frombuffer(decryptor.update(cipher.view(np.uint8)), dtype=np.uint8).reshape(m, 16)
    if not np.array_equal(back, blocks):
        raise PseudonymCollision(
            Problem(
                "pseudonym_collision",
                "the pseudonyms do not decode back to their personnummer, so two persons could share one; "
                "nothing was written",
                column=column,
                hint="this cannot happen with a working AES: check the cryptography installation",
            )
        )


def _letters(words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ciphertext as (n x 2) uint64 -> the letters of its high half-bytes and of its low half-bytes."""
    return ((words >> _FOUR) & _NIBBLES) + _LETTERS, (words & _NIBBLES) + _LETTERS


def _fixed_width_strings(text: np.ndarray) -> pa.ChunkedArray:
    """An (n x width) byte matrix -> strings without copying (chunks stay under 2 GB of text each)."""
    n, width = text.shape
    rows = max(1, (2**31 - 1) // max(width, 1))
    chunks = []
    for start in range(0, max(n, 1), rows):
        part = np.ascontiguousarray(text[start : start + rows])
        m = len(part)
        offsets = np.arange(0, (m + 1) * width, width, dtype=np.int32)
        chunks.append(pa.StringArray.from_buffers(m, pa.py_buffer(offsets), pa.py_buffer(part)))
    return pa.chunked_array(chunks, type=pa.string())


def _pseudonymise_chunks(
    chunks: Iterable[tuple[int, int, np.ndarray | None]],
    n: int,
    key: PseudonymKey,
    column: str,
    count_persons: bool = False,
) -> tuple[pa.ChunkedArray, int | None]:
    """Chunks of blocks -> pseudonym strings (one per row), and the number of persons when asked.

    Each chunk holds one 16-byte block per row, the 12 digits then ``key.tag``, or None after
    an invalid value.

    One AES encryptor serves the whole column (ECB: each block on its own, so feeding it chunk
    by chunk gives exactly the bulk result). Every row is encrypted: a person who occurs twice
    gets the same block and so the same pseudonym, and AES at tens of nanoseconds per block is
    cheaper than factorising first. The output is one fixed-width byte buffer filled in place:
    the prefix, the 16 letters of the high half-bytes, the 16 of the low half-bytes. Each chunk
    is then read back and checked by :func:`_refuse_collisions`.
    """
    prefix = key.prefix.encode("ascii")
    text = np.empty((n, len(prefix) + BODY_LETTERS), dtype=np.uint8)  # every byte is written below
    fields = text.view([("prefix", f"S{len(prefix)}"), ("high", "S16"), ("low", "S16")]).ravel()
    packed = np.empty(n if count_persons else 0, dtype=np.uint64)
    aes = Cipher(algorithms.AES(key.key), modes.ECB())
    encryptor, decryptor = aes.encryptor(), aes.decryptor()
    for start, stop, blocks in chunks:
        if blocks is None:  # a value failed: keep parsing to name every bad row, encrypt nothing more
            continue
        words = np.frombuffer(encryptor.update(blocks), dtype="<u8").reshape(stop - start, 2)  # type: ignore[arg-type]
        hi, lo = _letters(words)
        fields["prefix"][start:stop] = prefix
        fields["high"][start:stop] = hi.view("S16").ravel()
        fields["low"][start:stop] = lo.view("S16").ravel()
        _refuse_collisions(decryptor, fields["high"][start:stop], fields["low"][start:stop], blocks, column)
        if count_persons:
            packed[start:stop] = _pack(blocks[:, :_DIGITS])
    encryptor.finalize()
    decryptor.finalize()
    return _fixed_width_strings(text), _count_persons(packed) if count_persons else None


def _series(arr: pa.ChunkedArray, index: pd.Index, name: str | None) -> pd.Series:
    return pd.Series(pd.arrays.ArrowStringArray(arr), index=index, name=name)


def pseudonymise(
    values: Iterable[Any] | pd.Series,
    key: PseudonymKey,
    *,
    reference_date: Any = None,
    column: str = "personnummer",
) -> pd.Series:
    """Pseudonyms for a column of personnummer (any accepted form), one per value, same index.

    ``reference_date`` (one date or one per value) is needed for 10-digit forms. Any invalid
    or missing value refuses the column (:class:`~lsssdc.errors.InputDataError`).
    Example: ``pseudonymise(df["personnummer"], store.pseudonym_key("PRJ-1", create=True))``
    """
    return _pseudonymise(values, key, reference_date, column, count_persons=False)[0]


def _pseudonymise(
    values: Iterable[Any] | pd.Series,
    key: PseudonymKey,
    reference_date: Any,
    column: str,
    count_persons: bool,
) -> tuple[pd.Series, int | None]:
    s = _as_series(values)
    chunks = _digit_chunks(s, reference_date, column, tail=key.tag)
    text, persons = _pseudonymise_chunks(chunks, len(s), key, column, count_persons)
    return _series(text, s.index, "pseudonym"), persons


def pseudonymise_frame(
    df: pd.DataFrame,
    column: str,
    key: PseudonymKey,
    *,
    reference_date: Any = None,
    keep_column: bool = False,
    out_column: str = "pseudonym",
    lopnummer_column: str | None = None,
) -> tuple[pd.DataFrame, PseudonymReport]:
    """Replace a personnummer column by a pseudonym column (at the same place) and report counts.

    ``keep_column=True`` keeps the personnummer too (only for the key holder's own files);
    ``lopnummer_column`` adds a dense rank of the pseudonyms (see :func:`lopnummer`).
    """
    if column not in df.columns:
        raise InputDataError(Problem("missing_column", f"there is no column '{column}'", column=column))
    taken = [c for c in (out_column, lopnummer_column) if c and c in df.columns and c != column]
    if taken:
        raise InputDataError(
            Problem("column_exists", f"the output column '{taken[0]}' already exists", column=taken[0])
        )
    pseudonyms, persons = _pseudonymise(df[column], key, reference_date, column, count_persons=True)
    out = df.copy() if keep_column else df.drop(columns=[column])
    position = list(df.columns).index(column) + (1 if keep_column else 0)
    out.insert(position, out_column, pseudonyms.set_axis(df.index))
    if lopnummer_column:
        out.insert(position + 1, lopnummer_column, lopnummer(out[out_column]))
    report = PseudonymReport(SCHEME, key.project, key.version, column, len(df), int(persons or 0))
    return out, report


# --------------------------------------------------------------------------------------------
# the key holder's side: reversal and rotation


def _key_map(
    keys: PseudonymKey | Mapping[int, PseudonymKey] | Iterable[PseudonymKey],
) -> dict[int, PseudonymKey]:
    if isinstance(keys, PseudonymKey):
        return {keys.version: keys}
    items = keys.values() if isinstance(keys, Mapping) else keys
    out = {k.version: k for k in items}
    if len({k.project for k in out.values()}) > 1:
        raise KeyStoreError(Problem("mixed_projects", "reversal takes the keys of one project only"))
    return out


def _strings(values: Iterable[Any] | pd.Series) -> pa.Array:
    s = _as_series(values)
    if not (isinstance(s.dtype, pd.StringDtype) and s.dtype.storage == "pyarrow"):
        s = s.astype("string[pyarrow]")
    return pa.chunked_array(s.array.__arrow_array__()).combine_chunks()


def _fixed_rows(arr: pa.StringArray, width: int) -> np.ndarray:
    """The (n x width) byte matrix of a string array whose values all have ``width`` bytes."""
    n = len(arr)
    kind = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    offsets = np.frombuffer(arr.buffers()[1], dtype=kind)[arr.offset : arr.offset + n + 1]
    start = int(offsets[0]) if n else 0
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8) if n else np.zeros(0, np.uint8)
    return data[start : start + n * width].reshape(n, width)


def _decode_width(mat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ok, version, ciphertext) for rows that all have one width, checked without a regex."""
    n, width = mat.shape
    ndig = width - len(PREFIX) - 1 - BODY_LETTERS
    body = np.ascontiguousarray(mat[:, width - BODY_LETTERS :]).view("<u8")  # (n x 4)
    ok = ~_byte_outside(body, _LETTER0, _LETTER0 + 15).any(axis=1)
    ok &= mat[:, 0] == ord(PREFIX)
    ok &= mat[:, width - BODY_LETTERS - 1] == ord("-")
    ok &= mat[:, 1] != _ASCII0
    version = np.zeros(n, dtype=np.int32)
    for i in range(1, 1 + ndig):
        d = mat[:, i].astype(np.int32) - _ASCII0
        ok &= (d >= 0) & (d <= 9)
        version = version * 10 + d
    words = body - _LETTERS  # each byte now 0-15 where ok
    cipher = ((words[:, :2] << _FOUR) | words[:, 2:]).view(np.uint8).reshape(n, 16)
    return ok, version, cipher


def _decode_array(arr: pa.StringArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ok, key version, ciphertext) per row; accepts exactly :data:`PSEUDONYM_PATTERN`.

    Rows are grouped by width (one group per number of version digits, usually one) and checked
    on fixed-width byte matrices, without a regular expression.
    """
    n = len(arr)
    lengths = pc.fill_null(pc.binary_length(arr), 0).to_numpy(zero_copy_only=False)
    widths = [w for w in pc.unique(pa.array(lengths)).to_pylist() if w in _WIDTHS]
    if len(widths) == 1 and (lengths == widths[0]).all():
        return _decode_width(_fixed_rows(arr, widths[0]))
    ok = np.zeros(n, dtype=bool)
    versions = np.zeros(n, dtype=np.int32)
    cipher = np.zeros((n, 16), dtype=np.uint8)
    for width in widths:
        rows = np.flatnonzero(lengths == width)
        ok[rows], versions[rows], cipher[rows] = _decode_width(_fixed_rows(arr.take(pa.array(rows)), width))
    return ok, versions, cipher


def _bad_format(rows: np.ndarray, column: str) -> InputDataError:
    return InputDataError(
        Problem(
            "not_a_pseudonym",
            f"{len(rows)} value(s) are missing or not lsssdc pseudonyms (expected P<version>-<32 letters a-p>)",
            column=column,
            rows=tuple(int(r) for r in rows[:_MAX_ROWS_SHOWN]),
            row_count=len(rows),
        )
    )


def _decode(values: Iterable[Any] | pd.Series, column: str) -> tuple[np.ndarray, np.ndarray]:
    """Pseudonym strings -> (key version per row, ciphertext rows); refuses anything malformed."""
    ok, versions, cipher = _decode_array(_strings(values))
    if not ok.all():
        raise _bad_format(np.flatnonzero(~ok) + 1, column)
    return versions, cipher


def _decrypt_rows(
    values: Iterable[Any] | pd.Series,
    keys: PseudonymKey | Mapping[int, PseudonymKey] | Iterable[PseudonymKey],
    column: str,
) -> np.ndarray:
    """Pseudonyms -> (n x 12) ASCII digits, chunk by chunk, one decryptor per key version.

    Errors are collected over the whole column, then raised once: malformed values first, then
    key versions the store does not have, then pseudonyms whose check tag does not match.
    """
    key_map = _key_map(keys)
    project = next(iter(key_map.values())).project if key_map else "?"
    arr = _strings(values)
    n = len(arr)
    digits = np.empty((n, _DIGITS), dtype=np.uint8)
    malformed: list[np.ndarray] = []
    missing: dict[int, int] = {}
    mismatched: dict[int, list[np.ndarray]] = {}
    decryptors: dict[int, Any] = {}
    for start in range(0, n, _CHUNK):
        ok, versions, cipher = _decode_array(arr.slice(start, _CHUNK))
        if not ok.all():
            malformed.append(np.flatnonzero(~ok) + start + 1)
        if malformed:
            continue
        m = len(versions)
        single = versions.min() == versions.max()
        for version in [int(versions[0])] if single else sorted(set(versions.tolist())):
            rows = None if single else np.flatnonzero(versions == version)
            count = m if rows is None else len(rows)
            key = key_map.get(version)
            if key is None:
                missing[version] = missing.get(version, 0) + count
                continue
            if version not in decryptors:
                decryptors[version] = Cipher(algorithms.AES(key.key), modes.ECB()).decryptor()
            part = cipher if rows is None else cipher[rows]
            plain = np.frombuffer(decryptors[version].update(np.ascontiguousarray(part)), dtype=np.uint8)
            plain = plain.reshape(count, 16)
            quads = plain.view("<u4")  # (count x 4): digits in 0-2, tag in 3
            good = quads[:, 3] == np.frombuffer(key.tag, dtype="<u4")[0]
            good &= ~_byte_outside(plain.view("<u8")[:, 0], _ASCII0, _ASCII0 + 9)
            good &= ~_byte_outside(quads[:, 2].astype(np.uint64) | _DIGIT_PAD, _ASCII0, _ASCII0 + 9)
            if not good.all():
                where = np.arange(m) if rows is None else rows
                mismatched.setdefault(version, []).append(where[~good] + start + 1)
            found = np.ascontiguousarray(plain.view([("digits", "S12"), ("tag", "S4")]).ravel()["digits"])
            if rows is None:
                digits[start : start + m] = found.view(np.uint8).reshape(m, _DIGITS)
            else:
                digits[rows + start] = found.view(np.uint8).reshape(count, _DIGITS)
    if malformed:
        raise _bad_format(np.concatenate(malformed), column)
    if missing:
        raise KeyStoreError(
            Problem(
                "missing_key_version",
                f"no key of project '{project}' at version {', '.join(map(str, sorted(missing)))} "
                f"({sum(missing.values())} pseudonym(s) use it)",
                column=column,
                hint="the version was deleted, or the pseudonyms belong to another key store",
            )
        )
    if mismatched:
        bad = np.sort(np.concatenate([r for parts in mismatched.values() for r in parts]))
        raise InputDataError(
            Problem(
                "pseudonym_key_mismatch",
                f"{len(bad)} pseudonym(s) were not made with project '{project}' key version "
                f"{', '.join(map(str, sorted(mismatched)))} (the check tag does not match)",
                column=column,
                rows=tuple(int(r) for r in bad[:_MAX_ROWS_SHOWN]),
                row_count=len(bad),
                hint="check the project id and the key store",
            )
        )
    return digits


def reidentify(
    values: Iterable[Any] | pd.Series,
    keys: PseudonymKey | Mapping[int, PseudonymKey] | Iterable[PseudonymKey],
    *,
    column: str = "pseudonym",
) -> pd.Series:
    """The key holder's reversal: pseudonyms -> normalised 12-digit personnummer (same index).

    ``keys`` holds the project's keys by version (pseudonyms of several versions may be mixed).
    A pseudonym of another project or key fails the tag check and refuses the column. Callers
    must log every use (the CLI writes a ``reidentify`` ledger entry).
    """
    s = _as_series(values)
    digits = _decrypt_rows(s, keys, column)
    return _series(_fixed_width_strings(digits), s.index, "personnummer")


def repseudonymise(
    values: Iterable[Any] | pd.Series,
    keys: PseudonymKey | Mapping[int, PseudonymKey] | Iterable[PseudonymKey],
    to_key: PseudonymKey,
    *,
    column: str = "pseudonym",
) -> pd.Series:
    """Map pseudonyms of older key versions to ``to_key``'s version (key rotation, key holder only).

    Personnummer are never materialised as text: the digits go straight from one cipher to the other.
    """
    s = _as_series(values)
    if any(k.project != to_key.project for k in _key_map(keys).values()):
        raise KeyStoreError(Problem("mixed_projects", "rotation maps pseudonyms within one project only"))
    digits = _decrypt_rows(s, keys, column)
    text, _ = _pseudonymise_chunks(_matrix_chunks(digits, to_key.tag), len(digits), to_key, column)
    return _series(text, s.index, "pseudonym")


def key_versions(values: Iterable[Any] | pd.Series, *, column: str = "pseudonym") -> list[int]:
    """The key versions that occur in a pseudonym column (refuses anything that is not a pseudonym)."""
    versions, _ = _decode(values, column)
    return sorted(int(v) for v in pc.unique(pa.array(versions)).to_pylist())


def lopnummer(pseudonyms: pd.Series) -> pd.Series:
    """A dense rank (1, 2, ...) of the pseudonyms, ordered by pseudonym: short integers for researchers.

    The order of pseudonyms is unrelated to birth dates, so the rank reveals nothing either. A
    löpnummer is only stable within one file; join deliveries on the pseudonym.
    """
    arr = _strings(pseudonyms)
    encoded = pc.dictionary_encode(arr)
    order = pc.array_sort_indices(encoded.dictionary).to_numpy()
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(1, len(order) + 1)
    idx = encoded.indices
    missing = idx.is_null().to_numpy(zero_copy_only=False)
    codes = pc.fill_null(idx, 0).to_numpy(zero_copy_only=False)
    values = rank[codes] if len(rank) else np.zeros(len(codes), dtype=np.int64)
    index = pseudonyms.index if isinstance(pseudonyms, pd.Series) else None
    return pd.Series(pd.arrays.IntegerArray(values, missing), index=index, name="lopnummer")
