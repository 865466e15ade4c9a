"""Building a table from the LSS register: records per person or person-insats, the cells of a
cross-classification with all margins, and the relations a reader knows between them."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, cast

import numpy as np
import pandas as pd

from lsssdc import refdata
from lsssdc.disclosure.tables.model import (
    _KOMMUN_DIMS,
    _MULTI_VALUED,
    AGE_BANDS,
    COUNT_UNITS,
    DISJOINT,
    SUM,
    UNION,
    CodeTree,
    Relations,
    Table,
    _ragged_arange,
    age_band_labels,
    kommun_tree,
    lan_tree,
)
from lsssdc.errors import InputDataError, PolicyError, Problem
from lsssdc.identity import personnummer as pnr
from lsssdc.register import rules as register_rules
from lsssdc.register import variables as V

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


def _default_hierarchy(dim: str, values: np.ndarray, years: np.ndarray, age_bands: Sequence[int]) -> CodeTree:
    present = sorted({str(v) for v in pd.unique(values)})
    if dim == "kommun":
        codes = set(present)
        for y in {int(x) for x in pd.unique(years)}:
            codes |= set(refdata.kommun_codes(y))
        return kommun_tree(codes)
    if dim == "lan":
        return lan_tree(set(present) | set(refdata.lan()["lan_kod"]))
    if dim == "sex":
        return CodeTree.flat("sex", ["1", "2"], ["Man", "Kvinna"])
    if dim == "age_band":
        labels = age_band_labels(age_bands)
        return CodeTree.flat("age_band", labels, labels)
    if dim == "year":
        return CodeTree.flat("year", present, total=False)
    if dim == "insats":
        raise AssertionError("insats hierarchy is built from the chosen insatser")  # pragma: no cover
    return CodeTree.flat(dim, present)


@dataclass
class _Records:
    """Long form: one record per person-insats pair (or per row for magnitude), leaf coordinates."""

    leaf: dict[str, np.ndarray]  # dim -> code per record
    person: np.ndarray  # dense person index (per year: a person in two years is two units)
    year: np.ndarray
    weight: np.ndarray  # 1 per pair, or the amount
    insats: np.ndarray  # insats position per record
    key: np.ndarray | None = None  # record key (uint32) per record, for the cell key method


def _check_columns(
    register: pd.DataFrame, insatser: list[str], person: str, record_keys: np.ndarray | None
) -> None:
    """Refuse a register that lacks what the table counts by, before any work is done."""
    n = len(register)
    if record_keys is not None and (len(record_keys) != n or np.asarray(record_keys).dtype != np.uint32):
        raise PolicyError("record keys: one unsigned 32-bit key per register row")
    if "year" not in register.columns:
        raise _fail("missing_column", "the register has no year column", column="year")
    missing = [c for c in insatser if c not in register.columns]
    if missing:
        raise _fail("missing_column", f"missing insats column(s): {', '.join(missing)}")
    if person not in register.columns:
        raise _fail("missing_column", "the table needs a person identifier column", column=person)


def _flags(register: pd.DataFrame, insatser: list[str]) -> np.ndarray:
    """The 0/1 insats flags as a matrix (rows x insatser); anything else in a flag is refused."""
    flags = np.zeros((len(register), len(insatser)), np.int8)
    for j, name in enumerate(insatser):  # a column per insats, not a row loop
        col = register[name]
        vals = pd.to_numeric(col, errors="coerce").fillna(0).to_numpy()
        if not np.isin(vals, (0, 1)).all():
            rows = tuple(int(i) for i in np.flatnonzero(~np.isin(vals, (0, 1)))[:10])
            raise InputDataError(
                Problem("bad_flag", "an insats flag is neither 0 nor 1", column=name, rows=rows)
            )
        flags[:, j] = vals.astype(np.int8)
    return flags


def _weights(
    register: pd.DataFrame, insatser: list[str], measure: str | None, row: np.ndarray, ins: np.ndarray
) -> np.ndarray:
    """What each person-insats record adds to its cells: one, or its amount (which must be given
    and not negative wherever the insats is)."""
    if measure is None:
        return np.ones(len(row), np.float64)
    amounts = np.zeros((len(register), len(insatser)), np.float64)
    for j, name in enumerate(insatser):
        amount_col = _amount_column(name, measure)
        if amount_col not in register.columns:
            raise _fail("missing_column", f"missing amount column '{amount_col}'", column=amount_col)
        amounts[:, j] = pd.to_numeric(register[amount_col], errors="coerce").to_numpy(dtype=np.float64)
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
    return weight


def _leaf_codes(
    register: pd.DataFrame,
    dims: Sequence[str],
    insatser: list[str],
    age_bands: Sequence[int],
    person: str,
    row: np.ndarray,
    ins: np.ndarray,
    year: np.ndarray,
) -> dict[str, np.ndarray]:
    """Each record's code in every dimension, derived ones (län, sex, age band) included."""
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
    return leaf


def _records(
    register: pd.DataFrame,
    dims: Sequence[str],
    insatser: list[str],
    measure: str | None,
    age_bands: Sequence[int],
    person: str,
    record_keys: np.ndarray | None = None,
) -> _Records:
    """The register in long form (one record per person-insats pair), checked as it is read."""
    _check_columns(register, insatser, person, record_keys)
    row, ins = np.nonzero(_flags(register, insatser))
    weight = _weights(register, insatser, measure, row, ins)
    year = register["year"].to_numpy().astype(np.int64)
    person_codes, _ = pd.factorize(register[person].astype(str).to_numpy(), sort=False)
    # a unit is a person in a year: a person counted in two years is two units
    unit, _ = pd.factorize(person_codes.astype(np.int64) * 10_000 + year, sort=False)
    leaf = _leaf_codes(register, dims, insatser, age_bands, person, row, ins, year)
    return _Records(
        leaf=leaf,
        person=unit[row].astype(np.int64),
        year=year[row],
        weight=weight,
        insats=ins,
        key=None if record_keys is None else np.asarray(record_keys, dtype=np.uint32)[row],
    )


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


class _Shape(NamedTuple):
    """The cell grid of a table: nodes per dimension, flat-index strides, number of cells."""

    sizes: np.ndarray
    strides: np.ndarray
    n_cells: int


class _CellStats(NamedTuple):
    """Per cell what the table publishes or keeps for the rules: value, contributors, cell key
    (for the cell key method) and the largest contributions (for the magnitude rules)."""

    value: np.ndarray
    contributors: np.ndarray
    cell_key: np.ndarray | None
    top: np.ndarray | None


def _check_request(
    register: pd.DataFrame, dims: tuple[str, ...], unit: str, measure: str | None
) -> tuple[np.ndarray, list[int]]:
    """Refuse a table that cannot be built as asked; the register's years (per row and distinct)."""
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
    return years, distinct_years


def _hierarchies_for(
    dims: tuple[str, ...],
    hierarchies: Mapping[str, CodeTree] | CodeTree | Sequence[CodeTree] | None,
    chosen: list[str],
    rec: _Records,
    years: np.ndarray,
    age_bands: Sequence[int],
) -> list[CodeTree]:
    """The code tree of each dimension: the one given, else a default built from the codes."""
    if isinstance(hierarchies, CodeTree):
        hierarchies = {hierarchies.dim: hierarchies}
    elif isinstance(hierarchies, list | tuple):
        hierarchies = {h.dim: h for h in hierarchies}
    hierarchies = dict(cast("Mapping[str, CodeTree] | None", hierarchies) or {})
    for d in dims:
        if d not in hierarchies:
            if d == "insats":
                labels = [V.get(i).label_sv for i in chosen]
                hierarchies[d] = CodeTree.flat("insats", chosen, labels)
            else:
                hierarchies[d] = _default_hierarchy(d, rec.leaf[d], years, age_bands)
    return [hierarchies[d] for d in dims]


def _leaf_nodes(dims: tuple[str, ...], hs: list[CodeTree], rec: _Records) -> list[np.ndarray]:
    """Each record's leaf node in every dimension; a code outside the hierarchy is refused."""
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
    return leaf_nodes


def _shape(hs: list[CodeTree]) -> _Shape:
    """Sizes and row-major strides of the grid of every node combination."""
    sizes = np.array([h.size for h in hs], dtype=np.int64)
    strides = np.ones(len(hs), dtype=np.int64)
    for i in range(len(hs) - 2, -1, -1):
        strides[i] = strides[i + 1] * sizes[i + 1]
    return _Shape(sizes, strides, int(np.prod(sizes)))


def _aggregate(
    rec: _Records,
    dims: tuple[str, ...],
    hs: list[CodeTree],
    leaf_nodes: list[np.ndarray],
    shape: _Shape,
    single: Mapping[str, bool],
) -> tuple[np.ndarray, np.ndarray, int]:
    """Keys (cell x unit, sorted) and their weights for every cell, margins included, so that a
    unit counts once in a margin however many of its records the margin covers; and the units."""
    sizes, strides = shape.sizes, shape.strides
    # aggregate to (cell, unit) with every ancestor combination; dimensions on which a unit can
    # hold several values are expanded first and de-duplicated, single-valued ones last
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
    return key, weight, n_units


def _cell_stats(
    rec: _Records,
    key: np.ndarray,
    weight: np.ndarray,
    n_units: int,
    n_cells: int,
    unit: str,
    measure: str | None,
    top: int,
) -> _CellStats:
    """Per cell its value, contributors, cell key and top contributions, from the unit keys."""
    cell = key // n_units
    value = np.bincount(cell, weights=weight, minlength=n_cells)
    contributors = np.bincount(cell, minlength=n_cells).astype(np.int64)
    cell_key = None
    if rec.key is not None and measure is None:
        unit_key = np.zeros(n_units, np.uint32)
        unit_key[rec.person] = rec.key
        times = weight if unit == "insatser" else np.ones(len(cell))
        cell_key = _key_sums(cell, unit_key[key % n_units], times, n_cells)
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
    return _CellStats(value, contributors, cell_key, top_arr)


def _cell_frame(
    dims: tuple[str, ...],
    hs: list[CodeTree],
    shape: _Shape,
    stats: _CellStats,
    unit: str,
    measure: str | None,
    age_bands: Sequence[int],
    name: str | None,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Every cell's coordinates (grid) and the cells table, structural zeros marked and checked."""
    sizes, n_cells = shape.sizes, shape.n_cells
    # every cell's coordinates
    # (never None: n_cells > 0, as every record's code was found in every dimension above)
    grid = cast(
        np.ndarray, np.indices(tuple(sizes)).reshape(len(dims), -1).T.astype(np.int64) if n_cells else None
    )
    cells = pd.DataFrame(
        {
            d: pd.Categorical.from_codes(grid[:, j], categories=list(h.codes))  # type: ignore[call-overload]
            for j, (d, h) in enumerate(zip(dims, hs, strict=True))
        }
    )
    leaf_masks = [h.is_leaf for h in hs]
    margin = np.zeros(n_cells, bool)
    for j in range(len(dims)):
        margin |= ~leaf_masks[j][grid[:, j]]
    if measure is None:
        cells["value"] = np.rint(stats.value).astype(np.int64)
    else:
        cells["value"] = stats.value
    cells["contributors"] = stats.contributors
    cells["margin"] = margin
    cells["structural"] = _structural(dims, hs, grid, age_bands) if n_cells else np.zeros(0, bool)
    if measure is None and unit in COUNT_UNITS:
        _check_structural(name or "_".join(dims), cells)
    if stats.cell_key is not None:
        cells["cell_key"] = stats.cell_key
    return grid, cells


def build_table(
    register: pd.DataFrame,
    dims: Sequence[str],
    unit: str = "persons",
    hierarchies: Mapping[str, CodeTree] | CodeTree | Sequence[CodeTree] | None = None,
    measure: str | None = None,
    *,
    name: str | None = None,
    insatser: Sequence[str] | None = None,
    age_bands: Sequence[int] = AGE_BANDS,
    person: str = "personnummer",
    top: int = 3,
    record_keys: np.ndarray | None = None,
) -> Table:
    """Build a table of ``unit`` counts (or sums of ``measure``) by ``dims`` with every margin.

    ``dims`` are register columns or derived ones: ``kommun`` (within län within riket),
    ``lan``, ``insats`` (the 0/1 flags in long form), ``sex``, ``age_band``, ``year`` and any
    other column. ``unit`` is ``persons`` or ``insatser`` for counts; with ``measure`` (an amount
    column such as ``hours_personlig_assistans``, or ``hours`` for the three hours insatser) the
    cells are sums and ``top`` largest per-person contributions are kept for the magnitude rules.
    ``insatser`` limits the insatser counted (default: every insats collected in the years).
    A register with several years needs ``year`` among ``dims`` (persons are counted per year).
    ``record_keys`` (one unsigned 32-bit key per register row, the same for a person in every
    row) adds ``cell_key``: per cell the sum modulo 2**32 of the keys of what it counts, once
    per person (persons) or per person-insats pair (insatser), for the cell key method.
    Every cell the register's rules make zero (an insats at an age or in a personkrets the
    rules exclude) is marked ``structural``; a register that breaks such a rule is refused.
    """
    dims = tuple(dims)
    years, distinct_years = _check_request(register, dims, unit, measure)
    chosen = _insatser_for(years, insatser, measure)
    rec = _records(register, dims, chosen, measure, age_bands, person, record_keys)
    if len(rec.person) == 0:
        raise _fail("empty_population", "no person in the register has an insats of the table")
    hs = _hierarchies_for(dims, hierarchies, chosen, rec, years, age_bands)
    leaf_nodes = _leaf_nodes(dims, hs, rec)
    shape = _shape(hs)
    single = {d: d not in _MULTI_VALUED and _single_valued(rec, d) for d in dims}
    key, weight, n_units = _aggregate(rec, dims, hs, leaf_nodes, shape, single)
    stats = _cell_stats(rec, key, weight, n_units, shape.n_cells, unit, measure, top)
    grid, cells = _cell_frame(dims, hs, shape, stats, unit, measure, age_bands, name)
    value = cells["value"].to_numpy()
    rel, notes = _relations(dims, hs, grid, shape.strides, unit, measure, chosen, value, single)
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
        hierarchies=dict(zip(dims, hs, strict=True)),
        cells=cells,
        nodes=grid,
        relations=rel,
        top=stats.top,
        notes=notes,
    )


def _key_sums(cell: np.ndarray, keys: np.ndarray, times: np.ndarray, n_cells: int) -> np.ndarray:
    """Per cell the sum of ``times * keys`` modulo 2**32, exact and independent of the order of
    the records (two 16-bit halves summed apart), so the same persons give the same key in any
    table."""
    k = keys.astype(np.uint64)
    lo = np.bincount(cell, weights=times * (k & 0xFFFF).astype(np.float64), minlength=n_cells)
    hi = np.bincount(cell, weights=times * (k >> 16).astype(np.float64), minlength=n_cells)
    lo_i = np.rint(lo).astype(np.uint64)
    hi_i = np.rint(hi).astype(np.uint64)
    return (((hi_i & 0xFFFF) << 16) + lo_i & 0xFFFFFFFF).astype(np.uint32)


_BAND = re.compile(r"^(\d+)(?:-(\d+)|\+)$")


def _age_span(code: str) -> tuple[float, float] | None:
    """The ages a band or age code covers ('7-12', '80+', '15'); None for anything else."""
    if code.isdigit():
        return float(code), float(code)
    m = _BAND.match(code)
    if not m:
        return None
    return float(m.group(1)), float(m.group(2)) if m.group(2) else np.inf


def _structural(
    dims: Sequence[str], hs: Sequence[CodeTree], grid: np.ndarray, age_bands: Sequence[int]
) -> np.ndarray:
    """Cells the register's rules make zero: an insats at an age or in a personkrets the rules
    exclude (R04, R10-R15). Ages are completed years at the measurement date, so a person of age
    a turns a or a + 1 in the year; a band is excluded only if no age in it can turn an allowed
    age."""
    out = np.zeros(len(grid), bool)
    if "insats" not in dims:
        return out
    j_ins = list(dims).index("insats")
    ins_codes = np.asarray(hs[j_ins].codes, dtype=object)[grid[:, j_ins]]
    for dim in ("age_band", "age"):
        if dim not in dims:
            continue
        j = list(dims).index(dim)
        spans = [_age_span(str(c)) for c in hs[j].codes]
        for insats, (_rule, first, last) in register_rules.INSATS_AGES.items():
            lo = -np.inf if first is None else first
            hi = np.inf if last is None else last
            bad_nodes: list[int] | np.ndarray = [
                i for i, sp in enumerate(spans) if sp is not None and (sp[1] + 1 < lo or sp[0] > hi)
            ]
            if bad_nodes:
                out |= (ins_codes == insats) & np.isin(grid[:, j], bad_nodes)
    if "personkrets" in dims:
        j = list(dims).index("personkrets")
        codes = np.asarray(hs[j].codes, dtype=object)
        for insats, (_rule, excluded) in register_rules.INSATS_PERSONKRETS.items():
            bad_nodes = np.flatnonzero(np.isin(codes, excluded))
            out |= (ins_codes == insats) & np.isin(grid[:, j], bad_nodes)
    return out


def _check_structural(name: str, cells: pd.DataFrame) -> None:
    """A cell the rules make zero that holds persons means the register breaks its rules."""
    bad = cells["structural"].to_numpy() & (cells["value"].to_numpy() != 0)
    if bad.any():
        raise InputDataError(
            Problem(
                "structural_zero_broken",
                f"table '{name}': {int(bad.sum())} cell(s) that the register's rules make zero "
                "(an insats at an age or in a personkrets the rules exclude) hold persons",
                hint="validate the register (lsssdc validate) and correct R04, R10-R15",
            )
        )


def _kommun_kind(
    par: np.ndarray,
    ch: np.ndarray,
    cnt: np.ndarray,
    grid: np.ndarray,
    ins_pos: int | None,
    ins_leaf: np.ndarray | None,
    value: np.ndarray,
    notes: list[str],
) -> np.ndarray:
    """Kommun margins of one insats add up (rule 9: one insats is never reported by two
    kommuner); where the register shows otherwise they are only bounds, with a note."""
    if ins_pos is None:
        kind = np.full(len(par), SUM, np.int8)
    else:
        assert ins_leaf is not None  # set whenever ins_pos is
        kind = np.where(ins_leaf[grid[par, ins_pos]], SUM, UNION).astype(np.int8)
    sums = np.add.reduceat(value[ch], np.cumsum(cnt) - cnt) if len(ch) else np.zeros(0)
    broken = (kind == SUM) & ~np.isclose(sums, value[par])
    if broken.any():
        kind[broken] = UNION
        notes.append(
            f"{int(broken.sum())} kommun margin(s) of one insats do not add up "
            "(the same insats from two kommuner, rule 9): treated as bounds"
        )
    return kind


def _housing_lines(
    h: CodeTree,
    node: np.ndarray,
    n_child: np.ndarray,
    stride: np.int64,
    housing: list[int],
    value: np.ndarray,
    notes: list[str],
) -> tuple[np.ndarray, np.ndarray]:
    """Top margins whose housing cells are disjoint (rule 5: at most one housing insats per
    person) where the register agrees, with their housing cells; elsewhere a note."""
    p = h.parent_array
    top = np.flatnonzero(~h.is_leaf[node] & (p[node] < 0) & (n_child[node] > 0))
    hn = np.asarray(housing, np.int64)
    hch = (top - node[top] * stride)[:, None] + hn[None, :] * stride
    ok = value[hch].sum(axis=1) <= value[top] + 1e-9
    if not ok.all():
        notes.append(
            f"{int((~ok).sum())} margin(s) have persons with two housing insatser "
            "(rule 5): housing cells not treated as disjoint there"
        )
    return top[ok], hch[ok]


def _relations(
    dims: tuple[str, ...],
    hs: list[CodeTree],
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
            kind = _kommun_kind(par, ch, cnt, grid, ins_pos, ins_leaf, value, notes)
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
                top, hch = _housing_lines(h, node, n_child, strides[j], housing, value, notes)
                parents.append(top)
                kinds.append(np.full(len(top), DISJOINT, np.int8))
                dimpos.append(np.full(len(top), j, np.int8))
                counts.append(np.full(len(top), len(housing), np.int64))
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
        rel = Relations(  # type: ignore[call-arg]  # mypy cannot count the starred arguments
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
