"""Every plausibility rule R01-R21 on tiny hand-made registers: one passing and one failing case
each, the year boundaries where the rules change, the age boundaries, and the counting units.

The builder helpers at the top (``person``, ``row``, ``frame``) are also used by the file and
command line tests.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pandas as pd
import pytest

from lsssdc.register import files, rules
from lsssdc.register import variables as V

# --------------------------------------------------------------------------------------------
# builder: typed register frames by hand (the dtypes coerce_register gives)


def luhn(nine: str) -> int:
    total = 0
    for i, ch in enumerate(nine):
        v = int(ch) * (2 if i % 2 == 0 else 1)
        total += v - 9 if v > 9 else v
    return (10 - total % 10) % 10


def person(born: dt.date | str, nnn: int = 123, samord: bool = False) -> str:
    """A valid 12-digit personnummer for a birth date (nnn odd: man, even: woman)."""
    b = dt.date.fromisoformat(born) if isinstance(born, str) else born
    day = b.day + (60 if samord else 0)
    nine = f"{b.year % 100:02d}{b.month:02d}{day:02d}{nnn:03d}"
    return f"{b.year // 100:02d}{nine}{luhn(nine)}"


def with_bad_check_digit(pnr: str) -> str:
    return pnr[:-1] + str((int(pnr[-1]) + 1) % 10)


def turning(age: int, year: int, month: int = 12, day: int = 31) -> dt.date:
    """A birth date of a person who turns ``age`` during ``year`` (31 December by default, so
    the person is still ``age - 1`` on the measurement date)."""
    return dt.date(year - age, month, day)


def row(
    year: int, pnr: str, kommun: str = "0180", personkrets: str | None = "default", **values: Any
) -> dict:
    """One register row: flags default to 0 where collected (missing where not)."""
    r: dict[str, Any] = {"year": year, "personnummer": pnr, "kommun": kommun, "beslutande_kommun": kommun}
    r["boendekommun"] = None
    if personkrets == "default":
        personkrets = "1" if V.get("personkrets").collected(year) else None
    r["personkrets"] = personkrets
    for name in V.INSATSER:
        r[name] = 0 if V.get(name).collected(year) else None
    for name in V.AMOUNTS:
        r[name] = None
    unknown = set(values) - set(V.COLUMNS)
    if unknown:
        raise KeyError(f"not a register column: {sorted(unknown)}")
    r.update(values)
    return r


def frame(rows: list[dict]) -> pd.DataFrame:
    """The typed register frame (dtypes as coerce_register gives them)."""
    df = pd.DataFrame(rows, columns=list(V.COLUMNS))
    out = pd.DataFrame(index=pd.RangeIndex(len(df)))
    out["year"] = df["year"].astype("int16")
    for col in ("personnummer", "kommun", "beslutande_kommun", "boendekommun", "personkrets"):
        out[col] = pd.array(df[col].where(df[col].notna(), None).tolist(), dtype="string[pyarrow]")
    for name in V.INSATSER:
        out[name] = pd.array(df[name].where(df[name].notna(), None).tolist(), dtype="Int8")
    for name in V.AMOUNTS:
        out[name] = pd.array(df[name].where(df[name].notna(), None).tolist(), dtype="Float64")
    return out[list(V.COLUMNS)]


def as_text(df: pd.DataFrame) -> pd.DataFrame:
    """The frame as a CSV reader gives it: every column text, empty as missing."""
    out = pd.DataFrame(index=df.index)
    for col in df.columns:
        s = df[col]
        if str(s.dtype) == "Float64":
            text = s.astype("object").map(lambda v: None if pd.isna(v) else f"{v:g}")
        else:
            text = s.astype("object").map(lambda v: None if pd.isna(v) else str(v))
        out[col] = text
    return out


def raw_pnr(year: int, month: int, day: int, nnn: int) -> str:
    """A 12-digit number with a correct check digit for any (even impossible) date."""
    nine = f"{year % 100:02d}{month:02d}{day:02d}{nnn:03d}"
    return f"{year // 100:02d}{nine}{luhn(nine)}"


# --------------------------------------------------------------------------------------------
# running the rules


def findings(report: rules.ValidationReport) -> dict[tuple[str, str], int]:
    return {(f.rule, f.severity): f.count for f in report.findings}


def check(rows: list[dict], deaths: pd.DataFrame | None = None) -> rules.ValidationReport:
    return rules.validate(frame(rows), deaths)


A = person("1980-05-05", 123)  # a man aged 30 in 2010
B = person("1975-03-03", 242)  # a woman
KP = {"kontaktperson": 1}  # a neutral insats every age may have


# --------------------------------------------------------------------------------------------
# one passing and one failing case per rule (plus the boundaries), as a table

ERR, WARN = "error", "warning"


def t(age: int, year: int, month: int = 12, day: int = 31) -> str:
    return person(turning(age, year, month, day), 101)


CASES: list[tuple[str, list[dict], dict[tuple[str, str], int]]] = [
    # R01 personnummer
    ("R01 valid", [row(2010, A, **KP)], {}),
    ("R01 samordningsnummer valid", [row(2010, person("1970-10-03", 239, samord=True), **KP)], {}),
    ("R01 check digit", [row(2010, with_bad_check_digit(A), **KP)], {("R01", ERR): 1}),
    ("R01 30 February", [row(2010, raw_pnr(1980, 2, 30, 123), **KP)], {("R01", ERR): 1}),
    ("R01 29 Feb 1900", [row(2010, raw_pnr(1900, 2, 29, 123), **KP)], {("R01", ERR): 1}),
    ("R01 29 Feb 2000 exists", [row(2010, raw_pnr(2000, 2, 29, 123), **KP)], {}),
    ("R01 month 13", [row(2010, raw_pnr(1980, 13, 1, 123), **KP)], {("R01", ERR): 1}),
    ("R01 birth number 000", [row(2010, raw_pnr(1980, 5, 5, 0), **KP)], {("R01", ERR): 1}),
    ("R01 born after the measurement date", [row(2010, person("2010-10-02"), **KP)], {("R01", ERR): 1}),
    ("R01 born on the measurement date", [row(2010, person("2010-10-01"), **KP)], {}),
    # R03 personkrets given (not collected 2004-2006)
    ("R03 given", [row(2003, A, personkrets="1", **KP)], {}),
    ("R03 missing 1999", [row(1999, A, personkrets=None, **KP)], {("R03", ERR): 1}),
    ("R03 missing 2003", [row(2003, A, personkrets=None, **KP)], {("R03", ERR): 1}),
    ("R03 not collected 2004", [row(2004, A, personkrets=None, **KP)], {}),
    ("R03 not collected 2006", [row(2006, A, personkrets=None, **KP)], {}),
    ("R03 missing 2007", [row(2007, A, personkrets=None, **KP)], {("R03", ERR): 1}),
    # R04 korttidstillsyn from the year the person turns 12 to the year the person turns 23
    ("R04 turns 11", [row(2015, t(11, 2015), korttidstillsyn=1)], {("R04", ERR): 1}),
    ("R04 turns 12, still 11", [row(2015, t(12, 2015), korttidstillsyn=1)], {}),
    ("R04 turns 12 in January", [row(2015, t(12, 2015, 1, 1), korttidstillsyn=1)], {}),
    ("R04 turns 23", [row(2015, t(23, 2015, 1, 1), korttidstillsyn=1)], {}),
    ("R04 turns 24, still 23", [row(2015, t(24, 2015), korttidstillsyn=1)], {("R04", ERR): 1}),
    # R05 at most one housing insats per person-year
    ("R05 one housing", [row(2010, A, bostad_vuxna=1)], {}),
    ("R05 two on one row", [row(2010, A, bostad_vuxna=1, annan_bostad_vuxna=1)], {("R05", ERR): 1}),
    (
        "R05 three on one row",
        [row(2010, t(20, 2010), familjehem=1, bostad_barn=1, bostad_vuxna=1)],
        {("R05", ERR): 1},
    ),
    (
        "R05 split over two kommuner is one person-year",
        [row(2010, A, "0180", bostad_vuxna=1), row(2010, A, "0114", annan_bostad_vuxna=1)],
        {("R05", ERR): 1},
    ),
    (
        "R05 boende vuxna 2003 with familjehem",
        [row(2003, t(20, 2003), boende_vuxna=1, familjehem=1)],
        {("R05", ERR): 1},
    ),
    (
        "R05 two years count twice",
        [
            row(2010, A, bostad_vuxna=1, annan_bostad_vuxna=1),
            row(2011, A, bostad_vuxna=1, annan_bostad_vuxna=1),
        ],
        {("R05", ERR): 2},
    ),
    (
        "R05 different housing in different years",
        [row(2010, A, bostad_vuxna=1), row(2011, A, annan_bostad_vuxna=1)],
        {},
    ),
    # R06 not both daglig verksamhet and korttidstillsyn: error to 2019, warning from 2020
    ("R06 only daglig verksamhet", [row(2019, t(18, 2019), daglig_verksamhet=1)], {}),
    (
        "R06 both 2019",
        [row(2019, t(18, 2019), daglig_verksamhet=1, korttidstillsyn=1)],
        {("R06", ERR): 1},
    ),
    (
        "R06 both 2020",
        [row(2020, t(18, 2020), daglig_verksamhet=1, korttidstillsyn=1)],
        {("R06", WARN): 1},
    ),
    (
        "R06 split over two kommuner is one person-year",
        [
            row(2019, t(18, 2019), "0180", daglig_verksamhet=1),
            row(2019, t(18, 2019), "0114", korttidstillsyn=1),
        ],
        {("R06", ERR): 1},
    ),
    (
        "R06 2019 and 2020",
        [
            row(2019, t(18, 2019), daglig_verksamhet=1, korttidstillsyn=1),
            row(2020, t(18, 2019), daglig_verksamhet=1, korttidstillsyn=1),
        ],
        {("R06", ERR): 1, ("R06", WARN): 1},
    ),
    # R07 a personnummer once per kommun and year
    ("R07 two kommuner", [row(2010, A, "0180", **KP), row(2010, A, "0114", ledsagarservice=1)], {}),
    ("R07 two years", [row(2010, A, **KP), row(2011, A, **KP)], {}),
    ("R07 twice", [row(2010, A, **KP), row(2010, A, ledsagarservice=1)], {("R07", ERR): 1}),
    (
        "R07 three times is one group",
        [row(2010, A, **KP), row(2010, A, ledsagarservice=1), row(2010, A, avlosarservice=1)],
        {("R07", ERR): 1},
    ),
    (
        "R07 two persons twice",
        [row(2010, A, **KP), row(2010, A, **KP), row(2010, B, **KP), row(2010, B, **KP)],
        {("R07", ERR): 2},
    ),
    (
        "R07 one person in two shapes",
        [row(2010, A, **KP), row(2010, A[2:8] + "-" + A[8:], **KP)],
        {("R07", ERR): 1},
    ),
    # R08 at least one insats
    ("R08 one insats", [row(2010, A, **KP)], {}),
    ("R08 no insats", [row(2010, A)], {("R08", ERR): 1}),
    ("R08 no insats 2003", [row(2003, A)], {("R08", ERR): 1}),
    ("R08 boende vuxna 2003 counts", [row(2003, A, boende_vuxna=1)], {}),
    # R09 the same insats from one kommun only
    ("R09 different insatser", [row(2010, A, "0180", **KP), row(2010, A, "0114", ledsagarservice=1)], {}),
    ("R09 same insats", [row(2010, A, "0180", **KP), row(2010, A, "0114", **KP)], {("R09", ERR): 1}),
    (
        "R09 three kommuner is one person-insats",
        [row(2010, A, "0180", **KP), row(2010, A, "0114", **KP), row(2010, A, "0115", **KP)],
        {("R09", ERR): 1},
    ),
    (
        "R09 two insatser twice",
        [
            row(2010, A, "0180", kontaktperson=1, ledsagarservice=1),
            row(2010, A, "0114", kontaktperson=1, ledsagarservice=1),
        ],
        {("R09", ERR): 2},
    ),
    ("R09 same insats other year", [row(2010, A, "0180", **KP), row(2011, A, "0114", **KP)], {}),
    ("R09 different persons", [row(2010, A, "0180", **KP), row(2010, B, "0114", **KP)], {}),
    # R10 familjehem up to the year the person turns 25
    ("R10 turns 25", [row(2015, t(25, 2015, 1, 1), familjehem=1)], {}),
    ("R10 turns 26, still 25", [row(2015, t(26, 2015), familjehem=1)], {("R10", ERR): 1}),
    # R11 bostad barn up to the year the person turns 25
    ("R11 turns 25", [row(2015, t(25, 2015, 1, 1), bostad_barn=1)], {}),
    ("R11 turns 26, still 25", [row(2015, t(26, 2015), bostad_barn=1)], {("R11", ERR): 1}),
    # R12 bostad vuxna (boende vuxna to 2003) from the year the person turns 17
    ("R12 turns 17, still 16", [row(2010, t(17, 2010), bostad_vuxna=1)], {}),
    ("R12 turns 16", [row(2010, t(16, 2010, 1, 1), bostad_vuxna=1)], {("R12", ERR): 1}),
    ("R12 boende vuxna turns 17 in 2003", [row(2003, t(17, 2003), boende_vuxna=1)], {}),
    ("R12 boende vuxna turns 16 in 2003", [row(2003, t(16, 2003), boende_vuxna=1)], {("R12", ERR): 1}),
    ("R12 bostad vuxna turns 16 in 2004", [row(2004, t(16, 2004), bostad_vuxna=1)], {("R12", ERR): 1}),
    # R13 annan särskilt anpassad bostad from the year the person turns 17
    ("R13 turns 17", [row(2010, t(17, 2010), annan_bostad_vuxna=1)], {}),
    ("R13 turns 16", [row(2010, t(16, 2010, 1, 1), annan_bostad_vuxna=1)], {("R13", ERR): 1}),
    # R14 daglig verksamhet only for personkrets 1 and 2
    ("R14 personkrets 1", [row(2010, A, personkrets="1", daglig_verksamhet=1)], {}),
    ("R14 personkrets 2", [row(2010, A, personkrets="2", daglig_verksamhet=1)], {}),
    ("R14 personkrets 3", [row(2010, A, personkrets="3", daglig_verksamhet=1)], {("R14", ERR): 1}),
    (
        "R14 value 4 in 2003 is group 3",
        [row(2003, A, personkrets="4", daglig_verksamhet=1)],
        {("R14", ERR): 1},
    ),
    ("R14 not collected 2004", [row(2004, A, personkrets=None, daglig_verksamhet=1)], {}),
    ("R14 not collected 2006", [row(2006, A, personkrets=None, daglig_verksamhet=1)], {}),
    ("R14 personkrets 3 in 2007", [row(2007, A, personkrets="3", daglig_verksamhet=1)], {("R14", ERR): 1}),
    # R15 daglig verksamhet from the year the person turns 16
    ("R15 turns 16, still 15", [row(2010, t(16, 2010), daglig_verksamhet=1)], {}),
    ("R15 turns 15", [row(2010, t(15, 2010, 1, 1), daglig_verksamhet=1)], {("R15", ERR): 1}),
    # R16 personlig assistans hours: warning above 175 to 2020, error above 744 2021, 1488 from 2022
    ("R16 2007 at 175", [row(2007, A, personlig_assistans=1, hours_personlig_assistans=175)], {}),
    (
        "R16 2007 above 175",
        [row(2007, A, personlig_assistans=1, hours_personlig_assistans=176)],
        {("R16", WARN): 1},
    ),
    (
        "R16 2020 above 744 still a warning",
        [row(2020, A, personlig_assistans=1, hours_personlig_assistans=800)],
        {("R16", WARN): 1},
    ),
    ("R16 2021 at 744", [row(2021, A, personlig_assistans=1, hours_personlig_assistans=744)], {}),
    (
        "R16 2021 above 744",
        [row(2021, A, personlig_assistans=1, hours_personlig_assistans=744.5)],
        {("R16", ERR): 1},
    ),
    (
        "R16 2021 at 1488",
        [row(2021, A, personlig_assistans=1, hours_personlig_assistans=1488)],
        {("R16", ERR): 1},
    ),
    ("R16 2022 at 1488", [row(2022, A, personlig_assistans=1, hours_personlig_assistans=1488)], {}),
    (
        "R16 2022 above 1488",
        [row(2022, A, personlig_assistans=1, hours_personlig_assistans=1489)],
        {("R16", ERR): 1},
    ),
    # R17 ledsagarservice hours: warning above 45 to 2020, error above 744 from 2021
    ("R17 2020 at 45", [row(2020, A, ledsagarservice=1, hours_ledsagarservice=45)], {}),
    ("R17 2020 above 45", [row(2020, A, ledsagarservice=1, hours_ledsagarservice=46)], {("R17", WARN): 1}),
    ("R17 2021 at 744", [row(2021, A, ledsagarservice=1, hours_ledsagarservice=744)], {}),
    ("R17 2021 above 744", [row(2021, A, ledsagarservice=1, hours_ledsagarservice=745)], {("R17", ERR): 1}),
    ("R17 2024 above 744", [row(2024, A, ledsagarservice=1, hours_ledsagarservice=745)], {("R17", ERR): 1}),
    # R18 avlösarservice hours
    ("R18 2020 at 45", [row(2020, A, avlosarservice=1, hours_avlosarservice=45)], {}),
    ("R18 2020 above 45", [row(2020, A, avlosarservice=1, hours_avlosarservice=45.5)], {("R18", WARN): 1}),
    ("R18 2021 at 744", [row(2021, A, avlosarservice=1, hours_avlosarservice=744)], {}),
    ("R18 2021 above 744", [row(2021, A, avlosarservice=1, hours_avlosarservice=745)], {("R18", ERR): 1}),
    # R19 korttidsvistelse days: warning above 11 to 2020, error above 31 from 2021
    ("R19 2020 at 11", [row(2020, A, korttidsvistelse=1, days_korttidsvistelse=11)], {}),
    ("R19 2020 above 11", [row(2020, A, korttidsvistelse=1, days_korttidsvistelse=12)], {("R19", WARN): 1}),
    ("R19 2021 at 31", [row(2021, A, korttidsvistelse=1, days_korttidsvistelse=31)], {}),
    ("R19 2021 above 31", [row(2021, A, korttidsvistelse=1, days_korttidsvistelse=32)], {("R19", ERR): 1}),
    # R20 warning: daglig verksamhet over 70 (age on the measurement date)
    ("R20 aged 70", [row(2010, person("1940-01-01"), daglig_verksamhet=1)], {}),
    ("R20 turns 71, still 70", [row(2010, person("1939-12-31"), daglig_verksamhet=1)], {}),
    ("R20 aged 71", [row(2010, person("1939-01-01"), daglig_verksamhet=1)], {("R20", WARN): 1}),
    # R21 an amount only with its insats
    ("R21 hours with insats", [row(2010, A, personlig_assistans=1, hours_personlig_assistans=100)], {}),
    ("R21 hours without insats", [row(2010, A, **KP, hours_personlig_assistans=100)], {("R21", ERR): 1}),
    ("R21 days without insats", [row(2010, A, **KP, days_korttidsvistelse=3)], {("R21", ERR): 1}),
    (
        "R21 two amounts on one row count once",
        [row(2010, A, **KP, hours_ledsagarservice=3, hours_avlosarservice=4)],
        {("R21", ERR): 1},
    ),
    ("R21 zero hours without insats", [row(2010, A, **KP, hours_avlosarservice=0)], {("R21", ERR): 1}),
]


@pytest.mark.parametrize(("name", "rows", "expected"), CASES, ids=[c[0] for c in CASES])
def test_rule_case(name, rows, expected):
    report = check(rows)
    assert findings(report) == expected
    assert report.ok == (not any(sev == ERR for _, sev in expected))


def test_every_rule_has_a_passing_and_a_failing_case():
    failing = {rule for _, _, exp in CASES for rule, _ in exp}
    passing = {name[:3] for name, _, exp in CASES if not exp}
    expected = set(rules.RULE_IDS) - {"R02"}  # R02 needs a death register: tested below
    assert failing == expected
    assert passing == expected


def test_rule_ids_are_r01_to_r21_in_order():
    expected = tuple(f"R{i:02d}" for i in range(1, 22))
    assert expected == rules.RULE_IDS


# --------------------------------------------------------------------------------------------
# R02 with a death register


def deaths(pairs: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "personnummer": pd.array([p for p, _ in pairs], dtype="string[pyarrow]"),
            "death_date": pd.to_datetime([d for _, d in pairs]),
        }
    )


@pytest.mark.parametrize(
    ("year", "measured"), [(2000, "2000-06-01"), (2002, "2002-09-01"), (2003, "2003-10-01")]
)
def test_r02_death_before_and_after_the_measurement_date(year, measured):
    m = dt.date.fromisoformat(measured)
    assert V.measurement_date(year) == m
    before, after = person("1950-01-01", 11), person("1950-01-01", 13)
    on_day, alive = person("1950-01-01", 15), person("1950-01-01", 17)
    reg = [row(year, p, **KP) for p in (before, after, on_day, alive)]
    d = deaths(
        [
            (before, str(m - dt.timedelta(days=1))),
            (after, str(m + dt.timedelta(days=1))),
            (on_day, str(m)),  # alive during the measurement day: not an error
        ]
    )
    report = check(reg, d)
    assert findings(report) == {("R02", ERR): 1}
    assert report.findings[0].rows.tolist() == [1]
    assert report.deaths_checked


def test_r02_not_checked_without_a_death_register():
    p = person("1950-01-01", 11)
    report = check([row(2010, p, **KP)])
    assert not report.deaths_checked
    assert "R02" not in [r["rule"] for r in report.to_dict()["rules_checked"]]
    assert "R02 not checked" in report.render()
    with_deaths = check([row(2010, p, **KP)], deaths([(p, "2009-01-01")]))
    assert findings(with_deaths) == {("R02", ERR): 1}
    assert "R02" in [r["rule"] for r in with_deaths.to_dict()["rules_checked"]]


def test_r02_counts_each_row_of_a_dead_person_and_matches_ten_digit_forms():
    p = person("1950-01-01", 11)
    short = p[2:8] + "-" + p[8:]
    reg = [row(2010, p, "0180", **KP), row(2010, short, "0114", ledsagarservice=1), row(2009, p, **KP)]
    report = check(reg, deaths([(p, "2010-01-01")]))
    assert findings(report) == {("R02", ERR): 2}
    assert report.findings[0].rows.tolist() == [1, 2]


def test_r02_ignores_an_invalid_row_and_an_empty_death_register():
    p = person("1950-01-01", 11)
    report = check([row(2010, with_bad_check_digit(p), **KP)], deaths([(p, "2009-01-01")]))
    assert findings(report) == {("R01", ERR): 1}
    empty = check([row(2010, p, **KP)], deaths([]))
    assert findings(empty) == {} and empty.deaths_checked


# --------------------------------------------------------------------------------------------
# the report


def test_rows_are_one_based_data_rows_and_counts_follow_the_unit():
    reg = [
        row(2010, A, **KP),  # 1
        row(2010, B, "0180", **KP),  # 2  R07 group with 3, R09 with 4
        row(2010, B, "0180", **KP),  # 3
        row(2010, B, "0114", **KP),  # 4
        row(2010, person("1990-01-01"), **KP, hours_avlosarservice=2),  # 5 R21
    ]
    report = check(reg)
    assert findings(report) == {("R07", ERR): 1, ("R09", ERR): 1, ("R21", ERR): 1}
    by_rule = {f.rule: f for f in report.findings}
    assert by_rule["R07"].rows.tolist() == [2, 3]
    assert by_rule["R09"].rows.tolist() == [2, 3, 4]
    assert by_rule["R21"].rows.tolist() == [5]
    assert by_rule["R07"].unit == "groups" and by_rule["R09"].unit == "person-insats"
    assert {r.id: r.unit for r in rules.RULES}["R05"] == "person-years"
    assert report.errors == 3 and report.warnings == 0 and not report.ok
    assert report.count("R09") == 1 and report.count("R09", "warning") == 0


def test_one_finding_per_rule_and_severity():
    reg = [
        row(2010, A, "0180", kontaktperson=1, ledsagarservice=1),
        row(2010, A, "0114", kontaktperson=1, ledsagarservice=1),
    ]
    report = check(reg)
    assert [(f.rule, f.severity, f.count) for f in report.findings] == [("R09", ERR, 2)]
    assert report.findings[0].rows.tolist() == [1, 2]


def test_report_as_json_and_table_never_shows_a_personnummer():
    people = [person("1980-05-05", n) for n in range(1, 40, 2)]
    reg = [row(2021, p, personlig_assistans=1, hours_personlig_assistans=800) for p in people]
    reg.append(row(2021, with_bad_check_digit(people[0]), **KP))
    report = check(reg)
    d = report.to_dict()
    text = json.dumps(d) + report.render()
    for p in people + [with_bad_check_digit(people[0])]:
        assert p not in text and p[2:] not in text
    assert d["verdict"] == "rejected" and d["errors"] == 21
    f = {x["rule"]: x for x in d["findings"]}
    assert f["R16"] == {
        "rule": "R16",
        "severity": "error",
        "text": f["R16"]["text"],
        "count": 20,
        "unit": "rows",
        "row_count": 20,
        "rows": list(range(1, 21)),
    }
    assert report.to_dict(max_rows=3)["findings"][1]["rows"] == [1, 2, 3]
    assert report.to_dict(max_rows=3)["findings"][1]["row_count"] == 20
    assert "R16" in report.render() and "rejected" in report.render()


def test_clean_report_renders_no_findings():
    report = check([row(2010, A, **KP)])
    assert report.ok and report.findings == []
    assert "(no findings)" in report.render()
    assert report.to_dict()["verdict"] == "accepted"
    assert report.rows == 1 and report.persons == 1 and report.years == [2010]


def test_builder_frame_is_what_coerce_register_gives():
    reg = frame(
        [
            row(2003, A, personkrets="4", boende_vuxna=1),
            row(2005, B, personkrets=None, **KP),
            row(2021, A, personlig_assistans=1, hours_personlig_assistans=100.5, boendekommun="0114"),
        ]
    )
    coerced = files.coerce_register(as_text(reg))
    pd.testing.assert_frame_equal(coerced, reg)


def test_validate_accepts_any_index():
    reg = frame([row(2010, A, **KP), row(2010, A, **KP)])
    reg.index = [7, 3]
    report = rules.validate(reg)
    assert report.findings[0].rows.tolist() == [1, 2]


def test_prepare_frame_ages():
    df = rules.prepare_frame(frame([row(2010, t(12, 2010), **KP), row(2010, with_bad_check_digit(A), **KP)]))
    assert df["_turns"].tolist() == [12, -1]
    assert df["_age"].tolist() == [11, -1]
    assert df["_valid"].tolist() == [True, False]


def test_an_empty_register_has_no_findings():
    report = rules.validate(frame([]))
    assert report.ok and report.findings == [] and report.rows == 0 and report.persons == 0
