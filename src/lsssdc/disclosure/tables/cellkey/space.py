"""The cells of every release as one space: a cell seen in several releases (same population,
unit class, year and coordinates) is one unknown of the attacker, and every relation of every
table becomes a constraint over these global cells.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from lsssdc.disclosure.tables.model import DISJOINT, SUM, UNION, Table
from lsssdc.errors import PolicyError, Problem

_GEO = {"lan": "kommun"}  # a län is a level of the kommun dimension
_POP, _UNIT, _YEAR = 0, 1, 2  # the first columns of a cell's coordinates; dimensions follow


def _inner(h: Any) -> np.ndarray:
    has_children = np.zeros(h.size, bool)
    p = np.asarray(h.parents)
    has_children[p[p >= 0]] = True
    return has_children


def _node_codes(h: Any) -> np.ndarray:
    """A node's code as a coordinate: a top node with children (a total) is '*'."""
    return np.where((np.asarray(h.parents) < 0) & _inner(h), "*", np.asarray(h.codes, dtype=object))


def _coordinates(table: Table, dims: list[str]) -> list[np.ndarray]:
    """What a cell counts (population, unit class), its year and its codes over ``dims`` ('*'
    for a total or a dimension the table lacks). A persons cell of one insats in one year is
    the insatser cell of the same coordinates (a person holds an insats once a year, from one
    kommun), so its unit class is ''."""
    one_insats = np.zeros(table.size, bool)
    if "insats" in table.dims:
        one_insats = ~_inner(table.hierarchies["insats"])[table.nodes[:, table.dims.index("insats")]]
    if "year" in table.dims:
        h = table.hierarchies["year"]
        node = table.nodes[:, table.dims.index("year")]
        year = _node_codes(h)[node]
        one_insats &= ~_inner(h)[node]
    else:
        ys = [y for y in table.scope.get("years", "").split(",") if y]
        year = np.full(table.size, ys[0] if len(ys) == 1 else "*" + ",".join(ys), dtype=object)
    out = [
        np.full(table.size, table.scope.get("insatser", ""), dtype=object),
        np.where(one_insats, "", table.unit).astype(object),
        year.astype(object),
    ]
    for d in dims:
        own = [x for x in table.dims if _GEO.get(x, x) == d]
        if not own:
            out.append(np.full(table.size, "*", dtype=object))
            continue
        out.append(_node_codes(table.hierarchies[own[0]])[table.nodes[:, table.dims.index(own[0])]])
    return out


@dataclass
class _Space:
    """Every distinct cell of the releases: its coordinates as codes (population, unit class,
    year, then one column per dimension), a lookup from coordinates to the cell, and per
    dimension the hierarchy over its codes."""

    names: list[str]
    vocab: list[np.ndarray]
    codes: np.ndarray
    strides: np.ndarray
    keys: pd.Index
    parent: dict[int, np.ndarray]
    child_ptr: dict[int, np.ndarray]
    child: dict[int, np.ndarray]
    star: dict[int, int]

    @property
    def size(self) -> int:
        return len(self.codes)

    def lookup(self, codes: np.ndarray) -> np.ndarray:
        """The cell with these coordinates (rows of codes), -1 where no release shows one."""
        if not len(codes):
            return np.zeros(0, np.int64)
        return self.keys.get_indexer(codes @ self.strides).astype(np.int64)

    def ancestors(self, col: int, ids: np.ndarray) -> np.ndarray:
        """Per code its chain up to the top (self first) as a padded matrix (-1 pads)."""
        par = self.parent[col]
        out = [ids]
        cur = ids
        while (cur >= 0).any():
            cur = np.where(cur >= 0, par[np.maximum(cur, 0)], -1)
            if not (cur >= 0).any():
                break
            out.append(cur)
        return np.stack(out, axis=1)


def _identify(tables: list[Table]) -> tuple[list[np.ndarray], _Space]:
    """Global cells over all releases: the same population, unit class, year and coordinates
    are one cell. A persons and an insatser cell that differ in value (the same insats from two
    kommuner) stay two cells; two releases that disagree otherwise are refused."""
    dims = sorted({_GEO.get(d, d) for t in tables for d in t.dims} - {"year"})
    names = ["population", "unit", "year", *dims]
    cols = [_coordinates(t, dims) for t in tables]
    merged = [np.concatenate([c[j] for c in cols]) for j in range(len(names))]
    value = np.concatenate([t.cells["value"].to_numpy(dtype=np.int64) for t in tables])

    def number(columns: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray], np.ndarray, np.ndarray]:
        codes, vocab = [], []
        for c in columns:
            k, uniq = pd.factorize(c, sort=False)
            codes.append(k.astype(np.int64))
            vocab.append(np.asarray(uniq, dtype=object))
        sizes = np.array([max(len(v), 1) for v in vocab], dtype=object)
        if int(np.prod(sizes)) >= 2**62:  # pragma: no cover - needs billions of distinct codes
            raise PolicyError("too many distinct coordinates for one audit")
        strides = np.ones(len(sizes), np.int64)
        for j in range(len(sizes) - 2, -1, -1):
            strides[j] = strides[j + 1] * int(sizes[j + 1])
        mat = np.stack(codes, axis=1)
        return mat, vocab, strides, mat @ strides

    mat, vocab, strides, key = number(merged)
    ids, uniq = pd.factorize(key, sort=False)
    clash = _disagree(ids, len(uniq), value)
    if clash.any():
        units = np.concatenate([np.full(t.size, t.unit, dtype=object) for t in tables])
        merged[_UNIT] = np.where(clash, units, merged[_UNIT])
        mat, vocab, strides, key = number(merged)
        ids, uniq = pd.factorize(key, sort=False)
        if _disagree(ids, len(uniq), value).any():
            raise PolicyError(
                Problem("cellkey_clash", "two releases disagree on the true value of a shared cell")
            )
    ids = ids.astype(np.int64)
    first = np.full(len(uniq), -1, np.int64)
    first[ids[::-1]] = np.arange(len(ids))[::-1]
    parent: dict[int, np.ndarray] = {}
    child_ptr: dict[int, np.ndarray] = {}
    child: dict[int, np.ndarray] = {}
    for j in range(3, len(names)):
        index = pd.Index(vocab[j])
        par = np.full(len(vocab[j]), -1, np.int64)
        known = np.zeros(len(vocab[j]), bool)
        for t in tables:  # a handful of tables; the first that shows a code gives its parent
            for d in t.dims:
                if _GEO.get(d, d) != names[j]:
                    continue
                h = t.hierarchies[d]
                code = index.get_indexer(_node_codes(h))
                hp = np.asarray(h.parents)
                pc = np.where(hp >= 0, code[np.maximum(hp, 0)], -1)
                fresh = (code >= 0) & ~known[np.maximum(code, 0)]
                par[code[fresh]] = pc[fresh]
                known[code[fresh]] = True
        parent[j] = par
        order = np.argsort(par, kind="stable")
        order = order[par[order] >= 0]
        child[j] = order
        child_ptr[j] = np.concatenate([[0], np.cumsum(np.bincount(par[par >= 0], minlength=len(par)))])
    space = _Space(
        names=names,
        vocab=vocab,
        codes=mat[first],
        strides=strides,
        keys=pd.Index(uniq),
        parent=parent,
        child_ptr=child_ptr,
        child=child,
        star={j: int(pd.Index(vocab[j]).get_indexer(["*"])[0]) for j in range(3, len(names))},
    )
    out, start = [], 0
    for t in tables:
        out.append(ids[start : start + t.size])
        start += t.size
    return out, space


def _disagree(ids: np.ndarray, n: int, value: np.ndarray) -> np.ndarray:
    lo = np.full(n, np.iinfo(np.int64).max)
    hi = np.full(n, np.iinfo(np.int64).min)
    np.minimum.at(lo, ids, value)
    np.maximum.at(hi, ids, value)
    return lo[ids] != hi[ids]


def _constraints(tables: list[Table], ids: list[np.ndarray], n: int) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Every relation of every table over the global cells: equations ``A_eq x = 0`` (sums)
    and inequalities ``A_ub x <= 0`` (a union's parent within [largest child, sum of
    children]; disjoint children summing to at most their parent)."""
    eq: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    ub: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    n_eq = n_ub = 0
    for t, gid in zip(tables, ids, strict=True):
        rel = t.relations
        if rel.size == 0:
            continue
        cnt = np.diff(rel.ptr)
        of_child = np.repeat(np.arange(rel.size), cnt)
        pg, cg = gid[rel.parent], gid[rel.children]
        for kind, sign in ((SUM, 1.0), (UNION, 1.0), (DISJOINT, -1.0)):
            sel = np.flatnonzero(rel.kind == kind)
            if not len(sel):
                continue
            base = n_eq if kind == SUM else n_ub
            row_of = np.full(rel.size, -1, np.int64)
            row_of[sel] = base + np.arange(len(sel))
            cs = np.flatnonzero(rel.kind[of_child] == kind)
            triplet = (
                np.concatenate([row_of[sel], row_of[of_child[cs]]]),
                np.concatenate([pg[sel], cg[cs]]),
                np.concatenate([np.full(len(sel), sign), np.full(len(cs), -sign)]),
            )
            if kind == SUM:
                eq.append(triplet)
                n_eq += len(sel)
                continue
            ub.append(triplet)
            n_ub += len(sel)
            if kind == UNION:  # every child <= its parent
                rows = n_ub + np.arange(len(cs))
                ub.append(
                    (
                        np.concatenate([rows, rows]),
                        np.concatenate([cg[cs], pg[of_child[cs]]]),
                        np.concatenate([np.ones(len(cs)), -np.ones(len(cs))]),
                    )
                )
                n_ub += len(cs)

    def build(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]], m: int) -> sp.csr_matrix:
        if not parts:
            return sp.csr_matrix((0, n))
        r, c, v = (np.concatenate([p[i] for p in parts]) for i in range(3))
        return sp.csr_matrix((v, (r, c)), shape=(m, n))

    return build(eq, n_eq), build(ub, n_ub)
