"""Public reference data shipped with lsssdc: kommuner, län, kommungrupper, population.

Every table comes from a public source named in ``data/SOURCES.md``; nothing is typed in.
Codes are strings (``"0114"``, ``"01"``), never integers. Kommun codes are year-aware: the
register uses the codes in force on its measurement date, so Knivsta (0330) exists from 2003 and
Heby is 1917 (Västmanlands län) up to 2006 and 0331 (Uppsala län) from 2007.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import pandas as pd

_DATA = resources.files(__package__) / "data"

#: Earliest and latest year whose kommun division is known from the shipped tables.
FIRST_YEAR = 1999
#: the code of the whole country above the län (riket), in every table and recoding
RIKET = "00"


def _read(name: str, **kwargs: Any) -> pd.DataFrame:
    with (_DATA / name).open("rb") as fh:
        return pd.read_csv(fh, dtype=str, keep_default_na=False, **kwargs)


@cache
def kommuner() -> pd.DataFrame:
    """The 290 kommuner of today's division: kommun_kod, kommun_namn, lan_kod, lan_namn."""
    return _read("kommuner.csv")


@cache
def lan() -> pd.DataFrame:
    """The 21 län: lan_kod, lan_namn, antal_kommuner."""
    df = _read("lan.csv")
    df["antal_kommuner"] = df["antal_kommuner"].astype(int)
    return df


@cache
def kommungrupper() -> pd.DataFrame:
    """SKR's kommungruppsindelning 2017 (reviderad): grupp A1-C9 and main group A-C per kommun."""
    return _read("kommungrupper.csv")


@cache
def befolkning() -> pd.DataFrame:
    """Folkmängd 31 December 2023 per kommun (SCB)."""
    df = _read("befolkning.csv")
    df["folkmangd"] = df["folkmangd"].astype("int64")
    return df


@cache
def befolkning_series() -> pd.DataFrame:
    """Folkmängd 31 December 2013-2023 per kommun, long form: kommun_kod, year, folkmangd."""
    wide = _read("befolkning_2013_2023.csv")
    long = wide.melt(id_vars=["kommun_kod", "kommun_namn"], var_name="col", value_name="folkmangd")
    long["year"] = long["col"].str.slice(10, 14).astype(int)
    long["folkmangd"] = long["folkmangd"].astype("int64")
    return long[["kommun_kod", "kommun_namn", "year", "folkmangd"]]


@cache
def kommun_changes() -> pd.DataFrame:
    """Kommun code and name changes affecting 1999 onwards, each with its source."""
    df = _read("kommun_changes.csv")
    df["year"] = df["year"].astype(int)
    return df


@cache
def kommun_years() -> pd.DataFrame:
    """Every kommun code with the years it is valid: kommun_kod, kommun_namn, lan_kod, first, last.

    ``last`` is missing for codes still in force. Built from today's list and the change table.
    """
    df = kommuner()[["kommun_kod", "kommun_namn", "lan_kod"]].copy()
    df["first_year"] = FIRST_YEAR
    df["last_year"] = pd.NA
    ch = kommun_changes()
    for _, c in ch[ch["change_type"] != "name_change_only"].iterrows():  # a handful of rows
        if c["effective_date"].endswith("-01-01") and c["year"] > FIRST_YEAR:
            df.loc[df["kommun_kod"] == c["new_kommun_kod"], "first_year"] = c["year"]
        if c["change_type"] == "county_transfer_code_change":
            df.loc[len(df)] = [
                c["old_kommun_kod"],
                c["old_kommun_namn"],
                c["old_lan_kod"],
                FIRST_YEAR,
                c["year"] - 1,
            ]
    df["first_year"] = df["first_year"].astype(int)
    df["last_year"] = df["last_year"].astype("Int64")
    return df.sort_values("kommun_kod").reset_index(drop=True)


@cache
def kommun_codes(year: int) -> frozenset[str]:
    """The kommun codes in force in a register year."""
    ky = kommun_years()
    ok = (ky["first_year"] <= year) & (ky["last_year"].isna() | (ky["last_year"] >= year))
    return frozenset(ky.loc[ok, "kommun_kod"])


@cache
def all_kommun_codes() -> frozenset[str]:
    """Every kommun code valid in some register year."""
    return frozenset(kommun_years()["kommun_kod"])


def harmonise_kommun(codes: pd.Series) -> pd.Series:
    """Map historical codes to today's (1917 Heby -> 0331), for comparisons across years."""
    ch = kommun_changes()
    recode = ch[ch["change_type"] == "county_transfer_code_change"]
    return codes.replace(dict(zip(recode["old_kommun_kod"], recode["new_kommun_kod"], strict=True)))


def lan_of(codes: pd.Series) -> pd.Series:
    """The län code of each kommun code (its first two digits, which holds for every year)."""
    return codes.astype("string").str.slice(0, 2)


@cache
def lss_marginals() -> pd.DataFrame:
    """Published national LSS figures (persons by insats and sex 2021, rates by personkrets)."""
    df = _read("lss_marginals.csv")
    df["value"] = pd.to_numeric(df["value"])
    return df


@cache
def test_personnummer() -> pd.Series:
    """A sample of 1,000 of Skatteverket's official test personnummer (never assigned)."""
    return _read("testpersonnummer_sample.csv")["testpersonnummer_12"]
