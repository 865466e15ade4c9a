"""Tables of counts and sums from the LSS register, their constraint model, and cell suppression.

A table here is every cell of a cross-classification *including* all its margins and the levels
of each hierarchy (kommun within län within riket), together with the linear relations between
cells that a reader of the published table knows. Which relations hold depends on what a cell
counts (its unit):

* ``insatser`` (person-insats pairs) and magnitude tables (sums of hours) add up everywhere:
  every margin is the sum of its cells (an equation);
* ``persons`` add up only over a dimension on which each person has exactly one value (sex, age
  band). Over insatser a person can hold several, and over kommuner a person can be served by
  two, so such a margin is the size of a union: at least its largest cell and at most the sum of
  its cells (two inequalities). Rule 9 of the register (the same insats is never reported by two
  kommuner) makes the kommun margins of one insats equations again; rule 5 (at most one housing
  insats) makes the housing cells disjoint, so a margin over insatser is at least their sum.

Primary suppression applies the frequency rule and, for magnitude tables, the (n, k) dominance
rule and the p% rule, each with protection levels. Secondary suppression hides further cells
until no primary cell can be narrowed below its protection interval by an attacker who knows all
published cells and every relation (see :mod:`lsssdc.disclosure.audit`, which checks the result
and shares nothing with this module but the data structures).

How the secondary cells are chosen (deterministic):

1. a vectorised hypercube pass (in the spirit of HITAS and the hypercube method, made aware of
   union margins): for each primary cell and direction (up by its upper protection, down by its
   lower) a deviation shaped as a cube is built per table, each dimension either pairing the
   cell with a sibling (+/-), moving it with its margins up the hierarchy, staying put (where
   the line is a union with room), and descending to a leaf where the cell is itself a margin.
   Strategies are tried in stages; each candidate is checked against every relation of the
   linked tables, and the cheapest that holds is hidden and kept as a *witness*. A witness
   that moves another primary cell far enough protects that one too;
2. a local LP (HiGHS through :func:`scipy.optimize.milp`) for every cell and direction still
   unprotected: the cheapest deviation over a neighbourhood of the cell (hidden cells are
   free, published ones cost), widened until one exists. Its support is hidden and it becomes
   the witness;
3. the attacker runs; anything it can narrow too much is repaired as in 2, until it passes.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, milp

from lsssdc import refdata
from lsssdc.errors import InputDataError, PolicyError, Problem
from lsssdc.identity import personnummer as pnr
from lsssdc.register import variables as V

#: Code of the total of a dimension (the kommun hierarchy's total is riket, code "00").
TOTAL = "Totalt"
RIKET = "00"
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
class Hierarchy:
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
    ) -> Hierarchy:
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
    ) -> Hierarchy:
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


def kommun_hierarchy(codes: Iterable[str]) -> Hierarchy:
    """Kommuner within län within riket, labelled with the names of the reference tables."""
    codes = sorted({str(c) for c in codes})
    ky = refdata.kommun_years()
    names = dict(zip(ky["kommun_kod"], ky["kommun_namn"], strict=True))
    lan_names = dict(zip(refdata.lan()["lan_kod"], refdata.lan()["lan_namn"], strict=True))
    return Hierarchy.grouped(
        "kommun",
        codes,
        {c: c[:2] for c in codes},
        leaf_labels=names,
        group_labels=lan_names,
        total_code=RIKET,
        total_label="Riket",
    )


def lan_hierarchy(codes: Iterable[str]) -> Hierarchy:
    lan_names = dict(zip(refdata.lan()["lan_kod"], refdata.lan()["lan_namn"], strict=True))
    codes = sorted({str(c) for c in codes})
    return Hierarchy.flat(
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
    hierarchies: dict[str, Hierarchy]
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

    def link_key(self) -> tuple[str, str | None, tuple[tuple[str, str], ...]]:
        """Tables with equal keys may share cells."""
        return (self.unit, self.measure, tuple(sorted(self.scope.items())))

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


@dataclass(frozen=True)
class FrequencyRule:
    """Cells with 1 to ``threshold - 1`` contributors are primary; zero cells too unless safe.

    Protection asked of a primary count cell with value v and n persons: the attacker's upper
    bound reaches at least ``v + max(1, threshold - n)`` (so at least the threshold for a persons
    count) and the lower bound at most ``v - 1`` (so a single person's presence is never
    certain). A primary zero cell needs an upper bound of at least ``threshold``. In a magnitude
    table a cell with too few contributors needs ``safety_range`` percent of its value each way.
    """

    threshold: int = 3
    zero_is_safe: bool = True
    safety_range: float = 10.0

    def __post_init__(self) -> None:
        if self.threshold < 1:
            raise PolicyError("the frequency threshold must be at least 1")
        if not 0 < self.safety_range <= 100:
            raise PolicyError("the safety range must lie in (0, 100] percent")

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": "frequency",
            "threshold": self.threshold,
            "zero_is_safe": self.zero_is_safe,
            "safety_range": self.safety_range,
        }


@dataclass(frozen=True)
class DominanceRule:
    """(n, k) dominance: a cell whose ``n`` largest contributions exceed ``k`` percent of it.

    Protection: ``(100 / k) * (sum of the n largest) - value`` each way.
    """

    n: int = 1
    k: float = 85.0

    def __post_init__(self) -> None:
        if self.n < 1 or not 0 < self.k < 100:
            raise PolicyError("the dominance rule needs n >= 1 and 0 < k < 100")

    def to_dict(self) -> dict[str, Any]:
        return {"rule": "dominance", "n": self.n, "k": self.k}


@dataclass(frozen=True)
class PRule:
    """p% rule: the second largest contributor must not learn the largest within ``p`` percent.

    A cell is primary when ``value - x1 - x2 < p / 100 * x1``; protection
    ``p / 100 * x1 - (value - x1 - x2)`` each way.
    """

    p: float = 10.0

    def __post_init__(self) -> None:
        if not 0 < self.p < 100:
            raise PolicyError("the p% rule needs 0 < p < 100")

    def to_dict(self) -> dict[str, Any]:
        return {"rule": "p_percent", "p": self.p}


@dataclass(frozen=True)
class Rules:
    """The primary rules of a release: the frequency rule always, magnitude rules optionally."""

    frequency: FrequencyRule = field(default_factory=FrequencyRule)
    dominance: tuple[DominanceRule, ...] = ()
    p_rule: PRule | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "frequency": self.frequency.to_dict(),
            "dominance": [d.to_dict() for d in self.dominance],
            "p_rule": self.p_rule.to_dict() if self.p_rule else None,
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


# ---------------------------------------------------------------------------------------------
# building a table from the register


def _fail(code: str, message: str, column: str | None = None, hint: str | None = None) -> InputDataError:
    return InputDataError(Problem(code, message, column=column, hint=hint))


def _insatser_for(years: np.ndarray, insatser: Sequence[str] | None, measure: str | None) -> list[str]:
    if measure is not None:
        if measure == "hours":
            chosen = [v for k, v in V.AMOUNTS.items() if k.startswith("hours_")]
        elif measure in V.AMOUNTS:
            chosen = [V.AMOUNTS[measure]]
        else:
            raise PolicyError(
                Problem(
                    "unknown_measure",
                    f"unknown measure '{measure}'",
                    hint="use 'hours' or one of " + ", ".join(V.AMOUNTS),
                )
            )
        if insatser is not None:
            chosen = [i for i in chosen if i in set(insatser)]
    elif insatser is None:
        yrs = sorted({int(y) for y in years})
        chosen = [i for i in V.INSATSER if any(V.get(i).collected(y) for y in yrs)]
    else:
        chosen = list(insatser)
    unknown = [i for i in chosen if i not in V.INSATSER]
    if unknown:
        raise PolicyError(Problem("unknown_insats", f"unknown insats: {', '.join(unknown)}"))
    if not chosen:
        raise PolicyError(Problem("no_insats", "the table selects no insats"))
    return chosen


def _amount_column(insats: str, measure: str) -> str:
    for col, ins in V.AMOUNTS.items():
        if ins == insats and (measure == col or (measure == "hours" and col.startswith("hours_"))):
            return col
    raise PolicyError(f"no amount column for insats '{insats}'")  # pragma: no cover - guarded above


def _person_attributes(register: pd.DataFrame, person: str, need: set[str]) -> dict[str, np.ndarray]:
    """Sex and age at the measurement date, from columns when present, else the personnummer."""
    out: dict[str, np.ndarray] = {}
    want_sex = "sex" in need and "sex" not in register.columns
    want_age = bool(need & {"age", "age_band"}) and "age" not in register.columns
    if want_sex or want_age:
        if person not in register.columns:
            raise _fail("missing_column", "sex and age need the personnummer or the columns", column=person)
        parsed = pnr.parse(register[person].reset_index(drop=True))
        bad = ~parsed["valid"].to_numpy()
        if bad.any():
            rows = tuple(int(i) for i in np.flatnonzero(bad)[:10])
            raise InputDataError(
                Problem(
                    "invalid_personnummer",
                    "invalid personnummer: sex and age cannot be derived",
                    column=person,
                    rows=rows,
                    row_count=int(bad.sum()),
                    hint="validate the register first",
                )
            )
        if want_sex:
            out["sex"] = parsed["sex"].astype(str).to_numpy()
        if want_age:
            ref = V.measurement_dates(register["year"].reset_index(drop=True).astype(int))
            birth = pd.Series(parsed["birth_date"].to_numpy())
            age = pnr.age_at(birth, ref).to_numpy(dtype=np.int64)
            out["age"] = age
    if "sex" in need and "sex" not in out:
        out["sex"] = register["sex"].astype(str).to_numpy()
    if need & {"age", "age_band"} and "age" not in out:
        out["age"] = pd.to_numeric(register["age"]).to_numpy(dtype=np.int64)
    return out


def _default_hierarchy(
    dim: str, values: np.ndarray, years: np.ndarray, age_bands: Sequence[int]
) -> Hierarchy:
    present = sorted({str(v) for v in pd.unique(values)})
    if dim == "kommun":
        codes = set(present)
        for y in {int(x) for x in pd.unique(years)}:
            codes |= set(refdata.kommun_codes(y))
        return kommun_hierarchy(codes)
    if dim == "lan":
        return lan_hierarchy(set(present) | set(refdata.lan()["lan_kod"]))
    if dim == "sex":
        return Hierarchy.flat("sex", ["1", "2"], ["Man", "Kvinna"])
    if dim == "age_band":
        labels = age_band_labels(age_bands)
        return Hierarchy.flat("age_band", labels, labels)
    if dim == "year":
        return Hierarchy.flat("year", present, total=False)
    if dim == "insats":
        raise AssertionError("insats hierarchy is built from the chosen insatser")  # pragma: no cover
    return Hierarchy.flat(dim, present)


@dataclass
class _Records:
    """Long form: one record per person-insats pair (or per row for magnitude), leaf coordinates."""

    leaf: dict[str, np.ndarray]  # dim -> code per record
    person: np.ndarray  # dense person index (per year: a person in two years is two units)
    year: np.ndarray
    weight: np.ndarray  # 1 per pair, or the amount
    insats: np.ndarray  # insats position per record


def _records(
    register: pd.DataFrame,
    dims: Sequence[str],
    insatser: list[str],
    measure: str | None,
    age_bands: Sequence[int],
    person: str,
) -> _Records:
    n = len(register)
    if "year" not in register.columns:
        raise _fail("missing_column", "the register has no year column", column="year")
    missing = [c for c in insatser if c not in register.columns]
    if missing:
        raise _fail("missing_column", f"missing insats column(s): {', '.join(missing)}")
    if person not in register.columns:
        raise _fail("missing_column", "the table needs a person identifier column", column=person)
    flags = np.zeros((n, len(insatser)), np.int8)
    for j, name in enumerate(insatser):  # a column per insats, not a row loop
        col = register[name]
        vals = pd.to_numeric(col, errors="coerce").fillna(0).to_numpy()
        if not np.isin(vals, (0, 1)).all():
            rows = tuple(int(i) for i in np.flatnonzero(~np.isin(vals, (0, 1)))[:10])
            raise InputDataError(
                Problem("bad_flag", "an insats flag is neither 0 nor 1", column=name, rows=rows)
            )
        flags[:, j] = vals.astype(np.int8)
    row, ins = np.nonzero(flags)
    if measure is not None:
        amounts = np.zeros((n, len(insatser)), np.float64)
        for j, name in enumerate(insatser):
            col = _amount_column(name, measure)
            if col not in register.columns:
                raise _fail("missing_column", f"missing amount column '{col}'", column=col)
            amounts[:, j] = pd.to_numeric(register[col], errors="coerce").to_numpy(dtype=np.float64)
        weight = amounts[row, ins]
        bad = ~np.isfinite(weight) | (weight < 0)
        if bad.any():
            rows = tuple(int(r) for r in np.unique(row[bad])[:10])
            raise InputDataError(
                Problem(
                    "missing_amount",
                    "an insats is given but its amount is missing or negative",
                    column=measure,
                    rows=rows,
                    row_count=int(np.unique(row[bad]).size),
                    hint="amounts are collected from 2007; choose years from 2007",
                )
            )
    else:
        weight = np.ones(len(row), np.float64)

    year = register["year"].to_numpy().astype(np.int64)
    person_codes, _ = pd.factorize(register[person].astype(str).to_numpy(), sort=False)
    # a unit is a person in a year: a person counted in two years is two units
    unit, _ = pd.factorize(person_codes.astype(np.int64) * 10_000 + year, sort=False)
    need = set(dims)
    attrs = _person_attributes(register, person, need) if need & {"sex", "age", "age_band"} else {}
    leaf: dict[str, np.ndarray] = {}
    for d in dims:
        if d == "insats":
            leaf[d] = np.asarray(insatser, dtype=object)[ins]
        elif d == "kommun":
            leaf[d] = register["kommun"].astype(str).to_numpy()[row]
        elif d == "lan":
            leaf[d] = refdata.lan_of(register["kommun"]).astype(str).to_numpy()[row]
        elif d == "sex":
            leaf[d] = attrs["sex"][row]
        elif d == "age_band":
            bands = np.asarray(age_bands, dtype=np.int64)
            age = attrs["age"]
            if (age < bands[0]).any():
                raise _fail("bad_age", "an age lies below the first age band", column="age")
            labels = np.asarray(age_band_labels(age_bands), dtype=object)
            leaf[d] = labels[np.searchsorted(bands, age, side="right") - 1][row]
        elif d == "age":
            leaf[d] = attrs["age"].astype(str)[row]
        elif d == "year":
            leaf[d] = year.astype(str)[row]
        else:
            if d not in register.columns:
                raise _fail("missing_column", f"no column for the dimension '{d}'", column=d)
            col = register[d]
            if col.isna().any():
                rows = tuple(int(i) for i in np.flatnonzero(col.isna().to_numpy())[:10])
                raise InputDataError(
                    Problem("missing_value", "the dimension has missing values", column=d, rows=rows)
                )
            leaf[d] = col.astype(str).to_numpy()[row]
    return _Records(leaf=leaf, person=unit[row].astype(np.int64), year=year[row], weight=weight, insats=ins)


def _group_sum(key: np.ndarray, *arrays: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Unique keys (sorted) and the sum of each array per key."""
    uniq, inv = np.unique(key, return_inverse=True)
    return uniq, [np.bincount(inv, weights=a, minlength=len(uniq)) for a in arrays]


def _single_valued(records: _Records, dim: str) -> bool:
    """True when every unit (person and year) has one value on ``dim`` in the table population."""
    codes, _ = pd.factorize(records.leaf[dim], sort=True)
    key = records.person * (int(codes.max()) + 1 if len(codes) else 1) + codes
    uniq = np.unique(key)
    persons = uniq // (int(codes.max()) + 1 if len(codes) else 1)
    return bool(len(persons) == len(np.unique(persons)))


def build_table(
    register: pd.DataFrame,
    dims: Sequence[str],
    unit: str = "persons",
    hierarchies: Mapping[str, Hierarchy] | Hierarchy | Sequence[Hierarchy] | None = None,
    measure: str | None = None,
    *,
    name: str | None = None,
    insatser: Sequence[str] | None = None,
    age_bands: Sequence[int] = AGE_BANDS,
    person: str = "personnummer",
    top: int = 3,
) -> Table:
    """Build a table of ``unit`` counts (or sums of ``measure``) by ``dims`` with every margin.

    ``dims`` are register columns or derived ones: ``kommun`` (within län within riket),
    ``lan``, ``insats`` (the 0/1 flags in long form), ``sex``, ``age_band``, ``year`` and any
    other column. ``unit`` is ``persons`` or ``insatser`` for counts; with ``measure`` (an amount
    column such as ``hours_personlig_assistans``, or ``hours`` for the three hours insatser) the
    cells are sums and ``top`` largest per-person contributions are kept for the magnitude rules.
    ``insatser`` limits the insatser counted (default: every insats collected in the years).
    A register with several years needs ``year`` among ``dims`` (persons are counted per year).
    """
    dims = tuple(dims)
    if not dims:
        raise PolicyError("a table needs at least one dimension")
    if len(set(dims)) != len(dims):
        raise PolicyError("a dimension occurs twice in the table")
    if "kommun" in dims and "lan" in dims:
        raise PolicyError(
            Problem("kommun_and_lan", "kommun already holds län as a level", hint="use kommun only")
        )
    if measure is None and unit not in COUNT_UNITS:
        raise PolicyError(Problem("bad_unit", f"unknown unit '{unit}'", hint="persons or insatser"))
    if len(register) == 0:
        raise _fail("empty_register", "the register has no rows")
    years = register["year"].to_numpy() if "year" in register.columns else np.array([])
    distinct_years = sorted({int(y) for y in pd.unique(years)})
    if len(distinct_years) > 1 and "year" not in dims:
        raise PolicyError(
            Problem(
                "years_without_dimension",
                "the register holds several years but the table has no year dimension",
                hint="add 'year' to the dimensions or select one year",
            )
        )
    chosen = _insatser_for(years, insatser, measure)
    rec = _records(register, dims, chosen, measure, age_bands, person)
    if len(rec.person) == 0:
        raise _fail("empty_population", "no person in the register has an insats of the table")
    if isinstance(hierarchies, Hierarchy):
        hierarchies = {hierarchies.dim: hierarchies}
    elif isinstance(hierarchies, list | tuple):
        hierarchies = {h.dim: h for h in hierarchies}
    hierarchies = dict(hierarchies or {})
    for d in dims:
        if d not in hierarchies:
            if d == "insats":
                labels = [V.get(i).label_sv for i in chosen]
                hierarchies[d] = Hierarchy.flat("insats", chosen, labels)
            else:
                hierarchies[d] = _default_hierarchy(d, rec.leaf[d], years, age_bands)
    hs = [hierarchies[d] for d in dims]
    # leaf node position of every record in every dimension
    leaf_nodes = []
    for d, h in zip(dims, hs, strict=True):
        index = h.leaf_index()
        codes = pd.Series(rec.leaf[d])
        pos = codes.map(index)
        if pos.isna().any():
            bad = sorted(set(codes[pos.isna()]))[:5]
            raise InputDataError(
                Problem(
                    "unknown_code",
                    f"{pos.isna().sum()} record(s) have a code outside the hierarchy of '{d}'",
                    column=d,
                    hint="codes not in the hierarchy: " + ", ".join(bad) if d != "personnummer" else None,
                )
            )
        leaf_nodes.append(pos.to_numpy(dtype=np.int64))

    sizes = np.array([h.size for h in hs], dtype=np.int64)
    strides = np.ones(len(dims), dtype=np.int64)
    for i in range(len(dims) - 2, -1, -1):
        strides[i] = strides[i + 1] * sizes[i + 1]
    n_cells = int(np.prod(sizes))

    # aggregate to (cell, unit) with every ancestor combination; dimensions on which a unit can
    # hold several values are expanded first and de-duplicated, single-valued ones last
    single = {d: d not in _MULTI_VALUED and _single_valued(rec, d) for d in dims}
    order = sorted(range(len(dims)), key=lambda i: (single[dims[i]], i))
    nodes = np.stack(leaf_nodes, axis=1) if leaf_nodes else np.zeros((len(rec.person), 0), np.int64)
    cell = nodes @ strides
    n_units = int(rec.person.max()) + 1
    key = cell * n_units + rec.person
    key, (weight,) = _group_sum(key, rec.weight)
    for i in order:
        anc = hs[i].ancestors()
        cell = key // n_units
        person_ix = key % n_units
        node_i = (cell // strides[i]) % sizes[i]
        a = anc[node_i]  # (records, depth)
        valid = a >= 0
        reps = valid.sum(axis=1)
        base = cell - node_i * strides[i]
        new_cell = np.repeat(base, reps) + a[valid] * strides[i]
        new_key = new_cell * n_units + np.repeat(person_ix, reps)
        new_w = np.repeat(weight, reps)
        if single[dims[i]]:
            key, weight = new_key, new_w
        else:
            key, (weight,) = _group_sum(new_key, new_w)
    if any(single[dims[i]] for i in order):
        # single-valued expansions never create duplicates, but keep keys sorted
        srt = np.argsort(key, kind="stable")
        key, weight = key[srt], weight[srt]
    cell = key // n_units
    value = np.bincount(cell, weights=weight, minlength=n_cells)
    contributors = np.bincount(cell, minlength=n_cells).astype(np.int64)
    top_arr = None
    if measure is not None:
        k = max(int(top), 2)
        order_w = np.lexsort((-weight, cell))
        c_sorted, w_sorted = cell[order_w], weight[order_w]
        start = np.searchsorted(c_sorted, np.arange(n_cells))
        rank = np.arange(len(c_sorted)) - start[c_sorted]
        keep = rank < k
        top_arr = np.zeros((n_cells, k), np.float64)
        top_arr[c_sorted[keep], rank[keep]] = w_sorted[keep]
    if measure is None and unit == "persons":
        value = contributors.astype(np.float64)

    # every cell's coordinates
    grid = np.indices(tuple(sizes)).reshape(len(dims), -1).T.astype(np.int64) if n_cells else None
    cells = pd.DataFrame(
        {
            d: pd.Categorical.from_codes(grid[:, j], categories=list(h.codes))
            for j, (d, h) in enumerate(zip(dims, hs, strict=True))
        }
    )
    leaf_masks = [h.is_leaf for h in hs]
    margin = np.zeros(n_cells, bool)
    for j in range(len(dims)):
        margin |= ~leaf_masks[j][grid[:, j]]
    if measure is None:
        cells["value"] = np.rint(value).astype(np.int64)
    else:
        cells["value"] = value
    cells["contributors"] = contributors
    cells["margin"] = margin

    rel, notes = _relations(dims, hs, grid, strides, unit, measure, chosen, cells["value"].to_numpy(), single)
    scope = {
        "years": ",".join(str(y) for y in distinct_years),
        "insatser": ",".join(chosen),
    }
    out_unit = (
        unit if measure is None else (V.get(measure).unit if measure in V.BY_NAME else "hours per month")
    )
    return Table(
        name=name or "_".join(dims),
        dims=dims,
        unit=str(out_unit),
        measure=measure,
        scope=scope,
        hierarchies={d: h for d, h in zip(dims, hs, strict=True)},
        cells=cells,
        nodes=grid,
        relations=rel,
        top=top_arr,
        notes=notes,
    )


def _ragged_arange(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + c)`` for each pair, vectorised."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    offsets = np.repeat(np.cumsum(counts) - counts, counts)
    return np.repeat(starts, counts) + (np.arange(total) - offsets)


def _relations(
    dims: tuple[str, ...],
    hs: list[Hierarchy],
    grid: np.ndarray,
    strides: np.ndarray,
    unit: str,
    measure: str | None,
    chosen: list[str],
    value: np.ndarray,
    single: Mapping[str, bool],
) -> tuple[Relations, list[str]]:
    """One relation per line of the table, with the kind that holds for the table's unit."""
    parents, kinds, dimpos, counts, children = [], [], [], [], []
    notes: list[str] = []
    additive = measure is not None or unit == "insatser"
    ins_pos = dims.index("insats") if "insats" in dims else None
    ins_leaf = hs[ins_pos].is_leaf if ins_pos is not None else None
    value = value.astype(np.float64)
    for j, (d, h) in enumerate(zip(dims, hs, strict=True)):
        p = h.parent_array
        n_child = np.bincount(p[p >= 0], minlength=h.size)
        order = np.argsort(p, kind="stable")
        order = order[p[order] >= 0]
        child_ptr = np.concatenate([[0], np.cumsum(n_child)])
        node = grid[:, j]
        par = np.flatnonzero(n_child[node] > 0)
        if len(par) == 0:
            continue
        g = node[par]
        cnt = n_child[g]
        pos = _ragged_arange(child_ptr[g], cnt)
        ch = np.repeat(par - g * strides[j], cnt) + order[pos] * strides[j]
        if additive or single[d]:
            kind = np.full(len(par), SUM, np.int8)
        elif d in _KOMMUN_DIMS and ((ins_pos is not None) or (ins_pos is None and len(chosen) == 1)):
            # rule 9: one insats is never reported by two kommuner, so its kommun margins add up
            if ins_pos is None:
                kind = np.full(len(par), SUM, np.int8)
            else:
                kind = np.where(ins_leaf[grid[par, ins_pos]], SUM, UNION).astype(np.int8)
            sums = np.add.reduceat(value[ch], np.cumsum(cnt) - cnt) if len(ch) else np.zeros(0)
            broken = (kind == SUM) & ~np.isclose(sums, value[par])
            if broken.any():
                kind[broken] = UNION
                notes.append(
                    f"{int(broken.sum())} kommun margin(s) of one insats do not add up "
                    "(the same insats from two kommuner, rule 9): treated as bounds"
                )
        else:
            kind = np.full(len(par), UNION, np.int8)
        parents.append(par)
        kinds.append(kind)
        dimpos.append(np.full(len(par), j, np.int8))
        counts.append(cnt)
        children.append(ch)
        if d == "insats" and not additive:
            housing = [i for i, c in enumerate(h.codes) if c in V.HOUSING]
            if len(housing) >= 2:
                # rule 5: at most one housing insats per person, so the housing cells are disjoint
                top = np.flatnonzero(~h.is_leaf[node] & (p[node] < 0) & (n_child[node] > 0))
                hn = np.asarray(housing, np.int64)
                hch = (top - node[top] * strides[j])[:, None] + hn[None, :] * strides[j]
                ok = value[hch].sum(axis=1) <= value[top] + 1e-9
                if not ok.all():
                    notes.append(
                        f"{int((~ok).sum())} margin(s) have persons with two housing insatser "
                        "(rule 5): housing cells not treated as disjoint there"
                    )
                top, hch = top[ok], hch[ok]
                parents.append(top)
                kinds.append(np.full(len(top), DISJOINT, np.int8))
                dimpos.append(np.full(len(top), j, np.int8))
                counts.append(np.full(len(top), len(hn), np.int64))
                children.append(hch.reshape(-1))
    if parents:
        cnt_all = np.concatenate(counts).astype(np.int64)
        rel = Relations(
            parent=np.concatenate(parents).astype(np.int64),
            kind=np.concatenate(kinds).astype(np.int8),
            dim=np.concatenate(dimpos).astype(np.int8),
            ptr=np.concatenate([[0], np.cumsum(cnt_all)]).astype(np.int64),
            children=np.concatenate(children).astype(np.int64),
        )
    else:
        rel = Relations(
            *(np.zeros(0, np.int64) for _ in range(3)), np.zeros(1, np.int64), np.zeros(0, np.int64)
        )
    _check_relations(rel, value)
    return rel, notes


def _check_relations(rel: Relations, value: np.ndarray) -> None:
    """The true table satisfies every relation; anything else is a defect in building it."""
    if rel.size == 0:
        return
    starts = rel.ptr[:-1]
    sums = np.add.reduceat(value[rel.children], starts)
    maxs = np.maximum.reduceat(value[rel.children], starts)
    v = value[rel.parent]
    tol = 1e-6 * np.maximum(1.0, np.abs(v))
    ok = np.where(
        rel.kind == SUM,
        np.abs(sums - v) <= tol,
        np.where(rel.kind == UNION, (maxs <= v + tol) & (v <= sums + tol), sums <= v + tol),
    )
    if not ok.all():  # pragma: no cover - would be a defect in the builder
        raise AssertionError(f"{int((~ok).sum())} relation(s) do not hold on the table")


# ---------------------------------------------------------------------------------------------
# primary suppression


def primary_cells(table: Table, rules: Rules) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reason bits, upper and lower protection level of each cell (0 where not primary)."""
    v = table.cells["value"].to_numpy(dtype=np.float64)
    n = table.cells["contributors"].to_numpy(dtype=np.float64)
    f = rules.frequency
    small = (n > 0) & (n < f.threshold)
    zero = (n == 0) & (not f.zero_is_safe)
    reason = np.where(small, REASON_FREQUENCY, 0) | np.where(zero, REASON_ZERO, 0)
    if table.measure is None:
        upper = np.where(small, np.maximum(1.0, f.threshold - n), 0.0)
        upper = np.where(zero, float(f.threshold), upper)
        lower = np.where(small, np.minimum(1.0, v), 0.0)
    else:
        share = f.safety_range / 100.0
        upper = np.where(small, share * v, 0.0)
        lower = upper.copy()
        upper = np.where(zero, 1.0, upper)
        top = table.top if table.top is not None else np.zeros((len(v), 2))
        for rule in rules.dominance:
            if rule.n > top.shape[1]:
                raise PolicyError(
                    f"the dominance rule needs the {rule.n} largest contributions; "
                    f"the table '{table.name}' keeps {top.shape[1]} (build it with top={rule.n})"
                )
            largest = top[:, : rule.n].sum(axis=1)
            hit = (v > 0) & (largest * 100.0 > rule.k * v)
            level = largest * 100.0 / rule.k - v
            reason = reason | np.where(hit, REASON_DOMINANCE, 0)
            upper = np.where(hit, np.maximum(upper, level), upper)
            lower = np.where(hit, np.maximum(lower, level), lower)
        if rules.p_rule is not None:
            x1, x2 = top[:, 0], top[:, 1]
            rest = v - x1 - x2
            hit = (v > 0) & (rest * 100.0 < rules.p_rule.p * x1)
            level = rules.p_rule.p / 100.0 * x1 - rest
            reason = reason | np.where(hit, REASON_P, 0)
            upper = np.where(hit, np.maximum(upper, level), upper)
            lower = np.where(hit, np.maximum(lower, level), lower)
    lower = np.minimum(lower, v)
    return reason.astype(np.int64), upper, lower


# ---------------------------------------------------------------------------------------------
# the joint problem of linked tables (shared cells identified)


def _link_keys(table: Table, dims: list[str]) -> np.ndarray:
    """Text key per cell: codes over ``dims``, a län being a level of the kommun dimension."""
    out = np.full(table.size, "", dtype=object)
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
    grids: dict[int, Any] = field(default_factory=dict)  # per table, for the local LPs


def _joint(tables: list[Table], rules: Rules) -> _Joint:
    groups: dict[tuple, list[int]] = {}
    for i, t in enumerate(tables):
        groups.setdefault(t.link_key(), []).append(i)
    ids: list[np.ndarray] = [np.zeros(0, np.int64)] * len(tables)
    n = 0
    for members in groups.values():
        if len(members) == 1:
            ids[members[0]] = np.arange(tables[members[0]].size, dtype=np.int64) + n
            n += tables[members[0]].size
            continue
        dims = sorted({d if d != "lan" else "kommun" for i in members for d in tables[i].dims})
        keys = np.concatenate([_link_keys(tables[i], dims) for i in members])
        codes, uniq = pd.factorize(keys, sort=False)
        start = 0
        for i in members:
            ids[i] = codes[start : start + tables[i].size].astype(np.int64) + n
            start += tables[i].size
        n += len(uniq)
    value = np.zeros(n)
    margin = np.zeros(n, bool)
    upl = np.zeros(n)
    lpl = np.zeros(n)
    reason = np.zeros(n, np.int64)
    known = np.zeros(n, bool)
    parents, kinds, counts, children = [], [], [], []
    for t, gid in zip(tables, ids, strict=True):
        v = t.values
        if (known[gid] & ~np.isclose(value[gid], v)).any():
            raise InputDataError(
                Problem(
                    "linked_tables_disagree",
                    f"table '{t.name}' disagrees with a linked table on a shared cell",
                    hint="build linked tables from the same register and population",
                )
            )
        known[gid] = True
        value[gid] = v
        margin[gid] |= t.cells["margin"].to_numpy()
        r, u, lo = primary_cells(t, rules)
        reason[gid] |= r
        upl[gid] = np.maximum(upl[gid], u)
        lpl[gid] = np.maximum(lpl[gid], lo)
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
    own_cell = np.concatenate(ids) if ids else np.zeros(0, np.int64)
    own_table = np.concatenate([np.full(t.size, i) for i, t in enumerate(tables)]) if tables else own_cell
    own_local = np.concatenate([np.arange(t.size) for t in tables]) if tables else own_cell
    o = np.argsort(own_cell, kind="stable")
    owner_ptr = np.concatenate([[0], np.cumsum(np.bincount(own_cell, minlength=n))]).astype(np.int64)
    return _Joint(
        tables=tables,
        ids=ids,
        n=n,
        value=value,
        margin=margin,
        upl=upl,
        lpl=lpl,
        primary=reason > 0,
        reason=reason,
        parent=parent,
        kind=kind,
        ptr=ptr,
        children=ch,
        member_ptr=member_ptr,
        member_rel=mem_rel[order],
        owner_ptr=owner_ptr,
        owner_table=own_table[o],
        owner_local=own_local[o],
    )


# ---------------------------------------------------------------------------------------------
# secondary suppression


def _cost(joint: _Joint) -> np.ndarray:
    """What hiding a cell costs: mostly one per cell, a little more for larger cells and margins."""
    return (1.0 + 0.1 * np.log1p(np.maximum(joint.value, 0.0))) * np.where(joint.margin, 2.0, 1.0)


def _children_lists(h: Hierarchy) -> list[np.ndarray]:
    """Each node's children (positions), in order."""
    p = h.parent_array
    order = np.argsort(p, kind="stable")
    order = order[p[order] >= 0]
    bounds = np.searchsorted(p[order], np.arange(h.size + 1))
    return [order[bounds[i] : bounds[i + 1]] for i in range(h.size)]


def _hierarchy_sets(
    h: Hierarchy, kids: list[np.ndarray], node: int, m: int, edge_value: np.ndarray
) -> np.ndarray:
    """Nodes of one dimension around ``node``: itself, its ancestors, up to ``m`` siblings and
    their descendants (up to ``m`` per node and level), preferring large ``edge_value``."""
    parent = h.parents
    chosen = {node}
    a = parent[node]
    while a >= 0:
        chosen.add(a)
        a = parent[a]

    def best(nodes: np.ndarray) -> np.ndarray:
        if len(nodes) > m:
            return nodes[np.argsort(-edge_value[nodes], kind="stable")[:m]]
        return nodes

    sibs = kids[parent[node]] if parent[node] >= 0 else np.zeros(0, np.int64)
    sibs = best(sibs[sibs != node])
    frontier = [node, *sibs.tolist()]
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


def _neighbourhood(joint: _Joint, g: int, m: int) -> np.ndarray:
    """Global cells near ``g`` in every table that holds it (a cross of per-dimension sets)."""
    out = []
    for k in range(joint.owner_ptr[g], joint.owner_ptr[g + 1]):
        ti = int(joint.owner_table[k])
        t = joint.tables[ti]
        grid = _grid(joint, ti)
        local = int(joint.owner_local[k])
        coords = t.nodes[local]
        flat = np.zeros(1, np.int64)
        for j, d in enumerate(t.dims):
            h = t.hierarchies[d]
            # value of the cell one step away along this dimension, for ranking
            edge = grid.values[local + (np.arange(h.size) - coords[j]) * grid.strides[j]]
            nodes = _hierarchy_sets(h, grid.kids[j], int(coords[j]), m, edge)
            flat = (flat[:, None] + nodes[None, :] * grid.strides[j]).reshape(-1)
        out.append(joint.ids[ti][flat])
    return np.unique(np.concatenate(out))


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
    k = len(cells)
    v = joint.value
    pos = np.full(joint.n, -1, np.int64)
    pos[cells] = np.arange(k)
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

    cap = 10.0 * float(v.max() if len(v) else 1.0) + abs(delta) + 10.0
    ub_p = np.full(k, cap)
    ub_m = np.maximum(v[cells], 0.0)
    t = int(pos[g])
    if delta >= 0:
        ub_m[t] = 0.0
    else:
        ub_p[t] = 0.0
    # rows with one live cell are bounds on it: y = 0 for an equation, a * y <= b otherwise
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
    if (ub_p[t] if delta >= 0 else ub_m[t]) < abs(delta) - 1e-7 * max(1.0, abs(delta)):
        return None
    # columns: y+ of cells that may go up, then y- of cells that may go down
    col_p = np.where(ub_p > 0, np.cumsum(ub_p > 0) - 1, -1)
    n_p = int((ub_p > 0).sum())
    col_m = np.where(ub_m > 0, n_p + np.cumsum(ub_m > 0) - 1, -1)
    target = int(col_p[t] if delta >= 0 else col_m[t])
    n_col = n_p + int((ub_m > 0).sum())
    live = active[e_row]
    r, c, a = e_row[live], e_col[live], e_coef[live]
    row_ix = np.cumsum(active) - 1
    ep, em = col_p[c] >= 0, col_m[c] >= 0
    mat = sp.csr_matrix(
        (
            np.concatenate([a[ep], -a[em]]),
            (np.concatenate([row_ix[r[ep]], row_ix[r[em]]]), np.concatenate([col_p[c[ep]], col_m[c[em]]])),
        ),
        shape=(int(active.sum()), n_col),
    )
    hi = rhs[active]
    lo = np.where(is_eq[active], hi, -np.inf)
    w = np.where(hidden[cells], 1e-3, cost[cells] / max(abs(delta), 1e-9))
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


def _solve_model(m: _Model | None) -> tuple[np.ndarray, np.ndarray] | None:
    """The deviation of a protection LP (cells and values), or None when it has none."""
    if m is None:
        return None
    res = milp(
        m.c,
        constraints=LinearConstraint(m.a, m.lo, m.hi) if m.a.shape[0] else (),
        bounds=Bounds(m.lb, m.ub),
        options={"presolve": False},  # small problems: presolve costs more than it saves
    )
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
    neighbourhood widens until one exists."""
    for m in widths:
        found = _solve_model(_protection_model(joint, hidden, cost, g, delta, _neighbourhood(joint, g, m)))
        if found is not None:
            return found
    # every cell free always works (scale the table up, or empty it)
    found = _solve_model(_protection_model(joint, hidden, cost, g, delta, np.arange(joint.n)))
    if found is None:  # pragma: no cover - scaling every cell is always a solution
        raise RuntimeError("no protection exists for a sensitive cell")
    return found


def protect(
    tables: Sequence[Table] | Table,
    rules: Rules | FrequencyRule | None = None,
    *,
    method: str = "hypercube",
    max_rounds: int = 10,
    workers: int = 1,
) -> ProtectedTables:
    """Primary and secondary suppression of (linked) tables until the attacker finds nothing.

    Primary cells come from ``rules``. ``method="hypercube"`` first gives each primary cell a
    small balanced cube of hidden cells per direction (vectorised, checked against every
    relation of the linked tables, the cheapest kept); ``"lp"`` skips that. Every primary cell
    still unprotected gets the cheapest local deviation found by an LP (HiGHS). Then the
    independent attacker (:func:`lsssdc.disclosure.audit.audit`) runs; any cell it can narrow
    too much is repaired the same way, until it passes. Tables that cannot share cells (other
    unit, measure or population) are protected separately, in ``workers`` processes if asked.
    The result does not depend on ``workers``.
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
    groups: dict[tuple, list[int]] = {}
    for i, t in enumerate(tables):
        groups.setdefault(t.link_key(), []).append(i)
    members = list(groups.values())
    jobs = [([tables[i] for i in m], rules, method, max_rounds) for m in members]
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


def _protect_group(tables: list[Table], rules: Rules, method: str, max_rounds: int) -> ProtectedTables:
    """Protect tables that may share cells, as one problem."""
    from lsssdc.disclosure.audit import audit as attack  # the independent attacker

    started = time.perf_counter()
    joint = _joint(tables, rules)
    cost = _cost(joint)
    hidden = joint.primary.copy()
    wit = _Witnesses()
    if method == "hypercube":
        done_up, done_down = _hypercubes(joint, hidden, cost, wit)
    else:
        done_up = ~joint.primary
        done_down = ~joint.primary | (joint.lpl <= 0)
    t_cubes = time.perf_counter() - started
    repaired = 0
    for g in np.flatnonzero(~done_up | ~done_down):  # cells the cubes did not protect
        for done, sign, delta in ((done_up, 1, joint.upl[g]), (done_down, -1, joint.lpl[g])):
            if done[g] or delta <= 0:
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
            "audit_rounds": rounds,
            "audit_seconds": report.summary["seconds"],
        }
    )
    return result


def _protect_group_light(tables: list[Table], rules: Rules, method: str, max_rounds: int) -> ProtectedTables:
    """As :func:`_protect_group`, without sending the tables back from a worker process."""
    part = _protect_group(tables, rules, method, max_rounds)
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
    res = ProtectedTables(tables, rules, status, reason, upper, lower, witnesses=witnesses)
    res.report.update(res.counts())
    summed = ("cube_seconds", "repair_seconds", "lp_repairs", "audit_seconds")
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
    )
    res.report.update(res.counts())
    return res


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
) -> list[np.ndarray]:
    """Whether each candidate deviation (entries cand, cell, y) keeps every relation true,
    for each of ``ys`` (deviations on the same entries, e.g. up and down): the expansion of
    the entries to their relations is shared."""
    tol = 1e-7
    v = joint.value
    if len(joint.parent) == 0:
        out = []
        for y in ys:
            ok = np.ones(n_cand, bool)
            ok[cand[v[cell] + y < -tol]] = False
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
        if down.any():
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

    def add(self, target: np.ndarray, direction: np.ndarray, cells: np.ndarray, y: np.ndarray) -> None:
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
        hidden = joint.primary.copy()
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


def _hypercubes(
    joint: _Joint,
    hidden: np.ndarray,
    cost: np.ndarray,
    witnesses: _Witnesses,
    batch: int = 2048,
) -> tuple[np.ndarray, np.ndarray]:
    """Protect primary cells with balanced cubes (HITAS-like, bounds-aware); vectorised.

    For each primary cell a cube is built per table: along each dimension the cell pairs with a
    sibling (+/-), or stays (allowed where the line is a union with room), and descends to a
    leaf where it is itself a margin. Candidate cubes are checked against every relation of
    the linked tables; the cheapest one that works is hidden and kept as a witness. Returns per
    (global) cell whether it is protected upwards and downwards.
    """
    stats = _relation_stats(joint)
    done_up = ~joint.primary.copy()
    done_down = ~joint.primary.copy()
    done_down |= joint.lpl <= 0
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
