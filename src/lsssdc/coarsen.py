"""Coarsening: recode whole columns into coarser categories, and record what was done.

Each recoding is a pure, vectorised function from a column to a new column plus a
:class:`Recoding` record (``to_dict()``) that the reviewer report and the codebook render. The
work is done once per distinct value, never per row, so a register of millions of rows costs
little more than a factorisation.

Recodings:

- :func:`band_ages`: age (completed years at the measurement date, see
  :func:`age_at_measurement`) into bands from cut points (:class:`AgeBands`), e.g.
  ``AgeBands(cuts=[0, 7, 13, 18, 25, 35, 45, 55, 65])`` gives ``"0-6"``, ..., ``"55-64"``,
  ``"65+"``. An age below the first cut (or above a closed top) is refused, not guessed.
- :func:`recode_kommun`: kommun code to kommun (harmonised), kommungrupp (SKR 2017, A1-C9),
  huvudgrupp (A-C), län (first two digits) or riket (``"00"``). Historical codes are
  harmonised first (Heby 1917 -> 0331, so Heby belongs to Uppsala län 03 in every year).
- :func:`merge_small_kommuner`: kommuner whose population is below a threshold are merged into
  "the rest of the län", coded ``"<län>R"`` (``"24R"``: the small kommuner of Västerbottens
  län together). If those small kommuner together still fall below the threshold, the next
  smallest kommuner of the same län are added until the merged unit reaches it (or the whole
  län is merged; the code is still ``"<län>R"``). Populations are SCB's folkmängd (total
  population, not LSS recipients), 31 December 2023 unless a year is given.
- :func:`top_code`: hours and days top-coded (values above the limit set to it) or banded
  with an open top band (``TopCode(limit=160, bands=[0, 1, 41, 81, 121])`` gives ``"0"``,
  ``"1-40"``, ..., ``"160+"``). A missing amount means "insats not given", which is a value
  an intruder may know: it is coded as its own category (``"none"`` by default) so that the
  risk measures never mistake it for a suppressed value.

:func:`coarsen` applies one such recoding per column of a frame and returns the records.

A :class:`Hierarchy` is an ordered list of levels for one variable (level 0 is the column as
it is; each further level is a value-wise recoding, coarser than the one before). The lattice
search (:mod:`lsssdc.disclosure.lattice`) encodes it once over the factorised column
(:meth:`Hierarchy.encode`) and then moves between levels by array lookups.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import numpy as np
import pandas as pd

from lsssdc import refdata
from lsssdc.errors import InputDataError, PolicyError, Problem
from lsssdc.identity.personnummer import age_at
from lsssdc.register import variables as V

if TYPE_CHECKING:
    from pandas.api.extensions import ExtensionArray

RIKET = refdata.RIKET
MERGED_SUFFIX = "R"

# --------------------------------------------------------------------------------------------
# the record of one recoding


@dataclass(frozen=True)
class Recoding:
    """What one recoding did to one column (for the reviewer report and the codebook)."""

    variable: str
    operation: str
    from_level: str
    to_level: str
    rows: int
    missing: int
    changed: int
    categories_before: int
    categories_after: int
    parameters: dict[str, Any] = field(default_factory=dict)
    #: new category -> the old values (or the interval) it stands for; observed values only.
    mapping: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "variable": self.variable,
            "operation": self.operation,
            "from_level": self.from_level,
            "to_level": self.to_level,
            "rows": self.rows,
            "missing": self.missing,
            "changed": self.changed,
            "categories_before": self.categories_before,
            "categories_after": self.categories_after,
            "parameters": dict(self.parameters),
            "mapping": dict(self.mapping),
        }


class Recoded(NamedTuple):
    """A recoded column and the record of the recoding."""

    values: pd.Series
    record: Recoding


def _rows_problem(code: str, message: str, column: str, mask: np.ndarray, hint: str) -> Problem:
    rows = np.flatnonzero(mask)
    return Problem(
        code=code,
        message=message,
        column=column,
        rows=tuple(int(r) for r in rows[:10]),
        row_count=int(rows.size),
        hint=hint,
    )


def _categorical(codes: np.ndarray, categories: Sequence[str], index: pd.Index, name: Hashable) -> pd.Series:
    cat = pd.Categorical.from_codes(codes.astype(np.int32, copy=False), categories=list(categories))  # type: ignore[call-overload]
    return pd.Series(cat, index=index, name=name)


def _text(values: pd.Series) -> np.ndarray:
    """Values as text for comparison with new labels (integers without a trailing '.0')."""
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        num = pd.to_numeric(values, errors="coerce").astype("float64").to_numpy()
        whole = np.isfinite(num) & (num == np.round(num))
        out = np.where(whole, np.char.mod("%d", np.where(whole, num, 0).astype(np.int64)), num.astype(str))
        return out.astype(object)
    return values.astype("string").fillna("").to_numpy(dtype=object)


def summarise_recoding(
    variable: str,
    operation: str,
    from_level: str,
    to_level: str,
    before: pd.Series,
    after: pd.Series,
    parameters: dict[str, Any],
    mapping: dict[str, Any] | None = None,
) -> Recoding:
    """The record of a recoding of ``before`` into ``after``: counts of what changed.

    ``mapping`` defaults to new label -> the old values observed under it.
    """
    cb, tb = _codes_and_text(before)
    ca, ta = _codes_and_text(after)
    base = len(ta) + 1
    key = (cb.astype(np.int64) + 1) * base + (ca.astype(np.int64) + 1)
    space = (len(tb) + 1) * base
    if space <= 1 << 22:
        counts = np.bincount(key, minlength=space)
        pair = np.flatnonzero(counts)
        counts = counts[pair]
    else:
        pair, counts = np.unique(key, return_counts=True)
    b, a = pair // base - 1, pair % base - 1
    old_t = np.where(b >= 0, tb[np.maximum(b, 0)] if len(tb) else "", "")
    new_t = np.where(a >= 0, ta[np.maximum(a, 0)] if len(ta) else "", "")
    changed = int(counts[(old_t != new_t) & ~((b < 0) & (a < 0))].sum())
    if mapping is None:
        keep = (b >= 0) & (a >= 0)
        table = pd.DataFrame({"new": new_t[keep], "old": old_t[keep]})
        mapping = {str(k): sorted(set(g["old"])) for k, g in table.groupby("new", sort=True)}
    return Recoding(
        variable=variable,
        operation=operation,
        from_level=from_level,
        to_level=to_level,
        rows=int(len(before)),
        missing=int((ca < 0).sum()),
        changed=changed,
        categories_before=int(np.unique(b[b >= 0]).size),
        categories_after=int(np.unique(a[a >= 0]).size),
        parameters=parameters,
        mapping=mapping,
    )


def _codes_and_text(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes (-1 missing) and the text of each distinct value (work per distinct value)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        cats = pd.Series(values.cat.categories)
        return values.cat.codes.to_numpy(), _text(cats).astype(str)
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    return codes, _text(pd.Series(uniques)).astype(str)


# --------------------------------------------------------------------------------------------
# age


def age_at_measurement(birth_date: pd.Series, year: pd.Series | int) -> pd.Series:
    """Completed years of age on each row's measurement date (1 June / 1 Sept / 1 Oct)."""
    on: pd.Series | pd.Timestamp
    if isinstance(year, pd.Series):
        on = V.measurement_dates(year)
        on.index = birth_date.index
    else:
        on = pd.Timestamp(V.measurement_date(int(year)))
    return age_at(birth_date, on).astype("Int16")


@dataclass(frozen=True)
class AgeBands:
    """Age bands from cut points: band i is ``[cuts[i], cuts[i+1])``.

    With ``open_top`` the last cut starts an open band (``"65+"``); without it the last cut is
    the exclusive upper end and older ages are refused.
    """

    cuts: tuple[int, ...]
    open_top: bool = True

    def __init__(self, cuts: Sequence[int], open_top: bool = True) -> None:
        c = tuple(int(x) for x in cuts)
        if not c or any(b <= a for a, b in zip(c, c[1:], strict=False)) or c[0] < 0:
            raise PolicyError(
                Problem(
                    "bad_age_bands", f"age cut points must be increasing and at least 0, got {list(cuts)}"
                )
            )
        if not open_top and len(c) < 2:
            raise PolicyError(Problem("bad_age_bands", "a closed top needs at least two cut points"))
        object.__setattr__(self, "cuts", c)
        object.__setattr__(self, "open_top", bool(open_top))

    @classmethod
    def of_width(cls, width: int, top: int, start: int = 0) -> AgeBands:
        """Bands of equal width from ``start`` with an open band from ``top`` (``top`` on the grid)."""
        if width < 1 or top <= start or (top - start) % width:
            raise PolicyError(
                Problem(
                    "bad_age_bands", f"width {width} does not divide the span {start}-{top} into whole bands"
                )
            )
        return cls(list(range(start, top + 1, width)), open_top=True)

    @property
    def labels(self) -> list[str]:
        c = self.cuts
        out = [f"{a}" if b - a == 1 else f"{a}-{b - 1}" for a, b in zip(c, c[1:], strict=False)]
        if self.open_top:
            out.append(f"{c[-1]}+")
        return out

    @property
    def name(self) -> str:
        return "age_bands(" + ",".join(map(str, self.cuts)) + ("+" if self.open_top else "") + ")"

    def to_dict(self) -> dict[str, Any]:
        return {"cuts": list(self.cuts), "open_top": self.open_top}


def band_ages(age: pd.Series, bands: AgeBands, *, variable: str | None = None) -> Recoded:
    """Age in completed years -> band labels (an ordered categorical with every band)."""
    name = variable or (str(age.name) if age.name is not None else "age")
    num = pd.to_numeric(age, errors="coerce").astype("float64").to_numpy()
    missing = np.isnan(num)
    cuts = np.asarray(bands.cuts, dtype=np.float64)
    idx = np.searchsorted(cuts, num, side="right") - 1
    bad = ~missing & ((idx < 0) | (num != np.floor(num)))
    if not bands.open_top:
        bad |= ~missing & (idx >= len(cuts) - 1)
    if bad.any():
        raise InputDataError(
            _rows_problem(
                "age_outside_bands",
                f"age outside the bands {bands.labels[0]}..{bands.labels[-1]} or not a whole number",
                name,
                bad,
                "widen the bands or correct the ages",
            )
        )
    codes = np.where(missing, -1, idx)
    out = _categorical(codes, bands.labels, age.index, age.name)
    out = out.cat.as_ordered()
    c = bands.cuts
    intervals = [f"[{a}, {b})" for a, b in zip(c, c[1:], strict=False)]
    if bands.open_top:
        intervals.append(f"[{c[-1]}, inf)")
    observed = set(np.unique(codes[codes >= 0]).tolist())
    mapping = {
        lab: iv for i, (lab, iv) in enumerate(zip(bands.labels, intervals, strict=True)) if i in observed
    }
    return Recoded(
        out, summarise_recoding(name, "age_bands", "years", bands.name, age, out, bands.to_dict(), mapping)
    )


# --------------------------------------------------------------------------------------------
# kommun


class KommunLevel(enum.StrEnum):
    """How finely a kommun is shown."""

    KOMMUN = "kommun"
    KOMMUNGRUPP = "kommungrupp"  # SKR 2017, A1-C9
    HUVUDGRUPP = "huvudgrupp"  # SKR 2017, A-C
    LAN = "lan"
    RIKET = "riket"


@cache
def _harmonised_codes() -> dict[str, str]:
    """Every kommun code valid in some register year -> today's code (1917 -> 0331)."""
    codes = sorted(refdata.all_kommun_codes())
    return dict(zip(codes, refdata.harmonise_kommun(pd.Series(codes)).tolist(), strict=True))


@cache
def kommun_mapping(level: KommunLevel) -> dict[str, str]:
    """Every known kommun code (any register year) -> its code at ``level``."""
    level = KommunLevel(level)
    harm = _harmonised_codes()
    if level is KommunLevel.KOMMUN:
        return dict(harm)
    if level is KommunLevel.LAN:
        return {k: v[:2] for k, v in harm.items()}
    if level is KommunLevel.RIKET:
        return dict.fromkeys(harm, RIKET)
    kg = refdata.kommungrupper()
    col = "grupp" if level is KommunLevel.KOMMUNGRUPP else "huvudgrupp_kod"
    table = dict(zip(kg["kommun_kod"], kg[col], strict=True))
    return {k: table[v] for k, v in harm.items()}


@cache
def _level_categories(level: KommunLevel) -> tuple[str, ...]:
    return tuple(sorted(set(kommun_mapping(level).values())))


def _map_codes(
    codes: pd.Series, table: dict[str, str], categories: Sequence[str], name: str, what: str
) -> pd.Series:
    """Map kommun codes through ``table`` once per distinct value; refuse unknown codes."""
    text = codes.astype("string")
    inverse, uniques = pd.factorize(text, use_na_sentinel=True)
    targets = pd.Series(np.asarray(uniques, dtype=object)).map(table)
    unknown = targets.isna().to_numpy()
    if unknown.any():
        bad = np.isin(inverse, np.flatnonzero(unknown))
        raise InputDataError(
            _rows_problem(
                "unknown_kommun",
                f"kommun code not known in any register year (cannot map to {what})",
                name,
                bad,
                "kommun codes are four-digit strings such as '0114'",
            )
        )
    cat_index = pd.Index(list(categories)).get_indexer(targets.to_numpy(dtype=object))  # type: ignore[arg-type]
    row_codes = np.where(inverse >= 0, cat_index[np.maximum(inverse, 0)] if len(cat_index) else -1, -1)
    return _categorical(row_codes, categories, codes.index, codes.name)


def recode_kommun(codes: pd.Series, level: KommunLevel | str, *, variable: str | None = None) -> Recoded:
    """Kommun codes -> codes at ``level`` (historical codes harmonised first: 1917 -> 0331)."""
    level = KommunLevel(level)
    name = variable or (str(codes.name) if codes.name is not None else "kommun")
    out = _map_codes(codes, kommun_mapping(level), _level_categories(level), name, level.value)
    rec = summarise_recoding(name, "kommun_level", "kommun", level.value, codes, out, {"level": level.value})
    return Recoded(out, rec)


@dataclass(frozen=True)
class MergeSmallKommuner:
    """Kommuner with fewer than ``min_population`` inhabitants merged into "rest of the län".

    ``year`` picks SCB's folkmängd on 31 December of that year (2013-2023); ``None`` uses 2023.
    """

    min_population: int
    year: int | None = None

    @property
    def name(self) -> str:
        return f"merge_small_kommuner(<{self.min_population})"

    def to_dict(self) -> dict[str, Any]:
        return {"min_population": self.min_population, "population_year": self.year or 2023}


@cache
def small_kommun_mapping(rule: MergeSmallKommuner) -> dict[str, str]:
    """Every known kommun code -> itself (harmonised) or ``"<län>R"`` when merged."""
    if rule.year is None:
        pop = refdata.befolkning().set_index("kommun_kod")["folkmangd"]
    else:
        series = refdata.befolkning_series()
        if rule.year not in set(series["year"]):
            raise PolicyError(
                Problem("bad_population_year", f"no population figures for {rule.year}", hint="use 2013-2023")
            )
        pop = series[series["year"] == rule.year].set_index("kommun_kod")["folkmangd"]
    harm = _harmonised_codes()
    today = sorted(set(harm.values()))
    table = pd.DataFrame({"kommun": today})
    table["lan"] = table["kommun"].str.slice(0, 2)
    table["pop"] = table["kommun"].map(pop).fillna(0).astype("int64")
    table = table.sort_values(["lan", "pop", "kommun"], kind="stable")
    table["small"] = table["pop"] < rule.min_population
    # Reference data (21 län), not the data path: a plain loop is clear here.
    merged: set[str] = set()
    for _, g in table.groupby("lan", sort=True):
        small = g[g["small"]]
        if small.empty:
            continue
        total = int(small["pop"].sum())
        take = len(small)
        while total < rule.min_population and take < len(g):
            total += int(g["pop"].iloc[take])
            take += 1
        merged.update(g["kommun"].iloc[:take])
    merged_to = {k: (k[:2] + MERGED_SUFFIX if k in merged else k) for k in today}
    return {code: merged_to[now] for code, now in harm.items()}


def merge_small_kommuner(
    codes: pd.Series, rule: MergeSmallKommuner, *, variable: str | None = None
) -> Recoded:
    """Kommun codes with small kommuner replaced by their län's merged unit (``"01R"``)."""
    name = variable or (str(codes.name) if codes.name is not None else "kommun")
    table = small_kommun_mapping(rule)
    out = _map_codes(codes, table, sorted(set(table.values())), name, rule.name)
    rec = summarise_recoding(name, "merge_small_kommuner", "kommun", rule.name, codes, out, rule.to_dict())
    return Recoded(out, rec)


# --------------------------------------------------------------------------------------------
# hours and days


@dataclass(frozen=True)
class TopCode:
    """Top-coding at ``limit``; with ``bands`` (lower bounds below the limit) also banding.

    Without bands the column stays numeric with values above ``limit`` set to it (missing stays
    missing). With bands the result is an ordered categorical: ``[b0, b1)``, ...,
    ``[b_last, limit)``, ``"limit+"``, and a missing value becomes ``missing_label`` (``None``
    keeps it missing, which the risk measures read as "suppressed: could be anything").
    """

    limit: float
    bands: tuple[float, ...] | None = None
    missing_label: str | None = "none"

    def __init__(
        self, limit: float, bands: Sequence[float] | None = None, missing_label: str | None = "none"
    ) -> None:
        b = None if bands is None else tuple(float(x) for x in bands)
        if b is not None and (
            not b or any(y <= x for x, y in zip(b, b[1:], strict=False)) or b[-1] >= float(limit)
        ):
            raise PolicyError(
                Problem(
                    "bad_top_code",
                    f"bands must increase and stay below the limit {limit}, got {list(bands or [])}",
                )
            )
        object.__setattr__(self, "limit", float(limit))
        object.__setattr__(self, "bands", b)
        object.__setattr__(self, "missing_label", missing_label)

    @staticmethod
    def _fmt(x: float) -> str:
        return f"{x:g}"

    @property
    def labels(self) -> list[str]:
        if self.bands is None:
            return []
        edges = [*self.bands, self.limit]
        out = []
        for a, b in zip(edges, edges[1:], strict=False):
            if a == int(a) and b == int(b):
                out.append(self._fmt(a) if b - a == 1 else f"{self._fmt(a)}-{self._fmt(b - 1)}")
            else:
                out.append(f"{self._fmt(a)}-<{self._fmt(b)}")
        out.append(f"{self._fmt(self.limit)}+")
        if self.missing_label is not None:
            out.append(self.missing_label)
        return out

    @property
    def name(self) -> str:
        if self.bands is None:
            return f"top_code({self._fmt(self.limit)})"
        return f"bands({','.join(map(self._fmt, self.bands))};{self._fmt(self.limit)}+)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "limit": self.limit,
            "bands": None if self.bands is None else list(self.bands),
            "missing_label": self.missing_label,
        }


def top_code(values: pd.Series, spec: TopCode, *, variable: str | None = None) -> Recoded:
    """Hours or days top-coded at ``spec.limit`` and, with bands, banded (open top band)."""
    name = variable or (str(values.name) if values.name is not None else "amount")
    num = pd.to_numeric(values, errors="coerce").astype("float64").to_numpy()
    missing = np.isnan(num)
    if spec.bands is None:
        out_num = np.where(missing, np.nan, np.minimum(num, spec.limit))
        out: pd.Series = pd.Series(pd.array(out_num, dtype="Float64"), index=values.index, name=values.name)
        mapping = (
            {f"{spec._fmt(spec.limit)}": f"[{spec._fmt(spec.limit)}, inf)"}
            if (num > spec.limit).any()
            else {}
        )
        rec = summarise_recoding(name, "top_code", "amount", spec.name, values, out, spec.to_dict(), mapping)
        return Recoded(out, rec)
    edges = np.asarray([*spec.bands, spec.limit], dtype=np.float64)
    idx = np.searchsorted(edges, num, side="right") - 1
    below = ~missing & (idx < 0)
    if below.any():
        raise InputDataError(
            _rows_problem(
                "amount_below_bands",
                f"value below the lowest band {spec._fmt(edges[0])}",
                name,
                below,
                "start the bands lower or correct the values",
            )
        )
    n_bands = len(edges)  # len(bands) closed bands + the open top band
    codes = np.where(missing, n_bands if spec.missing_label is not None else -1, idx)
    out = _categorical(codes, spec.labels, values.index, values.name).cat.as_ordered()
    e = [*spec.bands, spec.limit]
    intervals = [f"[{spec._fmt(a)}, {spec._fmt(b)})" for a, b in zip(e, e[1:], strict=False)]
    intervals.append(f"[{spec._fmt(spec.limit)}, inf)")
    if spec.missing_label is not None:
        intervals.append("missing (not given)")
    observed = set(np.unique(codes[codes >= 0]).tolist())
    mapping = {
        lab: iv for i, (lab, iv) in enumerate(zip(spec.labels, intervals, strict=True)) if i in observed
    }
    rec = summarise_recoding(name, "top_code", "amount", spec.name, values, out, spec.to_dict(), mapping)
    return Recoded(out, rec)


# --------------------------------------------------------------------------------------------
# a whole frame

#: What a column can be coarsened with.
Spec = AgeBands | KommunLevel | MergeSmallKommuner | TopCode


def coarsen(df: pd.DataFrame, plan: dict[str, Spec | str]) -> tuple[pd.DataFrame, list[Recoding]]:
    """Apply one recoding per column (``{"age": AgeBands(...), "kommun": "lan", ...}``).

    Columns are replaced in place of the originals, in the order of ``plan``; the input frame
    is not changed. A string spec is a :class:`KommunLevel`.
    """
    out = df.copy()
    records: list[Recoding] = []
    for column, spec in plan.items():
        if column not in out.columns:
            raise InputDataError(
                Problem("missing_column", "column to coarsen is not in the data", column=column)
            )
        if isinstance(spec, AgeBands):
            result = band_ages(out[column], spec, variable=column)
        elif isinstance(spec, MergeSmallKommuner):
            result = merge_small_kommuner(out[column], spec, variable=column)
        elif isinstance(spec, TopCode):
            result = top_code(out[column], spec, variable=column)
        else:
            try:
                level = KommunLevel(spec)
            except ValueError:
                raise PolicyError(
                    Problem("bad_coarsening", f"unknown coarsening {spec!r}", column=column)
                ) from None
            result = recode_kommun(out[column], level, variable=column)
        out[column] = result.values
        records.append(result.record)
    return out, records


# --------------------------------------------------------------------------------------------
# generalisation hierarchies


class Recode(Protocol):
    """A level's recoding: the labels of the given level-0 values (a Series or an array)."""

    def __call__(self, values: pd.Series, /) -> pd.Series | np.ndarray | ExtensionArray: ...


@dataclass(frozen=True)
class Level:
    """One level of a hierarchy: a name and a value-wise recoding of the level-0 values.

    ``recode`` gets a Series of distinct, non-missing level-0 values and returns their labels at
    this level (same length; a categorical keeps its category order in the output).
    """

    name: str
    recode: Recode


@dataclass(frozen=True)
class EncodedHierarchy:
    """A hierarchy applied to one column, as lookup arrays over the column's factorised codes."""

    variable: str
    level_names: tuple[str, ...]
    codes: np.ndarray  # level-0 code per row, -1 where missing
    lookups: tuple[np.ndarray, ...]  # per level: level-0 code -> code at that level
    categories: tuple[tuple[Any, ...], ...]  # per level: the labels
    loss: tuple[np.ndarray, ...]  # per level: level-0 code -> loss in [0, 1]
    ordered: tuple[bool, ...] = ()  # per level: are the labels ordered (bands)?

    @property
    def height(self) -> int:
        """The highest level index."""
        return len(self.level_names) - 1

    def level_codes(self, level: int, codes: np.ndarray | None = None) -> np.ndarray:
        """Codes at ``level`` (-1 stays missing) of the level-0 ``codes`` (default: every row)."""
        c = self.codes if codes is None else codes
        lut = self.lookups[level]
        return np.where(c >= 0, lut[np.maximum(c, 0)] if lut.size else -1, -1)


@dataclass(frozen=True)
class Hierarchy:
    """Per variable an ordered list of levels, each coarser than the one before (a chain)."""

    variable: str
    levels: tuple[Level, ...]

    def __init__(self, variable: str, levels: Sequence[Level]) -> None:
        object.__setattr__(self, "variable", variable)
        object.__setattr__(self, "levels", (Level("as_is", lambda s: s), *levels))

    @property
    def level_names(self) -> tuple[str, ...]:
        return tuple(lv.name for lv in self.levels)

    def encode(self, column: pd.Series) -> EncodedHierarchy:
        """Factorise ``column`` once and express every level as a lookup over its codes.

        Refuses a hierarchy whose levels do not nest (a level that splits a category of the
        level below it would break the monotonicity the lattice search relies on).
        """
        if isinstance(column.dtype, pd.CategoricalDtype):
            codes = column.cat.codes.to_numpy().astype(np.int64)
            uniques = pd.Series(column.cat.categories)
            used = np.zeros(len(uniques), bool)
            used[codes[codes >= 0]] = True
            remap = np.cumsum(used) - 1
            codes = np.where(codes >= 0, remap[np.maximum(codes, 0)], -1)
            uniques = uniques[used].reset_index(drop=True)
        else:
            codes, u = pd.factorize(column, use_na_sentinel=True)
            uniques = pd.Series(u)
        codes = codes.astype(np.int32)
        g0 = len(uniques)
        lookups: list[np.ndarray] = []
        cats: list[tuple[Any, ...]] = []
        losses: list[np.ndarray] = []
        ordered: list[bool] = []
        for lv_index, lv in enumerate(self.levels):
            is_ordered = False
            if lv_index == 0:
                lut = np.arange(g0, dtype=np.int32)
                cat: tuple[Any, ...] = tuple(uniques.tolist())
            else:
                labels = lv.recode(uniques.copy())
                labels = pd.Series(labels).reset_index(drop=True)
                if len(labels) != g0 or labels.isna().any():
                    raise PolicyError(
                        Problem(
                            "bad_hierarchy",
                            f"level '{lv.name}' of '{self.variable}' must give one label per value",
                            column=self.variable,
                        )
                    )
                if isinstance(labels.dtype, pd.CategoricalDtype):
                    cat = tuple(labels.cat.categories.tolist())
                    lut = labels.cat.codes.to_numpy().astype(np.int32)
                    is_ordered = bool(labels.cat.ordered)
                else:
                    cat = tuple(sorted(set(labels.astype(str).tolist())))
                    lut = pd.Index(list(cat)).get_indexer(labels.astype(str).to_numpy()).astype(np.int32)
            if lookups and g0:
                prev = lookups[-1]
                pairs = np.unique(np.stack([prev, lut], axis=1), axis=0)
                if len(pairs) != len(np.unique(prev)):
                    raise PolicyError(
                        Problem(
                            "hierarchy_not_nested",
                            f"level '{lv.name}' of '{self.variable}' splits a category of level "
                            f"'{self.levels[lv_index - 1].name}'",
                            column=self.variable,
                            hint="each level must merge whole categories of the level below it",
                        )
                    )
            size = np.bincount(lut, minlength=len(cat))[lut] if g0 else np.zeros(0, np.int64)
            loss = (size - 1) / (g0 - 1) if g0 > 1 else np.zeros(g0)
            lookups.append(lut)
            cats.append(cat)
            losses.append(loss.astype(np.float64))
            ordered.append(is_ordered)
        return EncodedHierarchy(
            variable=self.variable,
            level_names=self.level_names,
            codes=codes,
            lookups=tuple(lookups),
            categories=tuple(cats),
            loss=tuple(losses),
            ordered=tuple(ordered),
        )


def identity_hierarchy(variable: str) -> Hierarchy:
    """A quasi-identifier that is never generalised (only level 0)."""
    return Hierarchy(variable, [])


def age_hierarchy(variable: str, *bands: AgeBands) -> Hierarchy:
    """Age in years, then each band scheme in turn (they must nest, e.g. 5-, 10-, 20-year bands)."""
    return Hierarchy(
        variable, [Level(b.name, lambda s, b=b: band_ages(s, b, variable=variable).values) for b in bands]
    )


def kommun_hierarchy(variable: str, *levels: KommunLevel | str | MergeSmallKommuner) -> Hierarchy:
    """Kommun code, then e.g. ``MergeSmallKommuner(20000)``, ``"lan"``, ``"riket"``."""
    out: list[Level] = []
    for lv in levels:
        if isinstance(lv, MergeSmallKommuner):
            out.append(Level(lv.name, lambda s, lv=lv: merge_small_kommuner(s, lv, variable=variable).values))
        else:
            kl = KommunLevel(lv)
            out.append(Level(kl.value, lambda s, kl=kl: recode_kommun(s, kl, variable=variable).values))
    return Hierarchy(variable, out)


def amount_hierarchy(variable: str, *specs: TopCode) -> Hierarchy:
    """Hours or days, then each banding in turn (coarser each time).

    Code "not given" as a value (e.g. 0) before: a missing level-0 value is read as suppressed.
    """
    return Hierarchy(
        variable, [Level(s.name, lambda v, s=s: top_code(v, s, variable=variable).values) for s in specs]
    )


def mapping_hierarchy(variable: str, levels: Sequence[tuple[str, dict[Any, Any]]]) -> Hierarchy:
    """A hierarchy from explicit value -> label tables, one per level (each from level 0)."""
    return Hierarchy(
        variable,
        [Level(name, lambda s, table=table: s.map(table).astype("string")) for name, table in levels],
    )
