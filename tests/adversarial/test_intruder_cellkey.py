"""The reader of cell-key-perturbed tables who holds every release: several orders of one year
(tables of other dimensions that share margins, the same table again) and the next year.

The attacker here is written from scratch: it reads each release as a reader would (the
cells' coordinates, the published counts, the table's structure, which cells add up to
which) and the public ptable (the census practice publishes it), and solves its own linear
programmes (scipy's HiGHS) over every release at once. The module is only called to make
the releases (``record_keys``, ``ptable``, ``perturb``); nothing of its audit is used.

What must hold: publishing again gives nothing (the same cells get the same published
values, so intersecting or averaging them learns nothing), and a small cell's bounds stay
wide. The controls show that the attack is not vacuous: with keys drawn anew for each
release (which the module must never do) the intersection of the releases closes in on the
small cells, and without noise every cell is pinned.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy.optimize import linprog

from lsssdc.disclosure.tables import build_table
from lsssdc.disclosure.tables.cellkey import PTableParams, perturb, ptable, record_keys
from lsssdc.disclosure.tables.model import DISJOINT, SUM, UNION, Table
from lsssdc.register.synth import synthesise

SECRET = bytes(range(32))
THRESHOLD = 3
PARAMS = PTableParams(D=4, V=2.0, js=1)
_GEO = {"lan": "geo", "kommun": "geo"}


# ---------------------------------------------------------------------------------------------
# the intruder


def feasible_from_ptable(frame: pd.DataFrame) -> dict[int, tuple[int, int]]:
    """Per published value the smallest and largest true count the public ptable allows, for
    the published values up to a bound (beyond the last row the noise is the last row's)."""
    last = int(frame["i"].max())
    noise_last = sorted(frame.loc[frame["i"] == last, "v"].astype(int))
    out: dict[int, tuple[int, int]] = {}
    for p in range(5000):
        cands = set(frame.loc[(frame["j"] == p) & (frame["i"] < last), "i"].astype(int))
        cands |= {p - v for v in noise_last if p - v >= last}
        if cands:
            out[p] = (min(cands), max(cands))
    return out


def cell_names(table: Table) -> list[tuple]:
    """What a reader sees as a cell's identity: unit, year and codes ('*' for totals)."""
    years = table.scope["years"]
    cols = {}
    for d in table.dims:
        h = table.hierarchies[d]
        has_kids = {p for p in h.parents if p >= 0}
        codes = ["*" if (h.parents[i] < 0 and i in has_kids) else c for i, c in enumerate(h.codes)]
        cols[_GEO.get(d, d)] = [codes[i] for i in table.nodes[:, table.dims.index(d)]]
    names = []
    for k in range(table.size):
        names.append(
            (
                table.unit,
                years,
                cols.get("geo", ["*"] * table.size)[k],
                cols.get("insats", ["*"] * table.size)[k],
                cols.get("sex", ["*"] * table.size)[k],
                cols.get("age_band", ["*"] * table.size)[k],
            )
        )
    return names


@dataclass
class Intruder:
    """Every release it holds, as unknowns (one per distinct cell), bounds and relations."""

    feasible: dict[int, tuple[int, int]]
    index: dict[tuple, int] = field(default_factory=dict)
    lo: list[float] = field(default_factory=list)
    hi: list[float] = field(default_factory=list)
    eq: list[dict[int, float]] = field(default_factory=list)
    ub: list[dict[int, float]] = field(default_factory=list)

    def var(self, name: tuple) -> int:
        if name not in self.index:
            self.index[name] = len(self.lo)
            self.lo.append(0.0)
            self.hi.append(np.inf)
        return self.index[name]

    def read(self, table: Table, published: np.ndarray, *, exact: bool = False) -> list[int]:
        """Take in one release: bounds from the published values, relations from the table's
        structure (a reader knows which cells add up, and how: persons over kommuner or
        insatser form unions)."""
        ids = [self.var(n) for n in cell_names(table)]
        for k, p in zip(ids, published, strict=True):
            lo, hi = (float(p), float(p)) if exact else self.feasible[int(p)]
            self.lo[k] = max(self.lo[k], lo)
            self.hi[k] = min(self.hi[k], hi)
        rel = table.relations
        for r in range(rel.size):
            parent = ids[rel.parent[r]]
            kids = [ids[c] for c in rel.children[rel.ptr[r] : rel.ptr[r + 1]]]
            if rel.kind[r] == SUM:
                row = {parent: 1.0}
                for c in kids:
                    row[c] = row.get(c, 0.0) - 1.0
                self.eq.append(row)
            elif rel.kind[r] == UNION:
                row = {parent: 1.0}
                for c in kids:
                    row[c] = row.get(c, 0.0) - 1.0
                self.ub.append(row)  # parent <= sum of children
                for c in kids:
                    self.ub.append({c: 1.0, parent: -1.0})  # every child <= parent
            elif rel.kind[r] == DISJOINT:
                row = {parent: -1.0}
                for c in kids:
                    row[c] = row.get(c, 0.0) + 1.0
                self.ub.append(row)
        return ids

    def _matrix(self, rows: list[dict[int, float]]) -> sp.csr_matrix:
        r, c, v = [], [], []
        for i, row in enumerate(rows):
            for k, x in row.items():
                r.append(i)
                c.append(k)
                v.append(x)
        return sp.csr_matrix((v, (r, c)), shape=(len(rows), len(self.lo)))

    def interval(self, k: int) -> tuple[float, float]:
        """The smallest and largest value of unknown ``k`` over every release at once."""
        a_eq, a_ub = self._matrix(self.eq), self._matrix(self.ub)
        bounds = list(zip(self.lo, self.hi, strict=True))
        out = []
        for sign in (1.0, -1.0):
            c = np.zeros(len(self.lo))
            c[k] = sign
            res = linprog(
                c,
                A_ub=a_ub if a_ub.shape[0] else None,
                b_ub=np.zeros(a_ub.shape[0]) if a_ub.shape[0] else None,
                A_eq=a_eq if a_eq.shape[0] else None,
                b_eq=np.zeros(a_eq.shape[0]) if a_eq.shape[0] else None,
                bounds=bounds,
                method="highs",
            )
            assert res.status == 0, res.message
            out.append(sign * res.fun)
        return out[0], out[1]


# ---------------------------------------------------------------------------------------------
# the releases


@pytest.fixture(scope="module")
def world() -> dict:
    reg = synthesise(years=[2022, 2023], persons=1500, seed=11).register
    keys = record_keys(reg["personnummer"], SECRET)
    pt = ptable(PARAMS)
    out = {"register": reg, "pt": pt, "frame": pt.to_frame()}
    for year in (2022, 2023):
        mask = (reg["year"] == year).to_numpy()
        sub = reg[mask].reset_index(drop=True)
        for name, dims in (("sex", ["lan", "insats", "sex"]), ("age", ["lan", "insats", "age_band"])):
            t = build_table(sub, dims, "persons", record_keys=keys[mask], name=f"{name}-{year}")
            out[(name, year)] = (t, perturb(t, pt)[0])
    # the first table again, built for a second order (another call, same register)
    sub = reg[(reg["year"] == 2022).to_numpy()].reset_index(drop=True)
    again = build_table(
        sub, ["lan", "insats", "sex"], "persons", record_keys=keys[(reg["year"] == 2022).to_numpy()]
    )
    out["again"] = (again, perturb(again, pt)[0])
    return out


def small_cells(table: Table, limit: int = 30) -> np.ndarray:
    """Positions of cells of 1 to threshold - 1 persons (a fixed, spread-out sample)."""
    v = table.cells["contributors"].to_numpy()
    small = np.flatnonzero((v >= 1) & (v < THRESHOLD))
    return small[np.linspace(0, len(small) - 1, min(limit, len(small))).astype(int)]


# ---------------------------------------------------------------------------------------------
# publishing again gives nothing


def test_a_second_order_of_the_same_table_publishes_the_same_values(world) -> None:
    (t1, p1), (t2, p2) = world[("sex", 2022)], world["again"]
    assert (t1.cells["value"].to_numpy() == t2.cells["value"].to_numpy()).all()
    assert (p1 != t1.cells["value"].to_numpy()).any(), "no noise at all: the test would prove nothing"
    assert (p1 == p2).all()


def test_tables_of_other_dimensions_publish_their_shared_margins_alike(world) -> None:
    (ts, ps), (ta, pa) = world[("sex", 2022)], world[("age", 2022)]
    by_sex = dict(zip(cell_names(ts), ps, strict=True))
    by_age = dict(zip(cell_names(ta), pa, strict=True))
    shared = [n for n in by_sex if n in by_age]
    assert len(shared) > 100  # every lan x insats cell with sex and age at their totals
    assert all(by_sex[n] == by_age[n] for n in shared)


def test_the_same_persons_next_year_get_the_same_published_value(world) -> None:
    reg = world["register"]
    (t22, p22), (t23, p23) = world[("sex", 2022)], world[("sex", 2023)]
    lan = reg["kommun"].astype(str).str[:2]
    same = 0
    names22 = cell_names(t22)
    pub23 = dict(zip([(u, "-", g, i, s, a) for (u, _, g, i, s, a) in cell_names(t23)], p23, strict=True))
    for k, (u, _, g, ins, sex, age) in enumerate(names22):
        if g == "*" or ins == "*" or sex != "*" or t22.cells["value"].iat[k] == 0:
            continue
        who = []
        for year in (2022, 2023):
            m = (reg["year"] == year) & (lan == g) & (reg[ins] == 1)
            who.append(set(reg.loc[m, "personnummer"]))
        if who[0] == who[1]:
            same += 1
            assert p22[k] == pub23[(u, "-", g, ins, sex, age)]
    assert same >= 3, "no cell with the same persons in both years: the test would prove nothing"


def test_a_repeated_release_does_not_narrow_the_small_cells(world) -> None:
    t, p = world[("sex", 2022)]
    again, p_again = world["again"]
    cells = small_cells(t, 12)
    one = Intruder(world["frame"].pipe(feasible_from_ptable))
    ids = one.read(t, p)
    two = Intruder(one.feasible)
    ids2 = two.read(t, p)
    two.read(again, p_again)
    for c in cells:
        assert one.interval(ids[c]) == pytest.approx(two.interval(ids2[c]))


def test_small_cells_stay_wide_against_every_release(world) -> None:
    intruder = Intruder(feasible_from_ptable(world["frame"]))
    ids = {}
    for key in (("sex", 2022), ("age", 2022), ("sex", 2023), ("age", 2023)):
        ids[key] = intruder.read(*world[key])
    intruder.read(*world["again"])
    t, _ = world[("sex", 2022)]
    value = t.cells["value"].to_numpy()
    wide, below = 0, 0
    cells = small_cells(t)
    for c in cells:
        lo, hi = intruder.interval(ids[("sex", 2022)][c])
        assert lo - 1e-6 <= value[c] <= hi + 1e-6  # the truth is always possible
        wide += hi >= THRESHOLD - 1e-6
        below += lo <= value[c] - 1 + 1e-6
        assert hi - lo >= 1 - 1e-6, "a small cell is pinned"
    assert wide >= 0.9 * len(cells), f"only {wide} of {len(cells)} small cells may be safe counts"
    assert below >= 0.6 * len(cells)  # the rest: a cell of one published above 0 is not empty


# ---------------------------------------------------------------------------------------------
# the controls: the attack works where the protection is absent


def most_likely(frame: pd.DataFrame, published: list[np.ndarray], top: int = 60) -> np.ndarray:
    """Per cell the true count that makes its published values most likely (the public
    ptable's probabilities; releases taken as independent, which they are only with keys
    drawn anew)."""
    last = int(frame["i"].max())
    prob = {(int(i), int(j)): float(q) for i, j, q in frame[["i", "j", "p"]].itertuples(index=False)}
    last_row = {
        int(v): float(q) for v, q in frame.loc[frame["i"] == last, ["v", "p"]].itertuples(index=False)
    }

    def p_of(i: int, j: int) -> float:
        return prob.get((i, j), 0.0) if i < last else last_row.get(j - i, 0.0)

    out = []
    for k in range(len(published[0])):
        score = [sum(np.log(max(p_of(i, int(r[k])), 1e-300)) for r in published) for i in range(top)]
        out.append(int(np.argmax(score)))
    return np.array(out)


def test_control_keys_drawn_anew_for_each_release_let_the_intruder_close_in(world) -> None:
    t, p = world[("sex", 2022)]
    cells = small_cells(t)
    frame = world["frame"]
    feasible = feasible_from_ptable(frame)
    value = t.cells["value"].to_numpy()[cells]
    rng = np.random.default_rng(5)
    lo = np.array([feasible[int(p[c])][0] for c in cells], float)
    hi = np.array([feasible[int(p[c])][1] for c in cells], float)
    width_once = hi - lo
    fresh_pubs = []
    for _ in range(12):  # the same table released twelve times, each with fresh keys
        fresh = Table(**{**t.__dict__, "cells": t.cells.copy()})
        fresh.cells["cell_key"] = rng.integers(0, 2**32, size=t.size, dtype=np.uint32)
        q, _ = perturb(fresh, world["pt"])
        fresh_pubs.append(q[cells])
        lo = np.maximum(lo, [feasible[int(x)][0] for x in q[cells]])
        hi = np.minimum(hi, [feasible[int(x)][1] for x in q[cells]])
    assert ((lo <= value) & (value <= hi)).all()
    assert (hi - lo).mean() < 0.75 * width_once.mean()  # the intersection narrows
    # averaging and the likelihood find the small cells' true counts ...
    assert np.abs(np.mean(fresh_pubs, axis=0) - value).mean() < 0.5 * np.abs(p[cells] - value).mean()
    assert (most_likely(frame, fresh_pubs) == value).mean() >= 0.8
    # ... which twelve releases with the module's keys (all the same) do not give away
    same_pubs = [p[cells]] * 12
    assert (most_likely(frame, same_pubs) == value).mean() <= 0.6


def test_control_without_noise_every_small_cell_is_pinned(world) -> None:
    t, _ = world[("sex", 2022)]
    intruder = Intruder(feasible_from_ptable(world["frame"]))
    ids = intruder.read(t, t.cells["value"].to_numpy(), exact=True)
    for c in small_cells(t, 8):
        lo, hi = intruder.interval(ids[c])
        assert lo == pytest.approx(hi)
