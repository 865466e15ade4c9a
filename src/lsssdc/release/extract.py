"""Selecting the ordered population and variables, and deriving age and sex.

Data minimisation happens here: only the years, persons and variables an order asks for travel
further (plus the personnummer, which is needed for linkage and pseudonymisation and is
removed before anything leaves).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from lsssdc.errors import InputDataError, Problem
from lsssdc.identity import personnummer as pnr_mod
from lsssdc.policy import Order
from lsssdc.register import variables as V

DERIVED = ("sex", "age", "birth_year")
#: Coarsened variables an order may name; they are made from their source by coarsening.
COARSE_SOURCE = {"age_band": "age", "lan": "kommun", "kommungrupp": "kommun"}


@dataclass
class SelectionRecord:
    """What selection did, for the reviewer report."""

    register_rows: int
    register_persons: int
    years: list[int]
    population_rule: str
    rows: int
    persons: int
    variables: list[str]
    rows_by_year: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def derive(df: pd.DataFrame) -> pd.DataFrame:
    """Add sex, birth year and age at the measurement date, from the personnummer."""
    ref = V.measurement_dates(df["year"])
    parsed = pnr_mod.parse(df["personnummer"], reference_date=ref)
    if not parsed["valid"].all():
        idx = np.flatnonzero(~parsed["valid"].to_numpy())
        raise InputDataError(
            Problem(
                "bad_personnummer",
                "the register has invalid personnummer; validate it first",
                column="personnummer",
                rows=tuple(int(i) + 1 for i in idx[:20]),
                row_count=len(idx),
                hint="lsssdc validate FILE",
            )
        )
    out = df.copy()
    out["personnummer"] = parsed["personnummer"].to_numpy()
    out["sex"] = parsed["sex"].astype("string[pyarrow]").to_numpy()
    out["birth_year"] = parsed["birth_date"].dt.year.astype("Int16").to_numpy()
    out["age"] = pnr_mod.age_at(parsed["birth_date"], ref).astype("Int16").to_numpy()
    return out


def select(register: pd.DataFrame, order: Order) -> tuple[pd.DataFrame, SelectionRecord]:
    """The ordered years and population, with the requested variables (and the personnummer)."""
    years = sorted(set(order.years))
    rows = register[register["year"].isin(years)]
    rule = "all persons in the register"
    keep_person = pd.Series(True, index=rows.index)
    if order.population.insatser:
        any_ins = np.zeros(len(rows), bool)
        for ins in order.population.insatser:
            any_ins |= rows[ins].fillna(0).to_numpy() == 1
        # a person is in the population for a year if any of their rows that year has the insats
        flag = pd.Series(any_ins, index=rows.index)
        keep_person &= flag.groupby([rows["year"], rows["personnummer"]]).transform("max")
        rule = "persons with " + " or ".join(order.population.insatser)
    if order.population.personkrets:
        pk = rows["personkrets"].replace({"4": "3"})
        keep_person &= pk.isin(order.population.personkrets).fillna(False)
        rule += ", personkrets " + "/".join(order.population.personkrets)
    rows = rows[keep_person.to_numpy(dtype=bool)]
    rows = derive(rows.reset_index(drop=True))
    wanted = list(dict.fromkeys(COARSE_SOURCE.get(v, v) for v in order.variables))
    wanted = [v for v in wanted if v in rows.columns]
    cols = ["personnummer"] + [v for v in wanted if v != "personnummer"]
    if "year" not in cols:
        cols.insert(1, "year")
    out = rows[cols].copy()
    record = SelectionRecord(
        register_rows=len(register),
        register_persons=int(register["personnummer"].nunique()),
        years=years,
        population_rule=rule,
        rows=len(out),
        persons=int(out["personnummer"].nunique()),
        variables=[c for c in cols if c != "personnummer"],
        rows_by_year={str(k): int(v) for k, v in out.groupby("year").size().items()},
    )
    return out, record
