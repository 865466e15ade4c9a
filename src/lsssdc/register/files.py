"""Register files in and out: from text columns to the typed register frame, strictly.

A file that does not have the register's shape is *unusable input* (exit code 2): a missing
column, an unknown kommun code for the year, a value outside a variable's value set, a value
for a variable that was not collected that year, a personnummer that is not even shaped like
one. Everything found is reported at once, with file, column and rows; values are never shown.
Plausibility (a wrong check digit, a child with daglig verksamhet ...) is for
:mod:`lsssdc.register.rules`.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from lsssdc import refdata
from lsssdc.errors import InputDataError, Problem
from lsssdc.fileio import read_table, write_table
from lsssdc.identity import personnummer as pnr_mod
from lsssdc.register import variables as V

if TYPE_CHECKING:
    from pandas.arrays import ArrowStringArray

DEATH_COLUMNS = ("personnummer", "death_date")
_DECIMAL = r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)$"  # a number of 0 or more, as CSV and Parquet writers print it


def _rows(mask: np.ndarray) -> tuple[tuple[int, ...], int]:
    idx = np.flatnonzero(mask)
    return tuple(int(i) + 1 for i in idx[:20]), int(len(idx))


def _problem(
    code: str, message: str, source: str, column: str, mask: np.ndarray, hint: str | None = None
) -> Problem:
    rows, count = _rows(mask)
    return Problem(code, message, file=source, column=column, rows=rows, row_count=count, hint=hint)


@cache
def _kommun_table() -> np.ndarray:
    """valid[year - FIRST_YEAR, code] for every register year and four-digit code."""
    ky = refdata.kommun_years()
    table = np.zeros((V.LAST_YEAR - V.FIRST_YEAR + 1, 10_000), dtype=bool)
    for year in range(V.FIRST_YEAR, V.LAST_YEAR + 1):
        ok = (ky["first_year"] <= year) & (ky["last_year"].isna() | (ky["last_year"] >= year))
        table[year - V.FIRST_YEAR, ky.loc[ok, "kommun_kod"].astype(int).to_numpy()] = True
    return table


_NULL_TEXT = pa.scalar(None, pa.large_string())


def _text(s: pd.Series) -> pa.StringArray:
    """A column as one Arrow string array, trimmed, with empty values missing.

    Trimming is skipped when no byte of the column could be whitespace (the usual case), which
    saves a pass over every value of a large file."""
    arr = cast("ArrowStringArray", s.astype("string[pyarrow]").array).__arrow_array__()
    if isinstance(arr, pa.ChunkedArray):  # one chunk, as read_table gives, is used as is (no copy)
        arr = arr.chunk(0) if arr.num_chunks == 1 else arr.combine_chunks()
    if arr.type != pa.large_string():  # the type pandas keeps its text in
        arr = arr.cast(pa.large_string())
    n = len(arr)
    if n == 0:
        return arr
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset : arr.offset + n + 1]
    data = arr.buffers()[2]
    if data is not None and offsets[-1] > offsets[0]:
        raw = np.frombuffer(data, dtype=np.uint8)[offsets[0] : offsets[-1]]
        if raw.min() <= 32 or raw.max() >= 128:  # a byte that may be (or be part of) whitespace
            arr = pc.utf8_trim_whitespace(arr)
            offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset : arr.offset + n + 1]
    empty = (np.diff(offsets) == 0) & _given(arr)
    if empty.any():
        arr = pc.if_else(pa.array(empty), _NULL_TEXT, arr)
    return arr


def _single_chars(arr: pa.Array) -> np.ndarray:
    """The byte of each one-character value; 0 where the value is missing or longer (codes and
    flags are one character, so this replaces a comparison per candidate value)."""
    n = len(arr)
    out = np.zeros(n, np.uint8)
    data = arr.buffers()[2]
    if n == 0 or data is None:
        return out
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset : arr.offset + n + 1]
    one = (np.diff(offsets) == 1) & _given(arr)
    out[one] = np.frombuffer(data, dtype=np.uint8)[offsets[:-1][one]]
    return out


def _given(arr: pa.Array) -> np.ndarray:
    return arr.is_valid().to_numpy(zero_copy_only=False)


def _numbers(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(values as float, NaN where missing or malformed; mask of given values that are malformed)."""
    try:  # the usual case: every value converts, and only digits and a point occur
        floats = pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False).astype(float)
        plain = bool(np.all(np.isnan(floats) | ((floats >= 0) & np.isfinite(floats))))
        if plain and not pc.any(pc.match_substring_regex(arr, r"[^0-9.]")).as_py():
            return floats, np.zeros(len(arr), bool)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    good = pc.fill_null(pc.match_substring_regex(arr, _DECIMAL), False)
    values = pc.cast(pc.if_else(good, arr, _NULL_TEXT), pa.float64())
    return values.to_numpy(zero_copy_only=False).astype(float), _given(arr) & ~good.to_numpy(
        zero_copy_only=False
    )


def _four_digits(arr: pa.Array) -> np.ndarray:
    """The value of each four-digit code (year, kommun) as int64; -1 where missing or not four digits."""
    shaped = pc.fill_null(pc.and_(pc.equal(pc.binary_length(arr), 4), pc.ascii_is_decimal(arr)), False)
    num = pc.cast(pc.if_else(shaped, arr, _NULL_TEXT), pa.int64())
    return pc.fill_null(num, -1).to_numpy(zero_copy_only=False)


def _kommun_ok(codes: pa.Array, years: np.ndarray) -> np.ndarray:
    code = _four_digits(codes)
    shaped = code >= 0
    return shaped & _kommun_table()[years.astype(np.int64) - V.FIRST_YEAR, np.where(shaped, code, 0)]


def _strings(arr: pa.Array) -> pd.Series:
    return pd.Series(pd.arrays.ArrowStringArray(arr), copy=False)


class _Columns(NamedTuple):
    """What every check of a register file reads: its trimmed text columns, the year of each row
    (checked first, since every value set depends on it) and the file's name for the report."""

    text: dict[str, pa.StringArray]
    years: np.ndarray
    source: str


def _require_columns(raw: pd.DataFrame, source: str) -> None:
    """Refuse a file without every register column before anything else: each check reads them."""
    missing = [c for c in V.COLUMNS if c not in raw.columns]
    if missing:
        raise InputDataError(
            Problem(
                "missing_column",
                f"missing register column(s): {', '.join(missing)}",
                file=source,
                hint="a register file has the columns " + ", ".join(V.COLUMNS),
            )
        )


def _register_years(year: pa.StringArray, source: str) -> np.ndarray:
    """Each row's year as int16; a bad year is refused on its own, as every other check depends on it."""
    problems: list[Problem] = []
    year_num = _four_digits(year)
    bad_year = (year_num < V.FIRST_YEAR) | (year_num > V.LAST_YEAR)
    if bad_year.any():
        problems.append(
            _problem(
                "bad_year",
                f"year must be a whole number from {V.FIRST_YEAR} to {V.LAST_YEAR}",
                source,
                "year",
                bad_year,
            )
        )
        raise InputDataError(problems)  # every other check depends on the year
    return year_num.astype(np.int16)


def _identity_problems(cols: _Columns) -> list[Problem]:
    """Rows that cannot be placed at all: a personnummer not shaped like one, an unknown kommun."""
    text, years, source = cols
    problems: list[Problem] = []
    refdates = V.measurement_dates(pd.Series(years))
    parsed = pnr_mod.parse(_strings(text["personnummer"]), reference_date=refdates)
    unshaped = parsed["reason"].isin(["missing", "format"]).to_numpy()
    if unshaped.any():
        problems.append(
            _problem(
                "bad_personnummer",
                "personnummer is missing or not shaped like one (10 or 12 digits, optional '-' or '+')",
                source,
                "personnummer",
                unshaped,
            )
        )

    for col in ("kommun", "beslutande_kommun"):
        bad = ~_kommun_ok(text[col], years)
        if bad.any():
            problems.append(
                _problem(
                    "unknown_kommun",
                    "unknown kommun code for the register year",
                    source,
                    col,
                    bad,
                    hint="four digits, as in SCB's list for that year (Heby is 1917 until 2006)",
                )
            )
    bk = text["boendekommun"]
    bad = _given(bk) & ~_kommun_ok(bk, years)
    if bad.any():
        problems.append(
            _problem(
                "unknown_kommun", "unknown kommun code for the register year", source, "boendekommun", bad
            )
        )
    return problems


def _personkrets(cols: _Columns) -> tuple[pd.Series, list[Problem]]:
    """personkrets and its problems: its value set changed in 2004, and 2004-2006 have none."""
    text, years, source = cols
    problems: list[Problem] = []
    pk = text["personkrets"]
    pk_given = _given(pk)
    pk_var = V.get("personkrets")
    collected = pk_var.collected_mask(years)
    pk_char = _single_chars(pk)
    ok_value = ((pk_char >= ord("1")) & (pk_char <= ord("3"))) | ((pk_char == ord("4")) & (years <= 2003))
    bad = pk_given & collected & ~ok_value
    if bad.any():
        problems.append(
            _problem(
                "bad_value", "personkrets must be 1, 2 or 3 (4 only 1999-2003)", source, "personkrets", bad
            )
        )
    bad = pk_given & ~collected
    if bad.any():
        problems.append(
            _problem(
                "not_collected",
                "personkrets given for 2004-2006, when it was not collected",
                source,
                "personkrets",
                bad,
            )
        )
    return _strings(pk), problems


def _boendekommun_problems(cols: _Columns) -> list[Problem]:
    """boendekommun given in the years it was not collected."""
    text, years, source = cols
    problems: list[Problem] = []
    bk = text["boendekommun"]
    bk_var = V.get("boendekommun")
    bad = _given(bk) & ~bk_var.collected_mask(years)
    if bad.any():
        problems.append(
            _problem(
                "not_collected",
                "boendekommun given for 2004-2006, when it was not collected",
                source,
                "boendekommun",
                bad,
            )
        )
    return problems


def _insatser(cols: _Columns) -> tuple[dict[str, pd.Series], list[Problem]]:
    """The insats flags as nullable int8 (missing in years not collected) and their problems."""
    text, years, source = cols
    out: dict[str, pd.Series] = {}
    problems: list[Problem] = []
    for name in V.INSATSER:
        var = V.get(name)
        s = text[name]
        char = _single_chars(s)
        ok = ~_given(s) | (char == ord("0")) | (char == ord("1"))
        if (~ok).any():
            problems.append(_problem("bad_value", "an insats flag must be 0, 1 or empty", source, name, ~ok))
        coll = var.collected_mask(years)
        one = char == ord("1")
        given_outside = one & ~coll
        if given_outside.any():
            problems.append(
                _problem(
                    "not_collected",
                    f"{name} given in a year it was not collected ({var.years_text()})",
                    source,
                    name,
                    given_outside,
                )
            )
        out[name] = pd.Series(pd.arrays.IntegerArray(one.astype(np.int8), ~coll), copy=False)
    return out, problems


def _amounts(cols: _Columns) -> tuple[dict[str, pd.Series], list[Problem]]:
    """The amounts as nullable floats and their problems (malformed, or given before 2007)."""
    text, years, source = cols
    out: dict[str, pd.Series] = {}
    problems: list[Problem] = []
    for name in V.AMOUNTS:
        var = V.get(name)
        s = text[name]
        num, bad = _numbers(s)
        if bad.any():
            problems.append(_problem("bad_value", "must be a number of 0 or more", source, name, bad))
        outside = _given(s) & ~var.collected_mask(years)
        if outside.any():
            problems.append(
                _problem(
                    "not_collected",
                    f"{name} given before 2007, when it was not collected",
                    source,
                    name,
                    outside,
                )
            )
        missing = np.isnan(num)
        out[name] = pd.Series(pd.arrays.FloatingArray(np.where(missing, 0.0, num), missing), copy=False)
    return out, problems


def coerce_register(raw: pd.DataFrame, source: str = "<data>") -> pd.DataFrame:
    """Turn text columns into the typed register frame, or raise :class:`InputDataError`."""
    _require_columns(raw, source)
    n = len(raw)
    text = {c: _text(raw[c]) for c in V.COLUMNS}
    years = _register_years(text["year"], source)
    cols = _Columns(text, years, source)

    problems = _identity_problems(cols)
    out: dict[str, pd.Series] = {"year": pd.Series(years, dtype="int16")}
    out["personnummer"] = _strings(text["personnummer"])
    for col in V.KOMMUN_COLUMNS:
        out[col] = _strings(text[col])

    out["personkrets"], found = _personkrets(cols)
    problems += found
    problems += _boendekommun_problems(cols)
    insatser, found = _insatser(cols)
    out.update(insatser)
    problems += found
    amounts, found = _amounts(cols)
    out.update(amounts)
    problems += found

    if problems:
        raise InputDataError(problems)
    df = pd.DataFrame(out)
    df.index = pd.RangeIndex(n)
    return df


def registers_in_folder(folder: Path) -> tuple[Path, Path | None]:
    """The LSS register file in a folder (as `lsssdc synth --out` writes it) and its death register.

    Refused, naming the files inside, when the folder holds no single LSS register file.
    """
    names = sorted(p.name for p in folder.iterdir() if p.is_file() and not p.is_symlink())

    def one(stem: str) -> Path | None:
        hits = [folder / n for n in names if n in (f"{stem}.parquet", f"{stem}.csv")]
        if len(hits) > 1:
            raise InputDataError(
                Problem(
                    "ambiguous_folder",
                    f"the folder holds both {hits[0].name} and {hits[1].name}; give the file to use",
                    file=str(folder),
                )
            )
        return hits[0] if hits else None

    lss = one("lss")
    if lss is None:
        shown = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
        raise InputDataError(
            Problem(
                "no_register_in_folder",
                "is a folder without lss.parquet or lss.csv; it holds: " + (shown or "no files"),
                file=str(folder),
                hint="give the register file itself",
            )
        )
    return lss, one("deaths")


def read_register(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read an LSS register file (CSV or Parquet) into the typed register frame."""
    return coerce_register(read_table(path, V.COLUMNS), source=str(path))


def read_deaths(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a death register file: personnummer (12 digits) and death_date (YYYY-MM-DD)."""
    raw = read_table(path, DEATH_COLUMNS)
    source = str(path)
    problems = []
    parsed = pnr_mod.parse(raw["personnummer"])
    bad = ~parsed["valid"].to_numpy()
    if bad.any():
        problems.append(
            _problem(
                "bad_personnummer",
                "personnummer is not valid (12 digits with century expected)",
                source,
                "personnummer",
                bad,
            )
        )
    dates = pd.to_datetime(raw["death_date"], format="%Y-%m-%d", errors="coerce")
    bad = dates.isna().to_numpy()
    if bad.any():
        problems.append(
            _problem("bad_date", "death_date must be a date YYYY-MM-DD", source, "death_date", bad)
        )
    if problems:
        raise InputDataError(problems)
    return pd.DataFrame({"personnummer": parsed["personnummer"], "death_date": dates})


def register_to_text(df: pd.DataFrame) -> pd.DataFrame:
    """The register frame as it is written to files (codes as text, flags as 0/1, amounts as numbers)."""
    return df[list(V.COLUMNS)]


def write_register(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    return write_table(register_to_text(df), path)


def _dates_as_text(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for col in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[col]):
            out[col] = out[col].dt.strftime("%Y-%m-%d").astype("string[pyarrow]")
    return out


def write_registers(
    frames: dict[str, pd.DataFrame], out_dir: str | os.PathLike[str], fmt: str = "parquet"
) -> dict[str, Path]:
    """Write named registers as ``<name>.<fmt>`` files (dates as YYYY-MM-DD), atomically each."""
    if fmt not in ("csv", "parquet"):
        raise InputDataError(Problem("bad_format", f"unknown format '{fmt}'", hint="use csv or parquet"))
    out = Path(out_dir)
    paths = {}
    for name, df in frames.items():
        frame = register_to_text(df) if name == "lss" else _dates_as_text(df)
        paths[name] = write_table(frame, out / f"{name}.{fmt}", fmt)
    return paths
