"""The attacker's linear programmes: the constraint matrix of published tables and its solving.

Part of the table attacker (:mod:`lsssdc.disclosure.tables.attack`): like it, it depends on the
table model only, never on the suppression. Published cells move to the right-hand side as
constants; what is left is a sparse system over the hidden cells, solved by HiGHS. A model
restricted to some cells with the rest fixed at their true values has a feasible set inside the
attacker's, so any point it yields is a proof that a cell can move that far.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, milp

from lsssdc.disclosure.tables.model import Table

# relation kind codes of the table data structure
_SUM, _UNION, _DISJOINT = 0, 1, 2


@dataclass
class LpModel:
    a_eq: sp.csr_matrix
    b_eq: np.ndarray
    a_ub: sp.csr_matrix
    b_ub: np.ndarray
    lb: np.ndarray
    ub: np.ndarray


def relation_rows(tables: list[Table], ids: list[np.ndarray], use_bounds: bool) -> tuple[list, list]:
    """Triplets (row, global cell, coefficient) of equations and of '<= 0' inequalities."""
    eq: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    ub: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    n_eq = n_ub = 0
    for t, gid in zip(tables, ids, strict=True):
        rel = t.relations
        if rel.size == 0:
            continue
        cnt = np.diff(rel.ptr)
        rel_of_child = np.repeat(np.arange(rel.size), cnt)
        parent_g = gid[rel.parent]
        child_g = gid[rel.children]
        # parent - sum(children) (= 0 for sums; <= 0 for the union's upper bound);
        # sum(children) - parent <= 0 for disjoint children
        for kind, sign in ((_SUM, 1.0), (_UNION, 1.0), (_DISJOINT, -1.0)):
            if kind != _SUM and not use_bounds:
                continue
            sel = np.flatnonzero(rel.kind == kind)
            if len(sel) == 0:
                continue
            base = n_eq if kind == _SUM else n_ub
            row_of = np.full(rel.size, -1, np.int64)
            row_of[sel] = base + np.arange(len(sel))
            csel = np.flatnonzero(rel.kind[rel_of_child] == kind)
            r = np.concatenate([row_of[sel], row_of[rel_of_child[csel]]])
            c = np.concatenate([parent_g[sel], child_g[csel]])
            v = np.concatenate([np.full(len(sel), sign), np.full(len(csel), -sign)])
            (eq if kind == _SUM else ub).append((r, c, v))
            if kind == _SUM:
                n_eq += len(sel)
            else:
                n_ub += len(sel)
            if kind == _UNION:
                # every child <= parent
                k = len(csel)
                rows = n_ub + np.arange(k)
                ub.append(
                    (
                        np.concatenate([rows, rows]),
                        np.concatenate([child_g[csel], parent_g[rel_of_child[csel]]]),
                        np.concatenate([np.ones(k), -np.ones(k)]),
                    )
                )
                n_ub += k
    return [eq, n_eq], [ub, n_ub]


def split_published(
    parts: list, n_rows: int, values: np.ndarray, var: np.ndarray, n_var: int
) -> tuple[sp.csr_matrix, np.ndarray]:
    """Move published cells to the right-hand side; keep rows with a hidden cell."""
    if not parts:
        return sp.csr_matrix((0, n_var)), np.zeros(0)
    r = np.concatenate([p[0] for p in parts])
    c = np.concatenate([p[1] for p in parts])
    v = np.concatenate([p[2] for p in parts])
    hid = var[c] >= 0
    rhs = -np.bincount(r[~hid], weights=v[~hid] * values[c[~hid]], minlength=n_rows)
    m = sp.csr_matrix((v[hid], (r[hid], var[c[hid]])), shape=(n_rows, n_var))
    m.sum_duplicates()
    keep = np.diff(m.indptr) > 0
    return m[keep], rhs[keep]


# ---------------------------------------------------------------------------------------------
# solving


def solve(c: np.ndarray, model: LpModel, integer: bool = False) -> np.ndarray | None:
    """A vertex optimising ``c`` over the attacker's feasible set (None when none is found).

    Solved by HiGHS through :func:`scipy.optimize.milp` (no integrality: a linear programme).
    """
    a = sp.vstack([model.a_eq, model.a_ub]).tocsr()
    lo = np.concatenate([model.b_eq, np.full(model.a_ub.shape[0], -np.inf)])
    hi = np.concatenate([model.b_eq, model.b_ub])
    res = milp(
        c,
        constraints=LinearConstraint(a, lo, hi) if a.shape[0] else (),
        bounds=Bounds(model.lb, model.ub),
        integrality=np.ones(len(c)) if integer else None,  # type: ignore[arg-type]
    )
    return res.x if res.status == 0 and res.x is not None else None


def component(model: LpModel, cols: np.ndarray) -> LpModel:
    """The model restricted to a component's variables (rows touching them)."""

    def part(a: sp.csr_matrix, b: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray]:
        if a.shape[0] == 0:
            return sp.csr_matrix((0, len(cols))), np.zeros(0)
        ac = a[:, cols]
        rows = np.flatnonzero(np.diff(ac.tocsr().indptr) > 0)
        return ac.tocsr()[rows], b[rows]

    a_eq, b_eq = part(model.a_eq, model.b_eq)
    a_ub, b_ub = part(model.a_ub, model.b_ub)
    return LpModel(a_eq, b_eq, a_ub, b_ub, model.lb[cols], model.ub[cols])


def interval(model: LpModel, j: int, integer: bool) -> tuple[float, float]:
    c = np.zeros(len(model.lb))
    c[j] = 1.0
    lo = solve(c, model, integer)
    hi = solve(-c, model, integer)
    if lo is None or hi is None:
        raise RuntimeError("the attacker's problem has no solution: the table is inconsistent")
    return float(lo[j]), float(hi[j])


def fix_others(model: LpModel, values: np.ndarray, free: np.ndarray) -> LpModel:
    """The model with only ``free`` variables; every other hidden cell fixed at its true value.

    Its feasible set lies inside the attacker's, so any point it yields is a proof.
    """

    def part(a: sp.csr_matrix, b: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray]:
        if a.shape[0] == 0:
            return sp.csr_matrix((0, len(free))), np.zeros(0)
        af = a[:, free].tocsr()
        rows = np.flatnonzero(np.diff(af.indptr) > 0)
        rest = a[rows] @ values - af[rows] @ values[free]
        return af[rows], b[rows] - rest

    a_eq, b_eq = part(model.a_eq, model.b_eq)
    a_ub, b_ub = part(model.a_ub, model.b_ub)
    return LpModel(a_eq, b_eq, a_ub, b_ub, model.lb[free], model.ub[free])


def ball(rows_of: sp.csc_matrix, vars_of: sp.csr_matrix, start: int, size: int) -> np.ndarray:
    """Up to ``size`` variables nearest to ``start`` in the graph of shared rows.

    ``rows_of`` and ``vars_of`` are the constraint pattern by column and by row.
    """
    seen = np.zeros(vars_of.shape[1], bool)
    seen[start] = True
    frontier = np.array([start])
    count = 1
    while len(frontier) and count < size:
        rows = np.unique(
            np.concatenate([rows_of.indices[rows_of.indptr[f] : rows_of.indptr[f + 1]] for f in frontier])
        )
        if len(rows) == 0:
            break
        nxt = np.unique(
            np.concatenate([vars_of.indices[vars_of.indptr[r] : vars_of.indptr[r + 1]] for r in rows])
        )
        nxt = nxt[~seen[nxt]][: size - count]
        seen[nxt] = True
        count += len(nxt)
        frontier = nxt
    return np.flatnonzero(seen)
