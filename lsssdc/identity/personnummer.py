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
    "missing": "personnummer is missing",
    "format": "not a personnummer: expected 10 or 12 digits with an optional '-' or '+'",
    "century": "the century cannot be determined (10 digits without a reference date, or a century other than 18, 19 or 20)",
    "date": "the birth date in the personnummer does not exist",
    "birth_number": "the birth number (digits 9-11) is 000",
    "checksum": "the check digit (Luhn) does not match",
    "future": "the birth date lies after the reference date",
}
SEX_CODES = ("1", "2")  # 1 = man, 2 = kvinna (SCB's standard coding)

_WIDTH = 13
_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int16)
_LUHN_WEIGHTS = np.array([2, 1, 2, 1, 2, 1, 2, 1, 2], dtype=np.int16)
_SEP_DASH, _SEP_PLUS = ord("-"), ord("+")


def _to_arrow_strings(values: Any) -> pa.StringArray:
    s = (
        values
        if isinstance(values, pd.Series)
        else pd.Series(list(values) if not isinstance(values, np.ndarray) else values)
    )
    if not isinstance(s.dtype, pd.StringDtype) or s.dtype.storage != "pyarrow":
        if s.dtype == object or isinstance(s.dtype, pd.StringDtype | pd.CategoricalDtype):
            s = s.astype("string[pyarrow]")
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


def _char_matrix(arr: pa.StringArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (n x 13 byte matrix, byte length, missing mask) with one bulk copy."""
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


def _reference_ints(reference_date: Any, n: int) -> np.ndarray | None:
    """Reference date(s) as yyyymmdd integers, one per row, or None."""
    if reference_date is None:
        return None
    if isinstance(reference_date, dt.date | pd.Timestamp | np.datetime64 | str):
        ts = pd.Timestamp(reference_date)
        return np.full(n, ts.year * 10000 + ts.month * 100 + ts.day, dtype=np.int32)
    ref = pd.to_datetime(pd.Series(reference_date).reset_index(drop=True))
    if len(ref) != n:
        raise ValueError("reference_date must be one date or one date per value")
    out = (ref.dt.year * 10000 + ref.dt.month * 100 + ref.dt.day).to_numpy()
    return np.where(np.isnan(out.astype(float)), -1, out).astype(np.int32)


def luhn_check_digit(nine: np.ndarray) -> np.ndarray:
    """Luhn check digits for an (n x 9) array of the digits YYMMDDNNN."""
    prod = nine.astype(np.int16) * _LUHN_WEIGHTS
    total = (prod // 10 + prod % 10).sum(axis=1)
    return ((10 - total % 10) % 10).astype(np.int8)


def _days_in_month(year: np.ndarray, month: np.ndarray) -> np.ndarray:
    m = np.clip(month, 0, 12)
    dim = _DAYS_IN_MONTH[m].astype(np.int16)
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    return dim + ((m == 2) & leap)


def parse(values: Iterable[Any] | pd.Series, reference_date: Any = None) -> pd.DataFrame:
    """Parse a column of personnummer.

    Returns one row per input value (same index) with columns ``personnummer`` (normalised
    12 digits, missing when invalid), ``valid``, ``reason`` (one of :data:`REASONS` or missing),
    ``birth_date``, ``sex`` ("1" man, "2" kvinna) and ``samordningsnummer``.
    ``reference_date`` is one date or one per value; it is needed for 10-digit forms.
    """
    index = values.index if isinstance(values, pd.Series) else None
    arr = _to_arrow_strings(values)
    mat, blen, missing = _char_matrix(arr)
    n = mat.shape[0]
    isdig = (mat >= 48) & (mat <= 57)
    dig = (mat - 48).astype(np.int16)
    sep8 = (mat[:, 8] == _SEP_DASH) | (mat[:, 8] == _SEP_PLUS)
    sep6 = (mat[:, 6] == _SEP_DASH) | (mat[:, 6] == _SEP_PLUS)
    f12 = (blen == 12) & isdig[:, :12].all(axis=1)
    f13 = (blen == 13) & isdig[:, :8].all(axis=1) & sep8 & isdig[:, 9:13].all(axis=1)
    f10 = (blen == 10) & isdig[:, :10].all(axis=1)
    f11 = (blen == 11) & isdig[:, :6].all(axis=1) & sep6 & isdig[:, 7:11].all(axis=1)
    long_form = f12 | f13
    short_form = f10 | f11
    plus = (f13 & (mat[:, 8] == _SEP_PLUS)) | (f11 & (mat[:, 6] == _SEP_PLUS))

    d = np.zeros((n, 12), dtype=np.int16)  # century digits + YYMMDDNNNC
    d[f12] = dig[f12][:, :12]
    d[f13] = dig[f13][:, [0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12]]
    d[f10, 2:] = dig[f10][:, :10]
    d[f11, 2:] = dig[f11][:, [0, 1, 2, 3, 4, 5, 7, 8, 9, 10]]

    yy = d[:, 2] * 10 + d[:, 3]
    mm = d[:, 4] * 10 + d[:, 5]
    dd = d[:, 6] * 10 + d[:, 7]
    nnn = d[:, 8] * 100 + d[:, 9] * 10 + d[:, 10]
    samord = dd > 60
    day = np.where(samord, dd - 60, dd)
    md = mm * 100 + day

    ref = _reference_ints(reference_date, n)
    century = (d[:, 0] * 10 + d[:, 1]).astype(np.int32)
    year = np.where(long_form, century * 100 + yy, 0).astype(np.int32)
    bad_century = long_form & ~np.isin(century, (18, 19, 20))
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
    bad_check = luhn_check_digit(d[:, 2:11]) != d[:, 11]
    future = (year * 10000 + md > ref) if ref is not None else np.zeros(n, bool)

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

    d[short_form, 0] = year[short_form] // 1000
    d[short_form, 1] = (year[short_form] // 100) % 10
    text = (d.astype(np.uint8) + 48).tobytes()
    fsb = pa.FixedSizeBinaryArray.from_buffers(pa.binary(12), n, [None, pa.py_buffer(text)])
    pnr = pc.if_else(pa.array(valid), fsb.cast(pa.binary()).cast(pa.string()), pa.scalar(None, pa.string()))

    months = (year.astype(np.int64) - 1970) * 12 + (mm - 1)
    birth = months.astype("datetime64[M]").astype("datetime64[D]") + (day - 1).astype("timedelta64[D]")
    birth = np.where(valid, birth, np.datetime64("NaT")).astype("datetime64[ns]")
    sex_codes = np.where(valid, np.where(nnn % 2 == 1, 0, 1), -1)

    out = pd.DataFrame(
        {
            "personnummer": pd.arrays.ArrowStringArray(pnr),
            "valid": valid,
            "reason": pd.Categorical.from_codes(reason_code, categories=list(REASONS)),
            "birth_date": birth,
            "sex": pd.Categorical.from_codes(sex_codes, categories=list(SEX_CODES)),
            "samordningsnummer": samord & valid,
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
    """Completed years of age on a date (one date, or one per row); vectorised."""
    b = pd.to_datetime(birth_date)
    o = (
        pd.to_datetime(pd.Series(on, index=b.index))
        if not np.isscalar(on) and not isinstance(on, dt.date | pd.Timestamp)
        else pd.Series(pd.Timestamp(on), index=b.index)
    )
    years = o.dt.year - b.dt.year
    before_birthday = (o.dt.month * 100 + o.dt.day) < (b.dt.month * 100 + b.dt.day)
    return (years - before_birthday.astype("Int64")).astype("Int64")


def reason_summary(parsed: pd.DataFrame) -> dict[str, int]:
    """Counts of invalid values per reason (no values shown)."""
    counts = parsed["reason"].value_counts()
    return {str(k): int(v) for k, v in counts.items() if v}
