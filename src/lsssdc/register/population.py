"""The population a delivery's persons are drawn from: folkmängd per year, kommun, sex and age.

Being in the LSS register reveals a disability, so a delivery must not cover too much of any
group of the population an intruder can name (delta-presence): if nearly every person of a
kommun's, sex's and age's population is in the delivery, finding someone in that group in the
population is finding them in the delivery. The gate measures that share with a population
table in Statistics Sweden's published form (folkmängd by region, sex, age and year): columns
``year``, ``kommun``, ``sex`` ("1" men, "2" women), ``age`` (whole years) and ``folkmangd``.

The demo's population is synthetic: each kommun's published folkmängd (SCB, 31 December
2013-2023, the nearest year outside that span) spread over sex and age by a smooth profile.
It is for the demo only; a real release uses the agency's population register extract.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from lsssdc import refdata
from lsssdc.errors import InputDataError, Problem

COLUMNS = ("year", "kommun", "sex", "age", "folkmangd")
MAX_AGE = 105


def _age_profile() -> np.ndarray:
    """A smooth age profile of a Swedish-like population (shares of ages 0-105; synthetic)."""
    age = np.arange(MAX_AGE + 1, dtype=float)
    survival = 1.0 / (1.0 + np.exp((age - 84.0) / 6.0))
    return survival / survival.sum()


def synthesise(years: list[int] | range) -> pd.DataFrame:
    """A synthetic population table for the given years (demo only; see the module text)."""
    series = refdata.befolkning_series()
    spans = sorted(series["year"].unique())
    frames = []
    profile = _age_profile()
    for year in years:
        nearest = min(spans, key=lambda y: abs(y - int(year)))
        totals = series.loc[series["year"] == nearest, ["kommun_kod", "folkmangd"]]
        n_k = len(totals)
        per_age = np.outer(totals["folkmangd"].to_numpy(float), profile)  # kommun x age
        men = np.floor(per_age * 0.5).astype(np.int64)
        women = np.rint(per_age).astype(np.int64) - men
        ages = np.tile(np.arange(MAX_AGE + 1), n_k)
        kommun = np.repeat(totals["kommun_kod"].to_numpy(), MAX_AGE + 1)
        for sex, counts in (("1", men), ("2", women)):
            frames.append(
                pd.DataFrame(
                    {
                        "year": np.int16(year),
                        "kommun": kommun,
                        "sex": sex,
                        "age": ages.astype(np.int16),
                        "folkmangd": counts.ravel(),
                    }
                )
            )
    out = pd.concat(frames, ignore_index=True)
    for col in ("kommun", "sex"):
        out[col] = out[col].astype("string[pyarrow]")
    return out


def write(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(target, index=False)
    return target


def read(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read and check a population table (CSV or Parquet); a problem names the file and rows."""
    p = Path(path)
    try:
        if p.suffix.lower() == ".parquet":
            raw = pd.read_parquet(p)
        else:
            raw = pd.read_csv(p, dtype=str, keep_default_na=False, encoding="utf-8")
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise InputDataError(
            Problem("bad_population", f"the population table cannot be read: {exc}", file=str(p))
        ) from None
    missing = [c for c in COLUMNS if c not in raw.columns]
    if missing:
        raise InputDataError(
            Problem(
                "bad_population",
                "the population table lacks the column(s) " + ", ".join(missing),
                file=str(p),
                hint="columns: " + ", ".join(COLUMNS),
            )
        )
    out = pd.DataFrame()
    problems = []
    for col in ("year", "age", "folkmangd"):
        values = pd.to_numeric(raw[col].astype("string"), errors="coerce")
        bad = values.isna() | (values < 0) | (values != values.round())
        if bad.any():
            rows = tuple(int(i) + 2 for i in np.flatnonzero(bad.to_numpy())[:10])
            problems.append(
                Problem("bad_population", f"'{col}' is not a whole number >= 0", file=str(p), rows=rows)
            )
        out[col] = values.fillna(0).astype("int64")
    out["sex"] = raw["sex"].astype("string").str.strip()
    bad_sex = ~out["sex"].isin(["1", "2"]).fillna(False)
    if bad_sex.any():
        rows = tuple(int(i) + 2 for i in np.flatnonzero(bad_sex.to_numpy())[:10])
        problems.append(Problem("bad_population", "'sex' must be 1 or 2", file=str(p), rows=rows))
    out["kommun"] = raw["kommun"].astype("string").str.strip().str.zfill(4)
    known = refdata.all_kommun_codes()
    bad_k = ~out["kommun"].isin(list(known)).fillna(False)
    if bad_k.any():
        rows = tuple(int(i) + 2 for i in np.flatnonzero(bad_k.to_numpy())[:10])
        problems.append(Problem("bad_population", "unknown kommun code", file=str(p), rows=rows))
    if problems:
        raise InputDataError(problems)
    return out[list(COLUMNS)]
