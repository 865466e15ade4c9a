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
from pathlib import Path

import numpy as np
import pandas as pd

from lsssdc import refdata
from lsssdc.errors import InputDataError, Problem
from lsssdc.identity import personnummer as pnr_mod
from lsssdc.register import variables as V
from lsssdc.tables_io import read_table, write_table

DEATH_COLUMNS = ("personnummer", "death_date")


def _rows(mask: np.ndarray) -> tuple[tuple[int, ...], int]:
    idx = np.flatnonzero(mask)
    return tuple(int(i) + 1 for i in idx[:20]), int(len(idx))


def _problem(
    code: str, message: str, source: str, column: str, mask: np.ndarray, hint: str | None = None
) -> Problem:
    rows, count = _rows(mask)
    return Problem(code, message, file=source, column=column, rows=rows, row_count=count, hint=hint)


def _valid_kommun_keys() -> np.ndarray:
    ky = refdata.kommun_years()
    keys = []
    for year in range(V.FIRST_YEAR, V.LAST_YEAR + 1):
        ok = (ky["first_year"] <= year) & (ky["last_year"].isna() | (ky["last_year"] >= year))
        keys.append(year * 10000 + ky.loc[ok, "kommun_kod"].astype(int).to_numpy())
    return np.concatenate(keys)


def _kommun_ok(codes: pd.Series, years: np.ndarray) -> np.ndarray:
    s = codes.astype("string")
    shaped = s.str.fullmatch(r"\d{4}").fillna(False).to_numpy(dtype=bool)
    num = pd.to_numeric(s.where(shaped), errors="coerce").fillna(-1).to_numpy(dtype=np.int64)
    return shaped & np.isin(years.astype(np.int64) * 10000 + num, _valid_kommun_keys())


def coerce_register(raw: pd.DataFrame, source: str = "<data>") -> pd.DataFrame:
    """Turn text columns into the typed register frame, or raise :class:`InputDataError`."""
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
    problems: list[Problem] = []
    n = len(raw)
    text = {c: raw[c].astype("string").str.strip() for c in V.COLUMNS}
    text = {c: s.where(s != "", pd.NA) for c, s in text.items()}

    year_num = pd.to_numeric(text["year"], errors="coerce")
    bad_year = (
        year_num.isna() | (year_num % 1 != 0) | (year_num < V.FIRST_YEAR) | (year_num > V.LAST_YEAR)
    ).to_numpy(dtype=bool)
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
    years = year_num.to_numpy(dtype=np.int16)

    refdates = V.measurement_dates(pd.Series(years))
    parsed = pnr_mod.parse(text["personnummer"], reference_date=refdates)
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
    bad = bk.notna().to_numpy() & ~_kommun_ok(bk, years)
    if bad.any():
        problems.append(
            _problem(
                "unknown_kommun", "unknown kommun code for the register year", source, "boendekommun", bad
            )
        )

    out: dict[str, pd.Series] = {"year": pd.Series(years, dtype="int16")}
    out["personnummer"] = text["personnummer"].astype("string[pyarrow]")
    for col in V.KOMMUN_COLUMNS:
        out[col] = text[col].astype("string[pyarrow]")

    pk = text["personkrets"]
    pk_given = pk.notna().to_numpy()
    pk_var = V.get("personkrets")
    collected = pk_var.collected_mask(years)
    ok_value = pk.isin(["1", "2", "3"]).to_numpy() | (
        pk.eq("4").fillna(False).to_numpy(dtype=bool) & (years <= 2003)
    )
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
    out["personkrets"] = pk.astype("string[pyarrow]")

    bk_var = V.get("boendekommun")
    bad = bk.notna().to_numpy() & ~bk_var.collected_mask(years)
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

    for name in V.INSATSER:
        var = V.get(name)
        s = text[name]
        ok = s.isna().to_numpy() | s.isin(["0", "1"]).to_numpy()
        if (~ok).any():
            problems.append(_problem("bad_value", "an insats flag must be 0, 1 or empty", source, name, ~ok))
        coll = var.collected_mask(years)
        given_outside = s.eq("1").fillna(False).to_numpy(dtype=bool) & ~coll
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
        num = pd.to_numeric(s.where(ok), errors="coerce").fillna(0).astype("Int8")
        out[name] = num.where(coll, pd.NA).astype("Int8")

    for name in V.AMOUNTS:
        var = V.get(name)
        s = text[name]
        num = pd.to_numeric(s, errors="coerce")
        bad = (s.notna() & (num.isna() | (num < 0))).to_numpy(dtype=bool)
        if bad.any():
            problems.append(_problem("bad_value", "must be a number of 0 or more", source, name, bad))
        outside = s.notna().to_numpy() & ~var.collected_mask(years)
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
        out[name] = num.astype("Float64")

    if problems:
        raise InputDataError(problems)
    df = pd.DataFrame(out)
    df.index = pd.RangeIndex(n)
    return df


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
