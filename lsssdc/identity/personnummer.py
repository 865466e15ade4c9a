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
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

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
_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int16)
#: Luhn: the digit sum of twice a digit.
_DOUBLED = np.array([0, 2, 4, 6, 8, 1, 3, 5, 7, 9], dtype=np.int64)
#: Lookups by byte value (non-digits count as 0; such rows are already invalid by their shape).
_BYTE_DIGIT = np.zeros(256, dtype=np.int16)
_BYTE_DIGIT[48:58] = np.arange(10)
_BYTE_DOUBLED = np.zeros(256, dtype=np.int16)
_BYTE_DOUBLED[48:58] = _DOUBLED
_SEP_DASH, _SEP_PLUS = ord("-"), ord("+")
_POSITIONS = np.arange(12)


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


def _to_arrow_strings(values: Any) -> pa.StringArray:
    s = (
        values
        if isinstance(values, pd.Series)
        else pd.Series(list(values) if not isinstance(values, np.ndarray) else values)
    )
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
    arr = pa.chunked_array(s.array.__arrow_array__()).combine_chunks()
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
    m = np.clip(month, 0, 12)
    dim = _DAYS_IN_MONTH[m].astype(np.int16)
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    return dim + ((m == 2) & leap)


def _parse_chunk(
    arr: pa.StringArray, ref: np.ndarray | np.integer | None, out_text: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Parse one slice of values; write the normalised digits into ``out_text`` (n x 12).

    Returns (valid, reason code, birth date, sex code, samordningsnummer) for the slice.
    """
    mat, blen, missing = _char_matrix(arr)
    n = mat.shape[0]
    # which of the 13 positions hold a digit, packed into one 16-bit mask per row
    isdig = (mat - np.uint8(48)) < 10
    packed = np.packbits(isdig, axis=1, bitorder="little")
    digits_at = packed[:, 0].astype(np.uint16) | (packed[:, 1].astype(np.uint16) << 8)
    sep8 = (mat[:, 8] == _SEP_DASH) | (mat[:, 8] == _SEP_PLUS)
    sep6 = (mat[:, 6] == _SEP_DASH) | (mat[:, 6] == _SEP_PLUS)
    f12 = (blen == 12) & ((digits_at & 0x0FFF) == 0x0FFF)  # positions 0-11
    f13 = (blen == 13) & ((digits_at & 0x1EFF) == 0x1EFF) & sep8  # 0-7 and 9-12
    f10 = (blen == 10) & ((digits_at & 0x03FF) == 0x03FF)  # 0-9
    f11 = (blen == 11) & ((digits_at & 0x07BF) == 0x07BF) & sep6  # 0-5 and 7-10
    long_form = f12 | f13
    short_form = f10 | f11
    plus = (f13 & (mat[:, 8] == _SEP_PLUS)) | (f11 & (mat[:, 6] == _SEP_PLUS))

    # the ten bytes YYMMDDNNNC of every shape: drop the separator (shift what follows it one
    # place left), then skip the century of the long forms; rows of other shapes give junk
    has_sep = f13 | f11
    sep_at = np.where(long_form, 8, 6)
    after_sep = has_sep[:, None] & (_POSITIONS[None, :] >= sep_at[:, None])
    joined = np.where(after_sep, mat[:, 1:], mat[:, :-1])
    ten = np.where(long_form[:, None], joined[:, 2:12], joined[:, 0:10])
    b = np.ascontiguousarray(ten.T)  # one contiguous row of bytes per position
    dg = _BYTE_DIGIT[b]

    yy = dg[0] * 10 + dg[1]
    mm = dg[2] * 10 + dg[3]
    dd = dg[4] * 10 + dg[5]
    nnn = dg[6] * 100 + dg[7] * 10 + dg[8]
    samord = dd > 60
    day = np.where(samord, dd - 60, dd)
    md = mm * 100 + day

    century = (_BYTE_DIGIT[mat[:, 0]] * 10 + _BYTE_DIGIT[mat[:, 1]]).astype(np.int32)
    year = np.where(long_form, century * 100 + yy, 0).astype(np.int32)
    bad_century = long_form & ~((century >= 18) & (century <= 20))
    if ref is None:
        bad_century |= short_form
    else:
        ref_year = ref // 10000
        short_year = (ref_year // 100) * 100 + yy
        short_year = np.where(short_year * 10000 + md > ref, short_year - 100, short_year)
        short_year = np.where(plus, short_year - 100, short_year)
        year = np.where(short_form, short_year, year)
        bad_century |= short_form & (ref < 0)

    bad_date = (mm < 1) | (mm > 12) | (day < 1) | (day > _days_in_month(year, mm)) | (dd == 60)
    bad_birth_number = nnn == 0
    total = _BYTE_DOUBLED[b[0:9:2]].sum(axis=0) + dg[1:9:2].sum(axis=0)
    bad_check = (10 - total % 10) % 10 != dg[9]
    # a row without a reference date (NaT) has nothing to lie in the future of
    future = ((ref >= 0) & (year * 10000 + md > ref)) if ref is not None else np.zeros(n, bool)

    conditions = [
        missing,
        ~(long_form | short_form),
        bad_century,
        bad_date,
        bad_birth_number,
        bad_check,
        future,
    ]
    reason_code = np.full(n, -1, dtype=np.int8)
    for code in range(len(conditions) - 1, -1, -1):  # lowest code wins: fixed 7 passes, not rows
        reason_code[conditions[code]] = code
    valid = reason_code < 0

    text = out_text  # the normalised 12 digits, as ASCII
    text[:, 0] = np.where(long_form, mat[:, 0], 48 + year // 1000)
    text[:, 1] = np.where(long_form, mat[:, 1], 48 + (year // 100) % 10)
    text[:, 2:] = ten

    months = (year.astype(np.int64) - 1970) * 12 + (mm - 1)
    birth = months.astype("datetime64[M]").astype("datetime64[D]") + (day - 1).astype("timedelta64[D]")
    birth = np.where(valid, birth, np.datetime64("NaT")).astype("datetime64[ns]")
    sex_codes = np.where(valid, np.where(nnn % 2 == 1, 0, 1), -1).astype(np.int8)
    return valid, reason_code, birth, sex_codes, samord & valid


#: Values parsed per pass: bounds the memory of the intermediate arrays and keeps them in cache.
_CHUNK = 1 << 20


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
    valid = np.empty(n, bool)
    reason_code = np.empty(n, np.int8)
    birth = np.empty(n, "datetime64[ns]")
    sex_codes = np.empty(n, np.int8)
    samord = np.empty(n, bool)
    text = np.empty((n, 12), np.uint8)
    for start in range(0, n, _CHUNK):  # whole slices of a million values, not rows
        stop = min(n, start + _CHUNK)
        part = slice(start, stop)
        ref_part = ref if ref is None or np.ndim(ref) == 0 else ref[part]
        (valid[part], reason_code[part], birth[part], sex_codes[part], samord[part]) = _parse_chunk(
            arr.slice(start, stop - start), ref_part, text[part]
        )
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
            "reason": pd.Categorical.from_codes(reason_code, categories=list(REASONS)),
            "birth_date": birth,
            "sex": pd.Categorical.from_codes(sex_codes, categories=list(SEX_CODES)),
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
        ts = pd.Timestamp(on)
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
