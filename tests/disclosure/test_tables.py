"""Building tables with their count units and relations, primary rules, and suppression."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lsssdc import refdata
from lsssdc.disclosure.tables import (
    PRIMARY,
    PUBLISHED,
    REASON_DOMINANCE,
    REASON_FREQUENCY,
    REASON_P,
    SECONDARY,
    SUM,
    UNION,
    CodeTree,
    DominanceRule,
    FrequencyRule,
    PRule,
    Rules,
    build_table,
    kommun_tree,
    primary_cells,
    protect,
)
from lsssdc.disclosure.tables.attack import audit
from lsssdc.errors import InputDataError, PolicyError
from lsssdc.identity import personnummer as pnr
from lsssdc.register import variables as V

DV, KP, PA = "daglig_verksamhet", "kontaktperson", "personlig_assistans"
KOMMUNER = ["0114", "0115", "0117", "0180", "0380", "0381"]  # two län: 01 and 03


def register(rows: list[tuple], year: int = 2024) -> pd.DataFrame:
    """A register from (person, kommun, sex, age, insatser[, hours of personlig assistans])."""
    recs = []
    for r in rows:
        pid, kommun, sex, age, ins = r[:5]
        rec = {"year": year, "personnummer": pid, "kommun": kommun, "sex": sex, "age": age}
        for name in V.INSATSER:
            rec[name] = int(name in ins)
        rec["hours_personlig_assistans"] = r[5] if len(r) > 5 else (100.0 if PA in ins else np.nan)
        recs.append(rec)
    return pd.DataFrame(recs)


def people(
    kommun: str, n: int, ins: tuple[str, ...], start: int, sex: str = "1", age: int = 30
) -> list[tuple]:
    return [(f"p{start + i}", kommun, sex, age, ins) for i in range(n)]


def cell(table, **coords) -> int:
    """Position of the cell with these codes (dimensions not named are at their total)."""
    mask = np.ones(table.size, bool)
    for j, d in enumerate(table.dims):
        h = table.hierarchies[d]
        code = coords.get(d, h.codes[0])
        mask &= table.nodes[:, j] == h.codes.index(code)
    (i,) = np.flatnonzero(mask)
    return int(i)


def relation_kind(table, parent: int, dim: str) -> int:
    rel = table.relations
    sel = np.flatnonzero((rel.parent == parent) & (rel.dim == table.dims.index(dim)) & (rel.kind != 2))
    assert len(sel) == 1
    return int(rel.kind[sel[0]])


H = {"kommun": kommun_tree(KOMMUNER)}


# --------------------------------------------------------------------------------------------
# building


def test_persons_are_counted_once_and_union_margins_are_bounds() -> None:
    rows = [
        ("a", "0114", "1", 30, (DV, KP)),  # two insatser: one person in the total
        ("b", "0114", "2", 40, (DV,)),
        ("c", "0115", "1", 50, (KP,)),
        ("c", "0117", "1", 50, (DV,)),  # one person served by two kommuner of län 01
    ]
    t = build_table(register(rows), ["kommun", "insats"], "persons", H, insatser=[DV, KP])
    v = t.values
    assert v[cell(t, kommun="0114")] == 2  # a and b, although there are three person-insats pairs
    assert v[cell(t, kommun="01")] == 3  # c counted once in the län although in two kommuner
    assert v[cell(t, kommun="01", insats=DV)] == 3
    assert v[cell(t, kommun="0114", insats=DV)] + v[cell(t, kommun="0114", insats=KP)] == 3
    # a persons margin over insatser and over kommuner (all insatser) is a union: bounds
    assert relation_kind(t, cell(t, kommun="0114"), "insats") == UNION
    assert relation_kind(t, cell(t, kommun="01"), "kommun") == UNION
    # one insats is never reported by two kommuner (rule 9): its kommun margin adds up
    assert relation_kind(t, cell(t, kommun="01", insats=DV), "kommun") == SUM
    assert t.relations.counts()["disjoint"] == 0  # no two housing insatser selected


def test_insatser_unit_adds_up_everywhere() -> None:
    rows = [("a", "0114", "1", 30, (DV, KP)), ("b", "0114", "2", 40, (DV,)), ("c", "0115", "1", 50, (KP,))]
    t = build_table(register(rows), ["kommun", "insats"], "insatser", H, insatser=[DV, KP])
    assert t.values[cell(t, kommun="0114")] == 3
    assert t.cells["contributors"].to_numpy()[cell(t, kommun="0114")] == 2
    assert set(t.relations.kind.tolist()) == {SUM}


def test_sex_and_age_margins_are_sums_for_persons() -> None:
    rows = [("a", "0114", "1", 30, (DV, KP)), ("b", "0114", "2", 70, (DV,))]
    t = build_table(register(rows), ["sex", "age_band", "insats"], "persons", insatser=[DV, KP])
    total = cell(t)
    assert relation_kind(t, total, "sex") == SUM
    assert relation_kind(t, total, "age_band") == SUM
    assert relation_kind(t, total, "insats") == UNION
    assert t.values[total] == 2
    assert t.values[cell(t, sex="1", age_band="23-34", insats=KP)] == 1


def test_housing_cells_are_disjoint_under_the_persons_margin() -> None:
    rows = [("a", "0114", "1", 30, ("bostad_vuxna", DV)), ("b", "0114", "1", 10, ("familjehem",))]
    t = build_table(register(rows), ["insats"], "persons", insatser=[DV, "bostad_vuxna", "familjehem"])
    assert t.relations.counts()["disjoint"] == 1
    rows.append(("c", "0114", "1", 20, ("bostad_vuxna", "familjehem")))  # breaks rule 5
    t2 = build_table(register(rows), ["insats"], "persons", insatser=[DV, "bostad_vuxna", "familjehem"])
    assert t2.relations.counts()["disjoint"] == 0
    assert any("rule 5" in n for n in t2.notes)


def test_sex_and_age_from_the_personnummer() -> None:
    numbers = refdata.test_personnummer()
    parsed = pnr.parse(numbers)
    ok = parsed[parsed["valid"] & (parsed["birth_date"] < "1980-01-01")].iloc[0]
    reg = register([("x", "0114", "1", 30, (DV,))]).drop(columns=["sex", "age"])
    reg["personnummer"] = ok["personnummer"]
    t = build_table(reg, ["sex", "age_band"], "persons", insatser=[DV])
    age = int(pnr.age_at(pd.Series([ok["birth_date"]]), V.measurement_date(2024)).iloc[0])
    band = [b for b in t.hierarchies["age_band"].codes[1:] if int(b.split("-")[0].rstrip("+")) <= age][-1]
    assert t.values[cell(t, sex=str(ok["sex"]), age_band=band)] == 1


def test_build_refuses_bad_input() -> None:
    reg = register([("a", "0114", "1", 30, (DV,))])
    with pytest.raises(PolicyError):
        build_table(reg, ["kommun", "lan"], "persons")
    with pytest.raises(PolicyError):
        build_table(reg, ["kommun"], "households")
    two_years = pd.concat([reg, reg.assign(year=2023)])
    with pytest.raises(PolicyError):
        build_table(two_years, ["kommun"], "persons")
    assert build_table(two_years, ["year", "kommun"], "persons", insatser=[DV]).size > 0
    bad = reg.copy()
    bad["kommun"] = "9999"
    with pytest.raises(InputDataError) as err:
        build_table(bad, ["kommun"], "persons", H, insatser=[DV])
    assert "kommun" in str(err.value)
    pnr = reg.drop(columns=["sex", "age"]).assign(personnummer="198001011234")  # bad check digit
    with pytest.raises(InputDataError) as err:
        build_table(pnr, ["sex"], "persons", insatser=[DV])
    assert "198001011234" not in str(err.value)


# --------------------------------------------------------------------------------------------
# primary rules


def test_frequency_rule_and_zero_policy() -> None:
    rows = people("0114", 1, (DV,), 0) + people("0115", 5, (DV,), 10)
    t = build_table(register(rows), ["kommun"], "persons", H, insatser=[DV])
    reason, upper, lower = primary_cells(t, Rules(FrequencyRule(3)))
    assert reason[cell(t, kommun="0114")] == REASON_FREQUENCY
    assert upper[cell(t, kommun="0114")] == 2 and lower[cell(t, kommun="0114")] == 1
    assert reason[cell(t, kommun="0115")] == 0
    assert reason[cell(t, kommun="0117")] == 0  # zero is shown
    reason0, up0, _ = primary_cells(t, Rules(FrequencyRule(3, zero_is_safe=False)))
    assert reason0[cell(t, kommun="0117")] > 0 and up0[cell(t, kommun="0117")] == 3


def test_magnitude_rules_on_per_person_contributions() -> None:
    rows = (
        [("big", "0114", "1", 30, (PA,), 700.0)]
        + [(f"s{i}", "0114", "2", 30, (PA,), 10.0) for i in range(5)]
        + [(f"e{i}", "0115", "1", 30, (PA,), 100.0) for i in range(6)]
    )
    t = build_table(register(rows), ["kommun", "sex"], measure="hours_personlig_assistans", hierarchies=H)
    rules = Rules(FrequencyRule(3), dominance=(DominanceRule(1, 80),), p_rule=PRule(10))
    reason, upper, lower = primary_cells(t, rules)
    k = cell(t, kommun="0114")  # 750 hours, one person 700 of them
    assert reason[k] & REASON_DOMINANCE and reason[k] & REASON_P
    assert upper[k] == pytest.approx(max(700 * 100 / 80 - 750, 0.1 * 700 - (750 - 700 - 10)))
    assert reason[cell(t, kommun="0115")] == 0  # six equal contributions
    assert reason[cell(t, kommun="0114", sex="1")] & REASON_FREQUENCY  # a single person
    assert t.top[k].tolist()[:2] == [700.0, 10.0]
    protected = protect([t], rules)
    assert audit(protected).passed
    assert protected.status[0][k] == PRIMARY


# --------------------------------------------------------------------------------------------
# secondary suppression: the scenarios, each checked by the attacker


def _check(protected) -> None:
    rep = audit(protected, exact=True)
    assert rep.passed, rep.failures
    assert rep.summary["sensitive_published"] == 0
    assert rep.cells.loc[rep.cells["sensitive"], "exact"].all()


def test_single_small_cell_in_a_row_with_a_total() -> None:
    rows = people("0114", 1, (DV,), 0) + people("0115", 7, (DV,), 10) + people("0117", 9, (DV,), 20)
    t = build_table(
        register(rows),
        ["kommun"],
        "persons",
        CodeTree.flat("kommun", ["0114", "0115", "0117"]),
        insatser=[DV],
    )
    p = protect(t, Rules(FrequencyRule(3)))
    st_ = p.status[0]
    assert st_[cell(t, kommun="0114")] == PRIMARY
    assert (st_ == SECONDARY).sum() == 1  # exactly one partner, the total stays published
    assert st_[cell(t, kommun="Totalt")] == PUBLISHED
    _check(p)


def test_two_small_cells_in_one_row_protect_each_other() -> None:
    rows = people("0114", 1, (DV,), 0) + people("0115", 2, (DV,), 10) + people("0117", 9, (DV,), 20)
    t = build_table(
        register(rows),
        ["kommun"],
        "persons",
        CodeTree.flat("kommun", ["0114", "0115", "0117"]),
        insatser=[DV],
    )
    p = protect(t, Rules(FrequencyRule(3)))
    # 1 + 2 = 3: the two could protect each other only if the pair could reach 3 each way;
    # the lower requirement of the 2 (<= 1) and the upper of the 1 (>= 3) need the third cell
    _check(p)
    assert (p.status[0] == PRIMARY).sum() == 2


def test_hierarchical_totals_kommun_within_lan_within_riket() -> None:
    rows = (
        people("0114", 1, (DV,), 0)
        + people("0115", 6, (DV,), 10)
        + people("0117", 8, (DV,), 20)
        + people("0180", 9, (DV,), 30)
        + people("0380", 7, (DV,), 40)
        + people("0381", 2, (DV,), 50)
    )
    reg = register(rows)
    reg.loc[reg.index % 2 == 0, "sex"] = "2"
    t = build_table(reg, ["kommun", "sex"], "persons", H, insatser=[DV])
    p = protect(t, Rules(FrequencyRule(3)))
    _check(p)
    # the under-suppressed version (primary cells only) is broken by the attacker
    bare = type(p)(
        p.tables,
        p.rules,
        [np.where(p.status[0] == PRIMARY, PRIMARY, PUBLISHED).astype(np.int8)],
        p.reason,
        p.upper,
        p.lower,
    )
    assert not audit(bare).passed


def test_two_linked_tables_share_cells_and_are_protected_together() -> None:
    rows = (
        people("0114", 1, (DV,), 0, sex="1")
        + people("0114", 1, (KP,), 5, sex="2")  # kommun 0114 has two persons: small in both tables
        + people("0115", 6, (DV, KP), 10, sex="1")
        + people("0115", 4, (KP,), 20, sex="2")
        + people("0117", 8, (DV,), 30, sex="2")
        + people("0117", 3, (KP,), 40, sex="1")
    )
    reg = register(rows)
    hk = CodeTree.flat("kommun", ["0114", "0115", "0117"])
    a = build_table(reg, ["kommun", "sex"], "persons", {"kommun": hk}, insatser=[DV, KP], name="by_sex")
    b = build_table(reg, ["kommun", "insats"], "persons", {"kommun": hk}, insatser=[DV, KP], name="by_insats")
    p = protect([a, b], Rules(FrequencyRule(3)))
    rep = audit(p, exact=True)
    assert rep.passed, rep.failures
    assert rep.summary["distinct_cells"] == a.size + b.size - 4  # kommun totals and riket are shared
    for k in ("0114", "0115", "0117", "Totalt"):
        assert p.status[0][cell(a, kommun=k)] == p.status[1][cell(b, kommun=k)]
    assert p.status[0][cell(a, kommun="0114")] == PRIMARY
    # a shared cell hidden in one table but shown in the other is shown: the attacker reads it
    shown = p.status[1].copy()
    shown[cell(b, kommun="0114")] = PUBLISHED
    mixed = type(p)([a, b], p.rules, [p.status[0], shown], p.reason, p.upper, p.lower)
    bad = audit(mixed)
    assert not bad.passed
    assert any(f["problem"] == "published" for f in bad.failures)


def test_a_table_without_small_cells_hides_nothing() -> None:
    rows = people("0114", 5, (DV,), 0) + people("0115", 6, (DV,), 10) + people("0117", 7, (KP,), 20)
    t = build_table(
        register(rows),
        ["kommun", "insats"],
        "persons",
        CodeTree.flat("kommun", ["0114", "0115", "0117"]),
        insatser=[DV, KP],
        name="big",
    )
    p = protect(t, Rules(FrequencyRule(3)))
    assert (p.status[0] == PUBLISHED).all()
    rep = audit(p)
    assert rep.passed and rep.summary["hidden"] == 0


def bounds_case() -> pd.DataFrame:
    """Kommuner 0114 and 0115, where nobody has two insatser, each with few DV persons.

    The DV column adds up (rule 9): x(0114) + x(0115) = 3. An attacker with equations only
    sees an interval for each. With the bounds of the persons margins (total <= DV + KP, with
    the totals and KP cells published) x(0114) >= 2 and x(0115) >= 1: both are pinned.
    """
    rows = (
        people("0114", 2, (DV,), 0)
        + people("0114", 10, (KP,), 10)
        + people("0115", 1, (DV,), 30)
        + people("0115", 8, (KP,), 40)
        + people("0117", 5, (DV,), 50)
        + people("0117", 5, (DV, KP), 60)
    )
    return register(rows)


def test_bounds_reveal_what_equations_do_not_and_suppression_handles_it() -> None:
    hk = CodeTree.flat("kommun", ["0114", "0115", "0117"])
    t = build_table(bounds_case(), ["kommun", "insats"], "persons", {"kommun": hk}, insatser=[DV, KP])
    rules = Rules(FrequencyRule(3))
    reason, _, _ = primary_cells(t, rules)
    only_primary = np.where(reason > 0, PRIMARY, PUBLISHED).astype(np.int8)
    assert set(np.flatnonzero(only_primary)) == {
        cell(t, kommun="0114", insats=DV),
        cell(t, kommun="0115", insats=DV),
    }
    p = protect(t, rules)
    bare = type(p)([t], rules, [only_primary], [reason], p.upper, p.lower)
    eq_only = audit(bare, use_bounds=False, exact=True)
    assert eq_only.passed  # the equations alone leave both cells in [0, 3]
    with_bounds = audit(bare, exact=True)
    assert not with_bounds.passed  # the bounds pin them
    failed = with_bounds.cells[~with_bounds.cells["ok"]]
    assert set(failed["value"]) == {1.0, 2.0}
    assert (failed["lower"] == failed["value"]).all()
    # the suppression knows the bounds: it hides more and the full attacker finds nothing
    assert (p.status[0] == SECONDARY).sum() >= 1
    _check(p)


def test_suppression_is_deterministic_and_lp_method_agrees_with_the_audit() -> None:
    reg = bounds_case()
    hk = CodeTree.flat("kommun", ["0114", "0115", "0117"])
    t = build_table(reg, ["kommun", "sex", "insats"], "persons", {"kommun": hk}, insatser=[DV, KP])
    a = protect(t, Rules(FrequencyRule(4)))
    b = protect(t, Rules(FrequencyRule(4)))
    assert np.array_equal(a.status[0], b.status[0])
    c = protect(t, Rules(FrequencyRule(4)), method="lp")
    _check(c)
    with pytest.raises(PolicyError):
        protect(t, method="magic")


def test_protect_in_worker_processes_gives_the_same_result() -> None:
    reg = pd.concat([bounds_case(), bounds_case().assign(year=2023)], ignore_index=True)
    hk = {"kommun": CodeTree.flat("kommun", ["0114", "0115", "0117"])}
    tables = [
        build_table(
            reg[reg["year"] == y], ["kommun", "insats"], "persons", hk, insatser=[DV, KP], name=f"t{y}"
        )
        for y in (2023, 2024)
    ]
    one = protect(tables, Rules(FrequencyRule(3)))
    two = protect(tables, Rules(FrequencyRule(3)), workers=2)
    for x, y in zip(one.status, two.status, strict=True):
        assert np.array_equal(x, y)
    assert audit(two).passed


@st.composite
def small_registers(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(min_value=3, max_value=30))
    kommun = draw(st.lists(st.sampled_from(KOMMUNER[:4]), min_size=n, max_size=n))
    sex = draw(st.lists(st.sampled_from(["1", "2"]), min_size=n, max_size=n))
    ins = draw(
        st.lists(st.sets(st.sampled_from([DV, KP, PA]), min_size=1, max_size=3), min_size=n, max_size=n)
    )
    rows = [(f"p{i}", kommun[i], sex[i], 40, tuple(sorted(ins[i]))) for i in range(n)]
    # some persons are also served by a second kommun, with an insats of their own (rule 9)
    second = draw(st.lists(st.integers(min_value=0, max_value=n - 1), max_size=4, unique=True))
    for i in second:
        other = [k for k in KOMMUNER[:4] if k != kommun[i]][i % 3]
        free = [x for x in (DV, KP, PA) if x not in ins[i]]
        if free:
            rows.append((f"p{i}", other, sex[i], 40, (free[0],)))
    return register(rows)


@settings(max_examples=12)
@given(reg=small_registers(), threshold=st.integers(min_value=2, max_value=5))
def test_property_every_protected_table_passes_the_audit(reg: pd.DataFrame, threshold: int) -> None:
    hk = {"kommun": kommun_tree(KOMMUNER[:4])}
    t = build_table(reg, ["kommun", "sex", "insats"], "persons", hk, insatser=[DV, KP, PA])
    p = protect(t, Rules(FrequencyRule(threshold)))
    rep = audit(p, exact=True)
    assert rep.passed, rep.failures
    reason, _, _ = primary_cells(t, Rules(FrequencyRule(threshold)))
    assert (p.status[0][reason > 0] == PRIMARY).all()


def test_zero_cells_hidden_when_zero_is_not_safe() -> None:
    rows = people("0114", 4, (DV,), 0) + people("0115", 6, (KP,), 10) + people("0117", 5, (DV, KP), 20)
    t = build_table(
        register(rows),
        ["kommun", "insats"],
        "persons",
        CodeTree.flat("kommun", ["0114", "0115", "0117"]),
        insatser=[DV, KP],
    )
    p = protect(t, FrequencyRule(3, zero_is_safe=False))
    zero = t.values == 0
    assert zero.any() and (p.status[0][zero] == PRIMARY).all()
    rep = audit(p, exact=True)
    assert rep.passed
    z = rep.cells[rep.cells["value"] == 0]
    assert (z["upper"] >= 3 - 1e-9).all() and set(z["reasons"]) == {"zero"}


def test_synthetic_register_year_is_protected_and_the_attacker_agrees_without_witnesses() -> None:
    from lsssdc.register.synth import synthesise

    reg = synthesise(years=[2024], persons=1500, seed=3).register
    t = build_table(reg, ["kommun", "insats"], "persons", name="kommun_insats")
    assert t.relations.counts()["union"] > 0 and t.relations.counts()["disjoint"] > 0
    p = protect(t, Rules(FrequencyRule(3)))
    with_witnesses = audit(p)
    assert with_witnesses.passed and with_witnesses.summary["hidden"] > 400
    # the attacker's own LPs (no witness used) reach the same verdict
    alone = audit(p, use_witnesses=False, exact=False)
    assert alone.passed and alone.summary["lps"] > 0


def _reference_repair_cost(
    t, hidden: np.ndarray, cost: np.ndarray, g: int, delta: float, free: np.ndarray
) -> float | None:
    """The cheapest deviation moving cell g by delta with only ``free`` cells moving, as a
    plain LP over every cell and every row of the table (None when there is none)."""
    from scipy.optimize import linprog

    v, n = t.values, t.size
    rel = t.relations
    eq, ub, b_ub = [], [], []
    for r in range(rel.size):
        p, ch = rel.parent[r], rel.children[rel.ptr[r] : rel.ptr[r + 1]]
        row = np.zeros(n)
        row[p], row[ch] = 1.0, -1.0
        if rel.kind[r] == SUM:
            eq.append(row)
        elif rel.kind[r] == UNION:
            ub.append(row)  # parent <= sum of children
            b_ub.append(v[ch].sum() - v[p])
            for c in ch:  # every child <= parent
                one = np.zeros(n)
                one[c], one[p] = 1.0, -1.0
                ub.append(one)
                b_ub.append(v[p] - v[c])
        else:  # disjoint: sum of children <= parent
            ub.append(-row)
            b_ub.append(v[p] - v[ch].sum())
    fix = np.zeros(n)
    fix[g] = 1.0
    a_eq = np.vstack([*eq, fix])
    b_eq = np.concatenate([np.zeros(len(eq)), [delta]])
    w = np.where(hidden, 1e-3, cost / abs(delta))
    cap = 10.0 * v.max() + abs(delta) + 10.0
    res = linprog(
        np.concatenate([w, w]),
        A_ub=np.hstack([np.array(ub), -np.array(ub)]),
        b_ub=np.array(b_ub),
        A_eq=np.hstack([a_eq, -a_eq]),
        b_eq=b_eq,
        bounds=[(0, cap if i in free else 0.0) for i in range(n)]
        + [(0, max(x, 0.0) if i in free else 0.0) for i, x in enumerate(v)],
        method="highs",
    )
    assert res.status in (0, 2)
    return float(res.fun) if res.status == 0 else None


def test_local_lp_keeps_the_optimum_of_the_full_model() -> None:
    from lsssdc.disclosure.tables import hypercube as HC
    from lsssdc.disclosure.tables import joint as J
    from lsssdc.disclosure.tables import secondary as S

    t = build_table(bounds_case(), ["kommun", "sex", "insats"], "persons", H, insatser=[DV, KP])
    rules = Rules(FrequencyRule(4))
    joint = J._joint([t], rules)
    cost = S._cost(joint)
    hidden = joint.primary.copy()
    stats = HC._relation_stats(joint)
    rng = np.random.default_rng(0)
    checked = refused = 0
    for g in np.flatnonzero(joint.primary):
        for delta in (joint.upl[g], -joint.lpl[g]):
            # neighbourhoods, and random cell sets (many rows with one free cell: bounds)
            sets = [S._neighbourhood(joint, int(g), 1), np.arange(joint.n)]
            sets += [np.union1d(np.flatnonzero(rng.random(joint.n) < 0.5), [g]) for _ in range(4)]
            for free in sets:
                model = S._protection_model(joint, hidden, cost, int(g), float(delta), free)
                found = S._solve_model(model)
                want = _reference_repair_cost(t, hidden, cost, int(g), float(delta), set(free.tolist()))
                if want is None:
                    assert found is None
                    refused += model is None
                    continue
                cells, y = found
                assert y[cells == g] == pytest.approx(delta)
                # the deviation keeps every relation true and costs the full model's optimum
                (ok,) = HC._feasible(joint, stats, np.zeros(len(cells), np.int64), cells, [y], 1)
                assert ok[0]
                w = np.where(hidden[cells], 1e-3, cost[cells] / abs(delta))
                assert float(w @ np.abs(y)) == pytest.approx(want, rel=1e-6, abs=1e-9)
                checked += 1
    assert checked >= 8 and refused >= 1
    # a zero cell cannot fall: refused without a solve
    zero = int(np.flatnonzero(joint.value == 0)[0])
    assert S._protection_model(joint, hidden, cost, zero, -1.0, np.arange(joint.n)) is None


def test_workers_take_the_largest_problem_first_and_agree_with_one_process() -> None:
    small = bounds_case()
    big = pd.concat([bounds_case(), bounds_case().assign(personnummer=lambda d: d["personnummer"] + "b")])
    reg = pd.concat([small.assign(year=2022), big.assign(year=2023), small.assign(year=2024)])
    hk = {"kommun": CodeTree.flat("kommun", ["0114", "0115", "0117"])}
    tables = [
        build_table(
            reg[reg["year"] == y], ["kommun", "sex", "insats"], "persons", hk, insatser=[DV, KP], name=f"t{y}"
        )
        for y in (2022, 2023, 2024)
    ]
    rules = Rules(FrequencyRule(4))
    one = protect(tables, rules)
    two = protect(tables, rules, workers=2)
    for x, y in zip(one.status, two.status, strict=True):
        assert np.array_equal(x, y)
    for key in one.witnesses:
        assert np.array_equal(one.witnesses[key], two.witnesses[key])
    assert audit(two).passed
