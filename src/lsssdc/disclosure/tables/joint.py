"""The joint problem of linked tables: cells that two tables share are identified, so that
suppression and attack see one system of relations."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from lsssdc.disclosure.tables.model import Table, linked_groups
from lsssdc.disclosure.tables.rules import Rules, primary_cells
from lsssdc.errors import DisclosureRefused, InputDataError, Problem

# ---------------------------------------------------------------------------------------------
# the joint problem of linked tables (shared cells identified)


def _link_keys(table: Table, dims: list[str]) -> np.ndarray:
    """Text key per cell: the year, then codes over ``dims`` (a län being a level of the kommun
    dimension), after the unit wherever a persons cell and an insatser cell differ: a persons
    cell of one insats in one year counts what the insatser cell counts, any other does not."""
    one_insats = np.zeros(table.size, bool)
    if "insats" in table.dims:
        h = table.hierarchies["insats"]
        one_insats = h.is_leaf[table.nodes[:, table.dims.index("insats")]]
    if "year" in table.dims:
        h = table.hierarchies["year"]
        node = table.nodes[:, table.dims.index("year")]
        year = np.where(h.is_leaf[node], np.asarray(h.codes, dtype=object)[node], "")
        one_insats &= h.is_leaf[node]
    else:
        year = np.full(table.size, table.years[0] if len(table.years) == 1 else "", dtype=object)
    unit = "" if table.measure is not None else table.unit
    out = np.where(one_insats, "", unit).astype(object) + "/" + year
    for d in dims:
        names = [x for x in table.dims if (x if x != "lan" else "kommun") == d]
        if names:
            h = table.hierarchies[names[0]]
            total = (h.parent_array < 0) & ~h.is_leaf
            code = np.where(total, "", np.asarray(h.codes, dtype=object))
            col = code[table.nodes[:, table.dims.index(names[0])]]
        else:
            col = np.full(table.size, "", dtype=object)
        out = out + "/" + col
    return out


def _describe_cell(tables: list[Table], ids: list[np.ndarray], g: int) -> str:
    """'table T, cell dim=code, ...' for a global cell (its first occurrence): codes only."""
    for t, gid in zip(tables, ids, strict=True):
        at = np.flatnonzero(gid == g)
        if len(at):
            local = int(at[0])
            coords = ", ".join(
                f"{d}={t.hierarchies[d].codes[t.nodes[local, j]]}" for j, d in enumerate(t.dims)
            )
            return f"table '{t.name}', cell {coords}"
    return f"cell {g}"


@dataclass
class _Joint:
    """Linked tables as one set of cells and relations (global cell numbers)."""

    tables: list[Table]
    ids: list[np.ndarray]
    n: int
    value: np.ndarray
    margin: np.ndarray
    upl: np.ndarray
    lpl: np.ndarray
    primary: np.ndarray
    reason: np.ndarray
    parent: np.ndarray
    kind: np.ndarray
    ptr: np.ndarray
    children: np.ndarray
    member_ptr: np.ndarray  # cell -> relations it belongs to (CSR)
    member_rel: np.ndarray
    owner_ptr: np.ndarray  # cell -> (table, local cell) occurrences (CSR)
    owner_table: np.ndarray
    owner_local: np.ndarray
    #: cells every reader knows (zeros the rules force, cells published before): never hidden,
    #: never moved by a deviation, and needing no protection from this release
    fixed: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    #: cells hidden before (an earlier release of the same cells): hidden from the start
    hidden_before: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    grids: dict[int, Any] = field(default_factory=dict)  # per table, for the local LPs


class _Cells(NamedTuple):
    """What the linked tables say of each global cell, merged (a shared cell agrees everywhere)."""

    value: np.ndarray
    margin: np.ndarray
    upl: np.ndarray
    lpl: np.ndarray
    reason: np.ndarray
    fixed: np.ndarray
    held: np.ndarray  # published by an earlier release
    before: np.ndarray  # hidden by an earlier release


class _Lines(NamedTuple):
    """Every table's relations over global cells, concatenated, with the cell -> relation index."""

    parent: np.ndarray
    kind: np.ndarray
    ptr: np.ndarray
    children: np.ndarray
    member_ptr: np.ndarray
    member_rel: np.ndarray


def _number_cells(tables: list[Table]) -> tuple[list[np.ndarray], int]:
    """Global cell numbers per table: linked tables share the numbers of the cells they share,
    so that a shared cell is one cell of the joint problem."""
    ids: list[np.ndarray] = [np.zeros(0, np.int64)] * len(tables)
    n = 0
    for members in linked_groups(tables):
        if len(members) == 1:
            ids[members[0]] = np.arange(tables[members[0]].size, dtype=np.int64) + n
            n += tables[members[0]].size
            continue
        dims = sorted({d if d != "lan" else "kommun" for i in members for d in tables[i].dims} - {"year"})
        keys = np.concatenate([_link_keys(tables[i], dims) for i in members])
        codes, uniq = pd.factorize(keys, sort=False)
        start = 0
        for i in members:
            ids[i] = codes[start : start + tables[i].size].astype(np.int64) + n
            start += tables[i].size
        n += len(uniq)
    return ids, n


def _merge_cells(
    tables: list[Table],
    ids: list[np.ndarray],
    n: int,
    rules: Rules,
    known: list[np.ndarray] | None,
    hidden_before: list[np.ndarray] | None,
) -> _Cells:
    """One value, history and protection need per global cell; linked tables that disagree on
    a shared cell are refused (they do not describe one population)."""
    value = np.zeros(n)
    margin = np.zeros(n, bool)
    upl = np.zeros(n)
    lpl = np.zeros(n)
    reason = np.zeros(n, np.int64)
    seen = np.zeros(n, bool)
    fixed = np.zeros(n, bool)
    held = np.zeros(n, bool)
    before = np.zeros(n, bool)
    for i, (t, gid) in enumerate(zip(tables, ids, strict=True)):
        v = t.values
        fixed[gid] |= t.structural
        if known is not None:
            fixed[gid] |= np.asarray(known[i], bool)
            held[gid] |= np.asarray(known[i], bool)
        if hidden_before is not None:
            before[gid] |= np.asarray(hidden_before[i], bool)
        if (seen[gid] & ~np.isclose(value[gid], v)).any():
            raise InputDataError(
                Problem(
                    "linked_tables_disagree",
                    f"table '{t.name}' disagrees with a linked table on a shared cell",
                    hint="build linked tables from the same register and population",
                )
            )
        seen[gid] = True
        value[gid] = v
        margin[gid] |= t.cells["margin"].to_numpy()
        r, u, lo = primary_cells(t, rules)
        reason[gid] |= r
        upl[gid] = np.maximum(upl[gid], u)
        lpl[gid] = np.maximum(lpl[gid], lo)
    return _Cells(value, margin, upl, lpl, reason, fixed, held, before)


def _apply_history(tables: list[Table], ids: list[np.ndarray], cells: _Cells) -> None:
    """Refuse a sensitive cell an earlier release published (nothing can protect it now); a
    cell the reader knows needs no protection and is never hidden (``cells`` changed in place)."""
    reason, upl, lpl, fixed, before = cells.reason, cells.upl, cells.lpl, cells.fixed, cells.before
    # a sensitive cell that an earlier release published cannot be protected any more
    exposed = np.flatnonzero(cells.held & (reason > 0))
    if len(exposed):
        raise DisclosureRefused(
            Problem(
                "history_exposes",
                f"{len(exposed)} cell(s) the rules call sensitive were published in an earlier "
                f"release, e.g. {_describe_cell(tables, ids, int(exposed[0]))}",
                hint="leave out the table or the dimension that meets the earlier release",
            )
        )
    # a cell the reader knows needs no protection from this release; it is never hidden
    reason[fixed] = 0
    upl[fixed] = 0.0
    lpl[fixed] = 0.0
    before &= ~fixed


def _lines(tables: list[Table], ids: list[np.ndarray], n: int) -> _Lines:
    """All relations over global cells, and per cell the relations it is in (CSR), so that a
    deviation can find every relation a cell takes part in."""
    parents, kinds, counts, children = [], [], [], []
    for t, gid in zip(tables, ids, strict=True):
        rel = t.relations
        parents.append(gid[rel.parent])
        kinds.append(rel.kind)
        counts.append(np.diff(rel.ptr))
        children.append(gid[rel.children])
    parent = np.concatenate(parents) if parents else np.zeros(0, np.int64)
    kind = np.concatenate(kinds) if kinds else np.zeros(0, np.int8)
    cnt = np.concatenate(counts) if counts else np.zeros(0, np.int64)
    ptr = np.concatenate([[0], np.cumsum(cnt)]).astype(np.int64)
    ch = np.concatenate(children) if children else np.zeros(0, np.int64)
    rel_of = np.repeat(np.arange(len(parent)), np.diff(ptr))
    mem_cell = np.concatenate([parent, ch])
    mem_rel = np.concatenate([np.arange(len(parent)), rel_of])
    order = np.lexsort((mem_rel, mem_cell))
    member_ptr = np.concatenate([[0], np.cumsum(np.bincount(mem_cell, minlength=n))]).astype(np.int64)
    return _Lines(parent, kind, ptr, ch, member_ptr, mem_rel[order])


def _owners(tables: list[Table], ids: list[np.ndarray], n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per global cell its (table, local cell) occurrences (CSR: pointers, tables, local cells),
    to reach a cell in every table that holds it."""
    own_cell = np.concatenate(ids) if ids else np.zeros(0, np.int64)
    own_table = np.concatenate([np.full(t.size, i) for i, t in enumerate(tables)]) if tables else own_cell
    own_local = np.concatenate([np.arange(t.size) for t in tables]) if tables else own_cell
    o = np.argsort(own_cell, kind="stable")
    owner_ptr = np.concatenate([[0], np.cumsum(np.bincount(own_cell, minlength=n))]).astype(np.int64)
    return owner_ptr, own_table[o], own_local[o]


def _joint(
    tables: list[Table],
    rules: Rules,
    known: list[np.ndarray] | None = None,
    hidden_before: list[np.ndarray] | None = None,
) -> _Joint:
    """The linked tables as one system. ``known`` (per table) are cells a reader holds already
    (published before), ``hidden_before`` cells an earlier release hid."""
    ids, n = _number_cells(tables)
    cells = _merge_cells(tables, ids, n, rules, known, hidden_before)
    _apply_history(tables, ids, cells)
    lines = _lines(tables, ids, n)
    owner_ptr, owner_table, owner_local = _owners(tables, ids, n)
    return _Joint(
        tables=tables,
        ids=ids,
        n=n,
        value=cells.value,
        margin=cells.margin,
        upl=cells.upl,
        lpl=cells.lpl,
        primary=cells.reason > 0,
        reason=cells.reason,
        parent=lines.parent,
        kind=lines.kind,
        ptr=lines.ptr,
        children=lines.children,
        member_ptr=lines.member_ptr,
        member_rel=lines.member_rel,
        owner_ptr=owner_ptr,
        owner_table=owner_table,
        owner_local=owner_local,
        fixed=cells.fixed,
        hidden_before=cells.before,
    )
