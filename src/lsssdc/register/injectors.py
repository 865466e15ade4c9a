"""How to break each of the register's rules on purpose, one injector per rule id, next to the
rules themselves (:mod:`lsssdc.register.rules`): the synthetic register's tests add exactly so
many violations of a rule and check that the rule finds them, and no other rule fires.

Each injector picks rows no other injection touched (one row per person) and changes them so
that exactly its rule breaks. A new rule gets its injector here, in :data:`INJECTORS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from lsssdc import refdata
from lsssdc.register import variables as V

if TYPE_CHECKING:
    from lsssdc.register.synth import SynthResult


@dataclass
class Injection:
    """The register being broken and what the injectors share: the rows' derived facts, the
    random source, the persons already used, and the rows and deaths to add at the end."""

    reg: pd.DataFrame
    df: pd.DataFrame
    rng: np.random.Generator
    single: np.ndarray
    last_year: np.ndarray
    year: np.ndarray
    turns: np.ndarray
    age: np.ndarray
    pk: np.ndarray
    pids: np.ndarray
    used_person: np.ndarray
    housing: np.ndarray
    pk_collected: np.ndarray
    new_rows: list[pd.DataFrame] = field(default_factory=list)
    new_deaths: list[pd.DataFrame] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.df)

    def f(self, name: str) -> np.ndarray:
        """Rows with insats ``name``."""
        held: np.ndarray = self.df[name].fillna(0).to_numpy(dtype=np.int8) == 1
        return held

    def take(self, rule: str, mask: np.ndarray, k: int) -> np.ndarray:
        """``k`` rows of ``mask``, each the only row of its person-year and of a person no other
        injection used."""
        cand = np.flatnonzero(mask & self.single & ~self.used_person[self.pids])
        # one row per person, so that two injections never share a person
        cand = cand[~pd.Series(self.pids[cand]).duplicated().to_numpy()]
        if len(cand) < k:
            raise ValueError(f"cannot inject {k} violations of {rule}: only {len(cand)} suitable rows")
        chosen = np.sort(self.rng.choice(cand, size=k, replace=False))
        self.used_person[self.pids[chosen]] = True
        return chosen

    def set_flag(self, rows: np.ndarray, name: str, value: int = 1) -> None:
        self.reg.loc[rows, name] = value


def _r01(s: Injection, rule: str, k: int) -> None:  # a personnummer's check digit wrong
    rows = s.take(rule, np.ones(s.n, bool), k)
    pnr = s.reg.loc[rows, "personnummer"].astype(str)
    bad = pnr.str[:11] + ((pnr.str[11].astype(int) + 1) % 10).astype(str)
    s.reg.loc[rows, "personnummer"] = bad.to_numpy()


def _r02(s: Injection, rule: str, k: int) -> None:  # a service after the death date
    rows = s.take(rule, s.year == s.last_year, k)
    refd = s.df.loc[rows, "_refdate"] - pd.Timedelta(days=30)
    s.new_deaths.append(
        pd.DataFrame({"personnummer": s.df.loc[rows, "_pnr"].to_numpy(), "death_date": refd.to_numpy()})
    )


def _r03(s: Injection, rule: str, k: int) -> None:  # personkrets missing where collected
    rows = s.take(rule, s.pk_collected, k)
    s.reg.loc[rows, "personkrets"] = pd.NA


def _r04(s: Injection, rule: str, k: int) -> None:  # korttidstillsyn outside its ages
    rows = s.take(rule, (s.turns >= 5) & (s.turns <= 11) & s.df["_valid"].to_numpy(), k)
    s.set_flag(rows, "korttidstillsyn")


def _r05(s: Injection, rule: str, k: int) -> None:  # adult housing and familjehem together
    rows = s.take(rule, (s.f("bostad_vuxna") | s.f("boende_vuxna")) & (s.turns >= 17) & (s.turns <= 25), k)
    s.set_flag(rows, "familjehem")


def _r06(s: Injection, rule: str, k: int) -> None:  # daglig verksamhet and korttidstillsyn
    rows = s.take(rule, s.f("daglig_verksamhet") & (s.turns >= 16) & (s.turns <= 23), k)
    s.set_flag(rows, "korttidstillsyn")


def _r07(s: Injection, rule: str, k: int) -> None:  # a person reported twice by one kommun
    rows = s.take(rule, ~s.housing, k)
    s.new_rows.append(s.reg.loc[rows].copy())


def _r08(s: Injection, rule: str, k: int) -> None:  # a row with no insats
    rows = s.take(rule, np.ones(s.n, bool), k)
    for name in V.INSATSER:
        s.reg.loc[rows, name] = s.reg.loc[rows, name].where(s.reg.loc[rows, name].isna(), 0)
    for amount in V.AMOUNTS:
        s.reg.loc[rows, amount] = pd.NA


def _r09(s: Injection, rule: str, k: int) -> None:  # one insats reported by two kommuner
    movable = s.f("kontaktperson") | s.f("korttidsvistelse")
    rows = s.take(rule, movable, k)
    dup = s.reg.loc[rows].copy()
    keep = np.where(s.f("kontaktperson")[rows], "kontaktperson", "korttidsvistelse")
    for name in V.INSATSER:
        coll = dup[name].notna()
        dup[name] = pd.array(np.where(coll, (keep == name).astype(int), pd.NA), dtype="Int8")  # type: ignore[call-overload]
    for amount in V.AMOUNTS:
        dup[amount] = pd.array([pd.NA] * k, dtype="Float64")
    dup["kommun"] = pd.array(
        _other_kommun(dup["kommun"].astype(str).to_numpy(), dup["year"].to_numpy()),
        dtype="string[pyarrow]",
    )
    dup["boendekommun"] = pd.array([pd.NA] * k, dtype="string[pyarrow]")
    s.new_rows.append(dup)


def _r10(s: Injection, rule: str, k: int) -> None:  # familjehem after 25
    rows = s.take(rule, ~s.housing & (s.turns >= 26) & (s.turns <= 60), k)
    s.set_flag(rows, "familjehem")


def _r11(s: Injection, rule: str, k: int) -> None:  # children's housing after 25
    rows = s.take(rule, ~s.housing & (s.turns >= 26) & (s.turns <= 60), k)
    s.set_flag(rows, "bostad_barn")


def _r12(s: Injection, rule: str, k: int) -> None:  # adult housing before 17
    rows = s.take(rule, ~s.housing & (s.turns >= 5) & (s.turns <= 16), k)
    s.set_flag(rows[s.year[rows] <= 2003], "boende_vuxna")
    s.set_flag(rows[s.year[rows] > 2003], "bostad_vuxna")


def _r13(s: Injection, rule: str, k: int) -> None:  # other adult housing before 17
    rows = s.take(rule, ~s.housing & (s.turns >= 5) & (s.turns <= 16) & (s.year >= 2004), k)
    s.set_flag(rows, "annan_bostad_vuxna")


def _r14(s: Injection, rule: str, k: int) -> None:  # daglig verksamhet in personkrets 3
    rows = s.take(rule, s.f("daglig_verksamhet") & s.pk_collected, k)
    s.reg.loc[rows, "personkrets"] = "3"


def _r15(s: Injection, rule: str, k: int) -> None:  # daglig verksamhet before 16
    rows = s.take(
        rule, (s.turns >= 8) & (s.turns <= 11) & ((s.pk == "1") | (s.pk == "2") | ~s.pk_collected), k
    )
    s.set_flag(rows, "daglig_verksamhet")


#: the amount each amount rule bounds, and its limit
_AMOUNT_RULES = {
    "R16": "hours_personlig_assistans",
    "R17": "hours_ledsagarservice",
    "R18": "hours_avlosarservice",
    "R19": "days_korttidsvistelse",
}


def _amount(s: Injection, rule: str, k: int) -> None:  # R16-R19: an amount above its limit
    amount = _AMOUNT_RULES[rule]
    rows = s.take(rule, s.f(V.AMOUNTS[amount]) & (s.year >= 2021), k)
    limit = {"R16": np.where(s.year[rows] >= 2022, 1488, 744), "R17": 744, "R18": 744, "R19": 31}[rule]
    s.reg.loc[rows, amount] = np.asarray(limit, dtype=float) + 1 + s.rng.integers(0, 20, size=k)


def _r20(s: Injection, rule: str, k: int) -> None:  # daglig verksamhet after 70
    rows = s.take(
        rule,
        ~s.f("daglig_verksamhet")
        & (s.age > 70)
        & (s.age < 90)
        & ((s.pk == "1") | (s.pk == "2") | ~s.pk_collected),
        k,
    )
    s.set_flag(rows, "daglig_verksamhet")


def _r21(s: Injection, rule: str, k: int) -> None:  # hours without personlig assistans
    rows = s.take(rule, ~s.f("personlig_assistans") & (s.year >= 2007), k)
    s.reg.loc[rows, "hours_personlig_assistans"] = 40.0


#: one injector per rule id
INJECTORS: dict[str, Callable[[Injection, str, int], None]] = {
    "R01": _r01,
    "R02": _r02,
    "R03": _r03,
    "R04": _r04,
    "R05": _r05,
    "R06": _r06,
    "R07": _r07,
    "R08": _r08,
    "R09": _r09,
    "R10": _r10,
    "R11": _r11,
    "R12": _r12,
    "R13": _r13,
    "R14": _r14,
    "R15": _r15,
    "R16": _amount,
    "R17": _amount,
    "R18": _amount,
    "R19": _amount,
    "R20": _r20,
    "R21": _r21,
}


def inject(result: SynthResult, counts: dict[str, int], seed: int = 0) -> None:
    """Add exactly ``counts[rule]`` violations of each rule to ``result`` (in place).

    Each violation touches rows no other injected violation touches and breaks exactly one rule.
    The amount rules R16-R19 are injected as errors (years from 2021), so they are counted apart
    from the warnings real data have; R20 and R06 from 2020 are warnings.
    """
    from lsssdc.register.rules import RULE_IDS, prepare_frame

    unknown = sorted(set(counts) - set(RULE_IDS))
    if unknown:
        raise ValueError(f"unknown rule id(s): {', '.join(unknown)}")
    reg = result.register
    df = prepare_frame(reg)
    size = df.groupby("_person_year")["_person_year"].transform("size").to_numpy()
    year = df["year"].to_numpy()
    s = Injection(
        reg=reg,
        df=df,
        rng=np.random.default_rng([seed, 7]),
        single=size == 1,
        last_year=df.groupby("_pid")["year"].transform("max").to_numpy(),
        year=year,
        turns=df["_turns"].to_numpy(),
        age=df["_age"].to_numpy(),
        pk=df["personkrets"].fillna("").to_numpy(dtype=object),
        pids=df["_pid"].to_numpy(),
        used_person=np.zeros(df["_pid"].max() + 1, bool),
        housing=np.zeros(len(df), bool),
        pk_collected=V.get("personkrets").collected_mask(year),
    )
    for h in V.HOUSING:
        s.housing |= s.f(h)
    for rule in sorted(counts):
        k = int(counts[rule])
        if k <= 0:
            continue
        injector = INJECTORS.get(rule)
        if injector is None:
            raise ValueError(f"injecting {rule} is not supported")
        injector(s, rule, k)
        result.injected[rule] = k
    reg = s.reg
    if s.new_rows:
        reg = pd.concat([reg, *s.new_rows], ignore_index=True)
    if s.new_deaths:
        extra = pd.concat(s.new_deaths, ignore_index=True)
        extra["personnummer"] = extra["personnummer"].astype("string[pyarrow]")
        d = result.deaths[~result.deaths["personnummer"].isin(extra["personnummer"])]
        result.deaths = (
            pd.concat([d, extra], ignore_index=True)
            .sort_values("personnummer", kind="stable")
            .reset_index(drop=True)
        )
    result.register = reg.sort_values(["year", "kommun"], kind="stable").reset_index(drop=True)


def _other_kommun(codes: np.ndarray, years: np.ndarray) -> np.ndarray:
    """A different kommun code valid in the same year (the next one in code order)."""
    out = codes.copy()
    for y in np.unique(years):
        valid = np.array(sorted(refdata.kommun_codes(int(y))))
        m = years == y
        pos = np.searchsorted(valid, codes[m])
        out[m] = valid[(pos + 1) % len(valid)]
    return out
