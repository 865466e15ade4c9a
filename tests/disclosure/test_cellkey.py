"""The cell key method: record keys, the perturbation table, perturbing a table, and the audit
of an attacker who holds every release."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lsssdc.disclosure.tables import SUM, CodeTree, Relations, Table, build_table
from lsssdc.disclosure.tables.cellkey import (
    KEY_SPACE,
    CellKeyAudit,
    PTableParams,
    audit,
    perturb,
    ptable,
    record_keys,
)
from lsssdc.errors import InputDataError, KeyStoreError, PolicyError
from lsssdc.register.synth import synthesise
from tests.adversarial.test_intruder_cellkey import Intruder, cell_names, feasible_from_ptable

SECRET = b"k" * 32


@pytest.fixture(scope="module")
def synth() -> pd.DataFrame:
    return synthesise(years=[2022, 2023], persons=1200, seed=7).register


def year_of(reg: pd.DataFrame, year: int) -> tuple[pd.DataFrame, np.ndarray]:
    """One year of the register and its rows' record keys (computed on the whole register)."""
    keys = record_keys(reg["personnummer"], SECRET)
    mask = (reg["year"] == year).to_numpy()
    return reg[mask].reset_index(drop=True), keys[mask]


def flat_table(leaves: list[int], keys: list[int], name: str = "t") -> Table:
    """A table of a total and its leaves (the total first), every relation a sum."""
    tree = CodeTree.flat("g", [f"c{i}" for i in range(len(leaves))])
    values = np.array([sum(leaves), *leaves], dtype=np.int64)
    cells = pd.DataFrame(
        {
            "g": pd.Categorical.from_codes(np.arange(tree.size), categories=list(tree.codes)),
            "value": values,
            "contributors": values,
            "margin": np.arange(tree.size) == 0,
            "cell_key": np.asarray(keys, dtype=np.uint32),
        }
    )
    rel = Relations(
        parent=np.array([0]),
        kind=np.array([SUM], np.int8),
        dim=np.array([0], np.int8),
        ptr=np.array([0, len(leaves)]),
        children=np.arange(1, len(leaves) + 1),
    )
    return Table(
        name=name,
        dims=("g",),
        unit="insatser",
        measure=None,
        scope={"years": "2024", "insatser": "x"},
        hierarchies={"g": tree},
        cells=cells,
        nodes=np.arange(tree.size)[:, None],
        relations=rel,
    )


def key_for(pt, value: int, noise: int) -> int:
    """A cell key that gives a cell of ``value`` this noise (the last key of its interval)."""
    row = min(value, pt.n_rows - 1)
    k = noise + pt.params.D
    assert pt.counts[row, k] > 0, "that noise is impossible for that value"
    return int(pt.upper[row, k]) - 1


# ---------------------------------------------------------------------------------------------
# the perturbation table


@settings(max_examples=40, deadline=None)
@given(
    d=st.integers(1, 6),
    share=st.floats(0.03, 0.9),
    js_share=st.floats(0, 1),
)
def test_ptable_rows_are_unbiased_distributions_on_their_support(
    d: int, share: float, js_share: float
) -> None:
    js = 1 + int(js_share * (d - 1))
    params = PTableParams(D=d, V=share * d * d, js=js)
    pt = ptable(params)
    off = pt.offsets
    assert pt.n_rows == d + js + 1
    assert np.allclose(pt.probability.sum(axis=1), 1.0, atol=1e-12)
    assert (pt.counts.sum(axis=1) == KEY_SPACE).all()
    assert (pt.upper[:, -1] == KEY_SPACE).all()
    assert np.abs(pt.probability @ off).max() < 1e-9  # the mean is kept
    assert np.abs(pt.realised @ off).max() < 1e-7  # also as the lookup realises it
    var = pt.probability @ off**2
    uncut = np.arange(pt.n_rows) >= d + js
    assert np.allclose(var[uncut], params.V, atol=1e-8)  # the variance asked for
    assert np.allclose(var[1:], pt.target_variance[1:], atol=1e-8)  # or the one the notes give
    if not np.allclose(pt.target_variance[1:], params.V):
        assert any("out of reach" in n for n in pt.notes)
    published = np.arange(pt.n_rows)[:, None] + off[None, :]
    blocked = (published < 0) | ((published >= 1) & (published < js))
    assert (pt.probability[blocked] == 0).all() and (pt.counts[blocked] == 0).all()
    assert pt.probability[0, d] == 1.0 and pt.counts[0, d] == KEY_SPACE  # zero stays zero
    again = ptable(params)
    assert (again.counts == pt.counts).all() and (again.probability == pt.probability).all()


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"D": 0, "V": 1.0}, "ptable_d"),
        ({"D": 2, "V": 0.0}, "ptable_v"),
        ({"D": 2, "V": 4.0}, "ptable_v"),  # D**2: only +-D, and not even then for small counts
        ({"D": 3, "V": 9.5}, "ptable_v"),
        ({"D": 2, "V": 1.0, "js": 3}, "ptable_js"),
        ({"D": 2, "V": 1.0, "js": 0}, "ptable_js"),
        ({"D": 3, "V": 1.0, "js": 2, "max_value": 4}, "ptable_max_value"),
        ({"D": True, "V": 1.0}, "ptable_d"),
    ],
)
def test_bad_ptable_parameters_are_refused_with_a_reason(kwargs: dict, code: str) -> None:
    with pytest.raises(PolicyError) as err:
        PTableParams(**kwargs)
    assert err.value.problems[0].code == code
    if code == "ptable_v" and kwargs["V"] > 0:
        assert "cannot be reached" in str(err.value)


def test_the_key_intervals_give_the_noise() -> None:
    pt = ptable(PTableParams(D=3, V=1.5, js=2))
    for row in range(pt.n_rows):
        for k in np.flatnonzero(pt.counts[row] > 0):
            lo = int(pt.upper[row, k] - pt.counts[row, k])
            hi = int(pt.upper[row, k]) - 1
            got = pt.noise(np.array([row, row, row + 50]), np.array([lo, hi, hi], dtype=np.uint32))
            assert got[0] == got[1] == pt.offsets[k]
            if row == pt.n_rows - 1:
                assert got[2] == pt.offsets[k]  # larger counts use the last row
    # keys spread evenly over the key space realise the probabilities
    keys = (np.arange(200_000, dtype=np.uint64) * (KEY_SPACE // 200_000)).astype(np.uint32)
    noise = pt.noise(np.full(len(keys), 2), keys)
    freq = np.bincount(noise + 3, minlength=7) / len(keys)
    assert np.abs(freq - pt.realised[2]).max() < 1e-3
    frame = pt.to_frame()
    for _, rows in frame.groupby("i"):
        assert rows["p_int_lb"].iloc[0] == 0.0 and rows["p_int_ub"].iloc[-1] == 1.0
        assert np.allclose(rows["p_int_lb"].to_numpy()[1:], rows["p_int_ub"].to_numpy()[:-1])
        assert rows["p"].sum() == pytest.approx(1.0)


def test_a_small_ptable_is_fast_enough_to_build_every_time() -> None:
    for d in range(2, 6):
        pt = ptable(PTableParams(D=d, V=d / 2, js=2))
        assert pt.n_rows == d + 3
    assert json.dumps(pt.to_dict())


# ---------------------------------------------------------------------------------------------
# record keys


def test_record_keys_are_per_person_keyed_and_vectorised() -> None:
    pnrs = pd.Series(["194902258369", "196403135434", "196905314610", "194902258369"])
    k = record_keys(pnrs, SECRET)
    assert k.dtype == np.uint32 and len(k) == 4
    assert k[0] == k[3] and len(set(k[:3].tolist())) == 3
    # the same person written another way is the same key
    other_ways = pd.Series(["19490225-8369", "490225-8369"])
    assert record_keys(other_ways, SECRET, reference_date="2024-12-31").tolist() == [k[0], k[0]]
    # the same in any order, and a different secret gives different keys
    assert (record_keys(pnrs[::-1].reset_index(drop=True), SECRET) == k[::-1]).all()
    assert (record_keys(pnrs, b"j" * 32) != k).any()


def test_record_keys_refuse_bad_input_without_echoing_it() -> None:
    with pytest.raises(InputDataError) as err:
        record_keys(pd.Series(["194902258369", "194902258360"]), SECRET)
    assert "4902258360" not in str(err.value) and "4902258360" not in json.dumps(err.value.to_dict())
    assert err.value.problems[0].rows == (2,) and "no record key" in str(err.value)
    with pytest.raises(KeyStoreError):
        record_keys(pd.Series(["194902258369"]), b"short")


# ---------------------------------------------------------------------------------------------
# perturbing a table


def test_perturb_is_deterministic_and_keeps_zeros_and_blocks_small_values(synth) -> None:
    reg, keys = year_of(synth, 2022)
    t = build_table(reg, ["lan", "insats", "sex"], "persons", record_keys=keys)
    pt = ptable(PTableParams(D=3, V=2.0, js=3))
    p1, rec = perturb(t, pt)
    p2, _ = perturb(t, pt)
    value = t.cells["value"].to_numpy()
    assert (p1 == p2).all()
    assert (p1[value == 0] == 0).all()
    assert ((p1 == 0) | (p1 >= 3)).all()
    assert (np.abs(p1 - value) <= 3).all()
    assert rec.changed == int((p1 != value).sum()) > 0
    assert rec.sum_relations_broken > 0  # margins on their own keys: the table does not add up
    d = rec.to_dict()
    assert d["additive"] is False and json.dumps(d)
    # a count below js cannot reach the variance asked for: the record says so
    assert any("out of reach" in n for n in d["notes"]) and d["ptable"]["target_variance"][1] > 2.0


@settings(max_examples=40, deadline=None)
@given(
    leaves=st.lists(st.integers(0, 40), min_size=1, max_size=30),
    seed=st.integers(0, 2**32 - 1),
    d=st.integers(1, 5),
    js_share=st.floats(0, 1),
)
def test_perturbed_counts_stay_within_the_noise_and_off_the_blocked_values(
    leaves: list[int], seed: int, d: int, js_share: float
) -> None:
    js = 1 + int(js_share * (d - 1))
    pt = ptable(PTableParams(D=d, V=d * d / 4, js=js))
    keys = np.random.default_rng(seed).integers(0, 2**32, size=len(leaves) + 1, dtype=np.uint32)
    t = flat_table(leaves, keys.tolist())
    published, rec = perturb(t, pt)
    value = t.cells["value"].to_numpy()
    assert (np.abs(published - value) <= d).all()
    assert (published[value == 0] == 0).all()
    assert ((published == 0) | (published >= js)).all()
    assert (published == perturb(t, pt)[0]).all()
    assert rec.max_abs_error == int(np.abs(published - value).max())


def test_perturb_refuses_tables_it_cannot_perturb(synth) -> None:
    reg, keys = year_of(synth, 2022)
    pt = ptable(PTableParams(D=2, V=1.0))
    with pytest.raises(PolicyError, match="no cell keys"):
        perturb(build_table(reg, ["lan"], "persons"), pt)
    hours = build_table(reg, ["lan"], measure="hours_personlig_assistans", record_keys=keys)
    with pytest.raises(PolicyError, match="count tables only"):
        perturb(hours, pt)


def test_the_same_persons_get_the_same_key_and_noise_in_any_table_order_and_year(synth) -> None:
    pt = ptable(PTableParams(D=4, V=2.5, js=2))
    r22, k22 = year_of(synth, 2022)
    r23, k23 = year_of(synth, 2023)
    by_sex = build_table(r22, ["lan", "insats", "sex"], "persons", record_keys=k22)
    by_age = build_table(r22, ["lan", "insats", "age_band"], "persons", record_keys=k22)
    pairs = build_table(r22, ["lan", "insats"], "insatser", record_keys=k22)
    next_year = build_table(r23, ["lan", "insats", "sex"], "persons", record_keys=k23)
    # rows in another order give the same table
    shuffled = r22.sample(frac=1.0, random_state=1).reset_index(drop=True)
    order = r22.reset_index().merge(shuffled.reset_index(), on=list(r22.columns), how="inner")
    assert len(order) == len(r22)
    k_shuffled = np.empty(len(r22), np.uint32)
    k_shuffled[order["index_y"].to_numpy()] = k22[order["index_x"].to_numpy()]
    again = build_table(shuffled, ["lan", "insats", "sex"], "persons", record_keys=k_shuffled)
    assert (again.cells["cell_key"].to_numpy() == by_sex.cells["cell_key"].to_numpy()).all()

    pubs = {id(t): perturb(t, pt)[0] for t in (by_sex, by_age, pairs, next_year)}

    def lookup(t: Table) -> dict[tuple, tuple[int, int, int]]:
        keys = t.cells["cell_key"].to_numpy()
        return {
            (g, i, s, a): (int(keys[k]), int(pubs[id(t)][k]), int(t.cells["value"].iat[k]))
            for k, (_, _, g, i, s, a) in enumerate(cell_names(t))
        }

    sex, age, pair = lookup(by_sex), lookup(by_age), lookup(pairs)
    shared = [c for c in sex if c in age]
    assert len(shared) > 100
    assert all(sex[c][:2] == age[c][:2] for c in shared)  # same cell, same key, same noise
    leaves = [c for c in pair if c[0] != "*" and c[1] != "*"]
    assert leaves and all(sex[c][:2] == pair[c][:2] for c in leaves)  # persons and insatser leaves

    # a person's key is the same every year: a cell of the same persons in both years
    nxt = lookup(next_year)
    lan = synth["kommun"].astype(str).str[:2]
    same = 0
    for g, ins, s, a in [c for c in shared if c[0] != "*" and c[1] != "*"]:
        who = [
            set(synth.loc[(synth["year"] == y) & (lan == g) & (synth[ins] == 1), "personnummer"])
            for y in (2022, 2023)
        ]
        if who[0] == who[1] and who[0]:
            same += 1
            assert sex[(g, ins, s, a)][:2] == nxt[(g, ins, s, a)][:2]
    assert same >= 2, "no cell with the same persons in both years: the test would prove nothing"


def test_the_utility_figures_match_a_hand_computation() -> None:
    pt = ptable(PTableParams(D=2, V=1.0))
    leaves = [0, 1, 5, 12]
    noises = [-1, 0, 1, 2]  # total, then the leaves (the zero leaf can only stay 0)
    values = [sum(leaves), *leaves]
    keys = [
        key_for(pt, v, 0 if v == 0 else n) for v, n in zip(values, [noises[0], 0, *noises[1:]], strict=True)
    ]
    t = flat_table(leaves, keys)
    published, rec = perturb(t, pt)
    err = np.abs(published - np.array(values))
    assert err.tolist() == [1, 0, 0, 1, 2]
    assert rec.cells == 5 and rec.changed == 3
    assert rec.share_unchanged == pytest.approx(2 / 5, abs=1e-6)
    assert rec.mean_abs_error == pytest.approx(4 / 5, abs=1e-6)
    assert rec.mean_abs_error_margins == pytest.approx(1.0, abs=1e-6)
    assert rec.mean_abs_error_leaves == pytest.approx(3 / 4, abs=1e-6)
    assert rec.mean_abs_error_nonzero == pytest.approx(4 / 4, abs=1e-6)
    assert rec.max_abs_error == 2
    assert rec.relative_error_mean == pytest.approx(np.mean([1 / 18, 0 / 1, 1 / 5, 2 / 12]), abs=1e-6)
    assert rec.relative_error_by_size["1-9"]["cells"] == 2
    assert rec.relative_error_by_size["10-99"]["mean_relative_error"] == pytest.approx(
        (1 / 18 + 2 / 12) / 2, abs=1e-6
    )
    assert rec.mean_noise == pytest.approx((-1 + 0 + 0 + 1 + 2) / 5, abs=1e-6)
    assert rec.sum_relations == 1 and rec.sum_relations_broken == 1


# ---------------------------------------------------------------------------------------------
# the audit


def test_a_margin_and_a_large_cell_pin_a_small_one() -> None:
    pt = ptable(PTableParams(D=2, V=1.0))
    # total 21 = 1 + 20; published: total 19 (-2), the small cell 1 (0), the large 22 (+2)
    keys = [key_for(pt, 21, -2), key_for(pt, 1, 0), key_for(pt, 20, 2)]
    t = flat_table([1, 20], keys)
    published, _ = perturb(t, pt)
    assert published.tolist() == [19, 1, 22]
    result = audit([(t, published)], pt, 3)
    assert not result.passed
    row = result.cells.set_index("cell").loc[1]
    # its own counts allow 1..3, but small = total - large <= 21 - 20 = 1
    assert (row["feasible_lower"], row["feasible_upper"]) == (1, 3)
    assert row["upper"] == pytest.approx(1.0) and not row["upper_ok"]
    assert row["why"] == "upper: relations"
    assert result.summary["narrowed_by_relations"] == 1


def test_a_small_cell_with_room_passes() -> None:
    pt = ptable(PTableParams(D=3, V=1.5))
    # total 21 = 1 + 20, published 21, 0, 20: small = total - large can be 21 - 20 +- 6
    keys = [key_for(pt, 21, 0), key_for(pt, 1, -1), key_for(pt, 20, 0)]
    t = flat_table([1, 20], keys)
    published, _ = perturb(t, pt)
    assert published.tolist() == [21, 0, 20]
    result = audit([(t, published)], pt, 3)
    assert result.passed, result.failures
    row = result.cells.set_index("cell").loc[1]
    assert (row["feasible_lower"], row["feasible_upper"]) == (0, 3)
    assert row["lower"] == pytest.approx(0.0) and row["upper"] == pytest.approx(3.0)
    assert row["required_upper"] == 3 and row["required_lower"] == 0


def test_a_cell_of_one_published_above_zero_shows_it_is_not_empty() -> None:
    pt = ptable(PTableParams(D=3, V=1.5))
    keys = [key_for(pt, 31, 0), key_for(pt, 1, 2), key_for(pt, 30, 0)]
    t = flat_table([1, 30], keys)
    published, _ = perturb(t, pt)
    strict = audit([(t, published)], pt, 3)
    row = strict.cells.set_index("cell").loc[1]
    assert not strict.passed and row["why"] == "lower: own interval (not empty)"
    assert row["upper_ok"] and strict.summary["not_empty_shown"] == 1
    relaxed = audit([(t, published)], pt, 3, require_lower=False)
    assert relaxed.passed and not relaxed.cells["lower_ok"].iat[0]


def test_releases_that_do_not_fit_the_ptable_or_each_other_are_refused() -> None:
    pt = ptable(PTableParams(D=2, V=1.0))
    t = flat_table([1, 20], [0, 0, 0])
    published, _ = perturb(t, pt)
    with pytest.raises(PolicyError, match="out of reach"):
        audit([(t, published + np.array([0, 0, 9]))], pt, 3)
    other = flat_table([2, 20], [0, 0, 0], name="other")
    with pytest.raises(PolicyError, match="disagree"):
        audit([(t, published), (other, perturb(other, pt)[0])], pt, 3)
    with pytest.raises(PolicyError, match="whole published value"):
        audit([(t, published.astype(float))], pt, 3)


def test_the_audit_agrees_with_an_exact_attack_on_every_release(synth) -> None:
    """Every verdict of the audit is checked against an independent attacker's exact LPs."""
    pt = ptable(PTableParams(D=3, V=1.5))
    releases = []
    intruder = Intruder(feasible_from_ptable(pt.to_frame()))
    ids = {}
    for year in (2022, 2023):
        reg, keys = year_of(synth, year)
        for dims in (["lan", "insats", "sex"], ["lan", "insats", "age_band"]):
            t = build_table(reg, dims, "persons", record_keys=keys, name=f"{dims[-1]}-{year}")
            pub, _ = perturb(t, pt)
            releases.append((t, pub))
            ids[t.name] = intruder.read(t, pub)
    result = audit(releases, pt, 3, max_exact=200)
    cells = result.cells
    assert result.summary["unproven"] == 0
    assert result.summary["shared_cells"] > 0
    assert (cells["why"] == "upper: relations").any(), "nothing narrowed: the check would prove little"
    rng = np.random.default_rng(0)
    failed = cells[cells["why"].str.contains("relations")]
    passed = cells[cells["ok"]]
    sample = pd.concat([failed.head(15), passed.iloc[rng.choice(len(passed), 25, replace=False)]])
    for r in sample.itertuples(index=False):
        lo, hi = intruder.interval(ids[r.table][r.cell])
        assert lo - 1e-6 <= r.value <= hi + 1e-6
        if r.upper_ok:
            assert hi >= r.required_upper - 1e-6 and r.upper <= hi + 1e-6
        else:
            assert hi < r.required_upper - 1e-6 and hi <= r.upper + 1e-6
        if r.lower_ok:
            assert lo <= r.required_lower + 1e-6 and r.lower >= lo - 1e-6
        else:
            assert lo > r.required_lower + 1e-6 and lo >= r.lower - 1e-6
    assert isinstance(result, CellKeyAudit) and json.dumps(result.to_dict())


def test_the_audit_sees_every_release_of_a_cell_as_one_and_persons_as_insatser(synth) -> None:
    pt = ptable(PTableParams(D=3, V=1.5))
    reg, keys = year_of(synth, 2022)
    persons = build_table(reg, ["lan", "insats"], "persons", record_keys=keys, name="persons")
    pairs = build_table(reg, ["lan", "insats"], "insatser", record_keys=keys, name="pairs")
    result = audit([(persons, perturb(persons, pt)[0]), (pairs, perturb(pairs, pt)[0])], pt, 3)
    leaf = ~persons.cells["margin"].to_numpy()
    assert result.summary["shared_cells"] >= int(leaf.sum())
    assert (
        result.cells.loc[
            result.cells["coordinates"].str.contains("insats=")
            & ~result.cells["coordinates"].str.contains("unit="),
            "releases",
        ]
        == 2
    ).all()
    text = json.dumps(result.to_dict())
    assert not any(p in text for p in reg["personnummer"].astype(str).head(50))
