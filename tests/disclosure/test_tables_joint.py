"""The joint model of what a reader knows: persons and insatser tables of one population share
their one-insats cells, zeros the register's rules force are known, cells published before are
fixed, and a series stays consistent. The attacker used here is the library's own audit; the
independent attackers are in tests/adversarial."""

from __future__ import annotations

import numpy as np
import pytest

from lsssdc.disclosure.tables import FrequencyRule, ProtectedTables, Rules, build_table, protect
from lsssdc.disclosure.tables import attack as A
from lsssdc.disclosure.tables.model import renumber_witnesses
from lsssdc.errors import DisclosureRefused, InputDataError
from lsssdc.register.synth import synthesise

RULES = Rules(FrequencyRule(threshold=3, zero_is_safe=True))


@pytest.fixture(scope="module")
def reg():
    return synthesise(years=[2022, 2023], persons=12000, seed=3).register


def _year(reg, y):
    return reg[reg["year"] == y].reset_index(drop=True)


def test_persons_and_insatser_cells_of_one_insats_are_one_cell(reg) -> None:
    r = _year(reg, 2023)
    p = build_table(r, ["kommun", "insats"], "persons", name="p")
    i = build_table(r, ["kommun", "insats"], "insatser", name="i")
    ids, _ = A._global_ids([p, i])
    one = p.cells["insats"].astype(str).to_numpy() != "Totalt"
    assert (ids[0][one] == ids[1][one]).all()
    assert not np.isin(ids[0][~one], ids[1]).any()  # the insats margins count different things
    assert (p.values[one] == i.values[one]).all()


def test_tables_protected_apart_fall_together_and_joint_protection_holds(reg) -> None:
    r = _year(reg, 2023)
    p = build_table(r, ["kommun", "insats"], "persons", name="p")
    i = build_table(r, ["kommun", "insats"], "insatser", name="i")
    a, b = protect([p], RULES), protect([i], RULES)
    apart = ProtectedTables(
        [p, i], RULES, a.status + b.status, a.reason + b.reason, a.upper + b.upper, a.lower + b.lower
    )
    assert not A.audit(apart).passed  # the reader pins cells by the identity
    joint = protect([p, i], RULES)
    assert A.audit(joint).passed
    ids, _ = A._global_ids([p, i])
    one = p.cells["insats"].astype(str).to_numpy() != "Totalt"
    hidden_p = joint.status[0][one] != 0
    hidden_i = joint.status[1][one] != 0
    assert (hidden_p == hidden_i).all()  # one cell, one status


def test_structural_zeros_are_marked_published_and_known(reg) -> None:
    r = _year(reg, 2023)
    t = build_table(r, ["lan", "age_band", "insats"], "persons", name="s")
    st = t.structural
    codes = t.cells["insats"].astype(str).to_numpy()
    band = t.cells["age_band"].astype(str).to_numpy()
    assert st[(codes == "korttidstillsyn") & (band == "0-6")].all()
    assert not st[(codes == "korttidstillsyn") & (band == "13-17")].any()
    assert st[(codes == "daglig_verksamhet") & (band == "7-12")].all()
    assert not st[band == "Totalt"].any()
    assert (t.values[st] == 0).all()
    res = protect([t], Rules(FrequencyRule(threshold=3, zero_is_safe=False)))
    assert (res.status[0][st] == 0).all(), "a suppression spent on a zero the rules force"
    assert A.audit(res).passed


def test_a_register_that_breaks_an_age_rule_is_refused() -> None:
    r = synthesise(years=[2023], persons=3000, seed=5, inject={"R04": 2}).register
    with pytest.raises(InputDataError) as err:
        build_table(r, ["lan", "age_band", "insats"], "persons")
    assert err.value.problems[0].code == "structural_zero_broken"


def test_cells_published_before_stay_published_and_hidden_ones_stay_hidden(reg) -> None:
    r = _year(reg, 2023)
    first = build_table(r, ["kommun", "insats"], "persons", name="first")
    done = protect([first], RULES)
    published = done.status[0] == 0
    second = build_table(r, ["kommun", "sex", "insats"], "persons", name="second")
    again = protect(
        [first, second],
        RULES,
        known=[published, np.zeros(second.size, bool)],
        hidden_before=[~published, np.zeros(second.size, bool)],
    )
    assert (again.status[0] == done.status[0]).all()  # the earlier release is as it was
    assert A.audit(again).passed
    ids, _ = A._global_ids([first, second])
    shared = np.isin(ids[1], ids[0])
    assert shared.any()
    pos = {g: k for k, g in enumerate(ids[0])}
    before = np.array([done.status[0][pos[g]] for g in ids[1][shared]])
    assert ((again.status[1][shared] != 0) == (before != 0)).all()


def _after(reg, witnesses_of_first):
    """kommun x sex x insats released, then kommun x insats against it (its witnesses given)."""
    r = _year(reg, 2023)
    first = build_table(r, ["kommun", "sex", "insats"], "persons", name="first")
    done = protect([first], RULES)
    published = done.status[0] == 0
    second = build_table(r, ["kommun", "insats"], "persons", name="second")
    placed = renumber_witnesses(done.witnesses, np.array([1]))
    again = protect(
        [second, first],
        RULES,
        known=[np.zeros(second.size, bool), published],
        hidden_before=[np.zeros(second.size, bool), ~published],
        witnesses=witnesses_of_first(placed, published),
    )
    return done, again


def test_an_earlier_release_s_witnesses_protect_the_next_without_new_work(reg) -> None:
    done, again = _after(reg, lambda w, published: w)
    assert again.report["witnesses_adopted"] == len(done.witnesses["target_table"])
    assert again.report["lp_repairs"] == 0
    assert (again.status[1] == done.status[0]).all()
    assert A.audit(again).passed


@pytest.mark.parametrize("forgery", ["breaks a sum", "moves a published cell", "goes below zero"])
def test_forged_witnesses_are_not_taken(reg, forgery: str) -> None:
    def forge(w, published):
        w = {k: v.copy() for k, v in w.items()}
        first_entry = np.unique(w["witness"], return_index=True)[1]
        if forgery == "breaks a sum":
            w["y"][first_entry] += 1.0
        elif forgery == "moves a published cell":
            w["cell"][first_entry] = np.flatnonzero(published)[: len(first_entry)]
        else:
            w["y"] = w["y"] * 1000.0
        return w

    done, again = _after(reg, forge)
    assert again.report["witnesses_adopted"] == 0
    assert (again.status[1] == done.status[0]).all()
    assert A.audit(again).passed


def test_a_sensitive_cell_fixed_by_earlier_releases_is_refused(reg) -> None:
    r = _year(reg, 2023)
    t = build_table(r, ["kommun", "insats"], "persons", name="t")
    res = protect([t], RULES)
    primary = np.flatnonzero(res.status[0] == 1)
    assert len(primary)
    # a reader holding every cell but one primary cell: nothing can protect it
    known = np.ones(t.size, bool)
    known[primary[0]] = False
    with pytest.raises(DisclosureRefused) as err:
        protect([t], RULES, known=[known])
    assert err.value.problems[0].code == "history_exposes"
    assert "kommun=" in err.value.problems[0].message


def test_two_years_of_a_series_with_a_year_dimension_are_one_cell(reg) -> None:
    one = build_table(_year(reg, 2023), ["kommun", "insats"], "persons", name="y2023")
    both = build_table(reg, ["year", "kommun", "insats"], "persons", name="series")
    ids, _ = A._global_ids([one, both])
    year = both.cells["year"].astype(str).to_numpy()
    assert np.isin(ids[1][year == "2023"], ids[0]).all()
    assert not np.isin(ids[1][year == "2022"], ids[0]).any()
    assert (one.values == both.values[year == "2023"]).all()


def test_cell_keys_are_the_same_for_the_same_persons(reg) -> None:
    keys = np.random.default_rng(0).integers(0, 2**32, len(reg), dtype=np.uint32)
    # one key per person whatever the row
    _, first = np.unique(reg["personnummer"].to_numpy(), return_index=True)
    code = np.unique(reg["personnummer"].to_numpy(), return_inverse=True)[1]
    keys = keys[first][code]
    r23 = reg["year"].to_numpy() == 2023
    p = build_table(reg[r23].reset_index(drop=True), ["kommun", "insats"], "persons", record_keys=keys[r23])
    i = build_table(reg[r23].reset_index(drop=True), ["kommun", "insats"], "insatser", record_keys=keys[r23])
    one = p.cells["insats"].astype(str).to_numpy() != "Totalt"
    assert (p.cells["cell_key"].to_numpy()[one] == i.cells["cell_key"].to_numpy()[one]).all()
    # a hand count for one cell: the sum of its persons' keys modulo 2**32
    c = int(np.flatnonzero(one & (p.values > 0) & ~p.cells["margin"].to_numpy())[0])
    kom, ins = p.cells.iloc[c]["kommun"], p.cells.iloc[c]["insats"]
    rows = reg[r23 & (reg["kommun"].astype(str) == kom).to_numpy() & (reg[ins] == 1).to_numpy()]
    persons = rows["personnummer"].unique()
    expect = int(
        sum(int(keys[first][np.searchsorted(np.unique(reg["personnummer"]), x)]) for x in persons) % 2**32
    )
    assert int(p.cells["cell_key"].iloc[c]) == expect
