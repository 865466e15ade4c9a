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
    death = df["_pnr"].map(deaths)
    dead = (death < df["_refdate"]).fillna(False).to_numpy(dtype=bool)
    return _err(dead & df["_valid"].to_numpy())


def _r03(df, ctx):
    collected = V.get("personkrets").collected_mask(df["year"])
    return _err(collected & df["personkrets"].isna().to_numpy())


def _person_groups(df: pd.DataFrame, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of person-years where ``mask`` (computed per person-year) holds, and group ids."""
    return mask, df["_person_year"].to_numpy()


def _housing_count(df: pd.DataFrame) -> pd.Series:
    total = np.zeros(len(df), np.int16)
    for f in V.HOUSING:
        total += _flag(df, f)
    return pd.Series(total, index=df.index)


def _r05(df, ctx):
    per_person = _housing_count(df).groupby(df["_person_year"]).transform("sum").to_numpy()
    has_housing = _housing_count(df).to_numpy() > 0
    mask = (per_person > 1) & has_housing
    return [(ERROR, mask, df["_person_year"].to_numpy())]


def _r06(df, ctx):
    dv = (
        pd.Series(_flag(df, "daglig_verksamhet"), index=df.index).groupby(df["_person_year"]).transform("max")
    )
    kt = pd.Series(_flag(df, "korttidstillsyn"), index=df.index).groupby(df["_person_year"]).transform("max")
    involved = _flag(df, "daglig_verksamhet") | _flag(df, "korttidstillsyn")
    both = dv.to_numpy() & kt.to_numpy() & involved
    year = df["year"].to_numpy()
    groups = df["_person_year"].to_numpy()
    return [(ERROR, both & (year < 2020), groups), (WARNING, both & (year >= 2020), groups)]


def _r07(df, ctx):
    key = ["year", "kommun", "_pid"]
    dup = df.duplicated(key, keep=False).to_numpy()
    gid = df.groupby(key, sort=False, observed=True).ngroup().to_numpy()
    return [(ERROR, dup, gid)]


def _r08(df, ctx):
    any_insats = np.zeros(len(df), bool)
    for f in V.INSATSER:
        any_insats |= _flag(df, f)
    return _err(~any_insats)


def _r09(df, ctx):
    """Same person and insats from several kommuner: count each (person-year, insats) once."""
    masks, groups = [], []
    for i, f in enumerate(V.INSATSER):
        given = _flag(df, f)
        if not given.any():
            continue
        sub = df.loc[given, ["_person_year", "kommun"]]
        nk = sub.groupby("_person_year", observed=True)["kommun"].transform("nunique")
        bad = np.zeros(len(df), bool)
        bad[np.flatnonzero(given)[nk.to_numpy() > 1]] = True
        masks.append(bad)
        groups.append(df["_person_year"].to_numpy() * len(V.INSATSER) + i)
    if not masks:
        return []
    return [(ERROR, m, g) for m, g in zip(masks, groups, strict=True)]


def _r14(df, ctx):
    given = _flag(df, "daglig_verksamhet")
    collected = V.get("personkrets").collected_mask(df["year"])
    wrong = df["personkrets"].isin(["3", "4"]).to_numpy(dtype=bool)
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


RULES: tuple[Rule, ...] = (
    Rule("R01", "personnummer is not valid (check digit, date or birth number)", "rows", _r01),
    Rule("R02", "person was dead on the measurement date (death register)", "rows", _r02),
    Rule("R03", "personkrets is missing", "rows", _r03),
    Rule(
        "R04",
        "korttidstillsyn outside the years the person turns 12 to 23",
        "rows",
        _age_rule(("korttidstillsyn",), 12, 23),
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
    Rule(
        "R10", "familjehem after the year the person turns 25", "rows", _age_rule(("familjehem",), None, 25)
    ),
    Rule(
        "R11",
        "bostad med särskild service för barn och ungdomar after the year the person turns 25",
        "rows",
        _age_rule(("bostad_barn",), None, 25),
    ),
    Rule(
        "R12",
        "bostad med särskild service för vuxna (boende vuxna 1999-2003) before the year the person turns 17",
        "rows",
        _age_rule(("bostad_vuxna", "boende_vuxna"), 17, None),
    ),
    Rule(
        "R13",
        "annan särskilt anpassad bostad för vuxna before the year the person turns 17",
        "rows",
        _age_rule(("annan_bostad_vuxna",), 17, None),
    ),
    Rule("R14", "daglig verksamhet for a person outside personkrets 1 and 2", "rows", _r14),
    Rule(
        "R15",
        "daglig verksamhet before the year the person turns 16",
        "rows",
        _age_rule(("daglig_verksamhet",), 16, None),
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


def prepare_frame(register: pd.DataFrame) -> pd.DataFrame:
    """Add the derived columns the rules use (internal, prefixed with '_')."""
    df = register.reset_index(drop=True)
    refdate = V.measurement_dates(df["year"])
    parsed = pnr_mod.parse(df["personnummer"], reference_date=refdate)
    valid = parsed["valid"].to_numpy()
    birth = parsed["birth_date"]
    turns = np.where(valid, df["year"].to_numpy() - birth.dt.year.fillna(0).to_numpy(dtype=int), -1)
    age = pnr_mod.age_at(birth, refdate).fillna(-1).to_numpy(dtype=int)
    norm = parsed["personnummer"]
    # Invalid numbers never group with another row: each gets its own key.
    pid_text = norm.astype(object).where(valid, "#" + pd.Series(np.arange(len(df)).astype(str)))
    pid = pd.factorize(pid_text)[0]
    extra = pd.DataFrame(
        {
            "_valid": valid,
            "_pnr": norm,
            "_pid": pid,
            "_refdate": refdate,
            "_turns": turns,
            "_age": age,
        }
    )
    out = pd.concat([df, extra], axis=1)
    out["_person_year"] = out.groupby(["year", "_pid"], sort=False).ngroup().to_numpy()
    return out


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
        d = deaths.assign(_p=pnr_mod.normalise(deaths["personnummer"])).dropna(subset=["_p"])
        ctx["deaths"] = pd.Series(pd.to_datetime(d["death_date"]).to_numpy(), index=d["_p"].astype(object))
        ctx["deaths"] = ctx["deaths"][~ctx["deaths"].index.duplicated()]
    findings: list[Finding] = []
    for rule in RULES:
        for severity, mask, groups in rule.check(df, ctx):
            if not mask.any():
                continue
            rows = np.flatnonzero(mask) + 1
            count = len(rows) if groups is None else int(pd.unique(groups[mask]).size)
            findings.append(Finding(rule.id, severity, rule.text, count, rule.unit, rows))
    return ValidationReport(
        source=source,
        rows=len(df),
        persons=int(df["_pid"].nunique()),
        years=sorted(int(y) for y in pd.unique(df["year"])),
        deaths_checked=deaths is not None,
        findings=findings,
    )
