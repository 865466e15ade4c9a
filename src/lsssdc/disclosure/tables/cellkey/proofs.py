"""Proofs of what the attacker can do: feasible tables as deviations from the true one.

Candidate deviations (a cell with its margins, against a sibling, hypercube squares), the sparse
ratio test that checks them, their combination by small LPs, and the neighbourhood and exact LPs
that prove a cell can or cannot move. The audit (module ``audit``) runs them cheapest first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog

from lsssdc.disclosure.tables.cellkey.space import _UNIT, _Space


@dataclass
class _Problem:
    """The attacker's feasible set as deviations ``z`` from the true table ``x*``:
    ``A_eq z = 0``, ``A_ub z <= slack`` and ``-room_down <= z <= room_up``."""

    a_eq: sp.csr_matrix
    a_ub: sp.csr_matrix
    slack: np.ndarray
    room_up: np.ndarray
    room_down: np.ndarray


def _steps(prob: _Problem, y: sp.csc_matrix) -> np.ndarray:
    """Per column of ``y`` (a direction) the largest ``t`` with ``t * y`` feasible (0 when it
    breaks an equation): a ratio test over every relation and bound, one sparse product."""
    k = y.shape[1]
    t = np.full(k, np.inf)
    tol = 1e-9
    if prob.a_eq.shape[0]:
        r = (prob.a_eq @ y).tocoo()
        t[r.col[np.abs(r.data) > tol]] = 0.0
    if prob.a_ub.shape[0]:
        r = (prob.a_ub @ y).tocoo()
        pos = r.data > tol
        np.minimum.at(t, r.col[pos], prob.slack[r.row[pos]] / r.data[pos])
    c = y.tocoo()
    up = c.data > 0
    np.minimum.at(t, c.col[up], prob.room_up[c.row[up]] / c.data[up])
    np.minimum.at(t, c.col[~up], prob.room_down[c.row[~up]] / -c.data[~up])
    return np.maximum(t, 0.0)


def _apply(y: sp.csc_matrix, t: np.ndarray, reach_up: np.ndarray, reach_down: np.ndarray) -> None:
    """Every feasible deviation ``t * y`` shows how far each cell it moves can go."""
    c = y.tocoo()
    step = c.data * np.where(np.isfinite(t), t, 0.0)[c.col]
    np.maximum.at(reach_up, c.row, step)
    np.minimum.at(reach_down, c.row, step)


def _ragged(ptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each of ``rows`` the positions ``ptr[r]..ptr[r+1]``: (owner, position), vectorised."""
    cnt = ptr[rows + 1] - ptr[rows]
    owner = np.repeat(np.arange(len(rows)), cnt)
    starts = np.repeat(ptr[rows] - (np.cumsum(cnt) - cnt), cnt)
    return owner, starts + np.arange(int(cnt.sum()))


def _with(space: _Space, base: np.ndarray, col: int, code: np.ndarray) -> np.ndarray:
    """Cells with the coordinates ``base`` but ``code`` in column ``col`` (any unit class);
    where no release shows one, the nearest shown margin (other dimensions at their total,
    one after the other): the cell whose room a choice along ``col`` is judged by."""
    rows = base.copy()
    rows[:, col] = code
    found = np.full(len(rows), -1, np.int64)
    for d in [None, *(j for j in range(3, len(space.names)) if j != col)]:
        miss = np.flatnonzero(found < 0)
        if not len(miss):
            break
        if d is not None:
            if space.star[d] < 0:
                continue
            rows[miss, d] = space.star[d]
        for u in range(len(space.vocab[_UNIT])):
            rows[miss, _UNIT] = u
            hit = space.lookup(rows[miss])
            found[miss] = np.where(found[miss] >= 0, found[miss], hit)
    return found


def _descend(
    space: _Space, base: np.ndarray, col: int, start: np.ndarray, room: np.ndarray
) -> list[np.ndarray]:
    """From each ``start`` code down to a leaf, each step to the child whose cell (``base``
    with that code) has the most ``room``: the path a deviation takes below a margin."""
    path = [start]
    cur = start.copy()
    ptr, kids = space.child_ptr[col], space.child[col]
    for _ in range(32):  # hierarchies are a few levels deep
        inner = np.flatnonzero((cur >= 0) & (ptr[np.maximum(cur, 0) + 1] > ptr[np.maximum(cur, 0)]))
        if not len(inner):
            break
        owner, pos = _ragged(ptr, cur[inner])
        code = kids[pos]
        cell = _with(space, base[inner][owner], col, code)
        score = np.where(cell >= 0, room[np.maximum(cell, 0)], -1.0)
        best = np.lexsort((-score, owner))
        first = np.searchsorted(owner[best], np.arange(len(inner)))
        nxt = np.full(len(cur), -1, np.int64)
        nxt[inner] = code[best[first]]
        path.append(nxt)
        cur = nxt
    return path


def _leaves(
    space: _Space, base: np.ndarray, room: np.ndarray, cols: Sequence[int] | None = None
) -> np.ndarray:
    """``base`` with each code of ``cols`` (default every dimension) taken down to a leaf,
    each step to the child whose cell has the most ``room``."""
    out = base.copy()
    for j in range(3, len(space.names)) if cols is None else cols:
        down = _descend(space, base, j, base[:, j], room)
        leaf = down[-1].copy()
        for lvl in down[::-1]:
            leaf = np.where(leaf >= 0, leaf, lvl)
        out[:, j] = leaf
    return out


def _plain(space: _Space, leaf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The cells of ``leaf`` (one row of leaf codes each) with all their margins: every
    combination of the codes on the paths to the top, in every unit class. Moving them all
    by the same amount keeps every sum of every table. Returns (row of ``leaf``, cell)."""
    owner = np.arange(len(leaf))
    key = leaf @ space.strides  # a cell's key changes by (new code - old) * stride per column
    for j in range(3, len(space.names)):
        path = space.ancestors(j, leaf[:, j])
        ptr = np.concatenate([[0], np.cumsum((path >= 0).sum(axis=1))])
        flat = path[path >= 0]  # each row is a prefix of codes, then -1s
        e_own, pos = _ragged(ptr, owner)
        owner = owner[e_own]
        key = key[e_own] + (flat[pos] - leaf[owner, j]) * space.strides[j]
    cells, rows = [], []
    shift = leaf[owner, _UNIT] * space.strides[_UNIT]
    for u in range(len(space.vocab[_UNIT])):
        hit = space.keys.get_indexer(key - shift + u * space.strides[_UNIT]).astype(np.int64)
        ok = hit >= 0
        cells.append(hit[ok])
        rows.append(owner[ok])
    return np.concatenate(rows), np.concatenate(cells)


def _siblings(
    space: _Space, base: np.ndarray, j: int, room: np.ndarray, rank: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Siblings along column ``j`` of each row of ``base``, those ranked ``rank`` to
    ``rank + width - 1`` by the room of their cell: (row, sibling code)."""
    own = base[:, j]
    par = space.parent[j][own]
    has = np.flatnonzero(par >= 0)
    if not len(has):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    owner, pos = _ragged(space.child_ptr[j], par[has])
    sib = space.child[j][pos]
    keep = sib != own[has][owner]
    owner, sib = owner[keep], sib[keep]
    cell = _with(space, base[has][owner], j, sib)
    score = np.where(cell >= 0, room[np.maximum(cell, 0)], -1.0)
    order = np.lexsort((-score, owner))
    owner, sib = owner[order], sib[order]
    start = np.searchsorted(owner, np.arange(len(has)))
    r = np.arange(len(owner)) - start[owner]
    pick = (r >= rank) & (r < rank + width)
    return has[owner[pick]], sib[pick]


def _candidates(
    space: _Space,
    cells: np.ndarray,
    sigma: float,
    prob: _Problem,
    rank: int = 0,
    width: int = 2,
    cube: int = 2,
    descents: bool = False,
) -> tuple[sp.csc_matrix, np.ndarray]:
    """Candidate deviations that move each cell by ``sigma`` (+1 up, -1 down), as columns,
    and the cell each one is for. Each is a signed sum of *corners*: a cell with all its
    margins (per dimension the path from a leaf to the top; a margin code goes down to the
    child with the most room), which keeps every sum of every table. The corners of one
    candidate share their paths except where they differ, so their common margins cancel:

    * the cell alone (its margins up to the grand total move with it);
    * against a partner: the cell with one code replaced by a sibling moves the other way,
      and the margins they share stay put;
    * a square: along two dimensions the cell, two partners and the opposite corner (+ - - +),
      the classic hypercube move, which leaves every margin of the two lines as it was.

    Unions, disjoint sets and bounds are left to the ratio test. Siblings are ranked by the
    room of their cell: ``rank`` and ``width`` choose the partners, ``cube`` the second
    dimension's partners of a square; ``descents`` adds the cell moved through each child of
    a margin code (not only the roomiest).
    """
    base = space.codes[cells]
    room_same = prob.room_up if sigma > 0 else prob.room_down
    room_other = prob.room_down if sigma > 0 else prob.room_up
    leaf = _leaves(space, base, room_same)
    dims = list(range(3, len(space.names)))
    cell_of = np.arange(len(cells))
    if descents:
        cell_of, leaf = _more_descents(space, base, leaf, room_same, dims)
        base = base[cell_of]
    groups: list[_Group] = []
    if rank == 0:
        groups.append(_Group(np.arange(len(base)), [(leaf, 1.0)]))
    pairs, sibs = _pairs(space, base, leaf, dims, room_other, rank, width)
    groups += pairs
    groups += _squares(space, base, leaf, dims, sibs, room_other, cube)
    return _assemble(space, groups, cells[cell_of], sigma)


class _Group(NamedTuple):
    """Candidates for the rows ``rows`` of ``base`` (one each), each the signed sum of the
    corners ``parts`` (leaf codes per row, sign)."""

    rows: np.ndarray
    parts: list[tuple[np.ndarray, float]]


def _more_descents(
    space: _Space, base: np.ndarray, leaf: np.ndarray, room: np.ndarray, dims: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Every child of a margin code as another way down (with every partner and square), not
    only the roomiest: (row of ``base`` each way is for, its leaf codes), the cells themselves
    first."""
    more_cell, more_leaf = [np.arange(len(base))], [leaf]
    for j in dims:
        own = base[:, j]
        inner = np.flatnonzero(space.child_ptr[j][own + 1] > space.child_ptr[j][own])
        owner, pos = _ragged(space.child_ptr[j], own[inner])
        coords = base[inner][owner].copy()
        coords[:, j] = space.child[j][pos]
        alt = leaf[inner][owner].copy()
        alt[:, j] = _leaves(space, coords, room, [j])[:, j]
        more_cell.append(inner[owner])
        more_leaf.append(alt)
    return np.concatenate(more_cell), np.concatenate(more_leaf)


def _partner_leaf(
    space: _Space, base: np.ndarray, rows: np.ndarray, j: int, code: np.ndarray, room: np.ndarray
) -> np.ndarray:
    """The leaf code along ``j`` below a partner's ``code`` (down by ``room``): where the
    partner's corner sits."""
    coords = base[rows].copy()
    coords[:, j] = code
    return _leaves(space, coords, room, [j])[:, j]


def _pairs(
    space: _Space,
    base: np.ndarray,
    leaf: np.ndarray,
    dims: list[int],
    room: np.ndarray,
    rank: int,
    width: int,
) -> tuple[list[_Group], dict[int, tuple[np.ndarray, np.ndarray]]]:
    """Each cell against a partner along one dimension (+ -), and per dimension the partners
    chosen (row, partner's leaf code), which the squares reuse."""
    groups: list[_Group] = []
    sibs = {}
    for j in dims:
        rows, sib = _siblings(space, base, j, room, rank, width)
        sibs[j] = (rows, _partner_leaf(space, base, rows, j, sib, room))
        if not len(rows):
            continue
        partner = leaf[rows].copy()
        partner[:, j] = sibs[j][1]
        groups.append(_Group(rows, [(leaf[rows], 1.0), (partner, -1.0)]))
    return groups, sibs


def _match(rows1: np.ndarray, rows2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every pair of an entry of ``rows1`` and an entry of sorted ``rows2`` on the same row:
    (position in ``rows1``, position in ``rows2``), vectorised."""
    lo = np.searchsorted(rows2, rows1, side="left")
    cnt = np.searchsorted(rows2, rows1, side="right") - lo
    owner, pos = _ragged(np.concatenate([[0], np.cumsum(cnt)]), np.arange(len(rows1)))
    pos = pos - np.repeat(np.cumsum(cnt) - cnt, cnt) + np.repeat(lo, cnt)
    return owner, pos


def _squares(
    space: _Space,
    base: np.ndarray,
    leaf: np.ndarray,
    dims: list[int],
    sibs: dict[int, tuple[np.ndarray, np.ndarray]],
    room: np.ndarray,
    cube: int,
) -> list[_Group]:
    """Hypercube squares along two dimensions (+ - - +): the cell, a partner along each and
    the opposite corner, which leave every margin of the two lines as it was."""
    groups: list[_Group] = []
    for a_i, j1 in enumerate(dims):
        rows1, leaf1 = sibs[j1]
        for j2 in dims[a_i + 1 :]:
            rows2, sib2 = _siblings(space, base, j2, room, 0, cube)
            if not len(rows1) or not len(rows2):
                continue
            leaf2 = _partner_leaf(space, base, rows2, j2, sib2, room)
            order2 = np.argsort(rows2, kind="stable")
            rows2, leaf2 = rows2[order2], leaf2[order2]
            owner, pos = _match(rows1, rows2)
            if not len(owner):
                continue
            rows = rows1[owner]
            c0 = leaf[rows]
            c1 = c0.copy()
            c1[:, j1] = leaf1[owner]
            c2 = c0.copy()
            c2[:, j2] = leaf2[pos]
            c12 = c1.copy()
            c12[:, j2] = leaf2[pos]
            groups.append(_Group(rows, [(c0, 1.0), (c1, -1.0), (c2, -1.0), (c12, 1.0)]))
    return groups


def _assemble(
    space: _Space, groups: list[_Group], cell_of_row: np.ndarray, sigma: float
) -> tuple[sp.csc_matrix, np.ndarray]:
    """The candidates as columns of one sparse matrix (each corner expanded to its cells and
    margins, shared margins cancelled) and the cell each column is for."""
    corners: list[np.ndarray] = []  # leaf codes of each corner
    corner_cand: list[np.ndarray] = []
    corner_sign: list[np.ndarray] = []
    target: list[np.ndarray] = []
    n_cand = 0
    for rows, parts in groups:
        ids = n_cand + np.arange(len(rows))
        for coords, part_sign in parts:
            corners.append(coords)
            corner_cand.append(ids)
            corner_sign.append(np.full(len(rows), part_sign))
        target.append(cell_of_row[rows])
        n_cand += len(rows)
    if not n_cand:
        return sp.csc_matrix((space.size, 0)), np.zeros(0, np.int64)
    cand = np.concatenate(corner_cand)
    sign = np.concatenate(corner_sign)
    own, cell = _plain(space, np.concatenate(corners))
    y = sp.csc_matrix((sign[own] * sigma, (cell, cand[own])), shape=(space.size, n_cand))
    y.sum_duplicates()
    y.eliminate_zeros()
    return y, np.concatenate(target)


def _keeps_sums(prob: _Problem, y: sp.csc_matrix) -> np.ndarray:
    """Columns that keep every equation (all do by construction, unless two tables disagree
    on a hierarchy)."""
    keep = np.ones(y.shape[1], bool)
    if prob.a_eq.shape[0]:
        r = (prob.a_eq @ y).tocoo()
        keep[r.col[np.abs(r.data) > 1e-9]] = False
    return keep


def _combine(
    prob: _Problem,
    y: sp.csc_matrix,
    target: np.ndarray,
    keep: np.ndarray,
    cells: np.ndarray,
    sigma: float,
    need: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Per cell the best combination ``y @ lam`` (``lam >= 0``) of its candidate deviations,
    for a batch of cells in one LP of independent blocks (each with its own copy of the
    relations it touches): the optimum mixes partial moves (one unit through a margin with
    room, the next against a partner, a third through another age band). Returns how far
    up and down the batch's solutions (a feasible table each) move every cell."""
    blocks, rhs, objs, parts = [], [], [], []
    for cell, nd in zip(cells, need, strict=True):
        cols = np.flatnonzero((target == cell) & keep)
        if not len(cols):
            continue
        yc = y[:, cols].tocsr()
        touched = np.flatnonzero(np.diff(yc.indptr) > 0)
        yt = yc[touched]
        rows = [yt, -yt]
        b = [prob.room_up[touched], prob.room_down[touched]]
        if prob.a_ub.shape[0]:
            ay = (prob.a_ub @ yc).tocsr()
            hit = np.flatnonzero(np.diff(ay.indptr) > 0)
            rows.append(ay[hit])
            b.append(prob.slack[hit])
        own = (yc[cell] * sigma).toarray().ravel()
        rows.append(sp.csr_matrix(own))  # no further than the need
        b.append(np.array([nd]))
        blocks.append(sp.vstack(rows).tocsr())
        rhs.append(np.concatenate(b))
        objs.append(-own)
        parts.append(yc)
    z = np.zeros(prob.room_up.shape[0])
    if not blocks:
        return z, z
    res = linprog(  # type: ignore[call-overload]
        np.concatenate(objs),
        A_ub=sp.block_diag(blocks, format="csr"),
        b_ub=np.concatenate(rhs),
        bounds=(0, None),
        method="highs",
    )
    if res.status != 0 or res.x is None:  # lam = 0 is feasible: anything else is a solver failure
        return z, z
    start = 0
    up, down = z.copy(), z.copy()
    for yc in parts:
        k = yc.shape[1]
        move = np.asarray(yc @ res.x[start : start + k]).ravel()
        start += k
        np.maximum(up, move, out=up)
        np.minimum(down, move, out=down)
    return up, down


def _ball(rows_of: sp.csc_matrix, vars_of: sp.csr_matrix, cell: int, size: int) -> np.ndarray:
    """Cells a few relations away from ``cell``, breadth first, whole layers while they fit
    (then the rest of a layer in order), at most ``size``."""
    seen = np.zeros(rows_of.shape[1], bool)
    seen[cell] = True
    count, frontier = 1, np.array([cell])
    while len(frontier) and count < size:
        rows = np.unique(rows_of[:, frontier].indices)
        nxt = np.unique(vars_of[rows].indices) if len(rows) else np.zeros(0, np.int64)
        nxt = nxt[~seen[nxt]][: size - count]
        seen[nxt] = True
        count += len(nxt)
        frontier = nxt
    return np.flatnonzero(seen)


def _local_lp(
    prob: _Problem, rows_eq: np.ndarray, rows_ub: np.ndarray, cols: np.ndarray, cell: int, sigma: float
) -> tuple[np.ndarray, float]:
    """Move ``cell`` as far as it goes over the cells ``cols`` and the given relations."""
    c = np.zeros(len(cols))
    k = int(np.searchsorted(cols, cell))
    c[k] = -sigma
    a_eq = prob.a_eq[rows_eq][:, cols]
    a_ub = prob.a_ub[rows_ub][:, cols]
    res = linprog(  # type: ignore[call-overload]
        c,
        A_ub=a_ub if len(rows_ub) else None,
        b_ub=prob.slack[rows_ub] if len(rows_ub) else None,
        A_eq=a_eq if len(rows_eq) else None,
        b_eq=np.zeros(len(rows_eq)) if len(rows_eq) else None,
        bounds=np.stack([-prob.room_down[cols], prob.room_up[cols]], axis=1),
        method="highs",
    )
    if res.status != 0 or res.x is None:  # z = 0 is feasible: anything else is a solver failure
        raise RuntimeError(f"the attacker's linear programme did not solve: {res.message}")
    return np.asarray(res.x), float(sigma * res.x[k])


def _touching(a: sp.csr_matrix, cols: np.ndarray) -> np.ndarray:
    return np.unique(a[:, cols].tocoo().row) if a.shape[0] else np.zeros(0, np.int64)


def _restricted(prob: _Problem, free: np.ndarray, cell: int, sigma: float) -> np.ndarray:
    """Every cell outside ``free`` at its true value: any solution is a feasible table."""
    z, _ = _local_lp(prob, _touching(prob.a_eq, free), _touching(prob.a_ub, free), free, cell, sigma)
    return z


def _relaxed(prob: _Problem, near: np.ndarray, cell: int, sigma: float) -> float:
    """Only the relations touching ``near`` (their other cells free within their bounds): a
    larger feasible set, so its optimum bounds how far the attacker lets ``cell`` move."""
    rows_eq, rows_ub = _touching(prob.a_eq, near), _touching(prob.a_ub, near)
    cols = np.union1d(
        near,
        np.concatenate([prob.a_eq[rows_eq].indices, prob.a_ub[rows_ub].indices]).astype(np.int64),
    )
    _, reach = _local_lp(prob, rows_eq, rows_ub, cols, cell, sigma)
    return max(reach, 0.0)


def _exact(prob: _Problem, comp: np.ndarray, cell: int, sigma: float) -> np.ndarray:
    """The deviation that moves ``cell`` as far as it goes (by ``sigma``) over its whole
    connected component: the attacker's exact bound (interior point: the simplex stalls on
    these degenerate problems)."""
    a_eq = prob.a_eq[:, comp]
    a_ub = prob.a_ub[:, comp]
    r_eq = np.flatnonzero(np.diff(a_eq.tocsr().indptr) > 0)
    r_ub = np.flatnonzero(np.diff(a_ub.tocsr().indptr) > 0)
    c = np.zeros(len(comp))
    c[int(np.searchsorted(comp, cell))] = -sigma
    res = linprog(  # type: ignore[call-overload,misc]
        c,
        A_ub=a_ub[r_ub] if len(r_ub) else None,
        b_ub=prob.slack[r_ub] if len(r_ub) else None,
        A_eq=a_eq[r_eq] if len(r_eq) else None,
        b_eq=np.zeros(len(r_eq)) if len(r_eq) else None,
        bounds=np.stack([-prob.room_down[comp], prob.room_up[comp]], axis=1),
        method="highs-ipm" if len(comp) > 2000 else "highs",
    )
    if res.status != 0 or res.x is None:  # z = 0 is feasible: anything else is a solver failure
        raise RuntimeError(f"the attacker's linear programme did not solve: {res.message}")
    return np.asarray(res.x)
