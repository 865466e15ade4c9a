"""Risk measures: the engine against an independent brute-force recount and against pycanon."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.special import gammaln

from lsssdc import coarsen as C
from lsssdc.disclosure.risk import Criteria, measure, model_risk
from lsssdc.errors import InputDataError
from lsssdc.identity.personnummer import parse
from lsssdc.register.synth import synthesise
from tests.disclosure import checker
from tests.peers import peer


@st.composite
def frames(draw, max_rows: int = 40, max_qis: int = 4, missing: bool = True):
    n = draw(st.integers(1, max_rows))
    m = draw(st.integers(1, max_qis))
    cols = {}
    for i in range(m):
        card = draw(st.integers(1, 4))
        vals = draw(st.lists(st.integers(0, card - 1), min_size=n, max_size=n))
        col = pd.Series([f"v{v}" for v in vals], dtype="string")
        if missing:
            holes = draw(st.lists(st.booleans(), min_size=n, max_size=n))
            col[np.array(holes)] = pd.NA
        cols[f"q{i}"] = col
    cols["s"] = pd.Series(draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)))
    return pd.DataFrame(cols), [f"q{i}" for i in range(m)]


@pytest.fixture(scope="module")
def register_frame() -> pd.DataFrame:
    """The synthetic register coarsened to typical quasi-identifiers."""
    reg = synthesise(years=range(2019, 2022), persons=5000, seed=1).register
    p = parse(reg["personnummer"])
    age = C.age_at_measurement(p["birth_date"], reg["year"].astype(int))
    return pd.DataFrame(
        {
            "age_band": C.band_ages(age, C.AgeBands([0, 7, 13, 18, 25, 35, 45, 55, 65])).values,
            "sex": p["sex"].astype(str),
            "lan": C.recode_kommun(reg["kommun"], "lan").values,
            "personkrets": reg["personkrets"],
            "daglig_verksamhet": reg["daglig_verksamhet"].astype("int64"),
            "korttidsvistelse": reg["korttidsvistelse"].astype("int64"),
        }
    )


def test_small_example_with_missing_values() -> None:
    df = pd.DataFrame(
        {
            "a": ["x", "x", "y", None, "y"],
            "b": ["1", "2", "1", "1", None],
            "s": [1, 2, 1, 3, 1],
        }
    )
    rep = measure(df, ["a", "b"], Criteria(k=2, l_diversity=2, sensitive=["s"]))
    # row 0 (x,1) matches itself and row 3 (NA,1); row 3 matches rows 0, 2, 4 too
    assert rep.class_size.tolist() == [2, 1, 3, 4, 3]
    assert rep.class_size.tolist() == checker.class_sizes(df, ["a", "b"]).tolist()
    assert rep.k == 1 and rep.records_below_k == 1 and rep.sample_uniques == 1
    assert rep.distinct_per_record("s").tolist() == [2, 1, 2, 2, 2]
    assert rep.missing == {"a": 1, "b": 1} and rep.records_with_missing == 2
    assert math.isclose(rep.expected_reidentifications, 1 / 2 + 1 + 1 / 3 + 1 / 4 + 1 / 3)
    codes = {p.code for p in rep.problems()}
    assert codes == {"k_anonymity", "l_diversity"}
    json.dumps(rep.to_dict())


@given(frames(), st.sampled_from([1, 0]))
def test_engine_agrees_with_brute_force(case, missing_weight: int) -> None:
    df, qis = case
    crit = Criteria(k=3, l_diversity=2, entropy_l=1.5, sensitive=["s"], missing_weight=missing_weight)
    rep = measure(df, qis, crit)
    f = checker.class_sizes(df, qis, missing_weight)
    distinct, ent = checker.diversity(df, qis, "s", missing_weight)
    assert rep.class_size.tolist() == f.tolist()
    assert rep.distinct_per_record("s").tolist() == distinct.tolist()
    assert np.allclose(rep.entropy_l_per_record("s"), ent)
    assert rep.records_below_k == int((f < 3).sum())
    assert rep.k == int(f.min())
    assert math.isclose(rep.expected_reidentifications, float((1 / f).sum()))
    assert rep.unsafe().tolist() == ((f < 3) | (distinct < 2) | (np.log(ent) < math.log(1.5) - 1e-9)).tolist()


@given(frames(missing=False))
def test_without_missing_values_agrees_with_pycanon(case) -> None:
    anonymity = peer("pycanon.anonymity")
    df, qis = case
    plain = df.astype(dict.fromkeys(qis, object)).reset_index(drop=True)
    rep = measure(df, qis, sensitive=["s"])
    assert rep.k == anonymity.k_anonymity(plain, qis)
    assert rep.l_distinct["s"] == anonymity.l_diversity(plain, qis, ["s"])
    # pycanon truncates exp(entropy) to an integer
    ent = rep.l_entropy["s"]
    assert anonymity.entropy_l_diversity(plain, qis, ["s"]) in {int(ent), int(ent + 1e-9), int(ent - 1e-9)}
    assert rep.class_size.tolist() == checker.group_sizes_without_missing(df, qis).tolist()


def test_register_agrees_with_pycanon_and_checker(register_frame: pd.DataFrame) -> None:
    anonymity = peer("pycanon.anonymity")
    qis = ["age_band", "sex", "lan", "personkrets"]
    df = register_frame
    plain = df.astype(object).reset_index(drop=True)
    rep = measure(df, qis, Criteria(k=5, l_diversity=2, sensitive=["daglig_verksamhet", "korttidsvistelse"]))
    assert rep.k == anonymity.k_anonymity(plain, qis)
    for s in ("daglig_verksamhet", "korttidsvistelse"):
        assert rep.l_distinct[s] == anonymity.l_diversity(plain, qis, [s])
        assert anonymity.entropy_l_diversity(plain, qis, [s]) == int(rep.l_entropy[s] + 1e-9)
    assert rep.class_size.tolist() == checker.group_sizes_without_missing(df, qis).tolist()
    assert rep.rows == len(df)
    assert rep.records_below_k == int((rep.class_size < 5).sum())


def test_register_with_suppressed_values_agrees_with_checker(register_frame: pd.DataFrame) -> None:
    qis = ["age_band", "sex", "lan", "personkrets"]
    df = register_frame.head(4000).copy()
    rng = np.random.default_rng(3)
    for q in qis:
        df.loc[rng.random(len(df)) < 0.03, q] = pd.NA
    rep = measure(df, qis, sensitive=["korttidsvistelse"])
    assert rep.class_size.tolist() == checker.class_sizes(df, qis).tolist()
    distinct, ent = checker.diversity(df, qis, "korttidsvistelse")
    assert rep.distinct_per_record("korttidsvistelse").tolist() == distinct.tolist()
    assert np.allclose(rep.entropy_l_per_record("korttidsvistelse"), ent)


def test_missing_sensitive_value_is_a_value_of_its_own() -> None:
    df = pd.DataFrame({"a": ["x", "x", "x"], "s": [1.0, None, None]})
    rep = measure(df, ["a"], sensitive=["s"])
    assert rep.l_distinct["s"] == 2


def test_more_missing_never_fewer_matches() -> None:
    """Blanking a value can only raise class sizes (the basis of round-wise suppression)."""
    rng = np.random.default_rng(7)
    for _ in range(30):
        n = int(rng.integers(2, 30))
        df = pd.DataFrame({f"q{i}": pd.Series(rng.integers(0, 3, n)).astype(str) for i in range(3)})
        df = df.astype("string")
        base = checker.class_sizes(df, list(df.columns))
        r, c = int(rng.integers(0, n)), f"q{int(rng.integers(0, 3))}"
        df.loc[r, c] = pd.NA
        after = measure(df, list(df.columns)).class_size
        assert (after >= base).all()


def test_model_risk_matches_negative_binomial_series() -> None:
    for f in (1, 2, 3, 7, 20, 40):
        for p in (0.02, 0.3, 0.8, 1.0):
            big_f = f / p
            got = float(model_risk(np.array([f]), np.array([big_f]))[0])
            if p == 1.0:
                assert got == pytest.approx(1 / f)
                continue
            h = np.arange(f, f + 20000)
            log_pmf = gammaln(h) - gammaln(f) - gammaln(h - f + 1) + f * np.log(p) + (h - f) * np.log1p(-p)
            want = float(np.sum(np.exp(log_pmf) / h))
            assert got == pytest.approx(want, rel=2e-4)


def test_weights_give_model_risk_and_ones_give_one_over_f() -> None:
    df = pd.DataFrame({"a": ["x", "x", "y"], "w": [1.0, 1.0, 1.0]})
    ones = measure(df, ["a"], weights="w")
    assert ones.risk.tolist() == pytest.approx([0.5, 0.5, 1.0])
    df["w"] = [10.0, 10.0, 50.0]
    rep = measure(df, ["a"], weights="w")
    assert rep.risk_method.startswith("benedetti")
    assert (rep.risk < np.array([0.5, 0.5, 1.0])).all()
    df.loc[1, "w"] = 0.5
    with pytest.raises(InputDataError):
        measure(df, ["a"], weights="w")


def test_missing_column_is_refused() -> None:
    with pytest.raises(InputDataError) as exc:
        measure(pd.DataFrame({"a": [1]}), ["a", "b"])
    assert exc.value.problems[0].column == "b"


def test_wide_key_space_falls_back_to_hashing() -> None:
    rng = np.random.default_rng(0)
    n = 3000
    df = pd.DataFrame({f"q{i}": rng.integers(0, 2000, n) for i in range(7)})  # 2000^7 > 2^62
    df.loc[:5, "q0"] = df.loc[6:11, "q0"].to_numpy()
    df.iloc[:6, 1:] = df.iloc[6:12, 1:].to_numpy()
    rep = measure(df, list(df.columns))
    assert rep.class_size.tolist() == checker.group_sizes_without_missing(df, list(df.columns)).tolist()


def test_empty_frame() -> None:
    rep = measure(pd.DataFrame({"a": pd.Series([], dtype="string")}), ["a"], Criteria(k=5))
    assert rep.rows == 0 and rep.records_below_k == 0 and rep.satisfied


def test_the_checker_can_fail() -> None:
    df = pd.DataFrame({"a": ["x", "x", "y", None], "s": [1, 1, 2, 2]})
    assert checker.class_sizes(df, ["a"]).tolist() == [3, 3, 2, 4]
    assert checker.check(df, ["a"], 3) == ["k: 1 records below k=3 (min 2)"]
    assert checker.check(df, ["a"], 2, sensitive=["s"], l_diversity=2) == [
        "l[s]: 1 records below l=2"
    ]  # row 2 sees only s=2
    assert checker.check(df, ["a"], 2) == []


def test_missing_weight_zero_does_not_let_a_blank_prop_up_others() -> None:
    df = pd.DataFrame({"kommun": ["0114", "0115", None, None], "age": ["1", "1", "1", "1"]})
    assert measure(df, ["kommun", "age"]).class_size.tolist() == [3, 3, 4, 4]
    strict = measure(df, ["kommun", "age"], Criteria(k=2, missing_weight=0))
    assert strict.class_size.tolist() == [1, 1, 4, 4]
    assert strict.records_below_k == 2 and strict.to_dict()["missing_weight"] == 0


@given(frames(), st.integers(1, 6))
def test_unit_counts_distinct_persons(case, persons: int) -> None:
    df, qis = case
    df["pid"] = np.arange(len(df)) % persons
    rep = measure(df, qis, Criteria(k=2, l_diversity=2, sensitive=["s"]), unit="pid")
    assert rep.class_size.tolist() == checker.persons(df, qis, "pid").tolist()
    assert rep.distinct_per_record("s").tolist() == checker.diversity(df, qis, "s")[0].tolist()
    assert (rep.class_size <= measure(df, qis).class_size).all()
    assert rep.to_dict()["unit"] == "pid"


def test_a_person_s_own_rows_do_not_make_a_class() -> None:
    # one person, three years; the year blanked: three compatible rows but one person
    df = pd.DataFrame({"pid": [7, 7, 7], "year": [None, "2020", "2021"], "lan": ["01", "01", "01"]})
    assert measure(df, ["year", "lan"]).class_size.tolist() == [3, 2, 2]
    assert measure(df, ["year", "lan"], unit="pid").class_size.tolist() == [1, 1, 1]
