"""The table model shared by suppression and the attacker: hierarchies, cells and their
relations, and the protected result. Nothing here chooses or checks a suppression."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lsssdc import refdata
from lsssdc.errors import PolicyError

if TYPE_CHECKING:
    from lsssdc.disclosure.tables.rules import Rules


#: Code of the total of a dimension (the kommun hierarchy's total is riket, code "00").
TOTAL = "Totalt"
RIKET = refdata.RIKET
#: What a count cell counts. A magnitude table counts the unit of its measure (hours, days).
COUNT_UNITS = ("persons", "insatser")
#: Relation kinds: ``sum``: parent = sum of children; ``union``: every child <= parent <= sum of
#: children; ``disjoint``: parent >= sum of children (the children are known to be disjoint).
SUM, UNION, DISJOINT = 0, 1, 2
RELATION_KINDS = ("sum", "union", "disjoint")
#: Cell status codes.
PUBLISHED, PRIMARY, SECONDARY = 0, 1, 2
STATUS_NAMES = ("published", "primary", "secondary")
#: Reasons a cell is primary (bit flags).
REASON_FREQUENCY, REASON_ZERO, REASON_DOMINANCE, REASON_P = 1, 2, 4, 8
REASON_NAMES = {
    REASON_FREQUENCY: "frequency",
    REASON_ZERO: "zero",
    REASON_DOMINANCE: "dominance",
    REASON_P: "p_percent",
}
#: Default age bands (lower bounds, completed years at the measurement date): eight bands.
AGE_BANDS = (0, 7, 13, 18, 23, 35, 50, 65)
#: Dimensions on which a person can hold several values in one year (any other dimension on
#: which every person has one value in the data is treated as a partition: its margins add up).
_MULTI_VALUED = frozenset({"insats", "kommun", "lan", "year"})
#: Dimensions that are the implementing kommun or a grouping of it (rule 9 applies).
_KOMMUN_DIMS = frozenset({"kommun", "lan"})
_SEX_LABELS = {"1": "Man", "2": "Kvinna"}


# ---------------------------------------------------------------------------------------------
# hierarchies


@dataclass(frozen=True)
class CodeTree:
    """The codes of one dimension as a tree: each node has a parent (-1 for a top node).

    Nodes are stored parents first (depth first), which is also the order in which they are
    printed. Register values map to leaves; every other node is the union of its leaves.
    """

    dim: str
    codes: tuple[str, ...]
    parents: tuple[int, ...]
    labels: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.codes) != len(self.parents) or len(self.codes) != len(self.labels):
            raise PolicyError(f"hierarchy '{self.dim}': codes, parents and labels differ in length")
        if len(set(self.codes)) != len(self.codes):
            raise PolicyError(f"hierarchy '{self.dim}': a code occurs twice")
        for i, p in enumerate(self.parents):
            if not -1 <= p < i:
                raise PolicyError(f"hierarchy '{self.dim}': node '{self.codes[i]}' must follow its parent")

    @classmethod
    def flat(
        cls,
        dim: str,
        codes: Sequence[str],
        labels: Sequence[str] | None = None,
        *,
        total: bool = True,
        total_code: str = TOTAL,
        total_label: str = "Totalt",
    ) -> CodeTree:
        """Leaves under one total (or, with ``total=False``, leaves without a margin)."""
        codes = [str(c) for c in codes]
        labels = [str(x) for x in labels] if labels is not None else list(codes)
        if not total:
            return cls(dim, tuple(codes), tuple([-1] * len(codes)), tuple(labels))
        return cls(
            dim,
            (total_code, *codes),
            (-1, *([0] * len(codes))),
            (total_label, *labels),
        )

    @classmethod
    def grouped(
        cls,
        dim: str,
        leaves: Sequence[str],
        group_of: Mapping[str, str],
        *,
        leaf_labels: Mapping[str, str] | None = None,
        group_labels: Mapping[str, str] | None = None,
        total_code: str = TOTAL,
        total_label: str = "Totalt",
    ) -> CodeTree:
        """Leaves within groups within one total (e.g. kommun within län within riket)."""
        leaf_labels = leaf_labels or {}
        group_labels = group_labels or {}
        codes, parents, labels = [total_code], [-1], [total_label]
        by_group: dict[str, list[str]] = {}
        for leaf in sorted(str(x) for x in leaves):
            if leaf not in group_of:
                raise PolicyError(f"hierarchy '{dim}': code '{leaf}' has no group")
            by_group.setdefault(str(group_of[leaf]), []).append(leaf)
        for group in sorted(by_group):
            g = len(codes)
            codes.append(group)
            parents.append(0)
            labels.append(group_labels.get(group, group))
            for leaf in by_group[group]:
                codes.append(leaf)
                parents.append(g)
                labels.append(leaf_labels.get(leaf, leaf))
        return cls(dim, tuple(codes), tuple(parents), tuple(labels))

    @property
    def size(self) -> int:
        return len(self.codes)

    @property
    def parent_array(self) -> np.ndarray:
        return np.asarray(self.parents, dtype=np.int64)

    @property
    def is_leaf(self) -> np.ndarray:
        leaf = np.ones(self.size, bool)
        p = self.parent_array
        leaf[p[p >= 0]] = False
        return leaf

    @property
    def depth(self) -> np.ndarray:
        d = np.zeros(self.size, np.int64)
        for i, p in enumerate(self.parents):  # a handful of nodes, not data rows
            d[i] = 0 if p < 0 else d[p] + 1
        return d

    def ancestors(self) -> np.ndarray:
        """Node x (self first, then parent, ...) as a padded matrix; -1 pads."""
        depth = self.depth
        out = np.full((self.size, int(depth.max()) + 1), -1, np.int64)
        p = self.parent_array
        cur = np.arange(self.size)
        for level in range(out.shape[1]):
            out[:, level] = cur
            cur = np.where(cur >= 0, p[np.maximum(cur, 0)], -1)
        return out

    def leaf_index(self) -> dict[str, int]:
        leaf = self.is_leaf
        return {c: i for i, c in enumerate(self.codes) if leaf[i]}

    def to_dict(self) -> dict[str, Any]:
        return {
            "dim": self.dim,
            "codes": list(self.codes),
            "parents": [self.codes[p] if p >= 0 else None for p in self.parents],
            "labels": list(self.labels),
        }


def kommun_tree(codes: Iterable[str]) -> CodeTree:
    """Kommuner within län within riket, labelled with the names of the reference tables."""
    codes = sorted({str(c) for c in codes})
    ky = refdata.kommun_years()
    names = dict(zip(ky["kommun_kod"], ky["kommun_namn"], strict=True))
    lan_names = dict(zip(refdata.lan()["lan_kod"], refdata.lan()["lan_namn"], strict=True))
    return CodeTree.grouped(
        "kommun",
        codes,
        {c: c[:2] for c in codes},
        leaf_labels=names,
        group_labels=lan_names,
        total_code=RIKET,
        total_label="Riket",
    )


def lan_tree(codes: Iterable[str]) -> CodeTree:
    lan_names = dict(zip(refdata.lan()["lan_kod"], refdata.lan()["lan_namn"], strict=True))
    codes = sorted({str(c) for c in codes})
    return CodeTree.flat(
        "lan", codes, [lan_names.get(c, c) for c in codes], total_code=RIKET, total_label="Riket"
    )


def age_band_labels(bands: Sequence[int]) -> list[str]:
    """'0-6', '7-12', ..., '65+' for the lower bounds of the bands."""
    bands = list(bands)
    out = []
    for i, lo in enumerate(bands):
        out.append(f"{lo}+" if i == len(bands) - 1 else f"{lo}-{bands[i + 1] - 1}")
    return out


# ---------------------------------------------------------------------------------------------
# the data structures shared with the audit


@dataclass(frozen=True)
class Relations:
    """The linear relations of a table, one per line (a parent and its children along one dim).

    ``children[ptr[r]:ptr[r+1]]`` are the cells of relation ``r``; ``kind`` is one of
    :data:`SUM`, :data:`UNION`, :data:`DISJOINT`; ``dim`` the position of the dimension.
    """

    parent: np.ndarray
    kind: np.ndarray
    dim: np.ndarray
    ptr: np.ndarray
    children: np.ndarray

    @property
    def size(self) -> int:
        return len(self.parent)

    def counts(self) -> dict[str, int]:
        return {name: int((self.kind == k).sum()) for k, name in enumerate(RELATION_KINDS)}


@dataclass
class Table:
    """Every cell of a cross-classification with its margins, and the relations between them.

    ``cells`` has one column per dimension (codes), ``value`` (the count or sum), ``contributors``
    (distinct persons in the cell) and ``margin`` (True when any coordinate is not a leaf).
    ``nodes`` holds the same coordinates as node positions in each dimension's hierarchy.
    ``top`` (magnitude tables) holds each cell's largest per-person contributions, descending.
    ``scope`` describes the population (years, insatser) and makes cells of different tables
    comparable: two tables with the same scope, unit and measure share a cell when their
    coordinates agree (a dimension a table lacks is at its total).
    """

    name: str
    dims: tuple[str, ...]
    unit: str
    measure: str | None
    scope: dict[str, str]
    hierarchies: dict[str, CodeTree]
    cells: pd.DataFrame
    nodes: np.ndarray
    relations: Relations
    top: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.cells)

    @property
    def values(self) -> np.ndarray:
        return self.cells["value"].to_numpy(dtype=np.float64)

    @property
    def is_magnitude(self) -> bool:
        return self.measure is not None

    def link_key(self) -> tuple[str, str | None, str]:
        """Tables with equal keys may share cells (if their years meet): counts of persons and
        of insatser of one population (a person holds an insats once a year, from one kommun,
        so their one-insats cells of a year are equal), or sums of one measure. The year is a
        coordinate of a cell, not of the key: a year of a series is the same cell in every
        table that shows it."""
        unit = "count" if self.measure is None else self.unit
        return (unit, self.measure, self.scope.get("insatser", ""))

    @property
    def years(self) -> tuple[str, ...]:
        return tuple(y for y in self.scope.get("years", "").split(",") if y)

    @property
    def structural(self) -> np.ndarray:
        """Cells the register's rules make zero (known to every reader)."""
        if "structural" in self.cells:
            return self.cells["structural"].to_numpy(dtype=bool)
        return np.zeros(self.size, bool)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dimensions": list(self.dims),
            "unit": self.unit,
            "measure": self.measure,
            "scope": dict(self.scope),
            "cells": self.size,
            "margins": int(self.cells["margin"].sum()),
            "relations": self.relations.counts(),
            "notes": list(self.notes),
        }


@dataclass
class ProtectedTables:
    """Tables with a status per cell (published, primary, secondary) and how they got it.

    ``status[i]`` and ``reason[i]`` belong to ``tables[i]``; ``upper[i]``/``lower[i]`` are the
    protection levels the suppression worked to (0 where a cell is not primary). ``report``
    says what the suppression did; the audit recomputes the requirements on its own.
    """

    tables: list[Table]
    rules: Rules
    status: list[np.ndarray]
    reason: list[np.ndarray]
    upper: list[np.ndarray]
    lower: list[np.ndarray]
    report: dict[str, Any] = field(default_factory=dict)
    #: Deviations found by the suppression that move a primary cell by its protection while
    #: every relation holds (table-local terms). The audit may use them as proofs after
    #: checking them against its own model; a wrong one only costs the audit time.
    witnesses: dict[str, np.ndarray] | None = None
    #: Per table, the cells a reader knows without this release (published earlier, or counted
    #: in a microdata extract they hold): constants to the attacker, needing no protection here.
    known: list[np.ndarray] | None = None

    def hidden(self, i: int) -> np.ndarray:
        return self.status[i] != PUBLISHED

    def counts(self) -> dict[str, int]:
        st = np.concatenate(self.status) if self.status else np.zeros(0, np.int8)
        return {
            "cells": int(st.size),
            "primary": int((st == PRIMARY).sum()),
            "secondary": int((st == SECONDARY).sum()),
            "published": int((st == PUBLISHED).sum()),
        }


def renumber_witnesses(
    witnesses: Mapping[str, Any] | None, where: np.ndarray, sizes: np.ndarray | None = None
) -> dict[str, np.ndarray] | None:
    """Witnesses (table-local terms, as in :attr:`ProtectedTables.witnesses`) with table ``i``
    renamed ``where[i]``; a witness that touches a table with ``where[i] < 0`` is dropped, and
    with ``sizes`` (cells per table after renaming) one that names a cell outside its table.
    Places one release's witnesses among more tables, or keeps those of a group of tables."""
    if not witnesses or len(witnesses.get("target_table", [])) == 0:
        return None
    where = np.asarray(where, np.int64)
    target_table = np.asarray(witnesses["target_table"], np.int64)
    table = np.asarray(witnesses["table"], np.int64)
    wid = np.asarray(witnesses["witness"], np.int64)
    keep_w = where[target_table] >= 0
    keep_w[wid[where[table] < 0]] = False
    if sizes is not None:
        size = np.append(np.asarray(sizes, np.int64), 0)  # a dropped table holds no cell
        target_cell = np.asarray(witnesses["target_cell"], np.int64)
        cell = np.asarray(witnesses["cell"], np.int64)
        keep_w &= (target_cell >= 0) & (target_cell < size[where[target_table]])
        keep_w[wid[(cell < 0) | (cell >= size[where[table]])]] = False
    entry = keep_w[wid]
    renum = np.cumsum(keep_w) - 1
    return {
        "target_table": where[target_table[keep_w]],
        "target_cell": np.asarray(witnesses["target_cell"], np.int64)[keep_w],
        "direction": np.asarray(witnesses["direction"], np.int8)[keep_w],
        "witness": renum[wid[entry]],
        "table": where[table[entry]],
        "cell": np.asarray(witnesses["cell"], np.int64)[entry],
        "y": np.asarray(witnesses["y"], np.float64)[entry],
    }


def witnesses_of(
    witnesses: Mapping[str, Any] | None, members: Sequence[int], n_tables: int
) -> dict[str, np.ndarray] | None:
    """The witnesses that lie wholly within the tables ``members`` (positions among
    ``n_tables``), renumbered to them: table ``members[k]`` becomes ``k``."""
    where = np.full(n_tables, -1, np.int64)
    where[np.asarray(members, np.int64)] = np.arange(len(members))
    return renumber_witnesses(witnesses, where)


def linked_groups(tables: Sequence[Table]) -> list[list[int]]:
    """Tables that may share cells, as groups (positions): equal link keys and years that meet,
    joined transitively. Tables of different groups share no cell and no relation."""
    parent = list(range(len(tables)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, a in enumerate(tables):  # a handful of tables, not data rows
        for j in range(i):
            b = tables[j]
            if a.link_key() == b.link_key() and set(a.years) & set(b.years):
                parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(tables)):
        groups.setdefault(root(i), []).append(i)
    return list(groups.values())


def _ragged_arange(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + c)`` for each pair, vectorised."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    offsets = np.repeat(np.cumsum(counts) - counts, counts)
    return np.repeat(starts, counts) + (np.arange(total) - offsets)
