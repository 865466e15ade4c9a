"""The intruder of THREATS.md against a research extract: what they know finds fewer than k?

The attacker holds the delivered rows and, about each person they look for, the truth: sex,
birth date (so the exact age in each year), kommun (so the län), personkrets, the year of
death and the years with services. A candidate is a delivered person *all* of whose rows agree
with that knowledge: a value equal to the truth, a band that holds it, a blank ("..", or an
empty year) that could be anything, a value the same person shows in another row, and what
the register's rules imply from a released flag (daglig verksamhet only for personkrets 1-2,
from the year the person turns 16 and, a warning taken as a rule, not after 70; adult housing
from 17). Nothing here calls the gate:
agreement is written out below from the register's rules as DOMAIN.md states them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lsssdc import release
from lsssdc.errors import LsssdcError
from lsssdc.identity import pseudonym as pseudo
from tests.release.conftest import (  # noqa: F401 - fixtures by name
    DAGLIG,
    MORTALITY,
    big,
    make_keystore,
    mortality_candidate,
    open_ledger,
    order_path,
    prepare_order,
    relaxed_deaths_policy,
    shipped_policy_path,
    small,  # noqa: F401 - the shared synthetic register fixture
)

K = 5
BLANK = ".."
PROJECT = "lss-mortalitet"
#: (what the intruder knows) the neighbour of the issue, and one who also knows personkrets
KNOWLEDGE = {
    "neighbour": ("sex", "age", "years", "death"),
    "neighbour+personkrets": ("sex", "age", "years", "death", "personkrets"),
    "sex+age+years": ("sex", "age", "years"),
}


def _age(birth: pd.Series, year: int) -> pd.Series:
    """Whole years between the birth date and 1 October of the year (the measurement date)."""
    b = pd.to_datetime(birth)
    had_birthday = (b.dt.month < 10) | ((b.dt.month == 10) & (b.dt.day <= 1))
    return year - b.dt.year - (~had_birthday).astype(int)


def _band_bounds(band: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """The ages a released band ("18-44", "80+", "17") holds; a blank holds any age."""
    s = band.astype("string").fillna(BLANK)
    labels = pd.Series(s.unique())
    parts = labels.str.extract(r"^(\d+)(?:-(\d+)|(\+))?$")
    lo = pd.to_numeric(parts[0], errors="coerce").to_numpy(float)
    hi = pd.to_numeric(parts[1], errors="coerce").to_numpy(float)
    hi = np.where(parts[2].notna().to_numpy(), np.inf, np.where(np.isnan(hi), lo, hi))
    lo, hi = np.where(np.isnan(lo), -np.inf, lo), np.where(np.isnan(lo), np.inf, hi)
    pos = pd.Index(labels).get_indexer(s)
    return lo[pos], hi[pos]


class Seen:
    """The delivered rows as the attacker reads them, once."""

    def __init__(self, data: pd.DataFrame) -> None:
        self.codes, self.n = _persons(data)
        self.year = data["year"].astype("Float64").fillna(-1).to_numpy(float)
        self.blank_year = self.year < 0
        self.sex = data["sex"].astype("string").fillna("").to_numpy(object)
        self.lo, self.hi = _band_bounds(data["age_band"])
        self.pk = data["personkrets"].astype("string").fillna("").to_numpy(object)
        self.dv = (data["daglig_verksamhet"] == 1).fillna(False).to_numpy(bool)
        self.bv = (data["bostad_vuxna"] == 1).fillna(False).to_numpy(bool)
        death = data["death_year"].astype("string")
        self.death_blank = (death == BLANK).fillna(False).to_numpy(bool)
        self.no_death = death.isna().to_numpy(bool)
        self.death = death.fillna("").to_numpy(object)
        self.shown, self.blanks = _years_shown(data)


def _truth(small, store, project: str, pseudonyms: pd.Series) -> pd.DataFrame:  # noqa: F811
    """Per register row of a delivered person: pseudonym, year, sex, exact age, personkrets, death year."""
    key = store.pseudonym_key(project, create=False)
    persons = small.persons[["personnummer", "birth_date", "sex"]].drop_duplicates("personnummer")
    persons["pseudonym"] = pseudo.pseudonymise_frame(
        persons[["personnummer"]].copy(), "personnummer", key, out_column="pseudonym"
    )[0]["pseudonym"].to_numpy()
    reg = small.register[["personnummer", "year", "kommun", "personkrets"]].copy()
    reg = reg.merge(persons, on="personnummer")
    deaths = small.deaths.assign(death_year=pd.to_datetime(small.deaths["death_date"]).dt.year)
    reg = reg.merge(deaths[["personnummer", "death_year"]], on="personnummer", how="left")
    reg = reg[reg["pseudonym"].isin(pseudonyms)]
    reg["age"] = 0
    for y in reg["year"].unique():
        m = reg["year"] == y
        reg.loc[m, "age"] = _age(reg.loc[m, "birth_date"], int(y)).to_numpy()
    return reg.drop(columns=["personnummer"])


@pytest.fixture(scope="module")
def site(tmp_path_factory, small):  # noqa: F811 - the fixture, by name
    """A work area, key store and ledger with the mortality order delivered to its project."""
    root = tmp_path_factory.mktemp("intruder")
    store = make_keystore(root / "keys" / "k.json")
    policy = relaxed_deaths_policy(root / "policies")
    with open_ledger(root / "ledger.sqlite", store) as book:
        cand = prepare_order(small, policy, order_path(MORTALITY[1]), store, root / "work", book)
        assert cand.verdict == "releasable"
        release.approve(cand.path, "reviewer-a", store, book)
        release.deliver(cand.path, root / "delivery" / "first", store, book, "ordering-service")
    return {"root": root, "store": store, "cand": cand.path, "small": small}


@pytest.fixture(scope="module")
def released(site):
    """The delivered rows of the mortality order and the truth per pseudonym."""
    data = pd.read_parquet(site["cand"] / "data.parquet")
    return data, _truth(site["small"], site["store"], PROJECT, data["pseudonym"])


def _candidates(seen: Seen, truth: pd.DataFrame, knows: tuple[str, ...]) -> int:
    """How many delivered persons agree with everything the intruder knows about one target."""
    t_years = sorted(int(y) for y in truth["year"].unique())
    by_year = truth.drop_duplicates("year").set_index("year")
    dead = truth["death_year"].dropna()
    death = str(int(dead.iloc[0])) if len(dead) else None
    ok_any = np.zeros(len(seen.year), bool)
    for y in t_years:
        row = by_year.loc[y]
        agree = seen.blank_year | (seen.year == y)
        if "sex" in knows:
            agree &= (seen.sex == str(row["sex"])) | (seen.sex == BLANK)
        if "age" in knows:
            age = int(row["age"])
            agree &= (seen.lo <= age) & (age <= seen.hi)
            # the year the person turns 16 (17) is the earliest: age on 1 October may be one less
            agree &= ~seen.dv | (age >= 15)
            agree &= ~seen.bv | (age >= 16)
            # daglig verksamhet over 70 is only a warning, but an intruder may read it as a rule
            agree &= ~seen.dv | (age <= 71)
        if "personkrets" in knows:
            pk = str(row["personkrets"])
            agree &= (seen.pk == pk) | (seen.pk == BLANK)
            agree &= ~seen.dv | (pk in ("1", "2"))
        if "death" in knows:
            agree &= seen.death_blank | (seen.no_death if death is None else seen.death == death)
        ok_any |= agree
    bad = np.bincount(seen.codes, weights=(~ok_any).astype(float), minlength=seen.n)
    fine = bad == 0
    if "years" in knows:
        t_mask = np.int64(sum(1 << (y - 2000) for y in t_years))
        fine &= (seen.shown & ~t_mask) == 0
        fine &= (seen.shown == t_mask) | (seen.blanks > 0)
    return int(fine.sum())


def _persons(data: pd.DataFrame) -> tuple[np.ndarray, int]:
    codes, uniques = pd.factorize(data["pseudonym"])
    return codes, len(uniques)


def _years_shown(data: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per person: the years their rows show (a bit per year) and how many rows hide the year."""
    codes, n = _persons(data)
    y = data["year"]
    known = y.notna().to_numpy()
    bits = np.zeros(n, np.int64)
    np.bitwise_or.at(bits, codes[known], np.int64(1) << (y[known].astype(int).to_numpy() - 2000))
    blanks = np.bincount(codes[~known], minlength=n)
    return bits, blanks


def _targets(data: pd.DataFrame, n_touched: int = 100, n_random: int = 50) -> list[str]:
    """Persons whose rows were treated (the likely weak ones) and a random sample of the rest."""
    touched = data.loc[data["suppressed"].fillna("") != "", "pseudonym"].unique()
    rng = np.random.default_rng(7)
    rest = np.setdiff1d(data["pseudonym"].unique(), touched)
    pick = list(rng.choice(touched, size=min(len(touched), n_touched), replace=False))
    return pick + list(rng.choice(rest, size=min(len(rest), n_random), replace=False))


@pytest.mark.parametrize("who", sorted(KNOWLEDGE))
def test_every_target_has_k_candidates(released, who):
    _attack(released, KNOWLEDGE[who], who, _targets(released[0]))


@pytest.mark.slow
def test_many_treated_targets_have_k_candidates(released):
    """The same attack with the most knowledge (every other intruder here knows less, so finds
    more candidates) on 1,500 persons the treatment touched and 500 others."""
    who = "neighbour+personkrets"
    _attack(released, KNOWLEDGE[who], who, _targets(released[0], 1500, 500))


def _attack(released, knows: tuple[str, ...], who: str, targets: list[str]) -> None:
    data, truth = released
    truth_by = dict(tuple(truth.groupby("pseudonym")))
    low = {}
    seen = Seen(data)
    for t in targets:
        n = _candidates(seen, truth_by[t], knows)
        assert n >= 1, f"the target {t} does not agree with its own rows: the attacker is wrong"
        if n < K:
            low[t] = n
    assert not low, f"{len(low)} targets with fewer than {K} candidates ({who}): {list(low.items())[:5]}"


def test_refill_from_other_years_recovers_nothing_that_splits_a_class(released):
    """Blanks filled from the person's own other rows and the rules, then persons recounted on
    their whole history: no person is left with fewer than k look-alikes."""
    data, _ = released
    d = data.copy()
    for col in ("sex", "personkrets", "death_year", "age_band"):
        s = d[col].astype("string").mask(d[col].astype("string") == BLANK)
        filled = s.groupby(d["pseudonym"]).transform("first")
        d[col] = s.fillna(filled).fillna(BLANK)
    # R14: daglig verksamhet means personkrets 1 or 2, never 3
    dv_ever = (d["daglig_verksamhet"] == 1).fillna(False).groupby(d["pseudonym"]).transform("any")
    d.loc[dv_ever & (d["personkrets"] == BLANK), "personkrets"] = "1|2"
    rows = d[["year", "sex", "age_band", "personkrets", "death_year"]].astype("string").fillna("<NA>")
    line = rows["year"]
    for col in ("sex", "age_band", "personkrets", "death_year"):
        line = line + "|" + rows[col]
    history = pd.DataFrame({"p": d["pseudonym"], "line": line}).sort_values(["p", "line"])
    person = history.groupby("p")["line"].agg("#".join)
    sizes = person.map(person.value_counts())
    assert int(sizes.min()) >= K, f"{int((sizes < K).sum())} persons below {K} after refill"


def test_suppressed_is_not_missing(released):
    """A suppressed death is not an empty death: the two read differently in the delivered rows."""
    data, _ = released
    shown = data["death_year"].astype("string")
    flagged = data["suppressed"].fillna("").str.contains("death_year")
    assert ((shown == BLANK) == flagged).all()
    assert not (shown[flagged].isna()).any()


def test_knowledge_check_is_not_vacuous(released):
    """The attacker finds persons: with the full truth and no treatment the original register
    singles many out (so a pass above is not an attacker that never narrows)."""
    data, truth = released
    untreated = truth.assign(
        age_band=pd.cut(
            truth["age"],
            [0, 18, 45, 65, 80, 200],
            right=False,
            labels=["0-17", "18-44", "45-64", "65-79", "80+"],
        ).astype("string"),
        death_year=truth["death_year"].map(lambda v: None if pd.isna(v) else str(int(v))).astype("string"),
        bostad_vuxna=0,
        daglig_verksamhet=0,
    )[["pseudonym", "year", "sex", "age_band", "death_year", "bostad_vuxna", "daglig_verksamhet"]]
    untreated["personkrets"] = truth["personkrets"].astype("string")
    truth_by = dict(tuple(truth.groupby("pseudonym")))
    rng = np.random.default_rng(3)
    targets = rng.choice(untreated["pseudonym"].unique(), size=120, replace=False)
    seen = Seen(untreated)
    counts = [_candidates(seen, truth_by[t], KNOWLEDGE["neighbour"]) for t in targets]
    assert min(counts) >= 1
    assert sum(c < K for c in counts) > 0, "the untreated register should single out some persons"


# --------------------------------------------------------------------------------------------
# a second delivery to the same project, joined with the first on the pseudonym


def _second_order(root: Path) -> Path:
    """The daglig verksamhet order (other age bands) addressed to the mortality project."""
    text = order_path(DAGLIG[1]).read_text(encoding="utf-8")
    text = text.replace("order_id: B2026-0017", "order_id: B2026-0099").replace(
        "project_id: dv-arbete-2026", f"project_id: {PROJECT}"
    )
    out = root / "orders" / "second.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return out


def _loose_standard(root: Path) -> Path:
    """research-standard with room for the suppression a join with the first delivery costs on
    the small register (the attack, not the ceiling, is under test)."""
    text = shipped_policy_path(DAGLIG[0]).read_text(encoding="utf-8")
    out = root / "policies" / "research-standard.yaml"
    out.write_text(
        re.sub(r"max_suppressed_share: 0\.\d+", "max_suppressed_share: 0.8", text), encoding="utf-8"
    )
    return out


def _joined(first: pd.DataFrame, second: pd.DataFrame) -> pd.DataFrame:
    """What the researcher holds: both deliveries' rows, a column one lacks read as unknown."""
    second = second.assign(death_year=pd.array([BLANK] * len(second), dtype="string"))
    return pd.concat([first, second], ignore_index=True, sort=False)


def _reasons(site) -> tuple[str, str]:
    """Prepare the second order on the project's ledger; its verdict and the gate's reasons."""
    root = site["root"]
    with open_ledger(root / "ledger.sqlite", site["store"]) as book:
        cand = prepare_order(
            site["small"], _loose_standard(root), _second_order(root), site["store"], root / "work", book
        )
    report = json.loads((cand.path / "report.json").read_text(encoding="utf-8"))
    return cand.verdict, " ".join(report["verdict"]["reasons"])


def _second(site, with_ledger: bool) -> pd.DataFrame:
    root = site["root"]
    work = root / "work" if with_ledger else root / "work-without-history"
    store = site["store"]
    with open_ledger(root / ("ledger.sqlite" if with_ledger else "other.sqlite"), store) as book:
        cand = prepare_order(site["small"], _loose_standard(root), _second_order(root), store, work, book)
    assert cand.verdict == "releasable", cand.path
    return pd.read_parquet(cand.path / "data.parquet")


def test_a_second_delivery_keeps_k_when_joined_with_the_first(released, site):
    first, _ = released
    second = _second(site, with_ledger=True)
    joined = _joined(first, second)
    truth = _truth(site["small"], site["store"], PROJECT, joined["pseudonym"])
    targets = _targets(second, 100, 50)
    _attack((joined, truth), KNOWLEDGE["neighbour"], "joined deliveries", targets)


def test_a_second_delivery_without_the_first_in_the_work_area_is_refused(site):
    """Fail closed: the ledger says the project has a delivery whose rows are gone, so the new
    one cannot be measured with it and is not released."""
    first = site["cand"]
    hidden = first.with_name(".hidden-" + first.name)
    first.rename(hidden)
    try:
        verdict, why = _reasons(site)
    finally:
        hidden.rename(first)
    assert verdict == "refused" and "earlier delivery" in why and "not in the work area" in why


def test_a_changed_first_delivery_is_refused_as_history(site):
    """The first delivery's rows rewritten in the work area (values given back) stop the second."""
    data = site["cand"] / "data.parquet"
    saved = data.read_bytes()
    frame = pd.read_parquet(data)
    frame["suppressed"] = ""
    data.chmod(0o600)
    frame.to_parquet(data, index=False)
    try:
        verdict, why = _reasons(site)
    finally:
        data.write_bytes(saved)
    assert verdict == "refused" and "changed after it was sealed" in why


def test_two_candidates_prepared_side_by_side_cannot_both_be_delivered(site, tmp_path) -> None:
    """Two orders of one project prepared before either is delivered: each was measured without
    the other, so once one is delivered the other must be prepared again."""
    root = site["root"]
    store = site["store"]
    orders = []
    for i, oid in enumerate(("B2026-0201", "B2026-0202")):
        text = _second_order(root).read_text(encoding="utf-8").replace("B2026-0099", oid)
        path = root / "orders" / f"side-{i}.yaml"
        path.write_text(text, encoding="utf-8")
        orders.append(path)
    with open_ledger(root / "ledger.sqlite", store) as book:
        a, b = (
            prepare_order(site["small"], _loose_standard(root), o, store, root / "work", book) for o in orders
        )
        for cand in (a, b):
            assert cand.verdict == "releasable"
            release.approve(cand.path, "reviewer-a", store, book)
        release.deliver(a.path, tmp_path / "a", store, book, "ordering-service")
        with pytest.raises(LsssdcError) as info:
            release.deliver(b.path, tmp_path / "b", store, book, "ordering-service")
    assert "after this candidate was prepared" in str(info.value)
    assert not (tmp_path / "b").exists()


@pytest.mark.slow
@pytest.mark.parametrize("who", ["neighbour+personkrets"])
def test_the_shipped_order_on_a_register_of_real_size_keeps_k(mortality_candidate, who):  # noqa: F811
    """The shipped mortality order under the shipped policy, on a register of the demo's size."""
    r = mortality_candidate
    data = pd.read_parquet(r.candidate / "data.parquet")
    truth = _truth(r.register, r.keystore, PROJECT, data["pseudonym"])
    _attack((data, truth), KNOWLEDGE[who], who, _targets(data, 150, 50))
