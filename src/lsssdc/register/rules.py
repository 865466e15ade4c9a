"""The register's plausibility checks (quality declaration F2.5.3), year-aware and vectorised.

Each rule is a function from the register frame (plus derived columns) to a boolean mask of
offending rows and, for rules about a person or a group of rows, a group key so that one
violation is counted once. The result is a :class:`ValidationReport`: per rule its id,
severity, count and offending row numbers; never a personnummer.

Row numbers are 1-based data rows (the header is not counted), so row 1 is the first line after
the header of a CSV file.

Counting: rules about one row (R01-R04, R08, R10-R20) count rows; R05 and R06 count
person-years; R07 counts (year, kommun, person) groups reported more than once; R09 counts
(year, person, insats) reported by more than one kommun.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from lsssdc.identity import personnummer as pnr_mod
from lsssdc.register import variables as V

ERROR, WARNING = "error", "warning"


@dataclass(frozen=True)
class Finding:
    """Offending rows of one rule at one severity."""

    rule: str
    severity: str
    text: str
    count: int
    unit: str
    rows: np.ndarray  # 1-based data row numbers

    def to_dict(self, max_rows: int | None = None) -> dict[str, Any]:
        rows = self.rows if max_rows is None else self.rows[:max_rows]
        return {
            "rule": self.rule,
            "severity": self.severity,
            "text": self.text,
            "count": self.count,
            "unit": self.unit,
            "row_count": int(len(self.rows)),
            "rows": [int(r) for r in rows],
        }


@dataclass
class ValidationReport:
    """The result of validating a register file: what was checked and what was found."""

    source: str
    rows: int
    persons: int
    years: list[int]
    deaths_checked: bool
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return sum(f.count for f in self.findings if f.severity == ERROR)

    @property
    def warnings(self) -> int:
        return sum(f.count for f in self.findings if f.severity == WARNING)

    @property
    def ok(self) -> bool:
        return self.errors == 0

    def by_rule(self, severity: str) -> dict[str, int]:
        """Counts per rule for one severity, in rule order (what a total is made of)."""
        out: dict[str, int] = {}
        for f in self.findings:
            if f.severity == severity:
                out[f.rule] = out.get(f.rule, 0) + f.count
        return out

    def count(self, rule: str, severity: str | None = None) -> int:
        return sum(f.count for f in self.findings if f.rule == rule and (severity in (None, f.severity)))

    def to_dict(self, max_rows: int | None = 1000) -> dict[str, Any]:
        return {
            "source": self.source,
            "rows": self.rows,
            "persons": self.persons,
            "years": self.years,
            "deaths_checked": self.deaths_checked,
            "errors": self.errors,
            "warnings": self.warnings,
            "errors_by_rule": self.by_rule(ERROR),
            "warnings_by_rule": self.by_rule(WARNING),
            "verdict": "accepted" if self.ok else "rejected",
            "rules_checked": [
                {"rule": r.id, "text": r.text} for r in RULES if r.id != "R02" or self.deaths_checked
            ],
            "findings": [f.to_dict(max_rows) for f in self.findings],
        }

    def render(self) -> str:
        """A readable table for the terminal."""
        lines = [
            f"{self.source}: {self.rows} rows, {self.persons} persons, years "
            f"{min(self.years) if self.years else '-'}-{max(self.years) if self.years else '-'}",
            f"{'rule':<5} {'severity':<8} {'count':>8} {'unit':<12} description; first rows",
        ]
        for f in self.findings:
            first = ", ".join(str(int(r)) for r in f.rows[:5]) + (" ..." if len(f.rows) > 5 else "")
            lines.append(f"{f.rule:<5} {f.severity:<8} {f.count:>8} {f.unit:<12} {f.text}; rows {first}")
        if not self.findings:
            lines.append("(no findings)")
        lines.append(
            f"verdict: {'accepted' if self.ok else 'rejected'} "
            f"({self.errors} errors, {self.warnings} warnings)"
            + ("" if self.deaths_checked else "; R02 not checked: no death register given")
        )
        texts = {r.id: r.text for r in RULES}
        for severity, label in ((ERROR, "errors"), (WARNING, "warnings")):
            counts = self.by_rule(severity)
            if counts:
                lines.append(f"{label} by rule:")
                lines += [f"  {rule:<5} {n:>8}  {texts.get(rule, '')}" for rule, n in counts.items()]
        if self.warnings:
            lines.append("warnings do not stop a file; errors do (exit 1).")
        return "\n".join(lines)


@dataclass(frozen=True)
class Rule:
    id: str
    text: str
    unit: str
    check: Callable[[pd.DataFrame, dict[str, Any]], list[tuple[str, np.ndarray, np.ndarray | None]]]


# --------------------------------------------------------------------------------------------
# helpers over the prepared frame


def _flag(df: pd.DataFrame, name: str) -> np.ndarray:
    return df[name].fillna(0).to_numpy(dtype=np.int8) == 1


def _year_age(df: pd.DataFrame) -> np.ndarray:
    """The age the person turns during the register year; -1 where the personnummer is invalid."""
    return df["_turns"].to_numpy()


def _known_age(df: pd.DataFrame) -> np.ndarray:
    return df["_valid"].to_numpy()


def _err(mask: np.ndarray) -> list[tuple[str, np.ndarray, None]]:
    return [(ERROR, mask, None)]


def _age_rule(flags: tuple[str, ...], lo: int | None = None, hi: int | None = None):
    def check(df: pd.DataFrame, ctx: dict[str, Any]):
        turns = _year_age(df)
        given = np.zeros(len(df), bool)
        for f in flags:
            given |= _flag(df, f)
        bad = np.zeros(len(df), bool)
        if lo is not None:
            bad |= turns < lo
        if hi is not None:
            bad |= turns > hi
        return _err(given & bad & _known_age(df))

    return check


def _r01(df, ctx):
    return _err(~df["_valid"].to_numpy())


def _r02(df, ctx):
    deaths = ctx.get("deaths")
    if deaths is None:
        return []
    keys, dates = deaths
    pos = pd.Index(keys).get_indexer(df["_pnr_int"].to_numpy())
    found = pos >= 0
    dead = np.zeros(len(df), bool)
    dead[found] = dates[pos[found]] < df["_refdate"].to_numpy()[found]
    return _err(dead & df["_valid"].to_numpy())


def _r03(df, ctx):
    collected = V.get("personkrets").collected_mask(df["year"])
    return _err(collected & df["personkrets"].isna().to_numpy())


def _per_person_year(df: pd.DataFrame, values: np.ndarray) -> np.ndarray:
    """The sum of ``values`` over each row's person-year, for every row (no sort, no Python loop)."""
    py = df["_person_year"].to_numpy()
    return np.bincount(py, weights=values, minlength=int(py.max(initial=-1)) + 1)[py]


def _housing_count(df: pd.DataFrame) -> np.ndarray:
    total = np.zeros(len(df), np.int16)
    for f in V.HOUSING:
        total += _flag(df, f)
    return total


def _r05(df, ctx):
    housing = _housing_count(df)
    mask = (_per_person_year(df, housing) > 1) & (housing > 0)
    return [(ERROR, mask, df["_person_year"].to_numpy())]


def _r06(df, ctx):
    dv, kt = _flag(df, "daglig_verksamhet"), _flag(df, "korttidstillsyn")
    both = (_per_person_year(df, dv) > 0) & (_per_person_year(df, kt) > 0) & (dv | kt)
    year = df["year"].to_numpy()
    groups = df["_person_year"].to_numpy()
    return [(ERROR, both & (year < 2020), groups), (WARNING, both & (year >= 2020), groups)]


def _r07(df, ctx):
    """The same person twice in one kommun and year: one violation per (year, kommun, person)."""
    pyk = df["_pyk"].to_numpy()
    dup = np.bincount(pyk)[pyk] > 1
    return [(ERROR, dup, pyk)]


def _r08(df, ctx):
    any_insats = np.zeros(len(df), bool)
    for f in V.INSATSER:
        any_insats |= _flag(df, f)
    return _err(~any_insats)


def _r09(df, ctx):
    """Same person and insats from several kommuner: count each (person-year, insats) once."""
    py = df["_person_year"].to_numpy()
    pyk = df["_pyk"].to_numpy()
    n_py, n_pyk = int(py.max(initial=-1)) + 1, int(pyk.max(initial=-1)) + 1
    py_of_pyk = np.zeros(n_pyk, np.int64)
    py_of_pyk[pyk] = py
    out = []
    for i, f in enumerate(V.INSATSER):  # twelve passes over columns, not rows
        given = _flag(df, f)
        if not given.any():
            continue
        kommuner = np.zeros(n_pyk, bool)
        kommuner[pyk[given]] = True  # the (person-year, kommun) pairs giving this insats
        per_py = np.bincount(py_of_pyk[kommuner], minlength=n_py)
        out.append((ERROR, given & (per_py[py] > 1), py * len(V.INSATSER) + i))
    return out


def _r14(df, ctx):
    given = _flag(df, "daglig_verksamhet")
    collected = V.get("personkrets").collected_mask(df["year"])
    wrong = df["personkrets"].isin(INSATS_PERSONKRETS["daglig_verksamhet"][1]).to_numpy(dtype=bool)
    return _err(given & collected & wrong)


def _amount_rule(amount: str, warn_over: float, error_over_2021: float, error_over_2022: float | None = None):
    def check(df, ctx):
        v = df[amount].to_numpy(dtype=float, na_value=np.nan)
        year = df["year"].to_numpy()
        limit_err = np.where(year >= 2022, error_over_2022 or error_over_2021, error_over_2021)
        warn = (year <= 2020) & (v > warn_over)
        err = (year >= 2021) & (v > limit_err)
        return [(ERROR, err, None), (WARNING, warn, None)]

    return check


def _r20(df, ctx):
    age = df["_age"].to_numpy()
    return [(WARNING, _flag(df, "daglig_verksamhet") & (age > 70) & _known_age(df), None)]


def _r21(df, ctx):
    bad = np.zeros(len(df), bool)
    for amount, insats in V.AMOUNTS.items():
        bad |= df[amount].notna().to_numpy() & ~_flag(df, insats)
    return _err(bad)


#: The ages at which an insats can be given, as the age the person turns during the register
#: year (first, last; None where open), with the rule that says so. One place for the checks
#: below and for the zeros they force in tables (a cell of an age the rule excludes is zero).
INSATS_AGES: dict[str, tuple[str, int | None, int | None]] = {
    "korttidstillsyn": ("R04", 12, 23),
    "familjehem": ("R10", None, 25),
    "bostad_barn": ("R11", None, 25),
    "bostad_vuxna": ("R12", 17, None),
    "boende_vuxna": ("R12", 17, None),
    "annan_bostad_vuxna": ("R13", 17, None),
    "daglig_verksamhet": ("R15", 16, None),
}
#: The personkretsar in which an insats is never given, with the rule (R14; code 4 of 1999-2003
#: means group 3).
INSATS_PERSONKRETS: dict[str, tuple[str, tuple[str, ...]]] = {"daglig_verksamhet": ("R14", ("3", "4"))}


def _ages(*flags: str):
    """The age check of ``flags`` (which share one rule) from :data:`INSATS_AGES`."""
    _rule, lo, hi = INSATS_AGES[flags[0]]
    return _age_rule(flags, lo, hi)


RULES: tuple[Rule, ...] = (
    Rule("R01", "personnummer is not valid (check digit, date or birth number)", "rows", _r01),
    Rule("R02", "person was dead on the measurement date (death register)", "rows", _r02),
    Rule("R03", "personkrets is missing", "rows", _r03),
    Rule(
        "R04",
        "korttidstillsyn outside the years the person turns 12 to 23",
        "rows",
        _ages("korttidstillsyn"),
    ),
    Rule("R05", "more than one housing insats for the person", "person-years", _r05),
    Rule(
        "R06",
        "both daglig verksamhet and korttidstillsyn (error before 2020, warning from 2020)",
        "person-years",
        _r06,
    ),
    Rule("R07", "personnummer reported more than once by the same kommun", "groups", _r07),
    Rule("R08", "no insats given on the row", "rows", _r08),
    Rule("R09", "the same insats reported for the person by several kommuner", "person-insats", _r09),
    Rule("R10", "familjehem after the year the person turns 25", "rows", _ages("familjehem")),
    Rule(
        "R11",
        "bostad med särskild service för barn och ungdomar after the year the person turns 25",
        "rows",
        _ages("bostad_barn"),
    ),
    Rule(
        "R12",
        "bostad med särskild service för vuxna (boende vuxna 1999-2003) before the year the person turns 17",
        "rows",
        _ages("bostad_vuxna", "boende_vuxna"),
    ),
    Rule(
        "R13",
        "annan särskilt anpassad bostad för vuxna before the year the person turns 17",
        "rows",
        _ages("annan_bostad_vuxna"),
    ),
    Rule("R14", "daglig verksamhet for a person outside personkrets 1 and 2", "rows", _r14),
    Rule(
        "R15",
        "daglig verksamhet before the year the person turns 16",
        "rows",
        _ages("daglig_verksamhet"),
    ),
    Rule(
        "R16",
        "hours of personlig assistans per month above 175 (warning to 2020), 744 (error 2021), 1488 (error from 2022)",
        "rows",
        _amount_rule("hours_personlig_assistans", 175, 744, 1488),
    ),
    Rule(
        "R17",
        "hours of ledsagarservice per month above 45 (warning to 2020) or 744 (error from 2021)",
        "rows",
        _amount_rule("hours_ledsagarservice", 45, 744),
    ),
    Rule(
        "R18",
        "hours of avlösarservice per month above 45 (warning to 2020) or 744 (error from 2021)",
        "rows",
        _amount_rule("hours_avlosarservice", 45, 744),
    ),
    Rule(
        "R19",
        "days of korttidsvistelse per month above 11 (warning to 2020) or 31 (error from 2021)",
        "rows",
        _amount_rule("days_korttidsvistelse", 11, 31),
    ),
    Rule("R20", "daglig verksamhet for a person older than 70", "rows", _r20),
    Rule("R21", "hours or days given for an insats that is not given", "rows", _r21),
)
RULE_IDS = tuple(r.id for r in RULES)


def _personnummer_keys(norm: pd.Series, valid: np.ndarray) -> np.ndarray:
    """The normalised 12-digit personnummer as int64; ``-(row + 1)`` where invalid, so that an
    invalid number never groups with another row."""
    arr = (
        pa.array(norm.array)
        if not isinstance(norm.array, pd.arrays.ArrowStringArray)
        else norm.array.__arrow_array__()
    )
    nums = pc.cast(pc.fill_null(arr, "0"), pa.int64()).to_numpy(zero_copy_only=False)
    return np.where(valid, nums, -np.arange(1, len(valid) + 1, dtype=np.int64))


def prepare_frame(register: pd.DataFrame) -> pd.DataFrame:
    """Add the derived columns the rules use (internal, prefixed with '_').

    Persons, person-years and (person-year, kommun) pairs become dense integer ids, so that the
    rules about several rows count with ``bincount`` instead of sorting or grouping.
    """
    df = register.reset_index(drop=True)
    year = df["year"].to_numpy(dtype=np.int64)
    refdate = V.measurement_dates(df["year"])
    parsed = pnr_mod.parse(df["personnummer"], reference_date=refdate)
    valid = parsed["valid"].to_numpy()
    birth = parsed["birth_date"]
    birth_year = birth.to_numpy(dtype="datetime64[ns]").astype("datetime64[Y]").astype(np.int64) + 1970
    turns = np.where(valid, year - birth_year, -1)
    age = pnr_mod.age_at(birth, refdate).fillna(-1).to_numpy(dtype=np.int64)
    norm = parsed["personnummer"]
    keys = _personnummer_keys(norm, valid)
    pid = pd.factorize(keys)[0]
    n_pid = int(pid.max(initial=0)) + 1
    person_year = pd.factorize((year - V.FIRST_YEAR) * n_pid + pid)[0]
    kommun = pd.factorize(df["kommun"])[0].astype(np.int64)
    pyk = pd.factorize(person_year.astype(np.int64) * (int(kommun.max(initial=0)) + 2) + kommun)[0]
    extra = pd.DataFrame(
        {
            "_valid": valid,
            "_pnr": norm,
            "_pnr_int": keys,
            "_pid": pid,
            "_refdate": refdate,
            "_turns": turns,
            "_age": age,
            "_person_year": person_year,
            "_pyk": pyk,
        }
    )
    return pd.concat([df, extra], axis=1)


def validate(
    register: pd.DataFrame, deaths: pd.DataFrame | None = None, source: str = "<data>"
) -> ValidationReport:
    """Run every rule over a register frame (as :func:`lsssdc.register.files.read_register` gives).

    ``deaths``: a death register with columns ``personnummer`` and ``death_date``; rule R02 runs
    only when it is given.
    """
    df = prepare_frame(register)
    ctx: dict[str, Any] = {}
    if deaths is not None:
        parsed = pnr_mod.parse(deaths["personnummer"].reset_index(drop=True))
        valid = parsed["valid"].to_numpy()
        keys = _personnummer_keys(parsed["personnummer"], valid)[valid]
        dates = pd.to_datetime(deaths["death_date"]).to_numpy(dtype="datetime64[ns]")[valid]
        first = ~pd.Index(keys).duplicated()  # a number listed twice: its first death date
        ctx["deaths"] = (keys[first], dates[first])
    findings: list[Finding] = []
    for rule in RULES:
        # one finding per rule and severity, even when a rule checks in several parts (R09
        # per insats): counts of the parts are disjoint units, rows are their union
        merged: dict[str, tuple[int, np.ndarray]] = {}
        for severity, mask, groups in rule.check(df, ctx):
            if not mask.any():
                continue
            count = int(mask.sum()) if groups is None else int(pd.unique(groups[mask]).size)
            prev_count, prev_mask = merged.get(severity, (0, np.zeros(len(df), bool)))
            merged[severity] = (prev_count + count, prev_mask | mask)
        for severity in (ERROR, WARNING):
            if severity in merged:
                count, mask = merged[severity]
                rows = np.flatnonzero(mask) + 1
                findings.append(Finding(rule.id, severity, rule.text, count, rule.unit, rows))
    return ValidationReport(
        source=source,
        rows=len(df),
        persons=int(df["_pid"].max()) + 1 if len(df) else 0,
        years=[int(y) for y in np.unique(df["year"].to_numpy())],
        deaths_checked=deaths is not None,
        findings=findings,
    )
