"""Secondary suppression: hide further cells until no primary cell can be narrowed below its
protection interval (the hypercube pass, a local LP per remaining cell, repair after the attack)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, milp

from lsssdc.disclosure.tables.attack import audit as attack  # the independent attacker
from lsssdc.disclosure.tables.hypercube import _adopt, _cover, _hypercubes, _Witnesses
from lsssdc.disclosure.tables.joint import _describe_cell, _Joint, _joint
from lsssdc.disclosure.tables.model import (
    DISJOINT,
    PRIMARY,
    PUBLISHED,
    SECONDARY,
    SUM,
    UNION,
    CodeTree,
    ProtectedTables,
    Table,
    _ragged_arange,
    linked_groups,
    witnesses_of,
)
from lsssdc.disclosure.tables.rules import FrequencyRule, Rules, primary_cells
from lsssdc.errors import DisclosureRefused, PolicyError, Problem

# ---------------------------------------------------------------------------------------------
# secondary suppression


def _cost(joint: _Joint) -> np.ndarray:
    """What hiding a cell costs: mostly one per cell, a little more for larger cells and margins."""
    return (1.0 + 0.1 * np.log1p(np.maximum(joint.value, 0.0))) * np.where(joint.margin, 2.0, 1.0)


def _children_lists(h: CodeTree) -> list[np.ndarray]:
    """Each node's children (positions), in order."""
    p = h.parent_array
    order = np.argsort(p, kind="stable")
    order = order[p[order] >= 0]
    bounds = np.searchsorted(p[order], np.arange(h.size + 1))
    return [order[bounds[i] : bounds[i + 1]] for i in range(h.size)]


def _hierarchy_sets(
    h: CodeTree, kids: list[np.ndarray], node: int, m: int, edge_value: np.ndarray, wide: bool = False
) -> np.ndarray:
    """Nodes of one dimension around ``node``: itself, its ancestors, up to ``m`` siblings and
    their descendants (up to ``m`` per node and level), preferring large ``edge_value``;
    ``wide``: the ancestors' siblings too (another län and its kommuner), with theirs."""
    parent = h.parents
    chosen = {node}
    a = parent[node]
    uncles: list[int] = []
    while a >= 0:
        chosen.add(a)
        if wide and parent[a] >= 0:
            others = kids[parent[a]]
            uncles += others[others != a].tolist()
        a = parent[a]

    def best(nodes: np.ndarray) -> np.ndarray:
        if len(nodes) > m:
            return nodes[np.argsort(-edge_value[nodes], kind="stable")[:m]]
        return nodes

    sibs = kids[parent[node]] if parent[node] >= 0 else np.zeros(0, np.int64)
    sibs = best(sibs[sibs != node])
    frontier = [node, *sibs.tolist(), *best(np.asarray(uncles, np.int64)).tolist()]
    chosen.update(frontier)
    while frontier:
        nxt = [c for f in frontier if len(kids[f]) for c in best(kids[f]).tolist()]
        chosen.update(nxt)
        frontier = nxt
    return np.array(sorted(chosen), dtype=np.int64)


@dataclass
class _Grid:
    """What the local LPs need of one table, computed once: sizes, strides, values, children."""

    sizes: np.ndarray
    strides: np.ndarray
    values: np.ndarray
    kids: list[list[np.ndarray]]


def _grid(joint: _Joint, ti: int) -> _Grid:
    grid = joint.grids.get(ti)
    if grid is None:
        t = joint.tables[ti]
        hs = [t.hierarchies[d] for d in t.dims]
        sizes = np.array([h.size for h in hs], dtype=np.int64)
        strides = np.ones(len(hs), dtype=np.int64)
        for i in range(len(hs) - 2, -1, -1):
            strides[i] = strides[i + 1] * sizes[i + 1]
        grid = _Grid(sizes, strides, joint.value[joint.ids[ti]], [_children_lists(h) for h in hs])
        joint.grids[ti] = grid
    return grid


def _around(joint: _Joint, ti: int, local: int, m: int, wide: bool = False) -> np.ndarray:
    """Global cells near cell ``local`` of table ``ti`` (a cross of per-dimension sets)."""
    t = joint.tables[ti]
    grid = _grid(joint, ti)
    coords = t.nodes[local]
    flat = np.zeros(1, np.int64)
    for j, d in enumerate(t.dims):
        h = t.hierarchies[d]
        # value of the cell one step away along this dimension, for ranking
        edge = grid.values[local + (np.arange(h.size) - coords[j]) * grid.strides[j]]
        nodes = _hierarchy_sets(h, grid.kids[j], int(coords[j]), m, edge, wide)
        flat = (flat[:, None] + nodes[None, :] * grid.strides[j]).reshape(-1)
    return joint.ids[ti][flat]


#: at most this many shared cells of a neighbourhood reach into the other tables that hold them
_REACH = 64


def _neighbourhood(joint: _Joint, g: int, m: int, wide: bool = False) -> np.ndarray:
    """Global cells near ``g`` in every table that holds it, and near the cells it shares with
    other tables in those: a shared cell that may move (not known) can only move with cells of
    every table that holds it, e.g. a kommun x insats cell with its kommun x sex x insats cells
    when an earlier release holds both."""
    owners = joint.owner_table[joint.owner_ptr[g] : joint.owner_ptr[g + 1]]
    locals_ = joint.owner_local[joint.owner_ptr[g] : joint.owner_ptr[g + 1]]
    near = np.unique(
        np.concatenate(
            [_around(joint, int(ti), int(lo), m, wide) for ti, lo in zip(owners, locals_, strict=True)]
        )
    )
    n_own = joint.owner_ptr[near + 1] - joint.owner_ptr[near]
    shared = near[(n_own > 1) & ~joint.fixed[near]][:_REACH]
    if len(shared) == 0:
        return near
    visited = set(owners.tolist())
    idx = _ragged_arange(joint.owner_ptr[shared], joint.owner_ptr[shared + 1] - joint.owner_ptr[shared])
    out = [near]
    for ti, lo in zip(joint.owner_table[idx], joint.owner_local[idx], strict=True):  # a few cells
        if int(ti) not in visited:
            out.append(_around(joint, int(ti), int(lo), m, wide))
    return np.unique(np.concatenate(out))


class _Rows(NamedTuple):
    """The relations that touch a neighbourhood as LP rows over its cells (triplets of row,
    column and coefficient), with their kind and right-hand side."""

    e_row: np.ndarray
    e_col: np.ndarray
    e_coef: np.ndarray
    is_eq: np.ndarray
    rhs: np.ndarray
    n_rows: int


class _Moves(NamedTuple):
    """How far each cell of a neighbourhood may go up (``ub_p``) and down (``ub_m``), tightened
    in place; ``t`` is the position of the cell to protect."""

    ub_p: np.ndarray
    ub_m: np.ndarray
    t: int


def _local_rows(joint: _Joint, cells: np.ndarray, pos: np.ndarray) -> _Rows:
    """Every relation with a cell in the neighbourhood, over the neighbourhood's cells only
    (every other cell is fixed, so its part goes into the right-hand side)."""
    v = joint.value
    idx = _ragged_arange(joint.member_ptr[cells], joint.member_ptr[cells + 1] - joint.member_ptr[cells])
    rels = np.unique(joint.member_rel[idx])
    kind = joint.kind[rels]
    par = joint.parent[rels]
    cnt = joint.ptr[rels + 1] - joint.ptr[rels]
    ch = joint.children[_ragged_arange(joint.ptr[rels], cnt)]
    ch_rel = np.repeat(np.arange(len(rels)), cnt)
    csum = np.bincount(ch_rel, weights=v[ch], minlength=len(rels))
    n_rel = len(rels)
    # one "whole relation" row per relation (sum rows equations, union and disjoint rows
    # inequalities), then one row per union child (child - parent <= slack)
    p_coef = np.where(kind == DISJOINT, -1.0, 1.0)
    rhs_rel = np.where(kind == UNION, csum - v[par], np.where(kind == DISJOINT, v[par] - csum, 0.0))
    uc = (kind[ch_rel] == UNION) & ((pos[ch] >= 0) | (pos[par[ch_rel]] >= 0))
    u_ch, u_par = ch[uc], par[ch_rel[uc]]
    n_u = len(u_ch)
    n_rows = n_rel + n_u
    u_rows = n_rel + np.arange(n_u)
    e_row = np.concatenate([np.arange(n_rel), ch_rel, u_rows, u_rows])
    e_cell = np.concatenate([par, ch, u_ch, u_par])
    e_coef = np.concatenate([p_coef, -p_coef[ch_rel], np.ones(n_u), -np.ones(n_u)])
    keep = pos[e_cell] >= 0
    e_row, e_col, e_coef = e_row[keep], pos[e_cell[keep]], e_coef[keep]
    is_eq = np.concatenate([kind == SUM, np.zeros(n_u, bool)])
    rhs = np.concatenate([rhs_rel, v[u_par] - v[u_ch]])
    return _Rows(e_row, e_col, e_coef, is_eq, rhs, n_rows)


def _move_bounds(joint: _Joint, cells: np.ndarray, t: int, delta: float) -> _Moves:
    """Each cell's room before any relation: a count cannot go below zero, a cell the reader
    knows cannot move, and the target moves only in the direction asked."""
    v = joint.value
    cap = 10.0 * float(v.max() if len(v) else 1.0) + abs(delta) + 10.0
    ub_p = np.full(len(cells), cap)
    ub_m = np.maximum(v[cells], 0.0)
    ub_p[joint.fixed[cells]] = 0.0  # a cell the reader knows cannot move
    ub_m[joint.fixed[cells]] = 0.0
    if delta >= 0:
        ub_m[t] = 0.0
    else:
        ub_p[t] = 0.0
    return _Moves(ub_p, ub_m, t)


def _tighten(rows: _Rows, moves: _Moves) -> np.ndarray:
    """Turn rows with one live cell into bounds on it (y = 0 for an equation, a * y <= b
    otherwise), a few rounds, so the LP is smaller; the rows still active."""
    e_row, e_col, e_coef, is_eq, rhs, n_rows = rows
    ub_p, ub_m, _ = moves
    active = np.ones(n_rows, bool)
    for _ in range(4):
        live = ((ub_p > 0) | (ub_m > 0))[e_col] & active[e_row]
        n_live = np.bincount(e_row[live], minlength=n_rows)
        single = active & (n_live == 1)
        active &= n_live > 1
        if not single.any():
            break
        s = live & single[e_row]
        r, c, a = e_row[s], e_col[s], e_coef[s]
        eq = is_eq[r]
        ub_p[c[eq]] = 0.0
        ub_m[c[eq]] = 0.0
        lim = np.maximum(rhs[r[~eq]], 0.0) / np.abs(a[~eq])
        up = a[~eq] > 0
        np.minimum.at(ub_p, c[~eq][up], lim[up])
        np.minimum.at(ub_m, c[~eq][~up], lim[~up])
    return active


def _assemble(
    rows: _Rows, active: np.ndarray, moves: _Moves, cells: np.ndarray, w: np.ndarray, delta: float
) -> _Model:
    """The LP in columns y+ (cells that may go up) then y- (cells that may go down), columns
    fixed at zero dropped, the target's column fixed at the move asked."""
    ub_p, ub_m, t = moves
    col_p = np.where(ub_p > 0, np.cumsum(ub_p > 0) - 1, -1)
    n_p = int((ub_p > 0).sum())
    col_m = np.where(ub_m > 0, n_p + np.cumsum(ub_m > 0) - 1, -1)
    target = int(col_p[t] if delta >= 0 else col_m[t])
    n_col = n_p + int((ub_m > 0).sum())
    live = active[rows.e_row]
    r, c, a = rows.e_row[live], rows.e_col[live], rows.e_coef[live]
    row_ix = np.cumsum(active) - 1
    ep, em = col_p[c] >= 0, col_m[c] >= 0
    mat = sp.csr_matrix(
        (
            np.concatenate([a[ep], -a[em]]),
            (np.concatenate([row_ix[r[ep]], row_ix[r[em]]]), np.concatenate([col_p[c[ep]], col_m[c[em]]])),
        ),
        shape=(int(active.sum()), n_col),
    )
    hi = rows.rhs[active]
    lo = np.where(rows.is_eq[active], hi, -np.inf)
    sel_p, sel_m = np.flatnonzero(ub_p > 0), np.flatnonzero(ub_m > 0)
    ub = np.concatenate([ub_p[sel_p], ub_m[sel_m]])
    lb = np.zeros(n_col)
    lb[target] = ub[target] = abs(delta)
    return _Model(
        c=np.concatenate([w[sel_p], w[sel_m]]),
        a=mat,
        lo=lo,
        hi=hi,
        lb=lb,
        ub=ub,
        cells=cells,
        col_cell=np.concatenate([sel_p, sel_m]),
        col_sign=np.concatenate([np.ones(len(sel_p)), -np.ones(len(sel_m))]),
        target=target,
        delta=abs(delta),
    )


def _protection_model(
    joint: _Joint, hidden: np.ndarray, cost: np.ndarray, g: int, delta: float, cells: np.ndarray
) -> _Model | None:
    """The LP for cells whose hiding lets cell ``g`` move by ``delta`` with every relation true.

    A deviation y over ``cells`` (every other cell fixed) with y[g] = delta is sought at the
    least cost of the published cells it uses (hidden cells nearly free). y = y+ - y-, and a
    relation that involves one cell of the neighbourhood only bounds that cell's y+ or y-
    (which, costs being positive, gives the same optima); columns fixed at zero are dropped.
    None when a bound alone rules the move out.
    """
    pos = np.full(joint.n, -1, np.int64)
    pos[cells] = np.arange(len(cells))
    rows = _local_rows(joint, cells, pos)
    moves = _move_bounds(joint, cells, int(pos[g]), delta)
    active = _tighten(rows, moves)
    ub_p, ub_m, t = moves
    if (ub_p[t] if delta >= 0 else ub_m[t]) < abs(delta) - 1e-7 * max(1.0, abs(delta)):
        return None
    w = np.where(hidden[cells], 1e-3, cost[cells] / max(abs(delta), 1e-9))
    return _assemble(rows, active, moves, cells, w, delta)


@dataclass
class _Model:
    """One protection LP: minimise c @ x, lo <= a @ x <= hi, lb <= x <= ub; column i moves
    ``cells[col_cell[i]]`` by ``col_sign[i] * x[i]``."""

    c: np.ndarray
    a: sp.csr_matrix
    lo: np.ndarray
    hi: np.ndarray
    lb: np.ndarray
    ub: np.ndarray
    cells: np.ndarray
    col_cell: np.ndarray
    col_sign: np.ndarray
    target: int
    delta: float


def _solve_model(m: _Model | None, *, large: bool = False) -> tuple[np.ndarray, np.ndarray] | None:
    """The deviation of a protection LP (cells and values), or None when it has none.

    ``large``: the LP over every cell, with presolve; anything but a proof of infeasibility
    (a limit reached, a numerical failure) is an error, never taken for "no protection"."""
    if m is None:
        return None
    res = milp(
        m.c,
        constraints=LinearConstraint(m.a, m.lo, m.hi) if m.a.shape[0] else (),
        bounds=Bounds(m.lb, m.ub),
        options={"presolve": large},  # small problems: presolve costs more than it saves
    )
    if large and res.status not in (0, 2):  # pragma: no cover - solver trouble
        raise RuntimeError(f"the protection LP over every cell was not solved: {res.message}")
    if res.status != 0 or res.x is None:
        return None
    y = np.bincount(m.col_cell, weights=m.col_sign * res.x, minlength=len(m.cells))
    keep = np.abs(y) > 1e-9 * max(1.0, m.delta)
    return m.cells[keep], y[keep]


def _repair(
    joint: _Joint,
    hidden: np.ndarray,
    cost: np.ndarray,
    g: int,
    delta: float,
    widths: Sequence[int] = (1, 2, 5, 12),
) -> tuple[np.ndarray, np.ndarray]:
    """The cheapest local deviation moving ``g`` by ``delta`` (cells and deviations); the
    neighbourhood widens until one exists: more siblings, then the ancestors' siblings (where
    the cells above are known, e.g. published before, the move must reach another län)."""
    stages = [(m, False) for m in widths] + [(m, True) for m in widths[1:]]
    for m, wide in stages:
        near = _neighbourhood(joint, g, m, wide)
        found = _solve_model(_protection_model(joint, hidden, cost, g, delta, near))
        if found is not None:
            return found
    # every cell free always works (scale the table up, or empty it) unless cells the reader
    # knows (published before) hold the cell in place
    found = _solve_model(_protection_model(joint, hidden, cost, g, delta, np.arange(joint.n)), large=True)
    if found is None:
        raise DisclosureRefused(
            Problem(
                "history_exposes",
                f"{_describe(joint, g)} cannot be protected: the cells a reader already holds "
                "(published in an earlier release) fix it",
                hint="leave out the table or the dimension that meets the earlier release",
            )
        )
    return found


def _describe(joint: _Joint, g: int) -> str:
    return _describe_cell(joint.tables, joint.ids, g)


def protect(
    tables: Sequence[Table] | Table,
    rules: Rules | FrequencyRule | None = None,
    *,
    method: str = "hypercube",
    max_rounds: int = 10,
    workers: int = 1,
    known: Sequence[np.ndarray] | None = None,
    hidden_before: Sequence[np.ndarray] | None = None,
    witnesses: Mapping[str, Any] | None = None,
) -> ProtectedTables:
    """Primary and secondary suppression of (linked) tables until the attacker finds nothing.

    Primary cells come from ``rules``. ``method="hypercube"`` first gives each primary cell a
    small balanced cube of hidden cells per direction (vectorised, checked against every
    relation of the linked tables, the cheapest kept); ``"lp"`` skips that. Every primary cell
    still unprotected gets the cheapest local deviation found by an LP (HiGHS). Then the
    independent attacker (:func:`lsssdc.disclosure.tables.attack.audit`) runs; any cell it can narrow
    too much is repaired the same way, until it passes. Tables that cannot share cells (other
    unit, measure or population) are protected separately, in ``workers`` processes if asked.
    The result does not depend on ``workers``.

    ``known`` (per table) are cells every reader holds already, as published in an earlier
    release: they stay published, no deviation may move them, and they need no protection.
    ``hidden_before`` (per table) are cells an earlier release hid: they start hidden, so a
    series stays consistent. Zeros the register's rules force (``Table.structural``) are known
    too. A cell that only moving known cells could protect is refused (``history_exposes``).
    ``witnesses`` are an earlier release's (:attr:`ProtectedTables.witnesses`, its tables
    placed at their positions here, e.g. with :func:`~lsssdc.disclosure.tables.model.renumber_witnesses`):
    each one still true of the joint problem protects its cells without new suppressions, and
    the result is the same release either way, only reached faster.
    """
    if method not in ("hypercube", "lp"):
        raise PolicyError(f"unknown suppression method '{method}' (hypercube or lp)")
    started = time.perf_counter()
    tables = [tables] if isinstance(tables, Table) else list(tables)
    if not tables:
        raise PolicyError("no table to protect")
    names = [t.name for t in tables]
    if len(set(names)) != len(names):
        raise PolicyError("two tables have the same name")
    rules = Rules(frequency=rules) if isinstance(rules, FrequencyRule) else (rules or Rules())
    members = linked_groups(tables)
    jobs = [
        (
            [tables[i] for i in m],
            rules,
            method,
            max_rounds,
            [known[i] for i in m] if known is not None else None,
            [hidden_before[i] for i in m] if hidden_before is not None else None,
            witnesses_of(witnesses, m, len(tables)),
        )
        for m in members
    ]
    if workers > 1 and len(jobs) > 1:
        from concurrent.futures import ProcessPoolExecutor

        # the largest problems first (most primary cells), so that no worker is left with a
        # long one at the end; each group's result does not depend on when it runs
        work = [sum(int((primary_cells(t, rules)[0] > 0).sum()) for t in job[0]) for job in jobs]
        first = sorted(range(len(jobs)), key=lambda i: (-work[i], i))
        with ProcessPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
            done = pool.map(_protect_group_light, *zip(*(jobs[i] for i in first), strict=True))
            parts = [part for _, part in sorted(zip(first, done, strict=True), key=lambda x: x[0])]
    else:
        parts = [_protect_group(*job) for job in jobs]
    return _merge(tables, rules, members, parts, time.perf_counter() - started, workers)


def _protect_group(
    tables: list[Table],
    rules: Rules,
    method: str,
    max_rounds: int,
    known: list[np.ndarray] | None = None,
    hidden_before: list[np.ndarray] | None = None,
    earlier: Mapping[str, Any] | None = None,
) -> ProtectedTables:
    """Protect tables that may share cells, as one problem."""

    started = time.perf_counter()
    joint = _joint(tables, rules, known, hidden_before)
    cost = _cost(joint)
    hidden = joint.primary | joint.hidden_before
    wit = _Witnesses()
    done, adopted = _adopt(joint, earlier, hidden, wit)
    if method == "hypercube":
        done_up, done_down = _hypercubes(joint, hidden, cost, wit, done=done)
    else:
        done_up, done_down = done
    t_cubes = time.perf_counter() - started
    repaired = 0
    g: int | np.integer
    for g in np.flatnonzero(~done_up | ~done_down):  # cells the cubes did not protect
        for covered, sign, delta in ((done_up, 1, joint.upl[g]), (done_down, -1, joint.lpl[g])):
            if covered[g] or delta <= 0:
                continue
            cells, y = _repair(joint, hidden, cost, int(g), sign * float(delta))
            hidden[cells] = True
            wit.add(g, sign, cells[None, :], y[None, :])
            _cover(joint, cells[None, :], y[None, :], done_up, done_down)
            repaired += 1
    t_repair = time.perf_counter() - started - t_cubes
    hidden = wit.prune(joint)  # witnesses made redundant by later ones free their cells
    rounds = 0
    result = _result(joint, rules, hidden, wit)
    report = None
    index = {t.name: i for i, t in enumerate(tables)}
    for rounds in range(1, max_rounds + 1):  # noqa: B007 - the count is reported
        report = attack(result, exact=False, confirm=False)
        if report.passed:
            break
        for f in sorted(report.failures, key=lambda x: (index[x["table"]], x["cell"])):
            if f["problem"] == "published":  # pragma: no cover - primary cells are hidden
                raise RuntimeError("a sensitive cell is published")
            g = int(joint.ids[index[f["table"]]][f["cell"]])
            value = joint.value[g]
            for goal, now in ((f["required_upper"], f["upper"]), (f["required_lower"], f["lower"])):
                if goal is None:
                    continue
                up = goal > value
                if now is not None and ((up and now >= goal - 1e-9) or (not up and now <= goal + 1e-9)):
                    continue
                delta = (goal - value) * (1 + 1e-6) + (1e-6 if up else -1e-6)
                if not up:
                    delta = max(delta, -value)  # a count goes down to zero, not below
                cells, y = _repair(joint, hidden, cost, g, float(delta))
                hidden[cells] = True
                wit.add(g, 1 if up else -1, cells[None, :], y[None, :])
                repaired += 1
        result = _result(joint, rules, hidden, wit)
    if report is None or not report.passed:
        raise DisclosureRefusedError(report)
    result.report.update(
        {
            "cube_seconds": round(t_cubes, 3),
            "repair_seconds": round(t_repair, 3),
            "lp_repairs": repaired,
            "witnesses_adopted": adopted,
            "audit_rounds": rounds,
            "audit_seconds": report.summary["seconds"],
        }
    )
    return result


def _protect_group_light(
    tables: list[Table],
    rules: Rules,
    method: str,
    max_rounds: int,
    known: list[np.ndarray] | None = None,
    hidden_before: list[np.ndarray] | None = None,
    earlier: Mapping[str, Any] | None = None,
) -> ProtectedTables:
    """As :func:`_protect_group`, without sending the tables back from a worker process."""
    part = _protect_group(tables, rules, method, max_rounds, known, hidden_before, earlier)
    part.tables = []
    return part


def _merge(
    tables: list[Table],
    rules: Rules,
    members: list[list[int]],
    parts: list[ProtectedTables],
    seconds: float,
    workers: int,
) -> ProtectedTables:
    """Put the groups' results back in the order of the tables given."""
    n = len(tables)
    status: list[np.ndarray] = [np.zeros(0, np.int8)] * n
    reason: list[np.ndarray] = [np.zeros(0, np.int64)] * n
    upper: list[np.ndarray] = [np.zeros(0)] * n
    lower: list[np.ndarray] = [np.zeros(0)] * n
    known: list[np.ndarray] = [np.zeros(t.size, bool) for t in tables]
    w_parts: dict[str, list[np.ndarray]] = {}
    offset = 0
    for m, part in zip(members, parts, strict=True):
        for k, i in enumerate(m):
            status[i], reason[i], upper[i], lower[i] = (
                part.status[k],
                part.reason[k],
                part.upper[k],
                part.lower[k],
            )
            if part.known is not None:
                known[i] = part.known[k]
        remap = np.asarray(m, np.int64)
        w = part.witnesses or {}
        if len(w.get("target_table", [])):
            for key in ("target_table", "table"):
                w_parts.setdefault(key, []).append(remap[w[key]])
            for key in ("target_cell", "direction", "cell", "y"):
                w_parts.setdefault(key, []).append(w[key])
            w_parts.setdefault("witness", []).append(w["witness"] + offset)
            offset += len(w["target_table"])
    witnesses = {k: np.concatenate(v) for k, v in w_parts.items()} if w_parts else None
    res = ProtectedTables(tables, rules, status, reason, upper, lower, witnesses=witnesses, known=known)
    res.report.update(res.counts())
    summed = ("cube_seconds", "repair_seconds", "lp_repairs", "witnesses_adopted", "audit_seconds")
    res.report.update({k: round(sum(p.report.get(k, 0) for p in parts), 3) for k in summed})
    res.report.update(
        {
            "groups": len(parts),
            "audit_rounds": max(p.report.get("audit_rounds", 0) for p in parts),
            "workers": workers,
            "seconds": round(seconds, 3),
        }
    )
    return res


def DisclosureRefusedError(report: Any) -> Exception:  # noqa: N802 - builds an error
    from lsssdc.errors import DisclosureRefused

    return DisclosureRefused(
        Problem(
            "suppression_failed",
            f"secondary suppression did not protect {len(report.failures)} cell(s)",
            hint="a defect: please report it with the table specification",
        )
    )


def _result(joint: _Joint, rules: Rules, hidden: np.ndarray, wit: _Witnesses) -> ProtectedTables:
    status, reason, upper, lower = [], [], [], []
    for gid in joint.ids:
        st = np.where(joint.primary[gid], PRIMARY, np.where(hidden[gid], SECONDARY, PUBLISHED)).astype(
            np.int8
        )
        status.append(st)
        reason.append(joint.reason[gid])
        upper.append(np.where(joint.primary[gid], joint.upl[gid], 0.0))
        lower.append(np.where(joint.primary[gid], joint.lpl[gid], 0.0))
    # witnesses in table-local terms: each global cell by its first occurrence
    target, direction, w, cell, y = wit.entries()
    first_t = joint.owner_table[joint.owner_ptr[:-1]] if joint.n else np.zeros(0, np.int64)
    first_l = joint.owner_local[joint.owner_ptr[:-1]] if joint.n else np.zeros(0, np.int64)
    witnesses = {
        "target_table": first_t[target],
        "target_cell": first_l[target],
        "direction": direction,
        "witness": w,
        "table": first_t[cell],
        "cell": first_l[cell],
        "y": y,
    }
    res = ProtectedTables(
        tables=joint.tables,
        rules=rules,
        status=status,
        reason=reason,
        upper=upper,
        lower=lower,
        witnesses=witnesses,
        known=[joint.fixed[gid] for gid in joint.ids],
    )
    res.report.update(res.counts())
    return res
