"""The attacker: how far can a reader of the published tables narrow each hidden cell?

The audit takes the published tables as an attacker would: every published cell as a constant,
every relation of every table (equations where margins add up, and the bounds of a persons
margin over insatser or kommuner: at least its largest cell, at most the sum of its cells), the
cells of linked tables identified with each other, and all cells non-negative. For each hidden
cell it solves two linear programmes (minimise and maximise the cell) with HiGHS, and checks
that every cell the rules call sensitive is hidden and keeps its protection interval.

What the audit requires of a sensitive cell with value v (recomputed here from the rules and the
cell statistics, not taken from the suppression):

* frequency rule, count table: upper bound >= v + max(1, threshold - n) and lower bound <= v - 1
  (n = persons in the cell): the attacker can neither pin the cell nor rule out that it is a
  safe count, nor be sure that anybody is in it; a sensitive zero cell needs upper >= threshold;
* magnitude tables: the (n, k) dominance and p% rules' protection levels, and for too few
  contributors ``safety_range`` percent of the value, each way.

The attacker uses the linear relaxation (cells are real numbers), as sdcTable and tau-ARGUS do;
``integer=True`` asks for integer solutions (small tables).

Solving two LPs per hidden cell is what the attacker does and what the audit does for small
problems (every hidden cell gets its exact interval). On a register-scale table one LP over a
year's 40,000 hidden cells takes seconds to minutes, so for large problems the audit proves
instead of optimising: the constraint matrix is built once (sparse) and split into connected
components of hidden cells; any feasible table shows how far each cell it moves can go, so a
cell whose requirement is reached by some feasible table is proven protected. Feasible tables
come from (1) the suppression's witnesses, which the audit does not trust but checks against
its own matrices (one sparse product for all of them; a wrong witness is simply discarded),
and (2) LPs over a growing neighbourhood of the cell with every other hidden cell fixed at its
true value (a smaller feasible set, so its optimum is a valid proof). A cell still unproven gets
the exact LPs over its whole component (``confirm``), so every reported failure is a real one.
An interval reported with ``exact=False`` is the part of the true interval proven so far.

This module shares nothing with the suppression code except the data structures of a table.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from lsssdc.disclosure.tables.attack_lp import (
    LpModel,
    ball,
    component,
    fix_others,
    interval,
    relation_rows,
    solve,
    split_published,
)
from lsssdc.disclosure.tables.model import ProtectedTables, Table, witnesses_of

_GEO = {"kommun": "kommun", "lan": "kommun"}  # a län is a level of the kommun dimension

#: with at most this many hidden cells every hidden cell gets its exact interval
EXACT_LIMIT = 400
_TOL = 1e-6


@dataclass(frozen=True)
class AuditReport:
    """Per sensitive cell the interval the attacker can prove and whether it is wide enough.

    ``cells`` has one row per sensitive or hidden cell: table, coordinates, value, status,
    sensitive, reasons, required lower/upper, attacker lower/upper (None when unbounded),
    ``exact`` (True when both bounds are the LP optimum, False when they are proven inner
    bounds: the true interval is at least this wide) and ``ok``.
    """

    passed: bool
    cells: pd.DataFrame
    summary: dict[str, Any]
    failures: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self, *, cells: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {
            "passed": self.passed,
            # the time an audit took varies from run to run; what is written must not
            "summary": {k: v for k, v in self.summary.items() if k != "seconds"},
            "failures": list(self.failures),
        }
        if cells:
            recs = self.cells.to_dict(orient="records")
            for r in recs:
                for k, v in r.items():
                    if isinstance(v, float | np.floating) and not np.isfinite(v):
                        r[k] = None  # unbounded, or nothing required
                    elif isinstance(v, np.generic):
                        r[k] = v.item()
            d["cells"] = recs
        return d


# ---------------------------------------------------------------------------------------------
# what each cell needs


def _needs(table: Table, rules: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sensitive mask, reason text code, required upper and lower protection per cell."""
    v = table.cells["value"].to_numpy(dtype=np.float64)
    n = table.cells["contributors"].to_numpy(dtype=np.float64)
    freq = rules.frequency
    t = float(freq.threshold)
    upl = np.zeros(len(v))
    lpl = np.zeros(len(v))
    reason = np.zeros(len(v), np.int64)
    few = (n >= 1) & (n < t)
    if table.measure is None:
        upl = np.where(few, np.maximum(1.0, t - n), upl)
        lpl = np.where(few, np.minimum(v, 1.0), lpl)
        zero = (n == 0) & (not freq.zero_is_safe)
        upl = np.where(zero, t, upl)
        reason |= few * 1 | zero * 2
    else:
        r = freq.safety_range / 100.0
        upl = np.where(few, r * v, upl)
        lpl = np.where(few, r * v, lpl)
        zero = (n == 0) & (not freq.zero_is_safe)
        upl = np.where(zero, np.maximum(upl, 1.0), upl)
        reason |= few * 1 | zero * 2
        top = table.top if table.top is not None else np.zeros((len(v), 2))
        for rule in rules.dominance:
            k = min(rule.n, top.shape[1])
            if rule.n > top.shape[1]:
                raise ValueError(f"the table keeps {top.shape[1]} top contributions; the rule needs {rule.n}")
            s = top[:, :k].sum(axis=1)
            hit = (v > 0) & (s > rule.k / 100.0 * v)
            need = 100.0 / rule.k * s - v
            upl = np.where(hit, np.maximum(upl, need), upl)
            lpl = np.where(hit, np.maximum(lpl, need), lpl)
            reason |= hit * 4
        if rules.p_rule is not None:
            p = rules.p_rule.p / 100.0
            x1, x2 = top[:, 0], top[:, 1]
            slack = v - x1 - x2
            hit = (v > 0) & (slack < p * x1)
            need = p * x1 - slack
            upl = np.where(hit, np.maximum(upl, need), upl)
            lpl = np.where(hit, np.maximum(lpl, need), lpl)
            reason |= hit * 8
    lpl = np.minimum(lpl, v)
    return reason > 0, reason, upl, lpl


_REASON_TEXT = {1: "frequency", 2: "zero", 4: "dominance", 8: "p_percent"}


def _reason_text(code: int) -> str:
    return ",".join(name for bit, name in _REASON_TEXT.items() if code & bit)


_REASON_LOOKUP = np.array([_reason_text(c) for c in range(16)], dtype=object)


# ---------------------------------------------------------------------------------------------
# the attacker's variables: cells, with linked tables' shared cells identified


def _years_of(table: Table) -> set[str]:
    return {y for y in table.scope.get("years", "").split(",") if y}


def _population(table: Table) -> tuple[str | None, str | None, str]:
    """What a cell counts, apart from its unit: counts of persons and of insatser of one
    population meet (a person holds an insats once a year, from one kommun), sums do not."""
    return ("n" if table.measure is None else table.unit, table.measure, table.scope.get("insatser", ""))


def _cell_keys(table: Table, dims: list[str]) -> np.ndarray:
    """A text key per cell: what it counts, its year, then its code over ``dims`` (a dimension
    the table lacks or holds at its total is '*'). A persons cell of one insats in one year is
    the insatser cell of the same coordinates; every other cell keeps its unit in the key."""
    parts = []
    same_as_pairs = np.zeros(table.size, bool)
    if "insats" in table.dims:
        h = table.hierarchies["insats"]
        kids = np.zeros(h.size, bool)
        kids[np.asarray(h.parents)[np.asarray(h.parents) >= 0]] = True
        same_as_pairs = ~kids[table.nodes[:, table.dims.index("insats")]]
    if "year" in table.dims:
        h = table.hierarchies["year"]
        node = table.nodes[:, table.dims.index("year")]
        kids = np.zeros(h.size, bool)
        kids[np.asarray(h.parents)[np.asarray(h.parents) >= 0]] = True
        year = np.where(kids[node], "*", np.asarray(h.codes, dtype=object)[node])
        same_as_pairs &= ~kids[node]
    else:
        ys = sorted(_years_of(table))
        year = np.full(table.size, ys[0] if len(ys) == 1 else "*", dtype=object)
    what = "" if table.measure is not None else table.unit
    parts.append(np.where(same_as_pairs, "", what).astype(object))
    parts.append(year)
    for d in dims:
        own = [x for x in table.dims if _GEO.get(x, x) == d]
        if not own:
            parts.append(np.full(table.size, "*", dtype=object))
            continue
        name = own[0]
        h = table.hierarchies[name]
        codes = np.asarray(h.codes, dtype=object)
        parents = np.asarray(h.parents)
        has_children = np.zeros(h.size, bool)
        has_children[parents[parents >= 0]] = True
        star = (parents < 0) & has_children
        code = np.where(star, "*", codes)
        parts.append(code[table.nodes[:, table.dims.index(name)]])
    out = parts[0].astype(str)
    for p in parts[1:]:
        out = np.char.add(np.char.add(out, "|"), p.astype(str))
    return out


def _global_ids(tables: list[Table]) -> tuple[list[np.ndarray], int]:
    """Global cell number of each table's cells; linked tables share numbers for shared cells."""
    ids: list[np.ndarray] = [np.zeros(0, np.int64)] * len(tables)
    offset = 0
    for members in _linked(tables):
        if len(members) == 1:
            i = members[0]
            ids[i] = np.arange(tables[i].size, dtype=np.int64) + offset
            offset += tables[i].size
            continue
        dims = sorted({_GEO.get(d, d) for i in members for d in tables[i].dims} - {"year"})
        keys = [_cell_keys(tables[i], dims) for i in members]
        codes, uniq = pd.factorize(np.concatenate(keys), sort=False)
        start = 0
        for i, k in zip(members, keys, strict=True):
            ids[i] = codes[start : start + len(k)].astype(np.int64) + offset
            start += len(k)
        offset += len(uniq)
    return ids, offset


def _linked(tables: list[Table]) -> list[list[int]]:
    """Tables that may share a cell: one population and years in common, transitively (the
    connected components of that relation)."""
    n = len(tables)
    adj = np.zeros((n, n), bool)
    for i in range(n):  # a handful of tables
        for j in range(n):
            adj[i, j] = _population(tables[i]) == _population(tables[j]) and bool(
                _years_of(tables[i]) & _years_of(tables[j])
            )
    _, label = connected_components(sp.csr_matrix(adj), directed=False)
    return [np.flatnonzero(label == c).tolist() for c in np.unique(label)] if n else []


def _verify(
    protected: ProtectedTables,
    ids: list[np.ndarray],
    var: np.ndarray,
    model: LpModel,
    v_h: np.ndarray,
    goal_up: np.ndarray,
    goal_down: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Check the suppression's witnesses against this model; each valid one is a feasible
    table and proves how far its target (and every cell it moves) can go."""
    nv = len(v_h)
    cert_up = np.zeros(nv, bool)
    cert_down = np.zeros(nv, bool)
    lo = v_h.copy()
    hi = v_h.copy()
    w = protected.witnesses
    if not w or len(w.get("target_table", [])) == 0 or nv == 0:
        return cert_up, cert_down, lo, hi, 0
    n_w = len(w["target_table"])
    offsets = np.cumsum([0] + [len(i) for i in ids])
    glob = lambda t, c: np.concatenate(ids)[offsets[np.asarray(t)] + np.asarray(c)]  # noqa: E731
    target = var[glob(w["target_table"], w["target_cell"])]
    cells = var[glob(w["table"], w["cell"])]
    y = np.asarray(w["y"], np.float64)
    wid = np.asarray(w["witness"], np.int64)
    valid = np.ones(n_w, bool)
    valid[wid[(cells < 0) & (np.abs(y) > 0)]] = False  # a published cell cannot move
    valid &= target >= 0
    keep = cells >= 0
    ymat = sp.csc_matrix((y[keep], (cells[keep], wid[keep])), shape=(nv, n_w))
    ymat.sum_duplicates()
    tol = 1e-6
    if model.a_eq.shape[0]:
        r = (model.a_eq @ ymat).tocoo()
        scale = tol * (1.0 + np.abs(model.b_eq[r.row]))
        valid[r.col[np.abs(r.data) > scale]] = False
    if model.a_ub.shape[0]:
        slack = model.b_ub - model.a_ub @ v_h
        r = (model.a_ub @ ymat).tocoo()
        valid[r.col[r.data > slack[r.row] + tol * (1.0 + np.abs(model.b_ub[r.row]))]] = False
    c = ymat.tocoo()
    x = v_h[c.row] + c.data
    valid[c.col[(x < model.lb[c.row] - tol) | (x > model.ub[c.row] + tol)]] = False
    good = valid[c.col]
    np.maximum.at(hi, c.row[good], x[good])
    np.minimum.at(lo, c.row[good], x[good])
    # every valid witness is a feasible table: it proves a bound for each cell it moves
    tol_v = tol * np.maximum(1.0, np.abs(v_h))
    cert_up = hi >= goal_up - tol_v
    cert_down = lo <= goal_down + tol_v
    return cert_up, cert_down, lo, hi, int(valid.sum())


def _groups(protected: ProtectedTables) -> list[list[int]]:
    """Tables that may share cells (one population, years in common) form one problem."""
    return _linked(protected.tables)


def _subset(protected: ProtectedTables, members: list[int]) -> ProtectedTables:
    """The protected tables of one group, witnesses renumbered to the group."""
    sub_w = witnesses_of(protected.witnesses, members, len(protected.tables))
    return ProtectedTables(
        tables=[protected.tables[i] for i in members],
        rules=protected.rules,
        status=[protected.status[i] for i in members],
        reason=[protected.reason[i] for i in members],
        upper=[protected.upper[i] for i in members],
        lower=[protected.lower[i] for i in members],
        witnesses=sub_w,
        known=[protected.known[i] for i in members] if protected.known else None,
    )


def audit(
    protected: ProtectedTables,
    *,
    use_bounds: bool = True,
    exact: bool | None = None,
    integer: bool = False,
    exact_limit: int = EXACT_LIMIT,
    confirm: bool = True,
    use_witnesses: bool = True,
) -> AuditReport:
    """Attack every hidden cell of the protected tables and check each sensitive cell.

    ``use_bounds=False`` gives an attacker who knows only the equations (to show what the
    bounds add). ``exact=True`` solves two LPs for every hidden cell; ``None`` does so when a
    problem has at most ``exact_limit`` hidden cells and elsewhere proves the sensitive cells'
    intervals with feasible tables: the suppression's witnesses once checked here, then LPs
    over growing neighbourhoods, and (``confirm``) the exact LPs over the component for a cell
    still unproven, so that every reported failure is a real one. Tables that cannot share a
    cell (another unit, measure or population) are attacked one group at a time.
    """
    started = time.perf_counter()
    groups = _groups(protected)
    if len(groups) == 1:
        return _attack(protected, use_bounds, exact, integer, exact_limit, confirm, use_witnesses)
    reports = [
        _attack(_subset(protected, m), use_bounds, exact, integer, exact_limit, confirm, use_witnesses)
        for m in groups
    ]
    summary = dict(reports[0].summary)
    for key in summary:
        if isinstance(summary[key], int | float) and not isinstance(summary[key], bool):
            summary[key] = sum(r.summary[key] for r in reports)
    summary["seconds"] = round(time.perf_counter() - started, 3)
    summary["groups"] = len(groups)
    cells = pd.concat([r.cells for r in reports], ignore_index=True)
    failures = [f for r in reports for f in r.failures]
    return AuditReport(passed=not failures, cells=cells, summary=summary, failures=failures)


@dataclass(frozen=True)
class _Cells:
    """Every global cell once (linked tables agree on it): value, visibility and requirement."""

    ids: list[np.ndarray]  # per table, its cells' global numbers
    values: np.ndarray
    published: np.ndarray
    sensitive: np.ndarray
    reason: np.ndarray
    need_up: np.ndarray
    need_down: np.ndarray
    hidden: np.ndarray
    var: np.ndarray  # global cell -> the attacker's variable (-1: a constant)
    idx: np.ndarray  # variable -> global cell


@dataclass(frozen=True)
class _Proof:
    """The attacker's LP, and per hidden cell its goals and what is proven (filled in place)."""

    model: LpModel
    cap: float  # the upper bound that stands for 'unbounded'
    hv: np.ndarray
    goal_up: np.ndarray
    goal_down: np.ndarray
    cert_up: np.ndarray
    cert_down: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    is_exact: np.ndarray
    unproven: np.ndarray
    n_valid: int  # witnesses that passed the check


def _collect(protected: ProtectedTables, ids: list[np.ndarray], n: int) -> _Cells:
    """Merge the tables into global cells, so that a shared cell is one unknown of the attack."""
    values, reason = np.zeros(n), np.zeros(n, np.int64)
    need_up, need_down = np.full(n, -np.inf), np.full(n, np.inf)
    seen, published, sensitive, known_g = (np.zeros(n, bool) for _ in range(4))
    outside = protected.known or [np.zeros(t.size, bool) for t in protected.tables]
    for t, gid, st, held in zip(protected.tables, ids, protected.status, outside, strict=True):
        v = t.cells["value"].to_numpy(dtype=np.float64)
        clash = seen[gid] & ~np.isclose(values[gid], v)
        if clash.any():
            raise ValueError(
                f"table '{t.name}' disagrees with a linked table on {int(clash.sum())} shared cell(s)"
            )
        values[gid] = v
        seen[gid] = True
        # what the reader knows without this release: zeros the register's rules force, and
        # cells they hold from elsewhere (earlier releases, a microdata extract): constants,
        # and nothing this release hides can protect them
        knows = np.asarray(held, bool)
        if "structural" in t.cells:
            knows = knows | t.cells["structural"].to_numpy(dtype=bool)
        published[gid] |= (np.asarray(st) == 0) | knows
        known_g[gid] |= knows
        sens, rsn, upl, lpl = _needs(t, protected.rules)
        sensitive[gid] |= sens
        reason[gid] |= rsn
        need_up[gid] = np.where(sens, np.maximum(need_up[gid], v + upl), need_up[gid])
        need_down[gid] = np.where(sens, np.minimum(need_down[gid], v - lpl), need_down[gid])
    sensitive &= ~known_g
    reason[known_g] = 0
    hidden = seen & ~published
    var = np.full(n, -1, np.int64)
    hid_idx = np.flatnonzero(hidden)
    var[hid_idx] = np.arange(len(hid_idx))
    return _Cells(ids, values, published, sensitive, reason, need_up, need_down, hidden, var, hid_idx)


def _setup(protected: ProtectedTables, cells: _Cells, use_bounds: bool, use_witnesses: bool) -> _Proof:
    """The attacker's LP, and each hidden cell's goals less what the checked witnesses prove."""
    tables, ids, values, var, nv = protected.tables, cells.ids, cells.values, cells.var, len(cells.idx)
    (eq_parts, n_eq), (ub_parts, n_ub) = relation_rows(tables, ids, use_bounds)
    a_eq, b_eq = split_published(eq_parts, n_eq, values, var, nv)
    a_ub, b_ub = split_published(ub_parts, n_ub, values, var, nv)
    cap = 10.0 * float(values.sum()) + 10.0
    model = LpModel(a_eq, b_eq, a_ub, b_ub, np.zeros(nv), np.full(nv, cap))
    hv, sens_h = values[cells.idx], cells.sensitive[cells.idx]
    goal_up = np.where(sens_h, cells.need_up[cells.idx], -np.inf)
    goal_down = np.where(sens_h, cells.need_down[cells.idx], np.inf)
    if use_witnesses:
        cert_up, cert_down, lower, upper, valid = _verify(protected, ids, var, model, hv, goal_up, goal_down)
    else:
        cert_up, cert_down = np.zeros(nv, bool), np.zeros(nv, bool)
        lower, upper, valid = hv.copy(), hv.copy(), 0
    cert_up |= ~sens_h
    cert_down |= ~sens_h | (goal_down >= hv)  # nothing to prove when no room is asked below
    flags = np.zeros(nv, bool), np.zeros(nv, bool)
    return _Proof(model, cap, hv, goal_up, goal_down, cert_up, cert_down, lower, upper, *flags, valid)


def _components(model: LpModel, nv: int) -> tuple[sp.csr_matrix, sp.csc_matrix, list[np.ndarray]]:
    """Cells sharing no row cannot narrow each other: the pattern both ways, each component."""
    if nv:
        m = sp.vstack([model.a_eq, model.a_ub]).tocsr()
        pattern = (abs(m) > 0).astype(np.int8)
        # components of the bipartite graph of rows and hidden cells (cells first)
        graph = sp.bmat([[None, pattern.T], [pattern, None]], format="csr")  # type: ignore[call-overload]
        _, label_all = connected_components(graph, directed=False)
        _, label = np.unique(label_all[:nv], return_inverse=True)
        n_comp = int(label.max()) + 1
        vars_of = pattern.tocsr()
        rows_of = pattern.tocsc()
    else:
        vars_of, rows_of = sp.csr_matrix((0, 0)), sp.csc_matrix((0, 0))
        n_comp, label = 0, np.zeros(0, np.int64)
    order = np.argsort(label, kind="stable")
    bounds_c = np.searchsorted(label[order], np.arange(n_comp + 1))
    return vars_of, rows_of, [order[bounds_c[c] : bounds_c[c + 1]] for c in range(n_comp)]


def _prove(proof: _Proof, small: bool, integer: bool, confirm: bool) -> tuple[int, int]:
    """Exact intervals, or proofs and exact LPs only where unproven: the LP and component counts."""
    vars_of, rows_of, comps = _components(proof.model, len(proof.hv))
    lp_count = 0
    for cols in comps:
        if not small and (proof.cert_up[cols] & proof.cert_down[cols]).all():
            continue  # every sensitive cell here is proven (or there is none)
        if small:
            sub = component(proof.model, cols)
            for j in range(len(cols)):
                lo, hi = interval(sub, j, integer)
                proof.lower[cols[j]], proof.upper[cols[j]] = lo, hi
                lp_count += 2
            proof.is_exact[cols] = True
            continue
        for j in cols[~(proof.cert_up[cols] & proof.cert_down[cols])]:
            lp_count += _prove_near(proof, rows_of, vars_of, int(j))
            if not (proof.cert_up[j] and proof.cert_down[j]):
                if confirm:  # so that every reported failure is a real one
                    sub = component(proof.model, cols)
                    lo, hi = interval(sub, int(np.searchsorted(cols, j)), integer)
                    proof.lower[j], proof.upper[j] = lo, hi
                    proof.is_exact[j] = True
                    lp_count += 2
                else:
                    proof.unproven[j] = True
    return lp_count, len(comps)


def _prove_near(proof: _Proof, rows_of: sp.csc_matrix, vars_of: sp.csr_matrix, j: int) -> int:
    """Cheap LPs near ``j``, the other hidden cells fixed: each optimum is a proof; the LP count."""
    lp_count = 0
    hv, cert_up, cert_down, lower, upper = proof.hv, proof.cert_up, proof.cert_down, proof.lower, proof.upper
    for size in (64, 512):
        free = ball(rows_of, vars_of, j, size)
        sub = fix_others(proof.model, hv, free)
        k = int(np.searchsorted(free, j))
        for want_up in (True, False):
            if (cert_up if want_up else cert_down)[j]:
                continue
            c = np.zeros(len(free))
            c[k] = -1.0 if want_up else 1.0
            x = solve(c, sub)
            lp_count += 1
            if x is None:
                continue
            upper[free] = np.maximum(upper[free], x)
            lower[free] = np.minimum(lower[free], x)
            tol = _TOL * max(1.0, abs(hv[j]))
            if want_up and upper[j] >= proof.goal_up[j] - tol:
                cert_up[j] = True
            if not want_up and lower[j] <= proof.goal_down[j] + tol:
                cert_down[j] = True
        if cert_up[j] and cert_down[j]:
            break
    return lp_count


_CELL_COLUMNS = ["table", "cell", "value", "status", "sensitive", "reasons"] + [
    "lower",
    "upper",
    "exact",
    "ok",
    "proven",
]


def _cell_table(protected: ProtectedTables, cells: _Cells, proof: _Proof) -> pd.DataFrame:
    """One row per sensitive or hidden cell: the interval proven against the one required."""
    nv, values, hidden, var = len(cells.idx), cells.values, cells.hidden, cells.var
    sensitive, need_up, need_down = cells.sensitive, cells.need_up, cells.need_down
    rows = []
    for t, gid, st in zip(protected.tables, cells.ids, protected.status, strict=True):
        st = np.asarray(st)
        sel = np.flatnonzero(sensitive[gid] | hidden[gid])
        if len(sel) == 0:
            continue
        g = gid[sel]
        vj = var[g]
        df = pd.DataFrame({"table": t.name, "cell": sel})
        for d in t.dims:
            df[d] = t.cells[d].to_numpy()[sel].astype(str)
        df["value"] = values[g]
        df["status"] = np.where(hidden[g], np.where(st[sel] == 2, "secondary", "primary"), "published")
        df["sensitive"] = sensitive[g]
        df["reasons"] = _REASON_LOOKUP[cells.reason[g] & 15]
        df["required_lower"] = np.where(sensitive[g], need_down[g], np.nan)
        df["required_upper"] = np.where(sensitive[g], need_up[g], np.nan)
        safe = np.maximum(vj, 0)
        lo = np.where(vj >= 0, proof.lower[safe] if nv else 0.0, values[g])
        hi = np.where(vj >= 0, proof.upper[safe] if nv else 0.0, values[g])
        hi = np.where(hi >= proof.cap * (1 - 1e-9), np.inf, hi)
        df["lower"] = lo
        df["upper"] = hi
        df["exact"] = np.where(vj >= 0, proof.is_exact[safe] if nv else True, True)
        tol = _TOL * np.maximum(1.0, np.abs(values[g]))
        ok_up = ~sensitive[g] | (hi >= need_up[g] - tol)
        ok_down = ~sensitive[g] | (lo <= need_down[g] + tol)
        df["ok"] = hidden[g] & ok_up & ok_down | ~sensitive[g]
        df["proven"] = ~np.where(vj >= 0, proof.unproven[safe] if nv else False, False)
        rows.append(df)
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=_CELL_COLUMNS)


def _attack(
    protected: ProtectedTables,
    use_bounds: bool,
    exact: bool | None,
    integer: bool,
    exact_limit: int,
    confirm: bool,
    use_witnesses: bool,
) -> AuditReport:
    """The attack on one group of tables that may share cells."""
    started = time.perf_counter()
    tables = protected.tables
    ids, n = _global_ids(tables)
    cells = _collect(protected, ids, n)
    proof = _setup(protected, cells, use_bounds, use_witnesses)
    nv = len(cells.idx)
    lp_count, n_comp = _prove(proof, nv <= exact_limit if exact is None else exact, integer, confirm)
    table = _cell_table(protected, cells, proof)
    problems: list[dict[str, Any]] = []
    bad = table[~table["ok"].astype(bool)] if len(table) else table
    for r in bad.itertuples(index=False):
        d = r._asdict()  # type: ignore[operator,misc]  # the stubs' named tuple lacks _asdict
        narrow = "interval too narrow" if d["proven"] else "interval not proven wide enough"
        why = "published" if d["status"] == "published" else narrow
        bounds = {k: _num(d[k]) for k in ("lower", "upper", "required_lower", "required_upper")}
        problems.append({"table": d["table"], "cell": int(d["cell"]), "problem": why, **bounds})
    summary = {
        "tables": len(tables),
        "cells": int(sum(t.size for t in tables)),
        "distinct_cells": int(n),
        "hidden": int(nv),
        "sensitive": int(cells.sensitive.sum()),
        "sensitive_published": int((cells.sensitive & cells.published).sum()),
        "failed": len(problems),
        "components": int(n_comp),
        "lps": int(lp_count),
        "witnesses_valid": int(proof.n_valid),
        "unproven": int(proof.unproven.sum()),
        "attacker": "equations and bounds" if use_bounds else "equations only",
        "relaxation": "integer" if integer else "linear",
        "seconds": round(time.perf_counter() - started, 3),
    }
    return AuditReport(passed=not problems, cells=table, summary=summary, failures=problems)


def _num(x: Any) -> float | None:
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if np.isfinite(f) else None
