"""The synthetic registers: deterministic, clean by default, exact when violations are injected,
and realistic where the issue asks (shares, breaks, kommuner, companions)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lsssdc import refdata
from lsssdc.identity import personnummer as P
from lsssdc.register import rules, synth
from lsssdc.register import variables as V

YEARS = range(1999, 2025)


@pytest.fixture(scope="module")
def clean() -> synth.SynthResult:
    """A 26-year register (1999-2024) at 10,000 persons a year."""
    return synth.synthesise(YEARS, persons=10_000, seed=11)


@pytest.fixture(scope="module")
def clean_report(clean) -> rules.ValidationReport:
    return rules.validate(clean.register, clean.deaths)


def _parsed(reg: pd.DataFrame) -> pd.DataFrame:
    return P.parse(reg["personnummer"], reference_date=V.measurement_dates(reg["year"]))


# --------------------------------------------------------------------------------------------
# determinism


def test_same_seed_gives_identical_frames_and_another_seed_differs():
    a = synth.synthesise(range(2019, 2022), persons=800, seed=3)
    b = synth.synthesise(range(2019, 2022), persons=800, seed=3)
    pd.testing.assert_frame_equal(a.register, b.register)
    pd.testing.assert_frame_equal(a.deaths, b.deaths)
    pd.testing.assert_frame_equal(a.persons, b.persons)
    pd.testing.assert_frame_equal(synth.synthesise_population(a, 5000), synth.synthesise_population(b, 5000))
    pd.testing.assert_frame_equal(synth.synthesise_assistans(a), synth.synthesise_assistans(b))
    c = synth.synthesise(range(2019, 2022), persons=800, seed=4)
    assert not a.register["personnummer"].equals(c.register["personnummer"])


def test_injection_is_deterministic():
    counts = {"R01": 2, "R09": 2, "R16": 1}
    a = synth.synthesise(range(2020, 2023), persons=800, seed=3, inject=counts)
    b = synth.synthesise(range(2020, 2023), persons=800, seed=3, inject=counts)
    pd.testing.assert_frame_equal(a.register, b.register)


# --------------------------------------------------------------------------------------------
# clean by default, exact when injected


def test_26_year_register_has_no_errors(clean, clean_report):
    assert clean_report.errors == 0, clean_report.render()
    assert clean_report.years == list(YEARS)
    per_year = clean.register.groupby("year")["personnummer"].nunique()
    assert (per_year == 10_000).all()
    # the warnings real data have: hours above the pre-2021 warning limits, none of R06/R20
    assert {f.rule for f in clean_report.findings} <= {"R16", "R17", "R18", "R19"}
    assert all(f.severity == "warning" for f in clean_report.findings)
    assert clean_report.count("R16", "warning") > 0


def test_the_register_has_the_typed_columns(clean):
    reg = clean.register
    assert list(reg.columns) == list(V.COLUMNS)
    assert str(reg["year"].dtype) == "int16"
    for name in V.INSATSER:
        assert str(reg[name].dtype) == "Int8"
    for name in V.AMOUNTS:
        assert str(reg[name].dtype) == "Float64"
    assert reg.index.equals(pd.RangeIndex(len(reg)))


INJECT = {f"R{i:02d}": 1 + (i % 4) for i in range(1, 22)}


def test_injected_violations_are_reported_exactly():
    result = synth.synthesise(YEARS, persons=3000, seed=5, inject=INJECT)
    assert result.injected == INJECT
    report = rules.validate(result.register, result.deaths)
    base = rules.validate(synth.synthesise(YEARS, persons=3000, seed=5).register)
    for rule, k in INJECT.items():
        if rule == "R06":
            assert report.count(rule) == k, rule  # error before 2020, warning from 2020
        elif rule == "R20":
            assert report.count(rule, "warning") == k and report.count(rule, "error") == 0
        else:
            assert report.count(rule, "error") == k, (rule, report.count(rule, "error"))
    assert report.errors == sum(INJECT.values()) - INJECT["R20"] - report.count("R06", "warning")
    # the amount warnings of the data are still there (R08 may clear one row's hours)
    for rule in ("R16", "R17", "R18", "R19"):
        assert abs(report.count(rule, "warning") - base.count(rule, "warning")) <= INJECT["R08"]


@pytest.mark.parametrize("rule", ["R01", "R02", "R06", "R09", "R13", "R20"])
def test_a_single_rule_injected_alone(rule):
    result = synth.synthesise(range(2015, 2023), persons=1500, seed=8, inject={rule: 3})
    report = rules.validate(result.register, result.deaths)
    assert report.count(rule) == 3
    assert (
        report.errors
        + report.warnings
        - sum(
            f.count
            for f in report.findings
            if f.rule in ("R16", "R17", "R18", "R19") and f.severity == "warning"
        )
        == 3
    )


def test_injection_refuses_unknown_rules_and_impossible_counts():
    with pytest.raises(ValueError, match="unknown rule"):
        synth.synthesise(range(2019, 2021), persons=200, seed=1, inject={"R99": 1})
    with pytest.raises(ValueError, match="cannot inject"):
        synth.synthesise(range(2019, 2021), persons=200, seed=1, inject={"R16": 10_000})


def test_synthesise_refuses_bad_arguments():
    with pytest.raises(ValueError, match="consecutive"):
        synth.synthesise([2019, 2021], persons=100)
    with pytest.raises(ValueError, match="within"):
        synth.synthesise([1998, 1999], persons=100)
    with pytest.raises(ValueError, match="at least 1"):
        synth.synthesise([2019], persons=0)


# --------------------------------------------------------------------------------------------
# persons and their personnummer


def test_one_personnummer_per_synthetic_person(clean):
    people = clean.persons
    assert people["personnummer"].is_unique
    assert people["pid"].is_unique
    assert clean.register["personnummer"].nunique() <= len(people)
    assert set(clean.register["personnummer"]) <= set(people["personnummer"])
    assert 0.005 < people["samordningsnummer"].mean() < 0.02


def test_age_and_sex_agree_with_the_personnummer(clean):
    parsed = _parsed(clean.register)
    assert parsed["valid"].all()
    truth = clean.persons.set_index("personnummer")
    pnr = clean.register["personnummer"].astype(object)
    assert (parsed["birth_date"].to_numpy() == truth["birth_date"].reindex(pnr).to_numpy()).all()
    assert (parsed["sex"].astype(str).to_numpy() == truth["sex"].reindex(pnr).to_numpy()).all()
    assert (
        parsed["samordningsnummer"].to_numpy() == truth["samordningsnummer"].reindex(pnr).to_numpy()
    ).all()
    age = P.age_at(parsed["birth_date"], V.measurement_dates(clean.register["year"]))
    assert age.min() >= 0 and age.max() <= 105
    men = parsed.assign(p=pnr.to_numpy()).drop_duplicates("p")["sex"].eq("1").mean()
    assert 0.52 < men < 0.66  # published 2021: 59 % men


def test_persons_are_followed_across_years_with_entries_and_exits(clean):
    reg = clean.register
    years_per_person = reg.groupby("personnummer")["year"].nunique()
    assert years_per_person.max() == len(YEARS)  # some stay the whole period
    assert (years_per_person == 1).mean() < 0.5
    first = reg.groupby("personnummer")["year"].min()
    last = reg.groupby("personnummer")["year"].max()
    assert (first > 1999).sum() > 10_000  # entrants
    assert (last < 2024).sum() > 10_000  # exits
    # a person's presence is one unbroken run of years
    assert (years_per_person == last - first + 1).all()


# --------------------------------------------------------------------------------------------
# historical breaks


def test_historical_breaks_are_honoured(clean):
    reg = clean.register
    y = reg["year"]
    gap = y.between(2004, 2006)
    assert reg.loc[gap, "personkrets"].isna().all()
    assert reg.loc[~gap, "personkrets"].notna().all()
    assert set(reg.loc[y <= 2003, "personkrets"]) == {"1", "2", "3", "4"}
    assert not reg.loc[y > 2003, "personkrets"].eq("4").any()
    four = reg[y <= 2003].groupby("year")["personkrets"].apply(lambda s: s.eq("4").mean())
    assert four.between(0.02, 0.06).all()  # 2,000-3,000 of about 75,000 a year
    assert reg.loc[y <= 2003, "boende_vuxna"].notna().all()
    assert reg.loc[y > 2003, "boende_vuxna"].isna().all()
    for name in ("bostad_vuxna", "annan_bostad_vuxna"):
        assert reg.loc[y <= 2003, name].isna().all()
        assert reg.loc[y > 2003, name].notna().all()
    assert reg.loc[gap, "boendekommun"].isna().all()
    for amount, insats in V.AMOUNTS.items():
        assert reg.loc[y < 2007, amount].isna().all()
        given = reg[insats].fillna(0).eq(1) & (y >= 2007)
        assert reg.loc[given, amount].notna().all(), amount
        assert reg.loc[~given, amount].isna().all(), amount


def test_kommun_codes_are_valid_for_their_year(clean):
    reg = clean.register
    for year, part in reg.groupby("year"):
        valid = refdata.kommun_codes(int(year))
        for col in V.KOMMUN_COLUMNS:
            assert set(part[col].dropna()) <= valid, (year, col)
    present = {int(y): set(p["kommun"]) for y, p in reg.groupby("year")}
    assert all("0330" not in present[y] for y in range(1999, 2003))  # Knivsta from 2003
    assert "0330" in present[2003] and "0330" in present[2024]
    assert all("1917" in present[y] for y in (2005, 2006)) and all(
        "0331" not in present[y] for y in range(1999, 2007)
    )
    assert all("1917" not in present[y] for y in range(2007, 2025)) and "0331" in present[2007]


def test_kommun_sizes_follow_population(clean):
    counts = clean.register[clean.register["year"] == 2023].groupby("kommun")["personnummer"].nunique()
    pop = refdata.befolkning().set_index("kommun_kod")["folkmangd"]
    both = pd.concat([counts, pop], axis=1, join="inner").fillna(0)
    assert np.corrcoef(both.iloc[:, 0], both.iloc[:, 1])[0, 1] > 0.95


# --------------------------------------------------------------------------------------------
# realism: shares, two kommuner, hours


def _insats_shares(reg: pd.DataFrame) -> dict[str, float]:
    g = reg.groupby("personnummer")
    has = {k: g[k].max().fillna(0).eq(1) for k in V.INSATSER if reg[k].notna().any()}
    out = {k: float(v.mean()) for k, v in has.items() if k not in V.HOUSING}
    out["boende_barn"] = float((has["familjehem"] | has["bostad_barn"]).mean())
    out["boende_vuxna"] = float((has["bostad_vuxna"] | has["annan_bostad_vuxna"]).mean())
    return out


def test_insats_shares_2021_are_close_to_the_published_ones(clean):
    """Each insats' share of persons in 2021 is within 15 % of the published share, plus three
    binomial standard errors for the sample of 10,000 persons (about 10 % for the rarest)."""
    m = refdata.lss_marginals()
    t = m[m["table"] == "persons_by_insats_sex"]
    published = t[t["measure"] == "persons"].groupby("insats_kod")["value"].sum()
    total = t.loc[t["measure"] == "persons_total", "value"].sum()
    reg = clean.register[clean.register["year"] == 2021]
    synthetic = _insats_shares(reg)
    n = reg["personnummer"].nunique()
    compared = 0
    for insats, persons in published.items():
        if insats == "rad_och_stod":  # not in the register
            continue
        want = persons / total
        allowed = 0.15 * want + 3 * np.sqrt(want * (1 - want) / n)
        assert abs(synthetic[insats] - want) <= allowed, (insats, synthetic[insats], want)
        compared += 1
    assert compared == 9


def test_about_three_percent_are_served_by_two_kommuner_with_different_insatser(clean):
    reg = clean.register
    n_kommuner = reg.groupby(["year", "personnummer"])["kommun"].nunique()
    share = (n_kommuner > 1).groupby(level="year").mean()
    assert share.between(0.02, 0.04).all(), share.describe()
    two = n_kommuner[n_kommuner > 1].reset_index()[["year", "personnummer"]]
    rows = reg.merge(two, on=["year", "personnummer"])
    flags = rows.groupby(["year", "personnummer"])[list(V.INSATSER)].sum(min_count=1)
    assert (flags.fillna(0) <= 1).all().all()  # never the same insats from both


def test_hours_and_days_are_realistic(clean):
    reg = clean.register[clean.register["year"] >= 2021]
    pa = reg["hours_personlig_assistans"].dropna()
    assert 80 < pa.median() < 300 and pa.max() <= 1488 and pa.min() >= 1
    assert reg["hours_ledsagarservice"].dropna().median() < 45
    assert reg["days_korttidsvistelse"].dropna().between(1, 31).all()


# --------------------------------------------------------------------------------------------
# companion registers


def test_deaths_come_after_the_persons_last_register_year(clean):
    deaths = clean.deaths
    assert len(deaths) > 1000 and deaths["personnummer"].is_unique
    last = clean.register.groupby("personnummer")["year"].max()
    last_year = last.reindex(deaths["personnummer"].astype(object)).to_numpy()
    assert not np.isnan(last_year.astype(float)).any()
    last_measured = pd.Series(last_year).map(lambda y: pd.Timestamp(V.measurement_date(int(y))))
    next_measured = pd.Series(last_year).map(lambda y: pd.Timestamp(V.measurement_date(int(y) + 1)))
    died = deaths["death_date"].reset_index(drop=True)
    assert (died > last_measured).all()
    assert (died < next_measured).all()
    assert (last_year < 2024).all()


def test_population_register_holds_every_folkbokford_lss_person(clean):
    pop = synth.synthesise_population(clean, 60_000, seed=2, year=2024)
    assert len(pop) == 60_000
    assert pop["personnummer"].is_unique
    people = clean.persons
    alive = people["death_date"].isna() | (people["death_date"].dt.year > 2024)
    folkbokforda = people.loc[alive & ~people["samordningsnummer"], "personnummer"]
    assert set(folkbokforda) <= set(pop["personnummer"])
    assert not (set(people.loc[people["samordningsnummer"], "personnummer"]) & set(pop["personnummer"]))
    parsed = P.parse(pop["personnummer"])
    assert parsed["valid"].all() and not parsed["samordningsnummer"].any()
    assert (parsed["birth_date"].to_numpy() == pop["birth_date"].to_numpy()).all()
    assert (parsed["sex"].astype(str).to_numpy() == pop["sex"].to_numpy()).all()
    assert set(pop["kommun"]) <= refdata.kommun_codes(2024)
    with pytest.raises(ValueError, match="cannot hold"):
        synth.synthesise_population(clean, 10, seed=2)


def test_assistansersattning_hours_above_twenty_a_week(clean):
    a = synth.synthesise_assistans(clean, seed=2)
    assert len(a) > 1000
    assert (a["hours_per_week"] > 20).all() and (a["hours_per_week"] <= 168).all()
    keys = clean.register[["year", "personnummer"]].drop_duplicates()
    assert len(a.merge(keys, on=["year", "personnummer"])) == len(a)
    assert not a.duplicated(["year", "personnummer"]).any()


def test_make_personnummer_avoids_taken_numbers():
    rng = np.random.default_rng(0)
    birth = np.full(400, np.datetime64("1990-01-01"))
    sex = np.array(["1", "2"] * 200)
    first = synth.make_personnummer(rng, birth, sex, np.zeros(400, bool))
    taken = set((first.astype(np.int64) // 10).tolist())
    second = synth.make_personnummer(rng, birth, sex, np.zeros(400, bool), taken=taken)
    assert len(set(first) | set(second)) == 800
    parsed = P.parse(np.concatenate([first, second]))
    assert parsed["valid"].all()
    assert (parsed["sex"].astype(str).to_numpy() == np.concatenate([sex, sex])).all()
    # 499 birth numbers per date and sex: all of them can be given, not one more
    full = synth.make_personnummer(rng, birth[:1].repeat(499), np.full(499, "2"), np.zeros(499, bool))
    assert len(set(full)) == 499
    with pytest.raises(ValueError, match="at most 499"):
        synth.make_personnummer(rng, birth[:1].repeat(500), np.full(500, "2"), np.zeros(500, bool))


# --------------------------------------------------------------------------------------------
# full size


@pytest.mark.slow
def test_full_size_register_has_no_errors():
    result = synth.synthesise(YEARS, persons=75_000, seed=0)
    assert 1_800_000 < len(result.register) < 2_100_000
    report = rules.validate(result.register, result.deaths)
    assert report.errors == 0


@pytest.mark.slow
def test_population_register_of_10_5_million_rows():
    result = synth.synthesise(range(2022, 2025), persons=75_000, seed=0)
    pop = synth.synthesise_population(result, 10_500_000, seed=0, year=2024)
    assert len(pop) == 10_500_000 and pop["personnummer"].is_unique
