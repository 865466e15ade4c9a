"""Swedish personnummer and samordningsnummer, parsed over whole columns.

Rules (Skatteverket, Rättslig vägledning 330245; SKVM 2010:3 for samordningsnummer):

* accepted shapes: ``YYYYMMDDNNNC``, ``YYYYMMDD-NNNC``, ``YYMMDDNNNC``, ``YYMMDD-NNNC`` and the
  same with ``+`` (age 100 or more when the number was written);
* the check digit ``C`` is the Luhn digit over the nine digits ``YYMMDDNNN`` (never the century);
* samordningsnummer have the day increased by 60;
* the birth number ``NNN`` is 001-999; its last digit is odd for men and even for women.

A 10-digit number does not say its century, so it is read relative to a *reference date*
(for the LSS register, the measurement date of the row's year): the most recent century in
which the birth date is not after the reference date, minus 100 years when written with ``+``.
Without a reference date a 10-digit number cannot be normalised and is flagged, so the result
never depends on today's date.

Nothing here raises on a bad value or echoes one: each row gets a reason code instead.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast, overload

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    from pandas.arrays import ArrowStringArray

#: Reason codes for invalid values, in order of precedence. Stable: used in reports.
REASONS: tuple[str, ...] = (
    "missing",  # empty or null
    "format",  # not one of the accepted shapes (letters, wrong length, other separator)
    "century",  # 12-digit form with a century other than 18, 19, 20; or 10-digit without a reference date
    "date",  # no such calendar date (for samordningsnummer: day - 60)
    "birth_number",  # birth number 000
    "checksum",  # Luhn check digit does not match
    "future",  # birth date after the reference date
)
REASON_TEXT: dict[str, str] = {
    # Free of digits on purpose: a message can then be checked never to carry any input digit.
    "missing": "personnummer is missing",
    "format": "not a personnummer: expected ten or twelve digits with an optional '-' or '+'",
    "century": (
        "the century cannot be determined (ten digits without a reference date, "
        "or twelve digits whose century is not eighteen, nineteen or twenty)"
    ),
    "date": "the birth date in the personnummer does not exist",
    "birth_number": "the birth number (the three digits before the check digit) is zero",
    "checksum": "the check digit (Luhn) does not match",
    "future": "the birth date lies after the reference date",
}
SEX_CODES = ("1", "2")  # 1 = man, 2 = kvinna (SCB's standard coding)

_WIDTH = 13
_ASCII0 = 48
#: Luhn: the digit sum of twice a digit.
_DOUBLED = np.array([0, 2, 4, 6, 8, 1, 3, 5, 7, 9], dtype=np.int64)
_SEP_DASH, _SEP_PLUS = ord("-"), ord("+")


def _as_text(value: Any) -> str | None:
    """One odd object as text; anything that cannot be text becomes a value of the wrong shape."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and np.isnan(value):
        return None
    try:
        return value.decode("utf-8") if isinstance(value, bytes) else str(value)
    except Exception:  # noqa: BLE001 - whatever it is, it is not a personnummer
        return "?"


def _str_objects(s: pd.Series) -> pa.StringArray | None:
    """An object column of only ``str`` and missing values, converted by Arrow in one pass
    (pandas' own conversion makes a second); None for a column holding anything else."""
    try:
        arr = pa.array(s.to_numpy(), from_pandas=True)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):  # ints, dates, huge numbers ...
        return None
    return arr if isinstance(arr, pa.StringArray) else None  # bytes give binary: pandas' way


def _to_arrow_strings(values: Any) -> pa.StringArray:
    s = (
        values
        if isinstance(values, pd.Series)
        else pd.Series(list(values) if not isinstance(values, np.ndarray) else values)
    )
    if s.dtype == object and (fast := _str_objects(s)) is not None:
        return fast
    if not isinstance(s.dtype, pd.StringDtype) or s.dtype.storage != "pyarrow":
        if s.dtype == object or isinstance(s.dtype, pd.StringDtype | pd.CategoricalDtype):
            try:
                s = s.astype("string[pyarrow]")
            except (UnicodeDecodeError, TypeError, ValueError):
                # Only a column of odd Python objects (bytes that are not UTF-8 ...) gets here:
                # convert value by value rather than raise; no file reader produces such a column.
                s = pd.Series([_as_text(v) for v in s], index=s.index, dtype="string[pyarrow]")
        elif pd.api.types.is_integer_dtype(s.dtype):
            s = s.astype("Int64").astype("string[pyarrow]")
        else:
            # floats and others cannot hold a personnummer faithfully: each becomes "format"
            s = pd.Series(pd.array([None] * len(s), dtype="string[pyarrow]"), index=s.index).where(
                s.isna(), "x"
            )
    arr = pa.chunked_array(cast("ArrowStringArray", s.array).__arrow_array__()).combine_chunks()
    if arr.type != pa.string():
        arr = arr.cast(pa.string())
    return arr


def _may_need_trimming(arr: pa.StringArray) -> bool:
    """False when every byte of the values is printable ASCII other than space (the usual case),
    so that trimming, which copies every value, can be skipped."""
    n = len(arr)
    if n == 0 or arr.buffers()[2] is None:
        return False
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)[arr.offset : arr.offset + n + 1]
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    return len(data) > 0 and bool(data.min() <= 32 or data.max() >= 128)


def _char_matrix(arr: pa.StringArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (n x 13 byte matrix, byte length, missing mask) with one bulk copy."""
    if _may_need_trimming(arr):
        arr = pc.utf8_trim_whitespace(arr)
    missing = arr.is_null().to_numpy(zero_copy_only=False)
    arr = arr.fill_null("")
    blen = pc.binary_length(arr).to_numpy(zero_copy_only=False).astype(np.int16)
    missing |= blen == 0
    usable = pc.and_(pc.less_equal(pc.binary_length(arr), _WIDTH), pc.string_is_ascii(arr))
    blank = " " * _WIDTH
    arr = pc.if_else(usable, arr, pa.scalar(blank))
    arr = pc.utf8_rpad(arr, width=_WIDTH, padding=" ")
    n = len(arr)
    if n == 0:
        return np.zeros((0, _WIDTH), np.uint8), blen, missing
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)[arr.offset : arr.offset + n + 1]
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8)
    start = int(offsets[0])
    mat = data[start : start + n * _WIDTH].reshape(n, _WIDTH)
    usable_np = usable.to_numpy(zero_copy_only=False)
    blen = np.where(usable_np, blen, -1).astype(np.int16)
    return mat, blen, missing


def _ymd_ints(dates: np.ndarray) -> np.ndarray:
    """datetime64 values as yyyymmdd integers (-1 for NaT), by integer arithmetic on the day
    number (the proleptic Gregorian 'civil from days' algorithm), with no calendar conversions."""
    codes, uniques = pd.factorize(dates.astype("datetime64[D]"))  # few distinct dates in a register
    if len(uniques) == 0:
        return np.full(len(codes), -1, dtype=np.int32)
    if len(uniques) < len(codes) // 2:
        per_date = _ymd_ints(np.asarray(uniques, dtype="datetime64[D]"))
        return np.where(codes < 0, -1, per_date[np.maximum(codes, 0)]).astype(np.int32)
    d = dates.astype("datetime64[D]")
    nat = np.isnat(d)
    z = d.view(np.int64) + 719_468  # days since 0000-03-01
    era = np.floor_divide(z, 146_097)
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = np.where(mp < 10, mp + 3, mp - 9)
    year = yoe + era * 400 + (month <= 2)
    return np.where(nat, -1, year * 10000 + month * 100 + day).astype(np.int32)


def _as_datetime64(values: Any) -> np.ndarray:
    """One date per row, positionally (an index is ignored), as datetime64[ns]."""
    if isinstance(values, pd.Series | pd.Index) and pd.api.types.is_datetime64_any_dtype(values.dtype):
        return values.to_numpy(dtype="datetime64[ns]")
    if isinstance(values, np.ndarray) and np.issubdtype(values.dtype, np.datetime64):
        return values.astype("datetime64[ns]")
    return pd.to_datetime(
        pd.Series(list(values) if not isinstance(values, pd.Series) else values.to_numpy())
    ).to_numpy(dtype="datetime64[ns]")


def _reference_ints(reference_date: Any, n: int) -> np.ndarray | np.int32 | None:
    """Reference date(s) as yyyymmdd integers: one for all rows, one per row, or None."""
    if reference_date is None:
        return None
    if isinstance(reference_date, dt.date | pd.Timestamp | np.datetime64 | str):
        ts = pd.Timestamp(reference_date)
        return np.int32(ts.year * 10000 + ts.month * 100 + ts.day)  # broadcast over the rows
    ref = _as_datetime64(reference_date)
    if len(ref) != n:
        raise ValueError("reference_date must be one date or one date per value")
    return _ymd_ints(ref)


def luhn_check_digit(nine: np.ndarray) -> np.ndarray:
    """Luhn check digits for an (n x 9) array of the digits YYMMDDNNN."""
    d = np.asarray(nine).astype(np.intp, copy=False)
    total = np.zeros(len(d), np.int64)
    for j in range(9):  # nine column passes, not rows
        total += _DOUBLED[d[:, j]] if j % 2 == 0 else d[:, j]
    return ((10 - total % 10) % 10).astype(np.int8)


def _days_in_month(year: np.ndarray, month: np.ndarray) -> np.ndarray:
    """Days in the month for months 1-12 (other months give junk: such rows are already invalid).

    Thirty or thirty-one by the parity of ``month ^ (month >> 3)``; February 28 plus the leap day.
    """
    dim = np.uint8(30) + ((month ^ (month >> 3)) & np.uint8(1))
    feb = month == 2
    if feb.any():
        leap = ((year & 3) == 0) & (((year % 100) != 0) | ((year & 15) == 0))  # 400 = 16 * 25
        dim = np.where(feb, np.uint8(28) + leap, dim)
    return dim


def _days_since_epoch(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Valid calendar dates as days since 1970-01-01 (proleptic Gregorian 'days from civil'),
    by integer arithmetic rather than numpy's slower month-to-day calendar conversion."""
    m = month.astype(np.int32)
    y = year.astype(np.int32) - (m <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * np.where(m > 2, m - 3, m + 9) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era.astype(np.int64) * 146_097 + (doe - 719_468)


def _twelve_digit_rows(arr: pa.StringArray) -> np.ndarray | None:
    """The values as an (n x 12) byte matrix, without a copy, when every one is exactly twelve
    ASCII digits (a column that was normalised before, the usual case); else None.

    Such a column needs neither trimming nor padding, and every value has the 12-digit shape.
    """
    n = len(arr)
    if n == 0 or arr.null_count or arr.buffers()[2] is None:
        return None
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)[arr.offset : arr.offset + n + 1]
    start = int(offsets[0])
    if int(offsets[-1]) - start != 12 * n or not (np.diff(offsets) == 12).all():
        return None
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8)[start : start + 12 * n]
    if data.min() < _ASCII0 or data.max() > _ASCII0 + 9:
        return None
    return data.reshape(n, 12)


def _select(mask: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``np.where(mask, a, b)`` for uint8 ``a`` and ``b`` by byte arithmetic: many times faster
    than ``np.where`` when the (n,) mask is broadcast over (k x n) rows."""
    bits = np.negative(mask.view(np.uint8))  # 0xFF where true, 0 where false
    out = a ^ b
    out &= bits
    out ^= b
    return out


def _digit_values(raw: np.ndarray) -> np.ndarray:
    """Bytes -> digit values 0-9 as uint8 (any other byte counts as 0: such rows are already invalid)."""
    d = raw - np.uint8(_ASCII0)
    d &= np.negative((d < 10).view(np.uint8))
    return d


@dataclass
class _Shape:
    """The ten bytes ``YYMMDDNNNC`` of each value (10 x n digit values) and what its shape says.

    ``None`` for a mask means false for every row; ``long_form`` None means true for every row.
    """

    digits: np.ndarray
    century: np.ndarray
    missing: np.ndarray | None
    long_form: np.ndarray | None
    short_form: np.ndarray | None
    plus: np.ndarray | None


def _copy_rows(out: np.ndarray, rows: np.ndarray) -> None:
    """Copy (n x 12) byte rows as one 8-byte and one 4-byte word each (numpy copies short rows
    of a strided matrix byte by byte, several times slower)."""
    if out.strides[1] == 1 and rows.strides[1] == 1:
        out[:, :8].view("<u8")[:] = rows[:, :8].view("<u8")
        out[:, 8:12].view("<u4")[:] = rows[:, 8:12].view("<u4")
    else:
        out[:] = rows


def _shape_of_twelve(rows: np.ndarray, out_text: np.ndarray) -> _Shape:
    """Fast path: every value is twelve digits, already the normalised text."""
    _copy_rows(out_text, rows)
    cols = np.ascontiguousarray(rows.T)  # one contiguous row per position
    cols -= np.uint8(_ASCII0)
    century = cols[0] * np.uint8(10) + cols[1]
    return _Shape(cols[2:], century, None, None, None, None)


def _shape_of_any(arr: pa.StringArray, out_text: np.ndarray) -> tuple[_Shape, np.ndarray]:
    """Any column: find each value's shape by byte comparisons on the padded (13 x n) byte matrix.

    Returns the shape and the first two bytes of each value (the century of the long forms).
    """
    mat, blen, missing = _char_matrix(arr)
    cols = np.ascontiguousarray(mat.T)  # one contiguous row per position
    isdig = (cols - np.uint8(_ASCII0)) < 10
    head = isdig[0:6].all(axis=0)  # YYMMDD (short forms), CCYYMM (long forms)
    sep6 = (cols[6] == _SEP_DASH) | (cols[6] == _SEP_PLUS)
    sep8 = (cols[8] == _SEP_DASH) | (cols[8] == _SEP_PLUS)
    f10 = (blen == 10) & head & isdig[6:10].all(axis=0)
    f11 = (blen == 11) & head & isdig[7:11].all(axis=0) & sep6
    f12 = (blen == 12) & head & isdig[6:12].all(axis=0)
    f13 = (blen == 13) & head & isdig[6:8].all(axis=0) & isdig[9:13].all(axis=0) & sep8
    long_form = f12 | f13
    short_form = f10 | f11
    plus = (f13 & (cols[8] == _SEP_PLUS)) | (f11 & (cols[6] == _SEP_PLUS))
    # the ten bytes YYMMDDNNNC of every shape: skip the century of the long forms and the
    # separator; rows of other shapes give their first ten bytes (junk: they are invalid)
    ten = np.empty((10, len(blen)), dtype=np.uint8)
    ten[:6] = _select(long_form, cols[2:8], cols[0:6])
    ten[6:] = _select(f12, cols[8:12], _select(f13, cols[9:13], _select(f11, cols[7:11], cols[6:10])))
    out_text[:, 2:] = ten.T
    first = _digit_values(cols[0:2])
    century = first[0] * np.uint8(10) + first[1]
    shape = _Shape(_digit_values(ten), century, missing, long_form, short_form, plus)
    return shape, cols[0:2]


@overload
def _parse_chunk(
    arr: pa.StringArray,
    ref: np.ndarray | np.integer | None,
    out_text: np.ndarray,
    details: Literal[True] = ...,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]: ...
@overload
def _parse_chunk(
    arr: pa.StringArray, ref: np.ndarray | np.integer | None, out_text: np.ndarray, details: Literal[False]
) -> tuple[np.ndarray, None, None, None]: ...
def _parse_chunk(
    arr: pa.StringArray, ref: np.ndarray | np.integer | None, out_text: np.ndarray, details: bool = True
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """Parse one slice of values; write the normalised digits into ``out_text`` (n x 12).

    Returns (reason code, birth date, sex code, samordningsnummer) for the slice; the last three
    are None unless ``details``. Digits are kept as uint8 values and checked with uint8
    arithmetic; wider integers only where a year takes part.
    """
    rows = _twelve_digit_rows(arr)
    if rows is not None:
        shape, first = _shape_of_twelve(rows, out_text), None
    else:
        shape, first = _shape_of_any(arr, out_text)
    dg, n = shape.digits, len(out_text)
    long_form, short_form = shape.long_form, shape.short_form

    yy = dg[0] * np.uint8(10) + dg[1]
    mm = dg[2] * np.uint8(10) + dg[3]
    dd = dg[4] * np.uint8(10) + dg[5]
    samord = dd > 60
    day = np.where(samord, dd - np.uint8(60), dd)

    century_ok = (shape.century - np.uint8(18)) <= 2  # 18, 19 or 20
    if long_form is None:  # every row has a century
        year = shape.century.astype(np.int16) * 100 + yy
        bad_century = ~century_ok
    else:
        year = np.where(long_form, shape.century.astype(np.int32) * 100 + yy, 0).astype(np.int32)
        bad_century = long_form & ~century_ok
    future = None
    if ref is None:
        if short_form is not None:
            bad_century |= short_form
    else:
        md = mm.astype(np.int32) * 100 + day
        if short_form is not None:
            ref_year = ref // 10000
            short_year = (ref_year // 100) * 100 + yy
            short_year = np.where(short_year * 10000 + md > ref, short_year - 100, short_year)
            short_year = np.where(cast(np.ndarray, shape.plus), short_year - 100, short_year)
            year = np.where(short_form, short_year, year)
            bad_century |= short_form & (ref < 0)
        # a row without a reference date (NaT) has nothing to lie in the future of
        future = (ref >= 0) & (year.astype(np.int32) * 10000 + md > ref)

    bad_date = ((mm - np.uint8(1)) >= 12) | ((day - np.uint8(1)) >= _days_in_month(year, mm)) | (dd == 60)
    bad_birth_number = (dg[6] | dg[7] | dg[8]) == 0
    # Luhn over YYMMDDNNN: digits at even places doubled (digit sum of 2d is 2d - 9 for d >= 5);
    # the total stays below 256, and the check digit is right when total + C ends in 0
    total = dg[1] + dg[3] + dg[5] + dg[7] + dg[9]
    for j in range(0, 9, 2):
        total += dg[j] + dg[j] - np.uint8(9) * (dg[j] > 4)
    bad_check = (total % np.uint8(10)) != 0

    conditions = [
        shape.missing,
        None if long_form is None else ~(long_form | short_form),
        bad_century,
        bad_date,
        bad_birth_number,
        bad_check,
        future,
    ]
    reason_code = np.full(n, -1, dtype=np.int8)
    for code in range(len(conditions) - 1, -1, -1):  # lowest code wins: fixed 7 passes, not rows
        if conditions[code] is not None:
            np.copyto(reason_code, np.int8(code), where=conditions[code])
    if first is not None:  # the century of the normalised text, where the value did not give it
        long_form = cast(np.ndarray, long_form)  # _shape_of_any, which gives ``first``, sets it
        out_text[:, 0] = np.where(long_form, first[0], 48 + year // 1000)
        out_text[:, 1] = np.where(long_form, first[1], 48 + (year // 100) % 10)
    if not details:
        return reason_code, None, None, None

    valid = reason_code < 0
    days = np.where(valid, _days_since_epoch(year, mm, day), np.iinfo(np.int64).min)
    birth = days.view("datetime64[D]").astype("datetime64[ns]")
    sex_codes = ((dg[8] & np.uint8(1)) ^ np.uint8(1)).astype(np.int8)  # odd birth number: man (0)
    np.copyto(sex_codes, np.int8(-1), where=~valid)
    return reason_code, birth, sex_codes, samord & valid


#: Values parsed per pass: bounds the memory of the intermediate arrays and keeps them in cache.
_CHUNK = 1 << 18


def parse_into(values: Any, reference_date: Any, out_text: np.ndarray) -> np.ndarray:
    """Check a column and write each value's normalised 12 ASCII digits into ``out_text`` (n x 12).

    Returns the reason code per value (-1 valid, else an index into :data:`REASONS`): the checks
    of :func:`parse` without its birth dates and table, for callers that need only the digits.
    Rows of invalid values hold junk digits.
    """
    arr = _to_arrow_strings(values)
    n = len(arr)
    ref = _reference_ints(reference_date, n)
    reason_code = np.empty(n, np.int8)
    for start in range(0, n, _CHUNK):  # whole slices of values, not rows
        stop = min(n, start + _CHUNK)
        ref_part = ref if ref is None or np.ndim(ref) == 0 else cast(np.ndarray, ref)[start:stop]
        reason_code[start:stop] = _parse_chunk(
            arr.slice(start, stop - start), ref_part, out_text[start:stop], details=False
        )[0]
    return reason_code


def parse(values: Iterable[Any] | pd.Series, reference_date: Any = None) -> pd.DataFrame:
    """Parse a column of personnummer.

    Returns one row per input value (same index) with columns ``personnummer`` (normalised
    12 digits, missing when invalid), ``valid``, ``reason`` (one of :data:`REASONS` or missing),
    ``birth_date``, ``sex`` ("1" man, "2" kvinna) and ``samordningsnummer``.
    ``reference_date`` is one date or one per value; it is needed for 10-digit forms.
    """
    index = values.index if isinstance(values, pd.Series) else None
    arr = _to_arrow_strings(values)
    n = len(arr)
    ref = _reference_ints(reference_date, n)
    reason_code = np.empty(n, np.int8)
    birth = np.empty(n, "datetime64[ns]")
    sex_codes = np.empty(n, np.int8)
    samord = np.empty(n, bool)
    text = np.empty((n, 12), np.uint8)
    for start in range(0, n, _CHUNK):  # whole slices of values, not rows
        stop = min(n, start + _CHUNK)
        part = slice(start, stop)
        ref_part = ref if ref is None or np.ndim(ref) == 0 else cast(np.ndarray, ref)[part]
        (reason_code[part], birth[part], sex_codes[part], samord[part]) = _parse_chunk(
            arr.slice(start, stop - start), ref_part, text[part]
        )
    valid = reason_code < 0
    # the normalised numbers as one Arrow array over the digit buffer: no per-value copies
    offsets = np.arange(0, 12 * (n + 1), 12, dtype=np.int64)
    validity = np.packbits(valid, bitorder="little")
    pnr = pa.LargeStringArray.from_buffers(
        n, pa.py_buffer(offsets), pa.py_buffer(text), pa.py_buffer(validity), int(n - valid.sum())
    )
    out = pd.DataFrame(
        {
            "personnummer": pd.arrays.ArrowStringArray(pnr),
            "valid": valid,
            "reason": pd.Categorical.from_codes(reason_code, categories=list(REASONS)),  # type: ignore[call-overload]
            "birth_date": birth,
            "sex": pd.Categorical.from_codes(sex_codes, categories=list(SEX_CODES)),  # type: ignore[call-overload]
            "samordningsnummer": samord,
        }
    )
    if index is not None:
        out.index = index
    return out


def normalise(values: Iterable[Any] | pd.Series, reference_date: Any = None) -> pd.Series:
    """Normalised 12-digit personnummer; missing where the value is invalid."""
    return parse(values, reference_date)["personnummer"]


def is_valid(values: Iterable[Any] | pd.Series, reference_date: Any = None) -> pd.Series:
    return parse(values, reference_date)["valid"]


def age_at(birth_date: pd.Series, on: Any) -> pd.Series:
    """Completed years of age on a date (one date, or one per row, matched by position).

    Vectorised with numpy date arithmetic; missing where the birth date or the date is missing.
    """
    b = pd.Series(birth_date) if not isinstance(birth_date, pd.Series) else birth_date
    born = _ymd_ints(_as_datetime64(b))
    if np.isscalar(on) or isinstance(on, dt.date | pd.Timestamp):
        ts = pd.Timestamp(on)  # type: ignore[arg-type]
        when = np.full(len(b), ts.year * 10000 + ts.month * 100 + ts.day, dtype=np.int32)
    else:
        when = _ymd_ints(_as_datetime64(on))
        if len(when) != len(b):
            raise ValueError("on must be one date or one date per birth date")
    years = when // 10000 - born // 10000
    before_birthday = (when % 10000) < (born % 10000)
    age = (years - before_birthday).astype(np.int64)
    return pd.Series(pd.arrays.IntegerArray(age, (born < 0) | (when < 0)), index=b.index)


def reason_summary(parsed: pd.DataFrame) -> dict[str, int]:
    """Counts of invalid values per reason (no values shown)."""
    counts = parsed["reason"].value_counts()
    return {str(k): int(v) for k, v in counts.items() if v}
