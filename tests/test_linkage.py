"""Linkage by personnummer and by pseudonym: checked against an independent pandas merge."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lsssdc import linkage as L
from lsssdc.errors import InputDataError, PolicyError
from lsssdc.identity import personnummer as pnr_mod
from lsssdc.policy import load_order, load_policy
from lsssdc.register import synth
from lsssdc.shipped import folder as _shipped_folder

SHIPPED = _shipped_folder()

ROOT = Path(__file__).resolve().parents[1]
KEY = "personnummer"

POLICY = """\
policy_version: 1
name: linkage-test
allowed_variables: [year, sex, kommun, personkrets]
linkage:
  deaths:
    variables: [death_date]
    duplicates: {deaths}
  population:
    variables: [kommun, birth_date, sex]
    duplicates: {population}
  assistans:
    variables: [year, hours_per_week]
    duplicates: {assistans}
"""

ORDER = """\
order_version: 1
order_id: T-0001
diarienummer: "Dnr 1/2026"
project_id: linkage-test
recipient:
  name: A researcher
  organisation: A university
purpose: Testing linkage.
policy: linkage-test
years: [2019, 2020, 2021]
variables: [year, kommun, personkrets]
linkages:
{links}
"""

LINKS = {
    "deaths": "  - register: deaths\n    variables: [death_date]\n",
    "population": "  - register: population\n    variables: [kommun, birth_date, sex]\n",
    "assistans": "  - register: assistans\n    variables: [year, hours_per_week]\n",
}


@pytest.fixture(scope="module")
def data() -> dict[str, pd.DataFrame]:
    result = synth.synthesise(years=range(2019, 2022), persons=3000, seed=20260)
    return {
        "lss": result.register,
        "deaths": result.deaths,
        "population": synth.synthesise_population(result, 20_000, seed=5),
        "assistans": synth.synthesise_assistans(result, seed=5),
        "persons": result.persons,
    }


def make(tmp_path: Path, registers=("deaths",), duplicates=None, policy_text: str | None = None):
    dup = {"deaths": "refuse", "population": "refuse", "assistans": "refuse", **(duplicates or {})}
    (tmp_path / "policy.yaml").write_text(policy_text or POLICY.format(**dup), encoding="utf-8")
    (tmp_path / "order.yaml").write_text(
        ORDER.format(links="".join(LINKS[r] for r in registers)), encoding="utf-8"
    )
    return load_policy(tmp_path / "policy.yaml"), load_order(tmp_path / "order.yaml")


def fresh_personnummer(n: int, seed: int) -> np.ndarray:
    """Valid numbers born in 1890: no synthetic LSS person (at most 99 years old in 2019) has one."""
    rng = np.random.default_rng(seed)
    birth = np.datetime64("1890-01-01") + rng.permutation(365)[:n].astype("timedelta64[D]")
    return synth.make_personnummer(rng, birth, np.full(n, "1"), np.zeros(n, bool))


_POOL = fresh_personnummer(60, seed=1)


def expected_merge(reg: pd.DataFrame, data: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The same linkage written directly with pandas."""
    pop = data["population"].rename(columns={"kommun": "population_kommun"})
    exp = reg.merge(data["deaths"], on=KEY, how="left")
    exp = exp.merge(pop[[KEY, "population_kommun", "birth_date", "sex"]], on=KEY, how="left")
    exp = exp.merge(data["assistans"], on=[KEY, "year"], how="left")
    exp["hours_per_week"] = exp["hours_per_week"].astype("Int16")
    return exp


# --------------------------------------------------------------------------------------------
# the result


def test_result_equals_an_independent_pandas_merge(tmp_path, data):
    policy, order = make(tmp_path, ("deaths", "population", "assistans"))
    regs = {k: data[k] for k in ("deaths", "population", "assistans")}
    out, report = L.link(data["lss"], regs, order, policy)
    pd.testing.assert_frame_equal(out, expected_merge(data["lss"], data))
    assert [r.register for r in report.links] == ["deaths", "population", "assistans"]
    assert report.links[1].variables == ["population_kommun", "birth_date", "sex"]
    assert report.links[2].variables == ["hours_per_week"]
    # every living LSS person with a personnummer (not a samordningsnummer) is in the population register
    pop = report.links[1]
    persons = data["persons"][data["persons"][KEY].isin(data["lss"][KEY])]
    alive = persons["death_date"].isna() & ~persons["samordningsnummer"]
    assert pop.matched_persons == int(alive.sum())
    assert pop.unmatched_samordningsnummer == report.extract.samordningsnummer > 0
    assert pop.rows == len(data["population"]) and pop.rows_outside_extract == len(data["population"]) - (
        pop.matched_persons
    )


def test_the_extract_keeps_its_rows_and_order(tmp_path, data):
    policy, order = make(tmp_path, ("deaths",))
    extract = data["lss"].sample(frac=1.0, random_state=3)  # any order, any index
    out, _ = L.link(extract, {"deaths": data["deaths"]}, order, policy)
    assert out.index.equals(extract.index)
    assert out[KEY].tolist() == extract[KEY].tolist()


@given(
    st.lists(st.integers(0, 59), min_size=0, max_size=40),
    st.lists(st.integers(0, 59), min_size=0, max_size=40),
    st.sampled_from(["first", "last"]),
)
def test_duplicates_are_resolved_like_drop_duplicates_and_never_multiply(left, right, keep):
    pool = _POOL
    extract = (
        pd.DataFrame({KEY: pool[left], "year": np.int16(2020)})
        if left
        else pd.DataFrame({KEY: pd.Series([], dtype="string[pyarrow]"), "year": pd.Series([], dtype="int16")})
    )
    other = pd.DataFrame(
        {
            KEY: pool[right],
            "death_date": pd.to_datetime("2020-01-01") + pd.to_timedelta(np.arange(len(right)), "D"),
        }
    )
    side = L._prepare_extract(extract, KEY, *L._parse_keys(extract[KEY], KEY, "x"))
    cols, rec = L._link_one(set(extract.columns), side, "deaths", other, ["death_date"], KEY, keep, None)
    exp = extract.merge(other.drop_duplicates(KEY, keep=keep), on=KEY, how="left")
    assert len(cols["death_date"]) == len(extract)
    assert pd.Series(cols["death_date"]).tolist() == exp["death_date"].tolist()
    counts = pd.Series(pool[right]).value_counts()
    assert rec.duplicate_keys == int((counts > 1).sum())
    assert rec.duplicate_rows == int(counts[counts > 1].sum())


# --------------------------------------------------------------------------------------------
# refused by name


def test_a_register_the_policy_does_not_allow_is_refused_by_name():
    policy = load_policy(SHIPPED / "research-with-deaths.yaml")
    order = load_order(SHIPPED / "orders/mortality-2010-2023.yaml")
    order = order.model_copy(
        update={
            "linkages": [
                *order.linkages,
                type(order.linkages[0])(register="population", variables=["kommun"]),
            ]
        }
    )
    with pytest.raises(PolicyError) as exc:
        L.link(pd.DataFrame({KEY: []}), {}, order, policy)
    assert exc.value.problems[0].code == "link_not_allowed"
    assert "'population'" in str(exc.value) and "research-with-deaths" in str(exc.value)


def test_a_variable_the_policy_does_not_allow_is_refused_by_name(tmp_path, data):
    narrow = POLICY.format(deaths="refuse", population="refuse", assistans="refuse").replace(
        "variables: [kommun, birth_date, sex]", "variables: [kommun]"
    )
    policy, order = make(tmp_path, ("population",), policy_text=narrow)
    with pytest.raises(PolicyError) as exc:
        L.link(data["lss"], {"population": data["population"]}, order, policy)
    text = str(exc.value)
    assert "birth_date" in text and "sex" in text and "'population'" in text


def test_a_register_the_order_does_not_request_is_refused_by_name(tmp_path, data):
    policy, order = make(tmp_path, ("deaths",))
    with pytest.raises(PolicyError) as exc:
        L.link(data["lss"], {"deaths": data["deaths"], "population": data["population"]}, order, policy)
    assert exc.value.problems[0].code == "link_not_ordered"
    assert "'population'" in str(exc.value)


def test_an_ordered_register_that_is_not_given_is_an_input_error(tmp_path, data):
    policy, order = make(tmp_path, ("deaths", "population"))
    with pytest.raises(InputDataError, match="population"):
        L.link(data["lss"], {"deaths": data["deaths"]}, order, policy)


# --------------------------------------------------------------------------------------------
# duplicates


def with_duplicates(deaths: pd.DataFrame) -> pd.DataFrame:
    """Rows 0 and 1 appear again, later and with other dates."""
    extra = deaths.iloc[[0, 1]].assign(death_date=lambda d: d["death_date"] + pd.Timedelta(days=3))
    return pd.concat([deaths, extra], ignore_index=True)


def test_duplicate_keys_are_refused_when_the_policy_says_so(tmp_path, data):
    policy, order = make(tmp_path, ("deaths",))
    deaths = with_duplicates(data["deaths"])
    with pytest.raises(InputDataError) as exc:
        L.link(data["lss"], {"deaths": deaths}, order, policy)
    p = exc.value.problems[0]
    n = len(data["deaths"])
    assert p.code == "duplicate_keys" and p.column == KEY and p.rows == (1, 2, n + 1, n + 2)
    assert "2 key(s)" in p.message and "deaths" in p.message


@pytest.mark.parametrize("keep", ["first", "last"])
def test_duplicate_keys_are_resolved_and_counted(tmp_path, data, keep):
    policy, order = make(tmp_path, ("deaths",), {"deaths": keep})
    deaths = with_duplicates(data["deaths"])
    out, report = L.link(data["lss"], {"deaths": deaths}, order, policy)
    assert len(out) == len(data["lss"])
    exp = data["lss"].merge(deaths.drop_duplicates(KEY, keep=keep), on=KEY, how="left")
    pd.testing.assert_series_equal(out["death_date"], exp["death_date"])
    rec = report.links[0]
    assert (rec.duplicate_keys, rec.duplicate_rows, rec.duplicates_resolution) == (2, 4, keep)


# --------------------------------------------------------------------------------------------
# changed personnummer


def test_changed_personnummer_are_applied_on_both_sides_with_chains(tmp_path, data):
    policy, order = make(tmp_path, ("deaths",))
    lss, deaths = data["lss"], data["deaths"]
    dead = deaths[KEY].iloc[[0, 1, 2]].tolist()
    b, c, new_x, old_y = fresh_personnummer(4, seed=9)
    # person 0: the extract has a, the death register the newest number c (a -> b -> c)
    deaths2 = deaths.copy()
    deaths2.loc[0, KEY] = c
    # person 1: the extract has the new number, the death register still the old one
    extract = lss.copy()
    extract[KEY] = extract[KEY].replace({dead[1]: new_x})
    # person 2: both sides have the old number
    changes = pd.DataFrame(
        {"old": [dead[0], b, dead[1], dead[2]], "new": [b, c, new_x, old_y]}
    )  # chains: dead0 -> b -> c
    out, report = L.link(extract, {"deaths": deaths2}, order, policy, changes=changes)
    rows_a = int((lss[KEY] == dead[0]).sum())
    rows_z = int((lss[KEY] == dead[2]).sum())
    assert report.extract.changed_numbers_applied == rows_a + rows_z
    assert report.links[0].changed_numbers_applied == 2  # dead1 -> new_x, dead2 -> old_y
    for old, new in ((dead[0], c), (dead[2], old_y)):
        assert not (out[KEY] == old).any()
        assert (out[KEY] == new).sum() == (lss[KEY] == old).sum()
    # the same deaths are found as without any change
    plain, base = L.link(lss, {"deaths": deaths}, order, policy)
    assert out["death_date"].equals(plain["death_date"])
    assert report.links[0].matched_persons == base.links[0].matched_persons


def test_a_change_leading_back_to_itself_is_refused(tmp_path, data):
    policy, order = make(tmp_path, ("deaths",))
    a, b = fresh_personnummer(2, seed=4)
    changes = pd.DataFrame({"old": [a, b], "new": [b, a]})
    with pytest.raises(InputDataError, match="cycle"):
        L.link(data["lss"], {"deaths": data["deaths"]}, order, policy, changes=changes)
    twice = pd.DataFrame({"old": [a, a], "new": [b, b]})
    with pytest.raises(InputDataError, match="more than once"):
        L.link(data["lss"], {"deaths": data["deaths"]}, order, policy, changes=twice)


# --------------------------------------------------------------------------------------------
# edges


def test_an_empty_other_register_gives_a_clean_report(tmp_path, data):
    policy, order = make(tmp_path, ("deaths",))
    empty = data["deaths"].iloc[0:0]
    out, report = L.link(data["lss"], {"deaths": empty}, order, policy)
    assert len(out) == len(data["lss"]) and out["death_date"].isna().all()
    rec = report.links[0]
    assert (rec.rows, rec.persons, rec.matched_persons, rec.match_share) == (0, 0, 0, 0.0)
    assert rec.unmatched_persons == report.extract.persons
    json.dumps(report.to_dict(threshold=3))


def test_an_empty_extract_gives_a_clean_report(tmp_path, data):
    policy, order = make(tmp_path, ("deaths",))
    out, report = L.link(data["lss"].iloc[0:0], {"deaths": data["deaths"]}, order, policy)
    assert len(out) == 0 and "death_date" in out.columns
    assert report.links[0].extract_persons == 0 and report.links[0].match_share == 0.0


@pytest.mark.parametrize("side", ["register", "extract"])
def test_an_invalid_key_is_named_by_column_and_row_never_by_value(tmp_path, data, side):
    policy, order = make(tmp_path, ("deaths",))
    frame = (data["deaths"] if side == "register" else data["lss"]).copy()
    good = str(frame[KEY].iloc[4])
    bad = good[:11] + str((int(good[11]) + 1) % 10)  # wrong check digit
    frame[KEY] = frame[KEY].astype(object)
    frame.loc[4, KEY] = bad
    frame.loc[17, KEY] = bad[:8] + "-" + bad[8:]
    regs = {"deaths": frame if side == "register" else data["deaths"]}
    extract = frame if side == "extract" else data["lss"]
    with pytest.raises(InputDataError) as exc:
        L.link(extract, regs, order, policy)
    p = exc.value.problems[0]
    assert p.code == "bad_personnummer" and p.column == KEY and p.rows == (5, 18)
    shown = str(exc.value) + json.dumps(exc.value.to_dict())
    assert "checksum" in shown
    runs = {bad[i : i + 6] for i in range(len(bad) - 5)}
    assert not any(r in shown for r in runs)


def test_ten_digit_keys_with_separators_are_normalised(tmp_path, data):
    policy, order = make(tmp_path, ("deaths", "assistans"), policy_text=None)
    lss, deaths, assistans = data["lss"], data["deaths"], data["assistans"]
    regs = {"deaths": deaths, "assistans": assistans}
    plain, _ = L.link(lss, regs, order, policy)
    short = lss.assign(**{KEY: lss[KEY].str[2:8] + "-" + lss[KEY].str[8:]})  # YYMMDD-NNNC, read at the year
    dashed = deaths.assign(**{KEY: deaths[KEY].str[:8] + "-" + deaths[KEY].str[8:]})
    out, _ = L.link(short, {"deaths": dashed, "assistans": assistans}, order, policy)
    pd.testing.assert_frame_equal(out, plain)


def test_samordningsnummer_are_counted(tmp_path, data):
    policy, order = make(tmp_path, ("deaths", "population"))
    regs = {"deaths": data["deaths"], "population": data["population"]}
    _, report = L.link(data["lss"], regs, order, policy)
    persons = data["persons"]
    in_extract = persons[persons[KEY].isin(data["lss"][KEY])]
    expected = int(in_extract["samordningsnummer"].sum())
    assert expected > 0
    assert report.extract.samordningsnummer == expected
    assert report.extract.samordningsnummer_share == round(expected / report.extract.persons, 4)
    dead = persons[persons["death_date"].notna()]
    assert report.links[0].samordningsnummer == int(dead["samordningsnummer"].sum())
    assert report.links[1].samordningsnummer == 0  # the population register has none
    flags = pnr_mod.parse(data["lss"][KEY])["samordningsnummer"]
    assert flags.sum() > 0


def test_assistans_links_per_person_and_year(tmp_path, data):
    policy, order = make(tmp_path, ("assistans",))
    lss, assistans = data["lss"], data["assistans"]
    out, report = L.link(lss, {"assistans": assistans}, order, policy)
    assert len(out) == len(lss)
    rec = report.links[0]
    assert rec.join_on == [KEY, "year"] and rec.duplicate_keys == 0
    got = out.loc[out["hours_per_week"].notna(), [KEY, "year", "hours_per_week"]].drop_duplicates()
    assert len(got) == len(assistans)  # each (person, year) of assistansersättning found once
    merged = got.merge(assistans, on=[KEY, "year"], suffixes=("", "_fk"))
    assert (merged["hours_per_week"].astype(int) == merged["hours_per_week_fk"].astype(int)).all()
    # a person with assistansersättning in one year only has hours in that year only
    once = assistans.groupby(KEY)["year"].transform("size") == 1
    pnr, year = assistans.loc[once, [KEY, "year"]].iloc[0]
    rows = out[out[KEY] == pnr]
    assert rows.loc[rows["year"] != year, "hours_per_week"].isna().all()
    assert rows.loc[rows["year"] == year, "hours_per_week"].notna().all()
    assert set(rec.match_by_year) == {"2019", "2020", "2021"}


def test_the_report_never_contains_a_personnummer(tmp_path, data):
    policy, order = make(tmp_path, ("deaths", "population", "assistans"))
    regs = {k: data[k] for k in ("deaths", "population", "assistans")}
    _, report = L.link(data["lss"], regs, order, policy)
    for threshold in (None, 3):
        text = json.dumps(report.to_dict(threshold=threshold))
        assert not re.search(r"\d{6,}", text)
        numbers = set(data["lss"][KEY]) | set(data["deaths"][KEY])
        assert not any(n in text or n[2:] in text for n in numbers)


def test_small_counts_are_protected_in_the_rendered_report(tmp_path, data):
    policy, order = make(tmp_path, ("deaths",), {"deaths": "first"})
    deaths = with_duplicates(data["deaths"])
    _, report = L.link(data["lss"], {"deaths": deaths}, order, policy)
    d = report.to_dict(threshold=3)["registers"][0]
    assert d["duplicate_keys"] == "<3"
    assert report.to_dict()["registers"][0]["duplicate_keys"] == 2
    small = [g for g in d["match_by_lan"].values() if g.get("share") is None]
    assert all("matched" not in g for g in small)


# --------------------------------------------------------------------------------------------
# on the pseudonym


def test_link_on_pseudonym_joins_like_pandas_and_refuses_duplicates():
    extract = pd.DataFrame({"pseudonym": ["p1", "p2", "p3", "p1"], "year": [2020, 2020, 2021, 2021]})
    partner = pd.DataFrame({"pseudonym": ["p3", "p1", "p9"], "income": [30, 10, 90]})
    out, rec = L.link_on_pseudonym(extract, partner, ["income"])
    exp = extract.merge(partner, on="pseudonym", how="left")
    assert out["income"].astype("Float64").tolist() == exp["income"].astype("Float64").tolist()
    assert (rec.matched_persons, rec.unmatched_persons, rec.rows_outside_extract) == (2, 1, 1)
    with pytest.raises(InputDataError, match="occur more than once"):
        L.link_on_pseudonym(extract, pd.concat([partner, partner]), ["income"])
    with pytest.raises(InputDataError, match="no column 'pseudonym'"):
        L.link_on_pseudonym(extract, partner.rename(columns={"pseudonym": "x"}), ["income"])


def test_keys_parsed_in_chunks_give_the_same_result_and_rows(tmp_path, data, monkeypatch):
    policy, order = make(tmp_path, ("deaths", "population", "assistans"))
    regs = {k: data[k] for k in ("deaths", "population", "assistans")}
    whole, _ = L.link(data["lss"], regs, order, policy)
    monkeypatch.setattr(L, "_CHUNK", 1000)
    chunked, _ = L.link(data["lss"], regs, order, policy)
    pd.testing.assert_frame_equal(chunked, whole)
    bad = data["population"].copy()
    bad[KEY] = bad[KEY].astype(object)
    bad.loc[[4, 2500, 17001], KEY] = "19x"
    with pytest.raises(InputDataError) as exc:
        L.link(data["lss"], {**regs, "population": bad}, order, policy)
    assert exc.value.problems[0].rows == (5, 2501, 17002)
    assert "format" in str(exc.value)


def test_a_year_wise_register_reads_keys_at_the_end_of_its_year(tmp_path, data):
    """A child born in November (after the LSS measurement date, 1 October) may have
    assistansersättning that year: its number is not 'in the future' of that year."""
    policy, order = make(tmp_path, ("assistans",))
    rng = np.random.default_rng(3)
    birth = np.array(["2020-11-15"], dtype="datetime64[D]")
    child = synth.make_personnummer(rng, birth, np.array(["2"]), np.array([False]))[0]
    extra = pd.DataFrame(
        {"year": np.int16([2020]), KEY: [child[2:8] + "-" + child[8:]], "hours_per_week": [40]}
    )
    assistans = pd.concat(
        [data["assistans"], extra.astype(data["assistans"].dtypes.to_dict())], ignore_index=True
    )
    out, report = L.link(data["lss"], {"assistans": assistans}, order, policy)
    assert report.links[0].rows_outside_extract == 1 and len(out) == len(data["lss"])
