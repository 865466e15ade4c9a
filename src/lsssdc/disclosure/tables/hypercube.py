"""The hypercube pass: for each primary cell a small balanced deviation (a witness), built
vectorised per table and checked against every relation of the linked tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lsssdc.disclosure.tables.joint import _Joint
from lsssdc.disclosure.tables.model import DISJOINT, SUM, UNION, Table, _ragged_arange

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

# ---------------------------------------------------------------------------------------------
# the hypercube pass: for each primary cell a small balanced deviation (a witness)


@dataclass
class _Layout:
    """One table's grid: strides, each dimension's tree, and the kind of every cell's lines."""

    sizes: np.ndarray
    strides: np.ndarray
    parent: list[np.ndarray]
    kids: list[np.ndarray]  # (nodes, max children), -1 pads
    depth_below: list[int]
    child_kind: list[np.ndarray]  # kind of the line in which the cell is a child (-1: none)
    own_kind: list[np.ndarray]  # kind of the line of which the cell is the parent (-1: none)


def _layout(t: Table) -> _Layout:
    hs = [t.hierarchies[d] for d in t.dims]
    sizes = np.array([h.size for h in hs], dtype=np.int64)
    strides = np.ones(len(hs), dtype=np.int64)
    for i in range(len(hs) - 2, -1, -1):
        strides[i] = strides[i + 1] * sizes[i + 1]
    parents, kids, below, ck, ok = [], [], [], [], []
    rel = t.relations
    cnt = np.diff(rel.ptr)
    for j, h in enumerate(hs):
        p = h.parent_array
        n_kids = np.bincount(p[p >= 0], minlength=h.size)
        mat = np.full((h.size, max(1, int(n_kids.max()) if h.size else 1)), -1, np.int64)
        for node in range(h.size):  # nodes of one dimension, not data rows
            ch = np.flatnonzero(p == node)
            mat[node, : len(ch)] = ch
        depth = h.depth
        below.append(int(depth.max()) if h.size else 0)
        parents.append(p)
        kids.append(mat)
        sel = (rel.dim == j) & (rel.kind != DISJOINT)
        own = np.full(t.size, -1, np.int8)
        own[rel.parent[sel]] = rel.kind[sel]
        child = np.full(t.size, -1, np.int8)
        ch_rel = np.repeat(sel, cnt)
        child[rel.children[ch_rel]] = np.repeat(rel.kind[sel], cnt[sel])
        ck.append(child)
        ok.append(own)
    return _Layout(sizes, strides, parents, kids, below, ck, ok)


def _best(score: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """Per row the candidate with the highest score (ties: the first); -1 where none is valid."""
    score = np.where(cand >= 0, score, -np.inf)
    pick = np.argmax(score, axis=1)
    best = cand[np.arange(len(cand)), pick]
    return np.where(np.isfinite(score.max(axis=1)), best, -1)


def _choose(
    lay: _Layout,
    j: int,
    p: np.ndarray,
    c: np.ndarray,
    cand: np.ndarray,
    need: np.ndarray,
    hidden: np.ndarray,
    v: np.ndarray,
) -> np.ndarray:
    """Among candidate nodes of dimension j, the one whose cell (p moved to it) suits best:
    enough value for the move, already hidden, then the smallest."""
    edge = p[:, None] + (cand - c[:, None]) * lay.strides[j]
    edge = np.where(cand >= 0, edge, 0)
    ve = v[edge]
    score = (ve >= need[:, None] - 1e-9) * 1e12 + hidden[edge] * 1e11 - ve
    return _best(score, cand)


def _chain(
    lay: _Layout,
    j: int,
    p: np.ndarray,
    c: np.ndarray,
    start: np.ndarray,
    need: np.ndarray,
    hidden: np.ndarray,
    v: np.ndarray,
) -> np.ndarray:
    """Nodes from below ``start`` down to a leaf of dimension j (B x depth, -1 pads)."""
    out = np.full((len(p), max(lay.depth_below[j], 1)), -1, np.int64)
    cur = start.copy()
    for level in range(out.shape[1]):
        ok = cur >= 0
        cand = np.where(ok[:, None], lay.kids[j][np.maximum(cur, 0)], -1)
        nxt = _choose(lay, j, p, c, cand, need, hidden, v)
        out[:, level] = nxt
        cur = nxt
    return out


_STAY, _PAIR, _ROOT = 0, 1, 2


def _factor(
    lay: _Layout,
    j: int,
    p: np.ndarray,
    c: np.ndarray,
    mode: int,
    du: np.ndarray,
    dd: np.ndarray,
    hidden: np.ndarray,
    v: np.ndarray,
    min_level: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One dimension's part of a cube: nodes and signs (B x width) and whether it is valid.

    ``_STAY``: the cell alone (valid where its line is a union, whose parent need not move);
    ``_PAIR``: the cell (and its ancestors up to the first level, from ``min_level`` on, with a
    sibling) up, that sibling and a chain below it down; ``_ROOT``: the cell and all its
    ancestors up. A cell that is itself a margin along j takes a chain of descendants along.
    """
    parent = lay.parent[j]
    depth = lay.depth_below[j] + 1
    n = len(p)
    up_nodes = np.full((n, depth), -1, np.int64)  # ancestors taken along (excluding c)
    sib = np.full(n, -1, np.int64)
    cur = c.copy()
    searching = np.full(n, mode == _PAIR)
    for level in range(depth):
        if not searching.any() and mode != _ROOT:
            break
        par = np.where(cur >= 0, parent[np.maximum(cur, 0)], -1)
        if mode == _PAIR:
            look = searching & (par >= 0) & (level >= min_level)
            cand = np.where(look[:, None], lay.kids[j][np.maximum(par, 0)], -1)
            cand = np.where(cand == cur[:, None], -1, cand)
            found = _choose(lay, j, p, c, cand, du, hidden, v)
            got = searching & (found >= 0)
            sib = np.where(got, found, sib)
            searching &= ~got
            # no sibling here: take the parent along and look one level up
            step = searching & (par >= 0)
            up_nodes[:, level] = np.where(step, par, -1)
            cur = np.where(step, par, -1)
            searching &= par >= 0
        else:  # _ROOT or _STAY
            if mode == _ROOT:
                up_nodes[:, level] = par
            cur = par
    internal = lay.own_kind[j][p] >= 0
    d_chain = _chain(lay, j, p, c, np.where(internal, c, -1), dd, hidden, v)
    e_chain = _chain(lay, j, p, c, sib, du, hidden, v)
    if mode == _PAIR:
        # the sibling's chain goes down to a leaf; the cell's only if it is a margin
        valid = sib >= 0
    elif mode == _STAY:
        valid = lay.child_kind[j][p] != SUM
    else:
        valid = np.ones(n, bool)
    valid &= ~internal | (d_chain[:, 0] >= 0)
    nodes = np.concatenate([c[:, None], up_nodes, d_chain, sib[:, None], e_chain], axis=1)
    plus = np.ones((n, 1 + depth + d_chain.shape[1]), np.int64)
    minus = -np.ones((n, 1 + e_chain.shape[1]), np.int64)
    signs = np.where(nodes >= 0, np.concatenate([plus, minus], axis=1), 0)
    return nodes, signs, valid


def _feasible(
    joint: _Joint,
    stats: dict[str, np.ndarray],
    cand: np.ndarray,
    cell: np.ndarray,
    ys: Sequence[np.ndarray],
    n_cand: int,
    exact: bool = False,
) -> list[np.ndarray]:
    """Whether each candidate deviation (entries cand, cell, y) keeps every relation true,
    for each of ``ys`` (deviations on the same entries, e.g. up and down): the expansion of
    the entries to their relations is shared. Where a union's parent goes down, the quick
    check compares it with the largest child the candidate leaves alone (the second largest
    counts as untouched, so it may reject a good candidate); ``exact`` checks every child."""
    tol = 1e-7
    v = joint.value
    if len(joint.parent) == 0:
        out = []
        for y in ys:
            ok = np.ones(n_cand, bool)
            ok[cand[v[cell] + y < -tol]] = False
            ok[cand[joint.fixed[cell] & (np.abs(y) > tol)]] = False
            out.append(ok)
        return out
    # expand each entry to the relations its cell belongs to
    start = joint.member_ptr[cell]
    cnt = joint.member_ptr[cell + 1] - start
    idx = _ragged_arange(start, cnt)
    e_rel = joint.member_rel[idx]
    e_cand = np.repeat(cand, cnt)
    e_cell = np.repeat(cell, cnt)
    is_par = joint.parent[e_rel] == e_cell
    n_rel = len(joint.parent)
    key = e_cand.astype(np.int64) * n_rel + e_rel
    inv, uk = pd.factorize(key, sort=False)  # hashing: faster than sorting here
    k_cand = uk // n_rel
    k_rel = uk % n_rel
    kind = joint.kind[k_rel]
    vp = v[joint.parent[k_rel]]
    s = stats["sum"][k_rel]
    scale = tol * np.maximum(1.0, np.abs(vp))
    ch_e = (~is_par) & (joint.kind[e_rel] == UNION)
    inv_ch = inv[ch_e]
    v_ch = v[e_cell[ch_e]]
    cand_ch = e_cand[ch_e]
    union = kind == UNION
    cells_key = None
    out = []
    for y in ys:
        ok = np.ones(n_cand, bool)
        ok[cand[v[cell] + y < -tol]] = False
        ok[cand[joint.fixed[cell] & (np.abs(y) > tol)]] = False  # a known cell cannot move
        e_y = np.repeat(y, cnt)
        y_par = np.bincount(inv, weights=np.where(is_par, e_y, 0.0), minlength=len(uk))
        y_ch = np.bincount(inv, weights=np.where(is_par, 0.0, e_y), minlength=len(uk))
        bad = np.where(
            kind == SUM,
            np.abs(y_par - y_ch) > scale,
            np.where(union, vp + y_par > s + y_ch + scale, s + y_ch > vp + y_par + scale),
        )
        # union: every child at most the parent
        new_parent = vp + y_par
        bad_child = v_ch + e_y[ch_e] > new_parent[inv_ch] + scale[inv_ch]
        ok[cand_ch[bad_child]] = False
        # untouched children when the parent goes down: the largest untouched child must fit
        down = union & (y_par < 0)
        if down.any() and exact:
            bad[
                np.flatnonzero(down)[
                    _children_above(
                        joint, cand, cell, y, k_cand[down], k_rel[down], new_parent[down] + scale[down]
                    )
                ]
            ] = True
        elif down.any():
            if cells_key is None:
                cells_key = np.sort(cand.astype(np.int64) * joint.n + cell)
            query = k_cand[down].astype(np.int64) * joint.n + stats["argmax"][k_rel[down]]
            at = np.minimum(np.searchsorted(cells_key, query), len(cells_key) - 1)
            touched = cells_key[at] == query
            biggest = np.where(touched, stats["max2"][k_rel[down]], stats["max1"][k_rel[down]])
            bad_down = biggest > new_parent[down] + scale[down]
            bad[np.flatnonzero(down)[bad_down]] = True
        ok[k_cand[bad]] = False
        out.append(ok)
    return out


def _children_above(
    joint: _Joint,
    cand: np.ndarray,
    cell: np.ndarray,
    y: np.ndarray,
    pair_cand: np.ndarray,
    pair_rel: np.ndarray,
    limit: np.ndarray,
) -> np.ndarray:
    """For (candidate, relation) pairs: whether some child of the relation, moved as the
    candidate moves it, ends above ``limit`` (the parent's new value)."""
    start = joint.ptr[pair_rel]
    cnt = joint.ptr[pair_rel + 1] - start
    child = joint.children[_ragged_arange(start, cnt)]
    pair = np.repeat(np.arange(len(pair_rel)), cnt)
    key = cand.astype(np.int64) * joint.n + cell
    order = np.argsort(key, kind="stable")
    key_sorted = key[order]
    query = pair_cand[pair].astype(np.int64) * joint.n + child
    at = np.minimum(np.searchsorted(key_sorted, query), max(len(key_sorted) - 1, 0))
    moved = np.where(key_sorted[at] == query, y[order][at], 0.0) if len(key_sorted) else 0.0
    above = joint.value[child] + moved > limit[pair]
    out = np.zeros(len(pair_rel), bool)
    out[pair[above]] = True
    return out


def _relation_stats(joint: _Joint) -> dict[str, np.ndarray]:
    """Sum, largest and second largest child of every relation, and which child is largest."""
    if len(joint.parent) == 0:
        z = np.zeros(0)
        return {"sum": z, "max1": z, "max2": z, "argmax": z.astype(np.int64)}
    starts = joint.ptr[:-1]
    cv = joint.value[joint.children]
    rel_of = np.repeat(np.arange(len(joint.parent)), np.diff(joint.ptr))
    order = np.lexsort((-cv, rel_of))
    first = starts
    second = np.minimum(starts + 1, joint.ptr[1:] - 1)
    has2 = np.diff(joint.ptr) > 1
    cv_sorted = cv[order]
    return {
        "sum": np.add.reduceat(cv, starts),
        "max1": cv_sorted[first],
        "max2": np.where(has2, cv_sorted[second], 0.0),
        "argmax": joint.children[order][first],
    }


@dataclass
class _Witnesses:
    """Deviations that keep every relation true and move a primary cell by its protection.

    Stored in chunks: ``target`` (global cell) and ``direction`` (+1 up, -1 down) per witness,
    and flat entries (witness within the chunk, cell, deviation).
    """

    chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = field(
        default_factory=list
    )

    def add(self, target: ArrayLike, direction: ArrayLike, cells: np.ndarray, y: np.ndarray) -> None:
        """Add witnesses given as padded matrices (one row each; cells -1 pad)."""
        cells = np.atleast_2d(np.asarray(cells, np.int64))
        y = np.atleast_2d(np.asarray(y, np.float64))
        m = cells >= 0
        wid = np.broadcast_to(np.arange(len(cells))[:, None], cells.shape)[m]
        self.chunks.append(
            (
                np.atleast_1d(np.asarray(target, np.int64)),
                np.atleast_1d(np.asarray(direction, np.int8)),
                wid,
                cells[m],
                y[m],
            )
        )

    def entries(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Flat arrays: target and direction per witness, then (witness, cell, y) entries."""
        if not self.chunks:
            z = np.zeros(0, np.int64)
            return z, z.astype(np.int8), z, z, z.astype(np.float64)
        offsets = np.cumsum([0] + [len(c[0]) for c in self.chunks])
        target = np.concatenate([c[0] for c in self.chunks])
        direction = np.concatenate([c[1] for c in self.chunks])
        wid = np.concatenate([c[2] + o for c, o in zip(self.chunks, offsets, strict=False)])
        cell = np.concatenate([c[3] for c in self.chunks])
        y = np.concatenate([c[4] for c in self.chunks])
        return target, direction, wid, cell, y

    def prune(self, joint: _Joint) -> np.ndarray:
        """Drop witnesses whose every protection another kept witness also gives (newest
        first); returns the cells the kept witnesses need hidden, with the primary cells."""
        target, direction, wid, cell, y = self.entries()
        hidden = joint.primary | joint.hidden_before  # and what an earlier release hid
        if len(target) == 0:
            return hidden
        tol = 1e-9 * np.maximum(1.0, np.abs(joint.value[cell]))
        up = joint.primary[cell] & (y >= joint.upl[cell] - tol)
        down = joint.primary[cell] & (joint.lpl[cell] > 0) & (y <= -joint.lpl[cell] + tol)
        n_up = np.bincount(cell[up], minlength=joint.n)
        n_down = np.bincount(cell[down], minlength=joint.n)
        order = np.argsort(wid, kind="stable")
        ptr = np.searchsorted(wid[order], np.arange(len(target) + 1))
        keep = np.ones(len(target), bool)
        # counts only fall, so a witness that is some cell's only protection now stays: only
        # the others are candidates, looked at one by one (newest first)
        lone = np.zeros(len(target), bool)
        lone[wid[up & (n_up[cell] <= 1)]] = True
        lone[wid[down & (n_down[cell] <= 1)]] = True
        for k in np.flatnonzero(~lone)[::-1]:  # witnesses, not data rows
            e = order[ptr[k] : ptr[k + 1]]
            cu, cd = cell[e][up[e]], cell[e][down[e]]
            if (n_up[cu] > 1).all() and (n_down[cd] > 1).all():
                keep[k] = False
                np.subtract.at(n_up, cu, 1)
                np.subtract.at(n_down, cd, 1)
        ke = keep[wid]
        renum = np.cumsum(keep) - 1
        self.chunks = [(target[keep], direction[keep], renum[wid[ke]], cell[ke], y[ke])]
        hidden[cell[ke]] = True
        return hidden


def _undone(joint: _Joint) -> tuple[np.ndarray, np.ndarray]:
    """Per cell, protected upwards and downwards before any witness: every cell but a primary."""
    done_up = ~joint.primary
    done_down = ~joint.primary | (joint.lpl <= 0)
    return done_up, done_down


def _adopt(
    joint: _Joint,
    earlier: Mapping[str, Any] | None,
    hidden: np.ndarray,
    witnesses: _Witnesses,
) -> tuple[tuple[np.ndarray, np.ndarray], int]:
    """Take over an earlier release's witnesses (table-local terms of ``joint.tables``) that
    still hold in this joint problem: every cell they move is hidden and not known, and every
    relation of every linked table, the new ones included, stays true. Each such witness is a
    feasible table, so the primary cells it moves far enough need no new suppression. Returns
    the cells protected upwards and downwards and how many witnesses were taken."""
    done = _undone(joint)
    if not earlier or len(earlier.get("target_table", [])) == 0:
        return done, 0
    offsets = np.concatenate([[0], np.cumsum([len(g) for g in joint.ids])])
    flat = np.concatenate(joint.ids)
    wid = np.asarray(earlier["witness"], np.int64)
    cell = flat[offsets[np.asarray(earlier["table"], np.int64)] + np.asarray(earlier["cell"], np.int64)]
    y = np.asarray(earlier["y"], np.float64)
    target = flat[offsets[np.asarray(earlier["target_table"], np.int64)] + np.asarray(earlier["target_cell"])]
    n_w = len(target)
    ok = np.ones(n_w, bool)
    ok[wid[~hidden[cell] & (y != 0)]] = False  # only hidden cells may move
    (feasible,) = _feasible(joint, _relation_stats(joint), wid, cell, [y], n_w, exact=True)
    ok &= feasible
    keep = ok[wid]
    renum = np.cumsum(ok) - 1
    direction = np.asarray(earlier["direction"], np.int8)[ok]
    witnesses.chunks.append((target[ok], direction, renum[wid[keep]], cell[keep], y[keep]))
    done_up, done_down = done
    _cover(joint, cell[keep][None, :], y[keep][None, :], done_up, done_down)
    return (done_up, done_down), int(ok.sum())


def _hypercubes(
    joint: _Joint,
    hidden: np.ndarray,
    cost: np.ndarray,
    witnesses: _Witnesses,
    batch: int = 2048,
    done: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Protect primary cells with balanced cubes (HITAS-like, bounds-aware); vectorised.

    For each primary cell a cube is built per table: along each dimension the cell pairs with a
    sibling (+/-), or stays (allowed where the line is a union with room), and descends to a
    leaf where it is itself a margin. Candidate cubes are checked against every relation of
    the linked tables; the cheapest one that works is hidden and kept as a witness. Returns per
    (global) cell whether it is protected upwards and downwards; ``done`` (up, down) says which
    are protected already (by witnesses of an earlier release) and is updated in place.
    """
    stats = _relation_stats(joint)
    done_up, done_down = done if done is not None else _undone(joint)
    for ti, t in enumerate(joint.tables):
        gid = joint.ids[ti]
        local_primary = np.flatnonzero(joint.primary[gid] & ~(done_up[gid] & done_down[gid]))
        if len(local_primary) == 0:
            continue
        lay = _layout(t)
        lv = t.values
        # margins first (their cubes reach down), then small cells first
        n_margin_dims = np.zeros(t.size, np.int64)
        for j in range(len(t.dims)):
            n_margin_dims += (lay.own_kind[j] >= 0).astype(np.int64)
        order = np.lexsort((local_primary, lv[local_primary], -n_margin_dims[local_primary]))
        local_primary = local_primary[order]
        for b0 in range(0, len(local_primary), batch):
            p = local_primary[b0 : b0 + batch]
            _cube_batch(joint, stats, ti, t, lay, p, hidden, cost, witnesses, done_up, done_down, lv)
    return done_up, done_down


#: Strategies, in stages tried in turn on the cells still unprotected (within a stage the
#: cheapest cube wins): (name, mode of the widest dimension, its pairing level, other modes).
#: "local": pair along every sum line, stay on union lines; "capacity": pair only where a
#: neighbour can give way, else move with the margins; "lift": the widest dimension (kommun)
#: pairs, the others move with their margins (union lines stay, or move too in "all");
#: "root": the cell moves with all its margins up to the totals (always room upwards).
_STAGES = (
    (("local", _PAIR, 0, "local"),),
    (("capacity", _PAIR, 0, "capacity"),),
    (("lift", _PAIR, 0, "lift"),),
    (("lift_all", _PAIR, 0, "all"),),
    (("lift_up", _PAIR, 1, "lift"), ("lift_all_up", _PAIR, 1, "all")),
    (("root", _ROOT, 0, "root"), ("root_all", _ROOT, 0, "root_all")),
)
#: From this stage on a cube is taken only when it hides nothing new (its cells are hidden
#: already); otherwise the local LP, which finds the cheapest deviation, decides.
_FREE_ONLY_FROM = 4


def _strategy_modes(
    others: str, lay: _Layout, t: Table, p: np.ndarray, du: np.ndarray, v: np.ndarray
) -> tuple[np.ndarray, int]:
    """The mode per primary cell and dimension (B x d) of a strategy, and its widest dimension."""
    d = len(t.dims)
    n = len(p)
    union = np.stack([lay.child_kind[j][p] == UNION for j in range(d)], axis=1)
    width = np.array([lay.kids[j].shape[1] for j in range(d)])
    main = int(np.argmax(width))
    coords = t.nodes[p]
    top = np.stack([lay.parent[j][coords[:, j]] < 0 for j in range(d)], axis=1)
    if others == "local":
        return np.where(union, _STAY, np.where(top, _ROOT, _PAIR)), -1
    if others == "capacity":
        modes = np.full((n, d), _ROOT)
        for j in range(d):
            par = lay.parent[j][coords[:, j]]
            cand = np.where((par >= 0)[:, None], lay.kids[j][np.maximum(par, 0)], -1)
            cand = np.where(cand == coords[:, j][:, None], -1, cand)
            edge = p[:, None] + (cand - coords[:, j][:, None]) * lay.strides[j]
            cap = np.where(cand >= 0, v[np.where(cand >= 0, edge, 0)], -1.0).max(axis=1)
            modes[:, j] = np.where(cap >= du - 1e-9, _PAIR, np.where(union[:, j], _STAY, _ROOT))
        return modes, -1
    if others == "root":
        return np.where(union, _STAY, _ROOT), -1
    if others == "root_all":
        return np.full((n, d), _ROOT), -1
    modes = np.where(union, _STAY, _ROOT) if others == "lift" else np.full((n, d), _ROOT)
    modes[:, main] = _PAIR
    return modes, main


def _compact(nodes: np.ndarray, signs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Move the valid entries of each row to the front and drop all-padding columns."""
    order = np.argsort(signs == 0, axis=1, kind="stable")
    nodes = np.take_along_axis(nodes, order, axis=1)
    signs = np.take_along_axis(signs, order, axis=1)
    width = max(1, int((signs != 0).sum(axis=1).max()) if len(signs) else 1)
    return nodes[:, :width], signs[:, :width]


#: Siblings whose whole cube is judged when choosing a partner (the rest are ranked by the
#: value of the neighbouring cell only).
_SHORTLIST = 8


def _refine_pair(
    lay: _Layout,
    j: int,
    p: np.ndarray,
    c: np.ndarray,
    factors: list[tuple[np.ndarray, np.ndarray]],
    base: np.ndarray,
    du: np.ndarray,
    dd: np.ndarray,
    hidden: np.ndarray,
    v: np.ndarray,
    rank: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For cells whose factor along j is a plain pair (cell +, sibling -), pick the sibling
    whose corners of the whole cube can give way: the corners that go down must hold the
    protection, first upwards then downwards; then prefer hidden corners and small ones.
    ``rank`` 1, 2, ... give the next best siblings; the third array says where one exists."""
    nodes, signs = factors[j]
    exists = np.ones(len(p), bool)
    if nodes.shape[1] < 2:
        return nodes, signs, exists
    plain = ((signs != 0).sum(axis=1) == 2) & (signs[:, 0] == 1) & (signs[:, 1] == -1) & (nodes[:, 0] == c)
    if not plain.any():
        return nodes, signs, exists
    rows = np.flatnonzero(plain)
    # the other dimensions' corners, relative to the cell's coordinate along j
    off = (base[rows] + c[rows] * 0)[:, None]
    sg = np.ones((len(rows), 1), np.int64)
    for k, (nd, sk) in enumerate(factors):
        if k == j:
            continue
        off = (off[:, :, None] + np.where(sk[rows] != 0, nd[rows], 0)[:, None, :] * lay.strides[k]).reshape(
            len(rows), -1
        )
        sg = (sg[:, :, None] * sk[rows][:, None, :]).reshape(len(rows), -1)
    par = lay.parent[j][c[rows]]
    cand = lay.kids[j][np.maximum(par, 0)]
    cand = np.where((cand == c[rows][:, None]) | (par < 0)[:, None], -1, cand)
    if cand.shape[1] > _SHORTLIST:  # judge the whole cube only for the likeliest siblings
        edge = p[rows][:, None] + (cand - c[rows][:, None]) * lay.strides[j]
        ev = np.where(
            cand >= 0, v[np.where(cand >= 0, edge, 0)] + hidden[np.where(cand >= 0, edge, 0)], -np.inf
        )
        keep = np.argsort(-ev, axis=1, kind="stable")[:, :_SHORTLIST]
        cand = np.take_along_axis(cand, keep, axis=1)
    cell = off[:, None, :] + np.maximum(cand, 0)[:, :, None] * lay.strides[j]  # rows x cand x corners
    present = (sg != 0)[:, None, :] & (cand >= 0)[:, :, None]
    safe = np.where(present, cell, 0)
    vals = v[safe]
    val = np.where(present, vals, np.inf)
    # the sibling's corners move by -sign(other): down when the other factors' sign is +1
    goes_down_up = present & (sg == 1)[:, None, :]
    goes_down_dn = present & (sg == -1)[:, None, :]
    ok_up = np.where(goes_down_up, val >= du[rows][:, None, None] - 1e-9, True).all(axis=2)
    ok_dn = np.where(goes_down_dn, val >= dd[rows][:, None, None] - 1e-9, True).all(axis=2)
    hid = (hidden[safe] & present).sum(axis=2)
    mass = np.where(present, vals, 0.0).sum(axis=2)
    score = np.where(cand >= 0, ok_up * 1e12 + ok_dn * 1e11 + hid * 1e6 - mass, -np.inf)
    order = np.argsort(-score, axis=1, kind="stable")
    r = min(rank, cand.shape[1] - 1)
    col = order[:, r]
    pick = cand[np.arange(len(rows)), col]
    found = np.isfinite(score[np.arange(len(rows)), col]) & (rank < cand.shape[1])
    nodes = nodes.copy()
    nodes[rows, 1] = np.where(found, pick, nodes[rows, 1])
    exists[rows] = found
    return nodes, signs, exists


def _cube_factors(
    lay: _Layout,
    t: Table,
    p: np.ndarray,
    du: np.ndarray,
    dd: np.ndarray,
    lhidden: np.ndarray,
    lv: np.ndarray,
    others: str,
    level: int,
) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """Each dimension's factor of a strategy's cube (row by row) and where they are valid."""
    d = len(t.dims)
    n = len(p)
    coords = t.nodes[p]
    modes, main = _strategy_modes(others, lay, t, p, du, lv)
    valid = np.ones(n, bool)
    factors = []
    for j in range(d):
        parts = {
            int(mode): _factor(
                lay, j, p, coords[:, j], int(mode), du, dd, lhidden, lv, level if j == main else 0
            )
            for mode in np.unique(modes[:, j])
        }
        width = max(x[0].shape[1] for x in parts.values())
        nodes = np.full((n, width), -1, np.int64)
        signs = np.zeros((n, width), np.int64)
        for mode, (nd, sg, ok) in parts.items():
            rows = modes[:, j] == mode
            nodes[rows, : nd.shape[1]] = nd[rows]
            signs[rows, : sg.shape[1]] = sg[rows]
            valid[rows] &= ok[rows]
        factors.append(_compact(nodes, signs))
    return factors, valid


def _cube_candidates(
    lay: _Layout,
    t: Table,
    gid: np.ndarray,
    p: np.ndarray,
    du: np.ndarray,
    dd: np.ndarray,
    lhidden: np.ndarray,
    lv: np.ndarray,
    factors: list[tuple[np.ndarray, np.ndarray]],
    valid: np.ndarray,
    rank: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The cube for each cell from its factors: present mask, global cells, signs, validity.

    Each plain pair's partner is re-chosen knowing the other dimensions; ``rank`` picks the
    next best partners of the widest dimension.
    """
    d = len(t.dims)
    n = len(p)
    coords = t.nodes[p]
    base = p - (coords * lay.strides).sum(axis=1)
    factors = list(factors)
    valid = valid.copy()
    widest = int(np.argmax([lay.kids[j].shape[1] for j in range(d)]))
    for j in range(d):
        nodes, signs, exists = _refine_pair(
            lay, j, p, coords[:, j], factors, base, du, dd, lhidden, lv, rank if j == widest else 0
        )
        factors[j] = (nodes, signs)
        if j == widest and rank:
            valid &= exists
    idx = base[:, None]
    sgn = np.ones((n, 1), np.int64)
    for j, (nodes, signs) in enumerate(factors):
        idx = (idx[:, :, None] + np.where(signs != 0, nodes, 0)[:, None, :] * lay.strides[j]).reshape(n, -1)
        sgn = (sgn[:, :, None] * signs[:, None, :]).reshape(n, -1)
        idx, sgn = _compact(idx, sgn)
    present = (sgn != 0) & valid[:, None]
    return present, gid[np.where(present, idx, 0)], sgn, valid


#: How many partners of the widest dimension are tried for a cell before the next strategy.
_RANKS = 3


def _cube_batch(
    joint: _Joint,
    stats: dict[str, np.ndarray],
    ti: int,
    t: Table,
    lay: _Layout,
    p_all: np.ndarray,
    hidden: np.ndarray,
    cost: np.ndarray,
    witnesses: _Witnesses,
    done_up: np.ndarray,
    done_down: np.ndarray,
    lv: np.ndarray,
) -> None:
    """Try the strategies stage by stage on a batch of primary cells; within a stage the
    cheapest working cube of each cell and direction is hidden and kept as its witness."""
    gid = joint.ids[ti]
    for stage_no, stage in enumerate(_STAGES):
        p = p_all[~(done_up[gid[p_all]] & done_down[gid[p_all]])]
        n = len(p)
        if n == 0:
            return
        g = gid[p]
        du = joint.upl[g]
        dd = joint.lpl[g]
        lhidden = hidden[gid]
        best = {1: np.full(n, np.inf), -1: np.full(n, np.inf)}
        entries: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # rows, cells, signs
        choice = {1: np.full(n, -1), -1: np.full(n, -1)}
        where = {1: np.full(n, -1), -1: np.full(n, -1)}
        for _name, _main_mode, level, others in stage:
            factors, valid0 = _cube_factors(lay, t, p, du, dd, lhidden, lv, others, level)
            for rank in range(_RANKS):
                need = ~(np.isfinite(best[1]) | done_up[g]) | ~(np.isfinite(best[-1]) | done_down[g])
                rows = np.arange(n) if rank == 0 else np.flatnonzero(need & valid0)
                if len(rows) == 0:
                    break
                present, gcells, sgn, valid = _cube_candidates(
                    lay,
                    t,
                    gid,
                    p[rows],
                    du[rows],
                    dd[rows],
                    lhidden,
                    lv,
                    [(nd[rows], sg[rows]) for nd, sg in factors],
                    valid0[rows],
                    rank,
                )
                price = np.where(present & ~hidden[gcells], cost[gcells], 0.0).sum(axis=1)
                if stage_no >= _FREE_ONLY_FROM:
                    valid = valid & (price <= 0)
                k = len(entries)
                entries.append((rows, np.where(present, gcells, -1), sgn))
                todo = {
                    sign: valid & ~done[g[rows]] & (price < best[sign][rows])
                    for sign, done in ((1, done_up), (-1, done_down))
                }
                either = todo[1] | todo[-1]
                if not either.any():
                    continue
                # both directions' cubes are checked over one expansion of their entries
                m = present & either[:, None]
                cand = np.repeat(np.arange(len(rows)), m.sum(axis=1))
                ys = [
                    (sign * sgn[m] * delta[rows][cand]).astype(np.float64)
                    for sign, delta in ((1, du), (-1, dd))
                ]
                feasible = dict(
                    zip((1, -1), _feasible(joint, stats, cand, gcells[m], ys, len(rows)), strict=True)
                )
                for sign in (1, -1):
                    ok = todo[sign] & feasible[sign]
                    if not ok.any():
                        continue
                    better = rows[ok]
                    best[sign][better] = price[ok]
                    choice[sign][better] = k
                    where[sign][better] = np.flatnonzero(ok)
        for sign, delta, done in ((1, du, done_up), (-1, dd, done_down)):
            for k, (_rows, cells_k, sgn_k) in enumerate(entries):
                chosen = np.flatnonzero(choice[sign] == k)
                if len(chosen) == 0:
                    continue
                pos = where[sign][chosen]
                cells = cells_k[pos]
                ys = sign * delta[chosen][:, None] * sgn_k[pos]
                hidden[cells[cells >= 0]] = True
                witnesses.add(g[chosen], np.full(len(chosen), sign), cells, ys)
                done[g[chosen]] = True
                _cover(joint, cells, ys, done_up, done_down)


def _cover(
    joint: _Joint, cells: np.ndarray, y: np.ndarray, done_up: np.ndarray, done_down: np.ndarray
) -> None:
    """A witness moves every cell of its cube: primary cells it moves far enough are covered."""
    m = cells >= 0
    c, yy = cells[m], y[m]
    tol = 1e-9 * np.maximum(1.0, np.abs(joint.value[c]))
    done_up[c[joint.primary[c] & (yy >= joint.upl[c] - tol)]] = True
    done_down[c[joint.primary[c] & (yy <= -joint.lpl[c] + tol)]] = True
