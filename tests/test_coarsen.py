"""Coarsening: bands, kommun levels, merged small kommuner, top-coding, hierarchies."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lsssdc import coarsen as C
from lsssdc import refdata
from lsssdc.errors import InputDataError, PolicyError

CUTS = [0, 7, 13, 18, 25, 35, 45, 55, 65]


def test_age_bands_labels_and_open_top() -> None:
    ages = pd.Series([0, 6, 7, 17, 18, 64, 65, 103, None], dtype="Int64", name="age")
    values, rec = C.band_ages(ages, C.AgeBands(CUTS))
    assert values.tolist()[:8] == ["0-6", "0-6", "7-12", "13-17", "18-24", "55-64", "65+", "65+"]
    assert pd.isna(values.iloc[8])
    assert list(values.cat.categories) == C.AgeBands(CUTS).labels and values.cat.ordered
    d = rec.to_dict()
    json.dumps(d)
    assert d["variable"] == "age" and d["operation"] == "age_bands"
    assert d["rows"] == 9 and d["missing"] == 1 and d["changed"] == 8
    assert d["mapping"]["65+"] == "[65, inf)" and "25-34" not in d["mapping"]


def test_age_band_of_width_one_keeps_the_number() -> None:
    values, rec = C.band_ages(pd.Series([3, 4]), C.AgeBands([0, 1, 2, 3, 4, 5]))
    assert values.tolist() == ["3", "4"]
    assert rec.changed == 0


def test_age_outside_bands_is_refused_with_rows() -> None:
    with pytest.raises(InputDataError) as exc:
        C.band_ages(pd.Series([10, 70, 80]), C.AgeBands([0, 20, 65], open_top=False))
    p = exc.value.problems[0]
    assert p.code == "age_outside_bands" and p.rows == (1, 2) and p.column is not None
    with pytest.raises(InputDataError):
        C.band_ages(pd.Series([3]), C.AgeBands([5, 10]))
    with pytest.raises(PolicyError):
        C.AgeBands([0, 10, 5])
    with pytest.raises(PolicyError):
        C.AgeBands.of_width(7, 20)


@given(
    st.lists(st.integers(0, 110), min_size=1, max_size=30),
    st.lists(st.integers(1, 110), min_size=0, max_size=8, unique=True),
)
def test_every_age_lies_in_its_band(ages: list[int], cuts: list[int]) -> None:
    bands = C.AgeBands([0, *sorted(cuts)])
    values, _ = C.band_ages(pd.Series(ages), bands)
    for age, label in zip(ages, values, strict=True):
        if label.endswith("+"):
            assert age >= int(label[:-1])
        elif "-" in label:
            lo, hi = map(int, label.split("-"))
            assert lo <= age <= hi
        else:
            assert age == int(label)


def test_age_at_measurement_uses_the_year_s_date() -> None:
    birth = pd.Series(pd.to_datetime(["2000-10-01", "2000-10-02", "2000-06-01", "2000-06-02"]))
    year = pd.Series([2010, 2010, 2000, 2000], dtype="int16")  # 1 October 2010, 1 June 2000
    ages = C.age_at_measurement(birth, year)
    assert ages.tolist() == [10, 9, 0, -1]
    assert C.age_at_measurement(birth.iloc[:2], 2010).tolist() == [10, 9]


def test_kommun_levels_and_heby() -> None:
    codes = pd.Series(["0114", "1917", "0331", "2425", None], dtype="string", name="kommun")
    assert C.recode_kommun(codes, "kommun").values.tolist()[:4] == ["0114", "0331", "0331", "2425"]
    assert C.recode_kommun(codes, "lan").values.tolist()[:4] == ["01", "03", "03", "24"]
    kg = refdata.kommungrupper().set_index("kommun_kod")
    got = C.recode_kommun(codes, C.KommunLevel.KOMMUNGRUPP).values.tolist()[:4]
    assert got == [
        kg.loc["0114", "grupp"],
        kg.loc["0331", "grupp"],
        kg.loc["0331", "grupp"],
        kg.loc["2425", "grupp"],
    ]
    assert C.recode_kommun(codes, "huvudgrupp").values.tolist()[:4] == [g[0] for g in got]
    riket, rec = C.recode_kommun(codes, "riket")
    assert riket.tolist()[:4] == ["00"] * 4 and pd.isna(riket.iloc[4])
    assert rec.changed == 4 and rec.missing == 1
    assert list(C.recode_kommun(codes, "lan").values.cat.categories) == sorted(refdata.lan()["lan_kod"])


def test_unknown_kommun_is_refused() -> None:
    with pytest.raises(InputDataError) as exc:
        C.recode_kommun(pd.Series(["0114", "9999", "0114", "9999"]), "lan")
    assert exc.value.problems[0].rows == (1, 3)


def test_merge_small_kommuner() -> None:
    rule = C.MergeSmallKommuner(20000)
    table = C.small_kommun_mapping(rule)
    pop = refdata.befolkning().set_index("kommun_kod")["folkmangd"]
    harm = C.kommun_mapping(C.KommunLevel.KOMMUN)
    # small kommuner are merged into "<län>R"; a big one only to fill up its län's unit, and
    # then no kept kommun of that län is smaller than it
    for code, target in table.items():
        now = harm[code]
        assert target in (now, now[:2] + "R")
        if pop[now] < 20000:
            assert target == now[:2] + "R"
        elif target != now:
            kept = [k for k, t in table.items() if k == harm[k] and t == k and k[:2] == now[:2]]
            assert all(pop[k] >= pop[now] for k in kept)
    # each merged unit reaches the threshold (or is a whole län)
    units = pd.Series({k: v for k, v in table.items() if k == harm[k]})
    sums = units.groupby(units).apply(lambda s: int(pop[s.index].sum()))
    for unit, total in sums.items():
        if unit.endswith("R"):
            whole_lan = (units.index.str[:2] == unit[:2]).sum() == (units == unit).sum()
            assert total >= 20000 or whole_lan
    values, rec = C.merge_small_kommuner(pd.Series(["0180", "2425", "1917"]), rule)
    assert values.tolist() == ["0180", "24R", table["1917"]]
    assert rec.to_dict()["parameters"] == {"min_population": 20000, "population_year": 2023}
    v2, _ = C.merge_small_kommuner(pd.Series(["2425"]), C.MergeSmallKommuner(3000, year=2015))
    assert v2.tolist()[0] in {"2425", "24R"}
    with pytest.raises(PolicyError):
        C.merge_small_kommuner(pd.Series(["2425"]), C.MergeSmallKommuner(3000, year=1990))


def test_top_code_numeric_and_banded() -> None:
    hours = pd.Series([0, 5, 40, 41, 160, 200, None], dtype="Float64", name="hours")
    top, rec = C.top_code(hours, C.TopCode(160))
    assert top.tolist()[:6] == [0, 5, 40, 41, 160, 160] and pd.isna(top.iloc[6])
    assert rec.changed == 1
    banded, rec = C.top_code(hours, C.TopCode(160, bands=[0, 1, 41, 81, 121]))
    assert banded.tolist() == ["0", "1-40", "1-40", "41-80", "160+", "160+", "none"]
    assert banded.cat.ordered and rec.missing == 0
    kept, _ = C.top_code(hours, C.TopCode(160, bands=[0, 80], missing_label=None))
    assert pd.isna(kept.iloc[6])
    frac, _ = C.top_code(pd.Series([0.5, 2.5]), C.TopCode(3.5, bands=[0, 1.5]))
    assert frac.tolist() == ["0-<1.5", "1.5-<3.5"]
    with pytest.raises(InputDataError):
        C.top_code(pd.Series([-1.0]), C.TopCode(10, bands=[0]))
    with pytest.raises(PolicyError):
        C.TopCode(10, bands=[0, 20])


def test_hierarchy_lookups_equal_direct_recoding() -> None:
    rng = np.random.default_rng(0)
    ages = pd.Series(rng.integers(0, 100, 500))
    ages[::50] = None
    h = C.age_hierarchy("age", C.AgeBands.of_width(5, 85), C.AgeBands.of_width(10, 80), C.AgeBands([0]))
    enc = h.encode(ages.astype("Int64"))
    assert enc.height == 3 and enc.level_names[0] == "as_is"
    for lv, bands in enumerate(
        [C.AgeBands.of_width(5, 85), C.AgeBands.of_width(10, 80), C.AgeBands([0])], start=1
    ):
        codes = enc.level_codes(lv)
        got = np.where(codes >= 0, np.asarray(enc.categories[lv], dtype=object)[np.maximum(codes, 0)], None)
        want = C.band_ages(ages, bands).values.astype(object).where(ages.notna(), None)
        assert list(got) == list(want)
    # loss: level 0 costs nothing, the top level everything
    assert enc.loss[0].max() == 0 and np.allclose(enc.loss[3], 1.0)


def test_hierarchy_must_nest() -> None:
    h = C.age_hierarchy("age", C.AgeBands.of_width(5, 10), C.AgeBands([0, 7]))
    with pytest.raises(PolicyError) as exc:
        h.encode(pd.Series([1, 6, 9]))
    assert exc.value.problems[0].code == "hierarchy_not_nested"
    kg = refdata.kommungrupper()
    a2 = kg[kg["grupp"] == "A2"]
    two_lan = [
        a2["kommun_kod"].iloc[0],
        a2[a2["kommun_kod"].str[:2] != a2["kommun_kod"].iloc[0][:2]]["kommun_kod"].iloc[0],
    ]
    k = C.kommun_hierarchy("kommun", "kommungrupp", "lan")
    with pytest.raises(PolicyError):  # one kommungrupp spans two län: not a chain
        k.encode(pd.Series(two_lan))
    ok = C.kommun_hierarchy("kommun", C.MergeSmallKommuner(20000), "lan", "riket").encode(
        pd.Series(["0114", "1917", "2425", "0331"])
    )
    assert ok.height == 3


def test_mapping_hierarchy_needs_a_label_for_every_value() -> None:
    h = C.mapping_hierarchy("x", [("coarse", {"a": "A"})])
    with pytest.raises(PolicyError):
        h.encode(pd.Series(["a", "b"]))


def test_amount_hierarchy() -> None:
    h = C.amount_hierarchy("hours", C.TopCode(160, [0, 1, 41, 81, 121]), C.TopCode(160, [0, 1, 81]))
    enc = h.encode(pd.Series([0.0, 10.0, 100.0, 300.0]))
    assert enc.categories[2] == ("0", "1-80", "81-159", "160+", "none")


def test_coarsen_a_frame() -> None:
    df = pd.DataFrame(
        {
            "age": pd.Series([3, 40, 70], dtype="Int16"),
            "kommun": pd.Series(["0114", "1917", "2425"], dtype="string"),
            "hours": pd.Series([None, 50.0, 500.0], dtype="Float64"),
            "other": [1, 2, 3],
        }
    )
    plan = {"age": C.AgeBands(CUTS), "kommun": "lan", "hours": C.TopCode(160, [0, 1, 81])}
    out, records = C.coarsen(df, plan)
    assert out["age"].tolist() == ["0-6", "35-44", "65+"]
    assert out["kommun"].tolist() == ["01", "03", "24"]
    assert out["hours"].tolist() == ["none", "1-80", "160+"]
    assert out["other"].tolist() == [1, 2, 3] and df["kommun"].tolist() == ["0114", "1917", "2425"]
    assert [r.variable for r in records] == ["age", "kommun", "hours"]
    with pytest.raises(PolicyError):
        C.coarsen(df, {"kommun": "county"})
    with pytest.raises(InputDataError):
        C.coarsen(df, {"nope": "lan"})
