"""Membership: being in an LSS delivery reveals a disability. An intruder who knows the
population of a group (year, sex, age band) and sees how many of the delivery's persons are in
it learns how likely a member of the group is to be in the delivery. The share is recounted
here from the delivered rows and the population table with code of its own, and a policy that
bounds it is held to it (and refuses when no population is given)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from lsssdc.register import population as popmod
from lsssdc.release import pipeline
from tests.release.conftest import (
    MORTALITY,
    frame_input,
    make_keystore,
    order_path,
    relaxed_deaths_policy,
    small,  # noqa: F401 - the shared synthetic register fixture
)

BANDS = [(0, 17, "0-17"), (18, 44, "18-44"), (45, 64, "45-64"), (65, 79, "65-79"), (80, 999, "80+")]


def _policy(root: Path, bound: float | None) -> Path:
    path = relaxed_deaths_policy(root / f"p-{bound}")
    if bound is not None:
        text = path.read_text(encoding="utf-8")
        text = re.sub(r"(\n  k: 5[^\n]*\n)", rf"\1  max_presence: {bound}\n", text, count=1)
        path.write_text(text, encoding="utf-8")
    return path


def _prepare(root: Path, small, bound: float | None, population: pd.DataFrame | None):  # noqa: F811
    from lsssdc import policy as P

    store = make_keystore(root / f"keys-{bound}-{population is None}" / "k.json")
    pol_path = _policy(root, bound)
    pol, order = P.load_policy(pol_path), P.load_order(order_path(MORTALITY[1]))
    assert pol.thresholds.max_presence == bound
    return pipeline.prepare(
        pol,
        order,
        small.register,
        keystore=store,
        work_dir=root / f"work-{bound}-{population is None}",
        inputs=[frame_input("register", small.register)],
        registers={"deaths": small.deaths},
        policy_path=pol_path,
        order_path=order_path(MORTALITY[1]),
        population=population,
    ).candidate


@pytest.fixture(scope="module")
def population() -> pd.DataFrame:
    return popmod.synthesise(range(2010, 2024))


def _recount(data: pd.DataFrame, population: pd.DataFrame) -> float:
    """Largest delivered-persons / population share over (year, sex, age band) shown in full."""
    shown = data[(data["sex"] != "..") & (data["age_band"] != "..") & data["year"].notna()]
    delivered = shown.groupby(["year", "sex", "age_band"])["pseudonym"].nunique()
    pop = population.copy()
    pop["age_band"] = ""
    for lo, hi, label in BANDS:
        pop.loc[(pop["age"] >= lo) & (pop["age"] <= hi), "age_band"] = label
    totals = pop.groupby(["year", "sex", "age_band"])["folkmangd"].sum()
    totals.index = totals.index.set_levels(totals.index.levels[0].astype(int), level=0)
    delivered.index = delivered.index.set_levels(delivered.index.levels[0].astype(int), level=0)
    shares = delivered / totals.reindex(delivered.index)
    return float(shares.max())


def test_the_report_states_the_share_an_independent_recount_finds(tmp_path, small, population):  # noqa: F811
    cand = _prepare(tmp_path, small, None, population)
    assert cand.verdict == "releasable"
    facts = json.loads((cand.path / "report.json").read_text(encoding="utf-8"))["risk"]["membership"]
    mine = _recount(pd.read_parquet(cand.path / "data.parquet"), population)
    assert facts["max_share"] >= mine - 1e-6  # the gate's figure is never smaller than the recount
    assert facts["max_share"] > 0


def test_a_delivery_above_the_policys_bound_is_refused(tmp_path, small, population):  # noqa: F811
    # the small register's persons are a tiny share of the population; a bound below that share
    mine = _recount(
        pd.read_parquet(_prepare(tmp_path, small, None, population).path / "data.parquet"), population
    )
    cand = _prepare(tmp_path, small, round(mine / 2, 6), population)
    report = json.loads((cand.path / "report.json").read_text(encoding="utf-8"))
    assert cand.verdict == "refused"
    assert any("population group" in r for r in report["verdict"]["reasons"])
    assert not (cand.path / "data.parquet").exists()


def test_a_bound_without_a_population_is_refused(tmp_path, small):  # noqa: F811
    cand = _prepare(tmp_path, small, 0.5, None)
    report = json.loads((cand.path / "report.json").read_text(encoding="utf-8"))
    assert cand.verdict == "refused"
    assert any("no population register" in r for r in report["verdict"]["reasons"])


def test_a_broken_population_table_names_file_and_rows(tmp_path):
    bad = tmp_path / "pop.csv"
    bad.write_text("year,kommun,sex,age,folkmangd\n2020,0114,1,30,100\n2020,9999,3,x,-1\n", encoding="utf-8")
    from lsssdc.errors import InputDataError

    with pytest.raises(InputDataError) as info:
        popmod.read(bad)
    text = str(info.value)
    assert "pop.csv" in text and "3" in text
    assert info.value.exit_code == 2
