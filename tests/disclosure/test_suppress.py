"""Local suppression: k and l hold afterwards (independent recount), nothing else changes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lsssdc import coarsen as C
from lsssdc.disclosure.risk import Criteria, measure
from lsssdc.disclosure.suppress import suppress_locally
from lsssdc.errors import DisclosureRefused, PolicyError
from lsssdc.identity.personnummer import parse
from lsssdc.register.synth import synthesise
from tests.disclosure import checker


def assert_only_suppressed(before: pd.DataFrame, after: pd.DataFrame, qis: list[str], report) -> None:
    """Same rows and index; QI values equal or newly missing; other columns untouched."""
    assert len(after) == len(before) and after.index.equals(before.index)
    assert report.rows_dropped == 0
    for c in before.columns:
        b, a = before[c], after[c]
        if c not in qis:
            pd.testing.assert_series_equal(a, b)
            continue
        newly = a.isna().to_numpy() & b.notna().to_numpy()
        kept = ~a.isna().to_numpy()
        assert (b.isna().to_numpy() <= a.isna().to_numpy()).all()
        assert (a[kept].astype(str).to_numpy() == b[kept].astype(str).to_numpy()).all()
        assert int(newly.sum()) == report.suppressed_values[c]


@st.composite
def tables(draw):
    n = draw(st.integers(1, 50))
    m = draw(st.integers(1, 4))
    cols = {}
    for i in range(m):
        card = draw(st.integers(1, 5))
        vals = draw(st.lists(st.integers(0, card - 1), min_size=n, max_size=n))
        cols[f"q{i}"] = pd.Series([f"c{v}" for v in vals], dtype="string")
    cols["s"] = draw(st.lists(st.integers(0, 2), min_size=n, max_size=n))
    cols["other"] = list(range(n))
    k = draw(st.integers(1, 5))
    use_l = draw(st.booleans())
    return pd.DataFrame(cols), [f"q{i}" for i in range(m)], k, use_l


@given(tables(), st.sampled_from([1, 0]))
def test_after_suppression_k_and_l_hold(case, missing_weight: int) -> None:
    df, qis, k, use_l = case
    crit = Criteria(
        k=k,
        l_diversity=2 if use_l else None,
        sensitive=["s"] if use_l else [],
        max_suppressed_share=1.0,
        missing_weight=missing_weight,
    )
    possible = len(df) >= k and (not use_l or df["s"].nunique() >= 2)
    if not possible:
        with pytest.raises(DisclosureRefused) as exc:
            suppress_locally(df, qis, crit)
        assert exc.value.report.after is not None
        return
    out, rep = suppress_locally(df, qis, crit)
    assert (
        checker.check(
            out, qis, k, sensitive=["s"], l_diversity=crit.l_diversity, missing_weight=missing_weight
        )
        == []
    )
    assert_only_suppressed(df, out, qis, rep)
    assert rep.records_suppressed <= sum(rep.suppressed_values.values())
    json.dumps(rep.to_dict())


@given(tables())
def test_entropy_l_holds_or_is_refused(case) -> None:
    df, qis, k, _ = case
    crit = Criteria(k=k, entropy_l=1.4, sensitive=["s"], max_suppressed_share=1.0)
    try:
        out, rep = suppress_locally(df, qis, crit)
    except DisclosureRefused:
        # refused only when no treatment can work: too few records, or the whole table (what a
        # fully blanked record is compatible with) is not diverse enough
        p = df["s"].value_counts(normalize=True).to_numpy()
        assert len(df) < k or np.exp(-(p * np.log(p)).sum()) < 1.4
        return
    assert checker.check(out, qis, k, sensitive=["s"], entropy_l=1.4) == []
    assert_only_suppressed(df, out, qis, rep)


def test_one_suppression_is_enough_for_a_pair() -> None:
    df = pd.DataFrame({"a": ["1", "2"], "b": ["x", "x"]})
    out, rep = suppress_locally(df, ["a", "b"], Criteria(k=2, max_suppressed_share=1.0))
    assert sum(rep.suppressed_values.values()) == 1
    assert checker.class_sizes(out, ["a", "b"]).min() >= 2


def test_smallest_classes_go_first_and_the_rest_are_spared() -> None:
    df = pd.DataFrame({"a": ["1", "2", "3", "4", "5", "5", "5"], "b": ["x"] * 7})
    out, rep = suppress_locally(df, ["a", "b"], Criteria(k=3, max_suppressed_share=1.0))
    assert rep.suppressed_values == {"a": 2, "b": 0}
    assert checker.class_sizes(out, ["a", "b"]).min() >= 3


def test_order_decides_which_variable_is_blanked() -> None:
    df = pd.DataFrame({"kommun": ["0114"] * 4 + ["0115"], "sex": ["1"] * 4 + ["2"]})
    crit = Criteria(k=2, max_suppressed_share=1.0)
    out, rep = suppress_locally(df, ["kommun", "sex"], crit, order=["kommun", "sex"])
    assert rep.suppressed_values == {"kommun": 1, "sex": 1}  # blanking kommun alone is not enough
    out2, rep2 = suppress_locally(df, ["kommun", "sex"], crit, order=["sex", "kommun"])
    assert rep2.suppressed_values["sex"] == 1
    df2 = pd.DataFrame({"kommun": ["0114", "0114", "0115"], "sex": ["1", "2", "2"]})
    out3, rep3 = suppress_locally(df2, ["kommun", "sex"], crit, order=["kommun", "sex"])
    # two blanks are needed whatever the order (checked by hand: no single blank gives k=2)
    assert sum(rep3.suppressed_values.values()) == 2 and rep3.suppressed_values["kommun"] >= 1
    out4, rep4 = suppress_locally(df2, ["kommun", "sex"], crit, order=["sex", "kommun"])
    assert rep4.suppressed_values["sex"] >= 1


def test_bad_order_is_a_policy_error() -> None:
    with pytest.raises(PolicyError):
        suppress_locally(pd.DataFrame({"a": ["1"]}), ["a"], Criteria(k=1), order=["a", "b"])


def test_too_few_records_is_refused_with_report() -> None:
    df = pd.DataFrame({"a": ["1", "2"]})
    with pytest.raises(DisclosureRefused) as exc:
        suppress_locally(df, ["a"], Criteria(k=3, max_suppressed_share=1.0))
    assert exc.value.exit_code == 1
    assert {p.code for p in exc.value.problems} >= {"k_anonymity"}
    assert exc.value.report.after.k == 2


def test_share_above_the_limit_is_refused() -> None:
    df = pd.DataFrame({"a": ["1", "1", "1", "2", "3"]})
    with pytest.raises(DisclosureRefused) as exc:
        suppress_locally(df, ["a"], Criteria(k=3, max_suppressed_share=0.2))
    assert "max_suppression" in {p.code for p in exc.value.problems}
    assert exc.value.report.records_suppressed == 2
    out, rep = suppress_locally(df, ["a"], Criteria(k=3, max_suppressed_share=0.4))
    assert rep.records_suppressed_share == pytest.approx(0.4)


def test_integer_columns_become_nullable() -> None:
    df = pd.DataFrame({"a": [1, 1, 2], "b": [5, 5, 5]})
    out, rep = suppress_locally(df, ["a", "b"], Criteria(k=2, max_suppressed_share=1.0))
    assert str(out["a"].dtype) == "Int64" and out["a"].isna().sum() == 1
    assert out["b"].dtype == np.int64


def test_already_safe_data_is_untouched() -> None:
    df = pd.DataFrame({"a": ["1", "1", "2", "2"]})
    out, rep = suppress_locally(df, ["a"], Criteria(k=2))
    pd.testing.assert_frame_equal(out, df)
    assert rep.rounds == 0 and rep.records_suppressed == 0


def test_synthetic_register_to_k5() -> None:
    reg = synthesise(years=range(2019, 2022), persons=5000, seed=1).register
    p = parse(reg["personnummer"])
    age = C.age_at_measurement(p["birth_date"], reg["year"].astype(int))
    df = pd.DataFrame(
        {
            "age_band": C.band_ages(age, C.AgeBands.of_width(10, 80)).values,
            "sex": p["sex"].astype(str),
            "lan": C.recode_kommun(reg["kommun"], "lan").values,
            "personkrets": reg["personkrets"],
        }
    )
    qis = ["age_band", "sex", "lan", "personkrets"]
    before = measure(df, qis, Criteria(k=5))
    assert before.records_below_k > 0
    out, rep = suppress_locally(
        df, qis, Criteria(k=5, max_suppressed_share=0.05), order=["lan", "personkrets", "age_band", "sex"]
    )
    assert_only_suppressed(df, out, qis, rep)
    assert rep.after.k >= 5
    assert rep.suppressed_values["lan"] >= max(v for q, v in rep.suppressed_values.items() if q != "lan")
    # the independent recount on a sample of rows' classes: all rows, blockwise
    assert checker.check(out, qis, 5) == []
    # greedy but not wasteful: never more records touched than were unsafe to begin with
    assert rep.records_suppressed <= before.records_below_k


def test_strict_missing_weight_blanks_more() -> None:
    df = pd.DataFrame({"kommun": ["0114", "0115", "0116", "0117", "0117"], "age": ["1"] * 5})
    _, loose = suppress_locally(df, ["kommun", "age"], Criteria(k=2, max_suppressed_share=1.0))
    out, strict = suppress_locally(
        df, ["kommun", "age"], Criteria(k=2, max_suppressed_share=1.0, missing_weight=0)
    )
    assert loose.records_suppressed == 1  # one blank kommun matches, and props up, everyone
    assert strict.records_suppressed == 3
    assert checker.check(out, ["kommun", "age"], 2, missing_weight=0) == []


@given(tables(), st.integers(1, 8))
def test_k_on_persons_holds_after_suppression(case, n_persons: int) -> None:
    df, qis, k, _ = case
    df["pid"] = np.arange(len(df)) % n_persons
    crit = Criteria(k=k, max_suppressed_share=1.0)
    if df["pid"].nunique() < k:
        with pytest.raises(DisclosureRefused):
            suppress_locally(df, qis, crit, unit="pid")
        return
    out, rep = suppress_locally(df, qis, crit, unit="pid")
    assert checker.check(out, qis, k, unit="pid") == []
    assert_only_suppressed(df, out, qis, rep)
