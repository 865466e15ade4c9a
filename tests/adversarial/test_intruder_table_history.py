"""The reader of published tables, with everything else it holds (THREATS.md, "Tables").

Each release here goes through the real workflow (prepare, approve, deliver) on the small
synthetic register. The attacker is ``tests/adversarial/table_reader.py``: it shares no code
with the suppression, reads only the delivered files (and, where a test says so, a delivered
microdata extract), writes its own relations from the register's rules, and bounds every
hidden cell by LP. The truth it is scored against is the reviewer's audit kept in the
candidate (``table-audit.json``); the truth also has to satisfy every relation the reader
writes, which keeps the reader honest.

A hidden count v with 1 <= v < 3 is *exposed* when the reader can tell it is below 3 or at
least v (that it is non-empty); a hidden cell is *pinned* when the reader knows it exactly.
The figures of every attack are printed (run with ``-s`` to see them).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from lsssdc import release
from lsssdc.errors import LsssdcError
from tests.adversarial import table_reader as R
from tests.release.conftest import make_keystore, open_ledger, order_path, policy_path, prepare_order

THRESHOLD = 3  # public-tables: counts 1 and 2 are hidden
TABLES = "public-tables"
KOMMUN_TABLES = "kommun-tables-2023"  # order B2026-0031: kommun x insats, län x sex x age x insats
SIGNERS = ("ordering-service", "reviewer-a", "reviewer-b")
R_AUDIT = "table-audit.json"  # the reviewer's full audit, kept in the candidate: the truth


# --------------------------------------------------------------------------------------------
# orders and releases


def write_order(
    folder: Path,
    order_id: str,
    years: list[int],
    tables: list[dict[str, Any]] | None = None,
    *,
    policy: str = TABLES,
    population: list[str] | None = None,
    variables: list[str] | None = None,
) -> Path:
    """An order file modelled on the shipped ones, with its own order and project."""
    doc: dict[str, Any] = {
        "order_version": 1,
        "order_id": order_id,
        "diarienummer": f"Dnr 9.6-{order_id[-4:]}/2026",
        "project_id": f"projekt-{order_id.lower()}",
        "recipient": {"name": "Utredare (exempel)", "organisation": "En kommun (exempel)"},
        "purpose": "Adversarial test order.",
        "policy": policy,
        "years": years,
    }
    if tables:
        doc["tables"] = tables
    if population:
        doc["population"] = {"insatser": population}
    if variables:
        doc["variables"] = variables
        doc["ethics_approval"] = "Dnr 2025-00000-01"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{order_id}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def table(name: str, dims: list[str], unit: str = "persons") -> dict[str, Any]:
    return {"name": name, "dimensions": dims, "unit": unit}


@dataclass
class Outcome:
    """One order through the workflow: delivered, refused, or stopped with an lsssdc error."""

    order_id: str
    verdict: str
    reasons: list[str]
    cand: Path | None = None
    pkg: Path | None = None


def run_order(site: dict, policy: str, order_file: Path, name: str) -> Outcome:
    """Prepare an order; if releasable, approve and deliver it (as test_intruder_tables does)."""
    order_id = yaml.safe_load(order_file.read_text(encoding="utf-8"))["order_id"]
    try:
        cand = prepare_order(
            site["small"],
            policy_path(policy),
            order_file,
            site["store"],
            site["root"] / "work",
            site["ledger"],
        )
    except LsssdcError as exc:
        return Outcome(order_id, "error", [str(exc)])
    report = json.loads((cand.path / "report.json").read_text(encoding="utf-8"))
    reasons = list(report["verdict"]["reasons"])
    if cand.verdict != "releasable":
        return Outcome(order_id, cand.verdict, reasons, cand.path)
    release.approve(cand.path, "reviewer-a", site["store"], site["ledger"])
    pkg = site["root"] / "out" / name
    release.deliver(cand.path, pkg, site["store"], site["ledger"], "ordering-service")
    return Outcome(order_id, "releasable", reasons, cand.path, pkg)


@pytest.fixture
def blind(tmp_path: Path, small) -> dict:
    """A second work area with its own key store and ledger: what it prepares is made without
    knowing any release of ``site`` (the tables a history-blind suppression would give)."""
    root = tmp_path / "blind"
    store = make_keystore(root / "keys" / "k.json", SIGNERS)
    book = open_ledger(root / "ledger" / "ledger.sqlite", store)
    yield {"root": root, "store": store, "ledger": book, "small": small}
    book.close()


def names_history(outcome: Outcome, earlier: list[Outcome]) -> bool:
    """Whether a refusal names an earlier release (its order) or one of its tables."""
    text = " ".join(outcome.reasons)
    names = {o.order_id for o in earlier}
    for o in earlier:
        if o.pkg is not None:
            names |= {t.name for t in R.read_package(o.pkg)}
    return any(n in text for n in names)


# --------------------------------------------------------------------------------------------
# the attack


def read_releases(outcomes: list[Outcome]) -> tuple[R.Model, dict[R.Key, float]]:
    """The reader's model of every delivered package, and the truth of their hidden cells."""
    model, truth = R.Model(), {}
    for o in outcomes:
        assert o.pkg is not None and o.cand is not None
        tables = R.read_package(o.pkg, o.order_id)
        assert tables, f"{o.order_id}: no table in the package"
        model.add_tables(tables)
        for key, v in R.truth_from_audit(tables, o.cand / R_AUDIT).items():
            assert truth.setdefault(key, v) == v, f"two releases disagree on {key}"
    for key, v in truth.items():
        assert model.known.get(key, v) == v, (
            f"a cell shown in one release and hidden in another differs: {key}"
        )
    return model, truth


def attack(
    label: str,
    outcomes: list[Outcome],
    *,
    extract: Path | None = None,
    whole_population: bool = True,
    zeros: bool = True,
) -> tuple[R.AttackResult, R.Model]:
    model, truth = read_releases(outcomes)
    if zeros:
        model.add_structural_zeros()
    added = (
        R.add_extract(model, R.Extract.read(extract), whole_population=whole_population) if extract else None
    )
    wrong = model.violations(truth)
    assert not wrong, "the reader's model is wrong (the truth breaks it): " + "; ".join(wrong[:5])
    result = R.attack(model, truth, THRESHOLD)
    # the reader's bounds hold the truth wherever they are the LP optimum
    for c in result.cells:
        if c.solved and c.value is not None:
            assert c.lower - 1e-6 <= c.value <= c.upper + 1e-6, f"unsound bound for {c.key}"
    print(f"\n[{label}] {json.dumps(result.figures)}" + (f" extract: {json.dumps(added)}" if added else ""))
    return result, model


AGE_CUTS = (0, 7, 13, 18, 23, 30, 40, 50, 65, 80)  # public-tables


def recount(register, t: R.Table) -> np.ndarray:
    """Every cell of a published table counted again from the register, with code of its own:
    sex from the personnummer's second-to-last digit, age on 1 October in public-tables' bands,
    persons counted once, insatser as person-insats pairs."""
    (year,) = t.years
    rows = register[register["year"] == year]
    pnr = rows["personnummer"].astype(str)
    born_y, born_m = pnr.str[:4].astype(int), pnr.str[4:6].astype(int)
    born_d = pnr.str[6:8].astype(int)
    born_d = born_d.where(born_d <= 60, born_d - 60)  # samordningsnummer
    age = year - born_y - ((born_m > 10) | ((born_m == 10) & (born_d > 1))).astype(int)
    bands = [f"{a}-{b - 1}" for a, b in zip(AGE_CUTS, AGE_CUTS[1:], strict=False)] + [f"{AGE_CUTS[-1]}+"]
    base = pd.DataFrame(
        {
            "person": pnr.to_numpy(),
            "kommun": rows["kommun"].astype(str).to_numpy(),
            "lan": rows["kommun"].astype(str).str[:2].to_numpy(),
            "sex": np.where(pnr.str[10].astype(int) % 2 == 1, "1", "2"),
            "age_band": np.asarray(bands, object)[
                np.searchsorted(AGE_CUTS, age.to_numpy(), side="right") - 1
            ],
        }
    )
    long = pd.concat(
        [base[rows[x].fillna(0).to_numpy() == 1].assign(insats=x) for x in R.INSATSER if x in rows],
        ignore_index=True,
    )
    out = np.zeros(len(t.codes))
    totals = {d: {c for c, p in t.parents[d].items() if p is None and c in t.children(d)} for d in t.dims}
    # rows by which columns they select on (a kommun dimension's län rows select on the län)
    patterns: dict[tuple[str, ...], list[int]] = {}
    for i, codes in enumerate(t.codes):
        cols = tuple(
            ("lan" if d == "kommun" and len(c) == 2 else d) if c not in totals[d] else ""
            for d, c in zip(t.dims, codes, strict=True)
        )
        patterns.setdefault(cols, []).append(i)
    for cols, idx in patterns.items():
        by = [c for c in cols if c]
        if by:
            g = long.groupby(by)["person"]
            counts = (g.nunique() if t.unit == "persons" else g.size()).to_dict()
        else:
            counts = {(): long["person"].nunique() if t.unit == "persons" else len(long)}
        for i in idx:
            key = tuple(c for c, col in zip(t.codes[i], cols, strict=True) if col)
            out[i] = counts.get(key[0] if len(key) == 1 else key, 0)
    return out


def assert_counts_are_the_registers(register, outcome: Outcome) -> None:
    """The published values and the audit's truth are the register's counts."""
    audit = R.audit_rows(outcome.cand / R_AUDIT)
    for t in R.read_package(outcome.pkg, outcome.order_id):
        if len(t.years) != 1:
            continue  # (a series: its years are checked where they are delivered alone)
        counted = recount(register, t)
        for i, shown in enumerate(t.shown):
            v = float(audit[(t.name, i)]["value"]) if shown == R.HIDDEN else float(shown)
            assert v == counted[i], f"{t.name} row {i} {t.codes[i]}: {v}, the register says {counted[i]}"


def assert_nothing_exposed(result: R.AttackResult) -> None:
    exposed = result.exposed()
    assert not exposed, f"{len(exposed)} hidden small count(s) exposed:\n{result.describe(8)}"
    pinned = [c for c in result.pinned() if c.sensitive]
    assert not pinned, f"{len(pinned)} hidden small count(s) pinned:\n{result.describe(8)}"


def secondary_rows(outcome: Outcome) -> dict[tuple[str, int], float]:
    """The true values of a candidate's secondary suppressions, by (table, row)."""
    rows = R.audit_rows(outcome.cand / R_AUDIT)
    return {k: float(c["value"]) for k, c in rows.items() if c["status"] == "secondary"}


def weakened(outcome: Outcome, folder: Path) -> Outcome:
    """The same release with every secondary suppression undone (true values written back)."""
    pkg = R.reveal(outcome.pkg, secondary_rows(outcome), folder)
    return Outcome(outcome.order_id, outcome.verdict, [], outcome.cand, pkg)


# --------------------------------------------------------------------------------------------
# the attacker on hand-made tables (its own correctness)


def write_table(
    folder: Path,
    name: str,
    unit: str,
    dims: list[tuple[str, list[tuple[str, str | None]]]],
    values: dict[tuple[str, ...], float | None],
    years: tuple[int, ...] = (2023,),
) -> None:
    """A package table written by hand: every combination of codes, None for a hidden cell."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [()]
    for _, codes in dims:
        rows = [r + (c,) for r in rows for c, _ in codes]
    header = []
    for d, _ in dims:
        header += [d, f"{d}_text"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow([*header, "value", "notes"])
    for r in rows:
        v = values[r]
        codes = [x for c in r for x in (c, c)]
        w.writerow([*codes, ".." if v is None else str(int(v)), "Uppgift undertryckt" if v is None else ""])
    (folder / f"{name}.csv").write_bytes(buf.getvalue().encode("utf-8-sig"))
    desc = {
        "name": name,
        "unit": unit,
        "measure": None,
        "scope": {"insatser": ",".join(R.INSATSER), "years": ",".join(map(str, years))},
        "dimensions": [
            {
                "name": d,
                "codes": [c for c, _ in codes],
                "labels": [c for c, _ in codes],
                "parents": [p for _, p in codes],
            }
            for d, codes in dims
        ],
    }
    (folder / f"{name}.json").write_text(json.dumps(desc), encoding="utf-8")


KOMMUN2 = ("kommun", [("00", None), ("0114", "00"), ("0115", "00")])
INSATS2 = ("insats", [("Totalt", None), ("personlig_assistans", "Totalt"), ("kontaktperson", "Totalt")])


def two_by_two(unit: str, hidden: set[tuple[str, str]]) -> dict[tuple[str, str], float | None]:
    """0114: 5 with personlig assistans, 1 with kontaktperson; 0115: 4 and 7. Persons totals
    count each person once (the one with kontaktperson in 0114 also has assistans)."""
    leaf = {("0114", "personlig_assistans"): 5, ("0114", "kontaktperson"): 1}
    leaf |= {("0115", "personlig_assistans"): 4, ("0115", "kontaktperson"): 7}
    v: dict[tuple[str, str], float] = dict(leaf)
    for ins in ("personlig_assistans", "kontaktperson"):
        v[("00", ins)] = leaf[("0114", ins)] + leaf[("0115", ins)]  # rule 9: a sum
    if unit == "insatser":
        for k in ("0114", "0115", "00"):
            v[(k, "Totalt")] = v[(k, "personlig_assistans")] + v[(k, "kontaktperson")]
    else:
        v |= {("0114", "Totalt"): 5, ("0115", "Totalt"): 10, ("00", "Totalt"): 15}
    return {k: (None if k in hidden else x) for k, x in v.items()}


def hand_attack(
    folder: Path, truth: dict[tuple[str, ...], float], *, zeros: bool = True, **kw
) -> tuple[R.AttackResult, R.Model]:
    """The reader on hand-made tables; ``truth`` by codes (the same in every table)."""
    tables = R.read_package(folder)
    model = R.Model().add_tables(tables)
    if zeros:
        model.add_structural_zeros()
    keyed = {}
    for t in tables:
        for codes in t.codes:
            if codes in truth:
                coords = {
                    d: (None if c in ("00", "Totalt") else c) for d, c in zip(t.dims, codes, strict=True)
                }
                keyed[R.canonical(t.unit, t.years, t.scope, coords)] = truth[codes]
    assert not model.violations(keyed)
    return R.attack(model, keyed, THRESHOLD, **kw), model


def cell(result: R.AttackResult, **coords) -> R.CellBound:
    found = [c for c in result.cells if all(getattr(c.key, k) == v for k, v in coords.items())]
    assert len(found) == 1, coords
    return found[0]


@pytest.mark.parametrize("unit", ["persons", "insatser"])
def test_a_lone_hidden_cell_is_pinned_by_its_margins(tmp_path: Path, unit: str) -> None:
    """2 x 2 with margins, one cell hidden: the column sum gives it (persons add up over
    kommuner for one insats by rule 9, insatser always)."""
    hidden = {("0114", "kontaktperson")}
    write_table(tmp_path, "t", unit, [KOMMUN2, INSATS2], two_by_two(unit, hidden))
    truth = {k: v for k, v in two_by_two(unit, set()).items() if k in hidden}
    result, _ = hand_attack(tmp_path, truth, exact=True)
    c = cell(result, geo="0114", insats="kontaktperson")
    assert (c.lower, c.upper, c.pinned, c.exposed, c.small) == (1, 1, True, True, True)


def test_four_hidden_cells_in_a_rectangle_are_not_pinned(tmp_path: Path) -> None:
    hidden = {(k, i) for k in ("0114", "0115") for i in ("personlig_assistans", "kontaktperson")}
    write_table(tmp_path, "t", "insatser", [KOMMUN2, INSATS2], two_by_two("insatser", hidden))
    truth = {k: v for k, v in two_by_two("insatser", set()).items() if k in hidden}
    result, _ = hand_attack(tmp_path, truth, exact=True)
    assert result.figures["exposed"] == 0 and result.figures["pinned"] == 0
    c = cell(result, geo="0114", insats="kontaktperson")
    assert (round(c.lower, 6), round(c.upper, 6)) == (0, 6)  # x, 6 - x, 3 + x, 8 - x >= 0
    # the quick mode (feasible points first) decides the same
    quick, _ = hand_attack(tmp_path, truth)
    assert [(c.exposed, c.pinned) for c in quick.cells] == [(c.exposed, c.pinned) for c in result.cells]


@pytest.mark.parametrize("housing", [True, False])
def test_one_housing_insats_per_person_bounds_a_persons_total(tmp_path: Path, housing: bool) -> None:
    """Persons: total 4, personlig assistans 2, bostad vuxna 3, annan bostad hidden (1). A
    person has one housing insats (rule 5), so 4 >= 3 + annan: at most 1, small. Two insatser
    a person may hold together give only the union's bounds, [0, 4]."""
    a, b = ("bostad_vuxna", "annan_bostad_vuxna") if housing else ("ledsagarservice", "kontaktperson")
    dims = [("insats", [("Totalt", None), ("personlig_assistans", "Totalt"), (a, "Totalt"), (b, "Totalt")])]
    values = {("Totalt",): 4, ("personlig_assistans",): 2, (a,): 3, (b,): None}
    write_table(tmp_path, "t", "persons", dims, values)
    result, model = hand_attack(tmp_path, {(b,): 1}, exact=True)
    c = cell(result, insats=b)
    assert (round(c.lower, 6), round(c.upper, 6)) == ((0, 1) if housing else (0, 4))
    assert c.exposed is housing
    # the soundness check can fail: a second housing insats breaks the rule the reader uses
    assert bool(model.violations({c.key: 2})) is housing


def test_the_rules_ages_as_the_reader_reads_them() -> None:
    """Ages on 1 October: a person aged a turns a or a + 1 during the year."""

    def zero(insats: str, age: str, personkrets: str | None = None) -> bool:
        return R.structural_zero(R.Key("insatser", (2023,), R.ALL, "00", None, age, insats, personkrets))

    assert zero("korttidstillsyn", "0-6") and not zero("korttidstillsyn", "7-12")  # turns 12 from 11 on
    assert not zero("korttidstillsyn", "11") and zero("korttidstillsyn", "10")
    assert (
        not zero("korttidstillsyn", "23-29")
        and zero("korttidstillsyn", "24-29")
        and zero("korttidstillsyn", "30-39")
    )
    assert not zero("familjehem", "23-29") and zero("familjehem", "26-29") and not zero("bostad_barn", "25")
    assert zero("bostad_barn", "30-39") and not zero("bostad_barn", "0-6")
    assert (
        zero("bostad_vuxna", "7-12")
        and not zero("bostad_vuxna", "13-17")
        and zero("annan_bostad_vuxna", "15")
    )
    assert not zero("annan_bostad_vuxna", "16") and not zero("boende_vuxna", "65+")
    assert (
        zero("daglig_verksamhet", "14")
        and not zero("daglig_verksamhet", "15")
        and zero("daglig_verksamhet", "7-12")
    )
    assert zero("daglig_verksamhet", None, "3") and not zero("daglig_verksamhet", None, "2")
    assert not zero("personlig_assistans", "0-6") and not zero("kontaktperson", "80+")


@pytest.mark.parametrize("zeros", [True, False])
def test_a_structural_zero_pins_its_neighbours(tmp_path: Path, zeros: bool) -> None:
    """Insatser by age band: korttidstillsyn 0-6 is 0 by rule 4. With the age totals hidden
    too the margins leave one degree of freedom, which the rule takes away."""
    ages = ("age_band", [("Totalt", None), ("0-6", "Totalt"), ("7-12", "Totalt")])
    ins = ("insats", [("Totalt", None), ("korttidstillsyn", "Totalt"), ("kontaktperson", "Totalt")])
    truth = {("0-6", "korttidstillsyn"): 0, ("7-12", "korttidstillsyn"): 4, ("0-6", "Totalt"): 5}
    truth[("7-12", "Totalt")] = 9
    values: dict[tuple[str, ...], float | None] = dict.fromkeys(truth)
    values |= {("Totalt", "Totalt"): 14, ("Totalt", "korttidstillsyn"): 4, ("Totalt", "kontaktperson"): 10}
    values |= {("0-6", "kontaktperson"): 5, ("7-12", "kontaktperson"): 5}
    write_table(tmp_path, "t", "insatser", [ages, ins], values)
    result, model = hand_attack(tmp_path, truth, zeros=zeros, exact=True)
    c = cell(result, age="7-12", insats="korttidstillsyn")
    if zeros:
        assert len(model.add_structural_zeros()) == 1  # hidden, and hiding it protected nothing
        assert c.pinned and c.lower == pytest.approx(4)
    else:
        assert not c.pinned and (round(c.lower, 6), round(c.upper, 6)) == (0, 4)


def _extract(folder: Path, rows: list[tuple[str, str, str]], population: list[str]) -> Path:
    """A hand-made extract of 2023: pseudonym, län, daglig verksamhet; the order's population."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "data.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["pseudonym", "year", "lan", "sex", "daglig_verksamhet"])
        for pid, lan, dv in rows:
            w.writerow([pid, "2023", lan, "1", dv])
    (folder / "order.yaml").write_text(
        yaml.safe_dump({"population": {"insatser": population}}), encoding="utf-8"
    )
    return folder


@pytest.mark.parametrize("whole", [True, False])
def test_an_extract_of_the_same_year_bounds_the_cells(tmp_path: Path, whole: bool) -> None:
    """Daglig verksamhet per län: 01 has 3, 03 has 2 (both hidden), riket 5 (shown). The
    extract of everybody with daglig verksamhet holds a, b in 01, c with its län suppressed
    and d in 03: 01 >= 2, 03 >= 1. Holding the whole population less the one person the
    national count shows it lacks, 01 <= 3 + 1 and 03 <= 2 + 1 (c could be in either)."""
    lan = ("lan", [("00", None), ("01", "00"), ("03", "00")])
    ins = ("insats", [("Totalt", None), ("daglig_verksamhet", "Totalt")])
    truth = {("01", "Totalt"): 3, ("01", "daglig_verksamhet"): 3, ("03", "Totalt"): 2}
    truth[("03", "daglig_verksamhet")] = 2
    values: dict[tuple[str, ...], float | None] = dict.fromkeys(truth)
    values |= {("00", "Totalt"): 5, ("00", "daglig_verksamhet"): 5}
    write_table(tmp_path / "t", "t", "persons", [lan, ins], values)
    tables = R.read_package(tmp_path / "t")

    def key(lan: str, insats: str | None) -> R.Key:
        return R.Key("insatser" if insats else "persons", (2023,), R.ALL, lan, None, None, insats, None)

    def bounds(model: R.Model, k: R.Key) -> tuple[float, float]:
        lo, hi = 0.0, math.inf
        for rel in model.relations:
            if rel.cells == (k,) and rel.why.startswith("extract"):
                lo, hi = max(lo, rel.lo), min(hi, rel.hi)
        return lo, hi

    def run(rows: list[tuple[str, str, str]]) -> tuple[R.Model, R.AttackResult]:
        model = R.Model().add_tables(tables)
        ex = R.Extract.read(_extract(tmp_path / f"x{len(rows)}", rows, ["daglig_verksamhet"]))
        added = R.add_extract(model, ex, whole_population=whole)
        assert added["lacking"] == {2023: {"daglig_verksamhet": 5.0 - len(rows)} if whole else {}}
        t = tables[0]
        keyed = {}
        for codes, v in truth.items():
            coords = {d: (None if c in ("00", "Totalt") else c) for d, c in zip(t.dims, codes, strict=True)}
            keyed[R.canonical(t.unit, t.years, t.scope, coords)] = v
        assert not model.violations(keyed)
        return model, R.attack(model, keyed, THRESHOLD, exact=True)

    four = [("a", "01", "1"), ("b", "01", "1"), ("c", "..", "1"), ("d", "03", "1")]
    model, res = run(four)
    upper = math.inf if not whole else None
    assert bounds(model, key("01", "daglig_verksamhet")) == (2, upper or 4)
    assert bounds(model, key("03", "daglig_verksamhet")) == (1, upper or 3)
    assert bounds(model, key("01", None)) == (2, math.inf)  # persons with any insats: no upper
    c03 = cell(res, geo="03", insats="daglig_verksamhet")
    assert (round(c03.lower, 6), round(c03.upper, 6)) == (1, 3) and not c03.exposed
    # one person more in 03: the reader sees two there, the cell's value: it is not empty
    model, res = run([*four, ("e", "03", "1")])
    c03 = cell(res, geo="03", insats="daglig_verksamhet")
    assert c03.lower == pytest.approx(2) and c03.exposed and not c03.small


def random_register(rng: np.random.Generator, n: int = 40) -> list[tuple[str, str, str]]:
    """(person, kommun, insats) under the register's rules: one or two kommuner a person, never
    the same insats from two (rule 9), at most one housing insats (rule 5), at least one insats
    in every kommun (rule 8)."""
    kommuner = ["0114", "0115", "0117", "0360", "0380", "0381"]
    insatser = [
        "personlig_assistans",
        "kontaktperson",
        "ledsagarservice",
        "bostad_vuxna",
        "annan_bostad_vuxna",
    ]
    out = []
    for p in range(n):
        ks = list(rng.choice(kommuner, size=int(rng.integers(1, 3)), replace=False))
        free = list(rng.permutation(insatser))
        for k in ks:
            take = []
            while free and (not take or rng.random() < 0.4):
                x = free.pop()
                take.append(x)
                if x in R.HOUSING:
                    free = [y for y in free if y not in R.HOUSING]
            out += [(f"p{p}", str(k), str(x)) for x in take]
            if not free:
                break
    return out


@pytest.mark.parametrize("unit", ["persons", "insatser"])
@pytest.mark.parametrize("seed", range(4))
def test_the_reader_is_right_and_quick_on_random_registers(tmp_path: Path, unit: str, seed: int) -> None:
    """Tables counted from a random register that keeps the rules: the truth satisfies every
    relation the reader writes (its model is right), and the quick mode (feasible points settle
    most cells) decides exactly as min and max per cell."""
    rng = np.random.default_rng(seed)
    rows = random_register(rng)
    kommun = ("kommun", [("00", None), ("01", "00"), ("03", "00")])
    kommun[1].extend((k, k[:2]) for k in sorted({k for _, k, _ in rows}))
    ins = ("insats", [("Totalt", None)] + [(x, "Totalt") for x in sorted({x for _, _, x in rows})])
    values: dict[tuple[str, str], float | None] = {}
    for g, _ in kommun[1]:
        for x, _ in ins[1]:
            sel = [(p, k, i) for p, k, i in rows if (g == "00" or k.startswith(g)) and x in ("Totalt", i)]
            values[(g, x)] = len({p for p, _, _ in sel}) if unit == "persons" else len(sel)
    truth = dict(values)
    hidden = [k for k, v in values.items() if 1 <= v < 3]
    hidden += [k for k in values if rng.random() < 0.3]
    for k in hidden:
        values[k] = None
    write_table(tmp_path, "t", unit, [kommun, ins], values)
    truth = {k: truth[k] for k in hidden}
    quick, _ = hand_attack(tmp_path, truth)  # asserts the truth breaks no relation
    exact, _ = hand_attack(tmp_path, truth, exact=True)
    assert [(c.exposed, c.pinned, c.small) for c in quick.cells] == [
        (c.exposed, c.pinned, c.small) for c in exact.cells
    ]
    for c in exact.cells:
        assert c.lower - 1e-6 <= c.value <= c.upper + 1e-6
    assert exact.figures["exposed"] > 0  # small cells without secondary suppression: the attack bites


# --------------------------------------------------------------------------------------------
# 1. what a package says about its hidden cells

LEAK_WORDS = re.compile(r"primär|sekundär|primary|secondary|färre än|fewer than|\bsmall\b|\bliten\b", re.I)
BAD_KEYS = re.compile(r"primary|secondary|sensitive|lower|upper|bound|interval|reason|^values?$", re.I)
COUNT_NEAR_WORD = re.compile(r"(primary|secondary|primär|sekundär)\D{0,20}\d", re.I)


def _walk(obj: Any, path: str = ""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield path, k, v
            yield from _walk(v, f"{path}/{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _walk(v, f"{path}[{i}]")


def package_leaks(pkg: Path, audit: dict[tuple[str, int], dict[str, Any]]) -> tuple[list[str], set[str]]:
    """Everything in a delivered table package that tells a hidden cell apart (by its mark,
    note, label, style, a per-cell list or a count of primaries) or shows its value. Returns
    the findings and the notes hidden cells carry."""
    found: list[str] = []
    hidden_notes: set[str] = set()
    if (pkg / R_AUDIT).exists():
        found.append(f"{R_AUDIT}: the reviewer's intervals are in the package")
    names = {p.stem for p in pkg.glob("*.csv")}
    for name in sorted(names):
        rows = list(csv.DictReader(io.StringIO((pkg / f"{name}.csv").read_text(encoding="utf-8-sig"))))
        desc = json.loads((pkg / f"{name}.json").read_text(encoding="utf-8"))
        dims = [d["name"] for d in desc["dimensions"]]
        hidden = {i for (t, i), c in audit.items() if t == name and c["status"] != "published"}
        if not hidden:
            found.append(f"{name}: no hidden cell (nothing to check)")
        for i, r in enumerate(rows):
            shown = r["value"] == R.HIDDEN
            if shown != (i in hidden):
                found.append(f"{name} row {i}: shows {r['value']!r}, hidden: {i in hidden}")
            if shown:
                hidden_notes.add(r["notes"])
            else:
                v = float(r["value"])
                if 1 <= v < THRESHOLD:
                    found.append(f"{name} row {i}: a small count shown")
            if LEAK_WORDS.search(r["notes"]):
                found.append(f"{name} row {i}: note {r['notes']!r}")
        for d in dims:  # a label is a function of its code alone
            labels: dict[str, set[str]] = {}
            for r in rows:
                labels.setdefault(r[d], set()).add(r[f"{d}_text"])
            if any(len(s) > 1 for s in labels.values()):
                found.append(f"{name}: the labels of {d} vary with the cell")
        # the workbook: the same rows, and hidden cells written alike
        xlsx = pkg / f"{name}.xlsx"
        if xlsx.exists():
            xrows = R.read_xlsx_rows(xlsx)
            header = list(rows[0].keys())
            if xrows[0] != header:
                found.append(f"{name}.xlsx: header {xrows[0]}")
            for i, (r, x) in enumerate(zip(rows, xrows[1:], strict=False)):
                x = x + [""] * (len(header) - len(x))
                for j, col in enumerate(header):
                    a, b = r[col], x[j]
                    same = a == b or (
                        col == "value" and a != R.HIDDEN and b != R.HIDDEN and float(a) == float(b)
                    )
                    if not same:
                        found.append(f"{name}.xlsx row {i} {col}: {b!r} where the CSV has {a!r}")
                        break
            if len(xrows) - 1 != len(rows):
                found.append(f"{name}.xlsx: {len(xrows) - 1} rows, the CSV {len(rows)}")
            with zipfile.ZipFile(xlsx) as zf:
                parts = zf.namelist()
                extra = [p for p in parts if re.search(r"comment|vml|drawing|styles|sharedStrings", p)]
                if extra:
                    found.append(f"{name}.xlsx: parts that could mark cells: {extra}")
                sheet = zf.read(next(p for p in parts if p.startswith("xl/worksheets/"))).decode("utf-8")
            kinds = set(re.findall(r"<c r=\"[A-Z]+\d+\"([^>]*)><is><t>\.\.</t>", sheet))
            if len(kinds) > 1 or re.search(r" s=\"", sheet):
                found.append(f"{name}.xlsx: hidden cells written in more than one way: {kinds}")
        # the description: no per-cell data, no primaries
        n_rows, n_hidden = len(rows), len(hidden)
        for path, k, v in _walk(desc):
            if BAD_KEYS.search(str(k)):
                found.append(f"{name}.json{path}: key {k!r}")
            if isinstance(v, str) and k not in ("labels", "name") and LEAK_WORDS.search(v):
                found.append(f"{name}.json{path}/{k}: {v!r}")
            numbers = isinstance(v, list) and v and all(isinstance(x, int | float) for x in v)
            if numbers and len(v) in (n_rows, n_hidden) and k != "codes":
                found.append(f"{name}.json{path}/{k}: a list of {len(v)} numbers (one per cell?)")
            if isinstance(v, list) and len(v) in (n_rows, n_hidden) and any(isinstance(x, dict) for x in v):
                found.append(f"{name}.json{path}/{k}: a list of {len(v)} records (one per cell?)")
    audit_json = pkg / "audit.json"
    if audit_json.exists():
        statement = json.loads(audit_json.read_text(encoding="utf-8"))
        for path, k, v in _walk(statement):
            if BAD_KEYS.search(str(k)):
                found.append(f"audit.json{path}: key {k!r}")
            if isinstance(v, list) and len(v) > 20:
                found.append(f"audit.json{path}/{k}: a list of {len(v)}")
    for p in pkg.iterdir():
        if p.suffix in (".md", ".json", ".txt", ".yaml") and COUNT_NEAR_WORD.search(
            p.read_text(encoding="utf-8")
        ):
            found.append(f"{p.name}: a count of primary or secondary cells")
    if len(hidden_notes) > 1:
        found.append(f"hidden cells carry different notes: {hidden_notes}")
    return found, hidden_notes


PI_TABLES = [
    table("persons-kommun-insats", ["kommun", "insats"]),
    table("insatser-kommun-insats", ["kommun", "insats"], "insatser"),
]


def test_every_hidden_cell_looks_the_same_in_every_package(site, blind, tmp_path: Path) -> None:
    """The shipped order (persons by kommun, and by län, sex and age band) and one of persons
    and insatser by kommun (the second in a work area of its own, to keep this quick)."""
    pi = write_order(tmp_path / "orders", "B2026-0201", [2023], PI_TABLES)
    first = run_order(site, TABLES, order_path(KOMMUN_TABLES), "first")
    second = run_order(blind, TABLES, pi, "second")
    assert first.verdict == second.verdict == "releasable", first.reasons + second.reasons
    notes: set[str] = set()
    for o in (first, second):
        audit = R.audit_rows(o.cand / R_AUDIT)
        leaks, hidden_notes = package_leaks(o.pkg, audit)
        assert not leaks, f"{o.order_id}: " + "; ".join(leaks[:8])
        notes |= hidden_notes
    assert len(notes) == 1, f"packages mark hidden cells differently: {notes}"
    # the check can fail: a copy whose small cells say so, and whose description counts them
    audit = R.audit_rows(first.cand / R_AUDIT)
    copy = tmp_path / "tampered"
    shutil.copytree(first.pkg, copy)
    name = sorted({t for t, _ in audit})[0]
    path = copy / f"{name}.csv"
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    for (t, i), c in audit.items():
        if t == name and c["status"] == "primary":
            rows[i + 1][-1] = "färre än 3"
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows(rows)
    path.write_bytes(buf.getvalue().encode("utf-8-sig"))
    desc = json.loads((copy / f"{name}.json").read_text(encoding="utf-8"))
    desc["cells"]["primary"] = 12
    (copy / f"{name}.json").write_text(json.dumps(desc), encoding="utf-8")
    leaks, _ = package_leaks(copy, audit)
    assert any("different notes" in x for x in leaks) and any("'primary'" in x for x in leaks), leaks
    assert any("färre än 3" in x for x in leaks) and any(".xlsx row" in x for x in leaks), leaks


# --------------------------------------------------------------------------------------------
# 2. persons and insatser of the same cells, in one order


def test_persons_and_insatser_of_the_same_cells_pin_nothing(site, tmp_path: Path) -> None:
    """A persons cell of one insats is the insatser cell at the same place (rule 9): the reader
    merges the two tables and attacks them as one."""
    out = run_order(site, TABLES, write_order(tmp_path / "orders", "B2026-0201", [2023], PI_TABLES), "pi")
    assert out.verdict == "releasable", out.reasons
    assert_counts_are_the_registers(site["small"].register, out)
    result, model = attack("persons+insatser", [out])
    n_rows = sum(int(t.hidden.sum()) for t in model.tables)
    assert len(model.hidden) + len(model.revealed) < n_rows, "no cell was recognised in both tables"
    assert_nothing_exposed(result)
    # control: the same release without its secondary suppressions is broken by the same reader
    control, _ = attack("persons+insatser, secondaries undone", [weakened(out, tmp_path / "weak")])
    assert control.figures["exposed"] > 0


# --------------------------------------------------------------------------------------------
# 3, 4, 6: releases next to earlier ones. Each scenario: what is delivered first, then the
# order under test. Its control (slow) prepares the order in a work area that knows nothing
# of the earlier release and shows that the reader then breaks the pair: what the test guards.

KSI = [table("persons-kommun-sex-insats", ["kommun", "sex", "insats"])]
KOMMUN_INSATS = [table("persons-kommun-insats", ["kommun", "insats"])]
LAN_AGE = [table("persons-lan-age-insats", ["lan", "age_band", "insats"])]
#: research extract of 2023: everybody with daglig verksamhet, with län (kommun coarsened),
#: sex, age band, personkrets and six insatser
EXTRACT_VARIABLES = [
    "year",
    "sex",
    "age",
    "kommun",
    "personkrets",
    "daglig_verksamhet",
    "bostad_vuxna",
    "annan_bostad_vuxna",
    "personlig_assistans",
    "ledsagarservice",
    "kontaktperson",
]


def earlier_release(scenario: str, folder: Path) -> tuple[str, Path]:
    """The policy and order file delivered first in a scenario."""
    if scenario in ("second-order", "2023-then-both"):
        return TABLES, order_path(KOMMUN_TABLES)
    if scenario == "2022-then-both":
        return TABLES, write_order(folder, "B2026-0301", [2022], KOMMUN_INSATS)
    return "research-standard", write_order(
        folder,
        "B2026-0601",
        [2023],
        policy="research-standard",
        population=["daglig_verksamhet"],
        variables=EXTRACT_VARIABLES,
    )


def order_under_test(scenario: str, folder: Path) -> Path:
    if scenario == "second-order":
        return write_order(folder, "B2026-0401", [2023], KSI)
    if scenario.endswith("-then-both"):
        return write_order(folder, "B2026-0302", [2022, 2023], KOMMUN_INSATS)
    if scenario == "extract-then-kommun-tables":
        return order_path(KOMMUN_TABLES)
    return write_order(folder, "B2026-0502", [2023], LAN_AGE)


def next_to(site: dict, scenario: str, folder: Path) -> tuple[Outcome, Outcome]:
    policy, first_file = earlier_release(scenario, folder)
    first = run_order(site, policy, first_file, "first")
    assert first.verdict == "releasable", first.reasons
    return first, run_order(site, TABLES, order_under_test(scenario, folder), "second")


def attack_pair(label: str, first: Outcome, second: Outcome) -> R.AttackResult:
    """The reader with both releases: two table packages, or an extract and a table package
    (then with the assumption of ``test_a_table_next_to_a_microdata_extract_of_its_year``)."""
    if (first.pkg / "data.csv").exists():
        result, _ = attack(label, [second], extract=first.pkg, whole_population=True)
    else:
        result, _ = attack(label, [first, second])
    return result


def refused_or_safe(label: str, first: Outcome, second: Outcome, register) -> None:
    if second.verdict != "releasable":
        print(f"\n[{label}] refused: {second.reasons}")
        assert names_history(second, [first]), f"refused without naming the earlier release: {second.reasons}"
        return
    assert_counts_are_the_registers(register, second)
    assert_nothing_exposed(attack_pair(label, first, second))


def test_a_second_order_next_to_the_first(site, tmp_path: Path) -> None:
    """kommun-tables-2023 delivered, then persons by kommun, sex and insats of 2023: the reader
    holds both packages."""
    first, second = next_to(site, "second-order", tmp_path / "orders")
    refused_or_safe("kommun-tables-2023 + kommun x sex x insats", first, second, site["small"].register)


EXTRACT_SCENARIOS = [
    pytest.param("extract-then-lan-age", id="lan-age"),
    pytest.param("extract-then-kommun-tables", id="kommun-tables", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("scenario", EXTRACT_SCENARIOS)
def test_a_table_next_to_a_microdata_extract_of_its_year(site, tmp_path: Path, scenario: str) -> None:
    """The recipient of a research extract of 2023 (everybody with daglig verksamhet) reads
    public tables of 2023. Assumption: every extract person bounds from below the cells they
    certainly fall in, and since the order selected everybody with daglig verksamhet, the
    extract holds every holder less those a published national count shows it lacks: cells of
    daglig verksamhet are also bounded above (the stronger of the two assumptions)."""
    first, second = next_to(site, scenario, tmp_path / "orders")
    assert (first.pkg / "data.csv").exists()
    refused_or_safe(f"{scenario}: tables + extract", first, second, site["small"].register)


REVERSE_SCENARIOS = [
    pytest.param("lan-age", id="lan-age"),
    pytest.param("kommun-tables", id="kommun-tables", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("tables", REVERSE_SCENARIOS)
def test_an_extract_next_to_the_tables_of_its_year(site, tmp_path: Path, tables: str) -> None:
    """The other way round: public tables of 2023 are out, then the research extract of 2023
    (everybody with daglig verksamhet) is prepared. Its recipient reads both, with the same
    assumption as above; the extract is delivered only if the tables stay protected, else it is
    refused naming them."""
    folder = tmp_path / "orders"
    first_file = (
        write_order(folder, "B2026-0502", [2023], LAN_AGE)
        if tables == "lan-age"
        else order_path(KOMMUN_TABLES)
    )
    first = run_order(site, TABLES, first_file, "first")
    assert first.verdict == "releasable", first.reasons
    _, extract_file = earlier_release("extract-then-" + tables, folder)
    second = run_order(site, "research-standard", extract_file, "second")
    if second.verdict != "releasable":
        print(f"\n[{tables} then extract] refused: {second.reasons}")
        assert names_history(second, [first]), f"refused without naming the tables: {second.reasons}"
        return
    assert second.pkg is not None and (second.pkg / "data.csv").exists()
    result, _ = attack(f"{tables} then extract", [first], extract=second.pkg, whole_population=True)
    assert_nothing_exposed(result)


# --------------------------------------------------------------------------------------------
# 5. structural zeros


AGE_TABLES = [
    pytest.param(["lan", "age_band", "insats"], id="lan"),
    pytest.param(["kommun", "age_band", "insats"], id="kommun", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("dims", AGE_TABLES)
def test_structural_zeros_are_not_hidden_and_expose_nothing(site, tmp_path: Path, dims: list[str]) -> None:
    order = write_order(tmp_path / "orders", "B2026-0501", [2023], [table("persons-age-insats", dims)])
    out = run_order(site, TABLES, order, "ages")
    assert out.verdict == "releasable", out.reasons
    if dims[0] == "lan":
        assert_counts_are_the_registers(site["small"].register, out)
    model, _ = read_releases([out])
    zeros = [k for k in model.sources if R.structural_zero(k)]
    assert zeros, "no cell the rules make zero: the test would prove nothing"
    assert all(model.known.get(k, 0) == 0 for k in zeros), "a cell the rules make zero is not 0"
    hidden = [(k, model.hidden[k][0]) for k in zeros if k in model.hidden]
    assert not hidden, f"{len(hidden)} structural zero(s) hidden (that protects nothing), e.g. {hidden[:3]}"
    result, _ = attack(f"{' x '.join(dims)} with the rules", [out])
    assert_nothing_exposed(result)


# --------------------------------------------------------------------------------------------
# 6. a two-year series


@pytest.mark.parametrize("scenario", ["2022-then-both", "2023-then-both"])
def test_a_two_year_series(site, tmp_path: Path, scenario: str) -> None:
    """A table of one year delivered (2022 by kommun and insats, or the shipped 2023 order);
    then persons by kommun and insats for 2022 and 2023, whose cells of each year are cells of
    the earlier release: attacked together, or refused naming the history."""
    first, second = next_to(site, scenario, tmp_path / "orders")
    refused_or_safe(scenario, first, second, site["small"].register)


# --------------------------------------------------------------------------------------------
# the controls: the same reader breaks weakened releases


BLIND = [
    pytest.param("second-order", id="second-order"),
    pytest.param("extract-then-lan-age", id="extract-then-lan-age"),
    pytest.param("extract-then-kommun-tables", id="extract-then-kommun-tables"),
    pytest.param("2023-then-both", id="2023-then-both"),
]


@pytest.mark.slow
@pytest.mark.parametrize("scenario", BLIND)
def test_the_history_tests_can_fail(site, blind, tmp_path: Path, scenario: str) -> None:
    """The order under test prepared where the earlier release is unknown: with both, the
    reader exposes cells. (If a suppression that knows no history one day protects these pairs
    by itself, this control says the history tests above need a harder pair.)"""
    policy, first_file = earlier_release(scenario, tmp_path / "orders")
    first = run_order(site, policy, first_file, "first")
    unaware = run_order(blind, TABLES, order_under_test(scenario, tmp_path / "orders"), "unaware")
    assert first.verdict == unaware.verdict == "releasable", first.reasons + unaware.reasons
    result = attack_pair(f"{scenario}, second made blind to the first", first, unaware)
    assert result.figures["exposed"] > 0, "the control found nothing: the history test proves nothing here"


@pytest.mark.slow
def test_the_reader_breaks_a_release_whose_secondaries_are_undone(site, tmp_path: Path) -> None:
    out = run_order(site, TABLES, order_path(KOMMUN_TABLES), "tables")
    assert out.verdict == "releasable", out.reasons
    result, _ = attack("kommun-tables-2023", [out])
    assert_nothing_exposed(result)
    weak, _ = attack("kommun-tables-2023, secondaries undone", [weakened(out, tmp_path / "weak")])
    assert weak.figures["exposed"] > 0 and weak.figures["pinned_sensitive"] > 0
