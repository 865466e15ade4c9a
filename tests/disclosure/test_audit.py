"""The attacker: exact intervals, bounds, linked tables, witnesses it must not trust."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from lsssdc.disclosure.tables import (
    PRIMARY,
    PUBLISHED,
    SECONDARY,
    CodeTree,
    FrequencyRule,
    ProtectedTables,
    Rules,
    build_table,
    primary_cells,
    protect,
)
from lsssdc.disclosure.tables.attack import audit
from lsssdc.register import variables as V

DV, KP = "daglig_verksamhet", "kontaktperson"
KOMMUNER = ["0114", "0115", "0117"]


def register(groups: list[tuple[str, int, tuple[str, ...]]]) -> pd.DataFrame:
    """Persons: (kommun, how many, insatser); all men aged 30 in 2024."""
    recs = []
    for kommun, n, ins in groups:
        for _ in range(n):
            rec = {"year": 2024, "personnummer": f"p{len(recs)}", "kommun": kommun, "sex": "1", "age": 30}
            rec.update({name: int(name in ins) for name in V.INSATSER})
            recs.append(rec)
    return pd.DataFrame(recs)


def table_1d(values: dict[str, int]):
    reg = register([(k, n, (DV,)) for k, n in values.items() if n])
    return build_table(reg, ["kommun"], "persons", CodeTree.flat("kommun", list(values)), insatser=[DV])


def hide(table, rules: Rules, hidden_codes: list[str], witnesses=None) -> ProtectedTables:
    """A protected table with exactly the named cells hidden (primary where the rule says so)."""
    reason, upper, lower = primary_cells(table, rules)
    codes = np.asarray(table.hierarchies["kommun"].codes)[table.nodes[:, 0]]
    hidden = np.isin(codes, hidden_codes)
    status = np.where(hidden, np.where(reason > 0, PRIMARY, SECONDARY), PUBLISHED).astype(np.int8)
    return ProtectedTables([table], rules, [status], [reason], [upper], [lower], witnesses=witnesses)


def row(rep, code: str) -> pd.Series:
    return rep.cells.set_index("kommun").loc[code]


def test_exact_intervals_of_a_row_with_its_total() -> None:
    t = table_1d({"0114": 1, "0115": 7, "0117": 9})
    rules = Rules(FrequencyRule(3))
    rep = audit(hide(t, rules, ["0114", "0115"]))
    assert rep.passed
    a, b = row(rep, "0114"), row(rep, "0115")
    assert (a["lower"], a["upper"]) == pytest.approx((0.0, 8.0))
    assert (b["lower"], b["upper"]) == pytest.approx((0.0, 8.0))
    assert a["required_upper"] == 3 and a["required_lower"] == 0
    assert a["exact"] and b["status"] == "secondary" and not b["sensitive"]


def test_a_lone_hidden_cell_is_pinned_and_fails() -> None:
    t = table_1d({"0114": 1, "0115": 7, "0117": 9})
    rep = audit(hide(t, Rules(FrequencyRule(3)), ["0114"]))
    assert not rep.passed
    a = row(rep, "0114")
    assert a["lower"] == pytest.approx(1.0) and a["upper"] == pytest.approx(1.0)
    assert rep.failures[0]["problem"] == "interval too narrow"


def test_a_partner_too_small_to_give_way_fails_the_upper_requirement() -> None:
    # 0114 (1) and 0115 (1) hidden: their sum 2 is published through the total, so neither
    # can reach the threshold 3 although neither is pinned
    t = table_1d({"0114": 1, "0115": 1, "0117": 9})
    rep = audit(hide(t, Rules(FrequencyRule(3)), ["0114", "0115"]))
    assert not rep.passed
    assert row(rep, "0114")["upper"] == pytest.approx(2.0)
    assert rep.failures[0]["required_upper"] == 3


def test_the_audit_recomputes_which_cells_are_sensitive() -> None:
    t = table_1d({"0114": 1, "0115": 7, "0117": 9})
    rules = Rules(FrequencyRule(3))
    p = hide(t, rules, [])  # the suppression "forgot" the small cell
    rep = audit(p)
    assert not rep.passed and rep.failures[0]["problem"] == "published"
    assert rep.summary["sensitive_published"] == 1


def test_bounds_of_a_persons_margin_over_insatser() -> None:
    # one kommun: 4 persons, 2 with DV only, 2 with KP only (no overlap): total 4 = DV + KP
    reg = register([("0114", 2, (DV,)), ("0114", 2, (KP,)), ("0115", 5, (DV, KP))])
    t = build_table(
        reg, ["kommun", "insats"], "persons", CodeTree.flat("kommun", KOMMUNER[:2]), insatser=[DV, KP]
    )
    rules = Rules(FrequencyRule(3))
    p = protect(t, rules)
    rep = audit(p, exact=True)
    assert rep.passed
    # equations only: the persons margins say nothing; with bounds each cell <= its margin
    reason, upper, lower = primary_cells(t, rules)
    status = np.where(reason > 0, PRIMARY, PUBLISHED).astype(np.int8)
    bare = ProtectedTables([t], rules, [status], [reason], [upper], [lower])
    eq = audit(bare, use_bounds=False, exact=True)
    full = audit(bare, exact=True)
    assert eq.summary["attacker"] == "equations only"
    assert (full.cells["upper"].to_numpy() <= eq.cells["upper"].to_numpy() + 1e-9).all()
    assert (full.cells["lower"].to_numpy() >= eq.cells["lower"].to_numpy() - 1e-9).all()


def test_witnesses_are_checked_not_trusted() -> None:
    t = table_1d({"0114": 1, "0115": 7, "0117": 9})
    rules = Rules(FrequencyRule(3))
    idx = {c: i for i, c in enumerate(np.asarray(t.hierarchies["kommun"].codes)[t.nodes[:, 0]])}
    # a false witness: 0114 up by 2 with nothing moving down breaks the published total
    bogus = {
        "target_table": np.array([0]),
        "target_cell": np.array([idx["0114"]]),
        "direction": np.array([1]),
        "witness": np.array([0]),
        "table": np.array([0]),
        "cell": np.array([idx["0114"]]),
        "y": np.array([2.0]),
    }
    rep = audit(hide(t, rules, ["0114"], witnesses=bogus), exact=False, exact_limit=0)
    assert not rep.passed
    assert rep.summary["witnesses_valid"] == 0
    # a true one: 0114 up by 2, 0115 down by 2
    good = dict(
        bogus,
        witness=np.array([0, 0]),
        table=np.array([0, 0]),
        cell=np.array([idx["0114"], idx["0115"]]),
        y=np.array([2.0, -2.0]),
    )
    rep2 = audit(hide(t, rules, ["0114", "0115"], witnesses=good), exact=False, exact_limit=0)
    assert rep2.passed and rep2.summary["witnesses_valid"] == 1
    assert not row(rep2, "0114")["exact"]  # a proven inner bound, not the LP optimum
    assert row(rep2, "0114")["upper"] >= 3


def test_fast_mode_agrees_with_the_exact_attacker() -> None:
    rng = np.random.default_rng(7)
    groups = [(k, int(rng.integers(0, 6)), ins) for k in KOMMUNER for ins in ((DV,), (KP,), (DV, KP))]
    reg = register(groups)
    reg["sex"] = np.where(np.arange(len(reg)) % 3 == 0, "2", "1")
    t = build_table(
        reg, ["kommun", "sex", "insats"], "persons", CodeTree.flat("kommun", KOMMUNER), insatser=[DV, KP]
    )
    p = protect(t, Rules(FrequencyRule(3)))
    exact = audit(p, exact=True)
    fast = audit(p, exact=False, exact_limit=0, use_witnesses=False)
    assert exact.passed and fast.passed
    sens = exact.cells["sensitive"].to_numpy()
    # proven inner bounds never exceed the true interval
    assert (fast.cells["upper"].to_numpy()[sens] <= exact.cells["upper"].to_numpy()[sens] + 1e-6).all()
    assert (fast.cells["lower"].to_numpy()[sens] >= exact.cells["lower"].to_numpy()[sens] - 1e-6).all()
    # and an under-suppressed version fails in both modes
    reason, upper, lower = primary_cells(t, p.rules)
    bare = ProtectedTables(
        [t], p.rules, [np.where(reason > 0, PRIMARY, PUBLISHED).astype(np.int8)], [reason], [upper], [lower]
    )
    assert not audit(bare, exact=True).passed
    assert not audit(bare, exact=False, exact_limit=0, use_witnesses=False).passed


def test_integer_attacker_and_report_to_dict() -> None:
    t = table_1d({"0114": 1, "0115": 7, "0117": 9})
    p = hide(t, Rules(FrequencyRule(3)), ["0114", "0115"])
    rep = audit(p, integer=True)
    assert rep.passed and rep.summary["relaxation"] == "integer"
    d = rep.to_dict()
    text = json.dumps(d, allow_nan=False)  # no NaN or infinity leaks into the JSON
    assert '"passed": true' in text
    assert {"table", "value", "lower", "upper", "required_upper", "ok"} <= set(d["cells"][0])
    assert d["summary"]["failed"] == 0
