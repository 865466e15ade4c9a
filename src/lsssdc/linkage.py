"""Deterministic linkage of an LSS extract with other registers, by key, with a report.

Linkage happens inside the agency on personnummer, before pseudonymisation, or on the
project pseudonym when another agency pseudonymised its own part with the project's key.
Only registers and variables that both the policy allows and the order asks for come in; a
register handed over that the order does not ask for is refused by name (data minimisation).

Keys are normalised to 12 digits and joined as 64-bit integers (a 12-digit personnummer fits),
which keeps a join of millions of rows with a population register in seconds. A table of
changed personnummer (old -> new) is applied to both sides, following chains; duplicates in the
other register are refused or resolved as the policy says and counted, never multiplied: the
linked extract has exactly the extract's rows, in the extract's order. Registers with a
``year`` column link per person and year when the extract has years too.

The :class:`LinkageReport` names no person: counts and shares only, and counts below the
policy's frequency threshold can be rendered as "<n" for anything that leaves the agency.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from lsssdc.errors import InputDataError, PolicyRefused, Problem
from lsssdc.identity import personnummer as pnr_mod
from lsssdc.policy import Order, Policy, link_problems
from lsssdc.register import variables as V
from lsssdc.register.companions import COMPANIONS

KEY = "personnummer"
YEAR = "year"
#: Years fit in four digits, so (person key, year) packs into one int64: key * 10_000 + year.
_YEAR_FACTOR = 10_000
_SHOWN_ROWS = 20
_CHUNK = 1 << 20  # rows parsed at a time

#: Count fields that are protected (rendered "<threshold") when small.
_PROTECTED = (
    "samordningsnummer",
    "duplicate_keys",
    "duplicate_rows",
    "changed_numbers_applied",
    "matched_persons",
    "unmatched_persons",
    "unmatched_samordningsnummer",
    "rows_outside_extract",
    "persons",
    "rows",
)


def _protect(d: dict[str, Any], threshold: int | None, fields: tuple[str, ...] = _PROTECTED) -> None:
    if not threshold:
        return
    for k in fields:
        if isinstance(d.get(k), int) and 0 < d[k] < threshold:
            d[k] = f"<{threshold}"


def _protect_groups(groups: dict[str, dict[str, Any]], threshold: int | None) -> dict[str, dict[str, Any]]:
    """A small group keeps its name but loses its counts and share (a share of 1 of 2 names a person)."""
    out = {}
    for g, v in groups.items():
        rows, hit = v["rows"], v["matched"]
        small = threshold and any(0 < c < threshold for c in (rows, hit, rows - hit))
        out[g] = {"rows": f"<{threshold}" if rows < threshold else rows, "share": None} if small else dict(v)
    return out


@dataclass
class ExtractSummary:
    """The extract's side of a linkage: its rows, persons and the numbers changed in it."""

    key: str
    rows: int
    persons: int
    samordningsnummer: int
    samordningsnummer_share: float
    changed_numbers_applied: int

    def to_dict(self, threshold: int | None = None) -> dict[str, Any]:
        d = asdict(self)
        _protect(d, threshold)
        return d


@dataclass
class RegisterLink:
    """What linking one register did."""

    register: str
    key: str
    join_on: list[str]
    rows: int
    persons: int
    samordningsnummer: int
    samordningsnummer_share: float
    duplicate_keys: int
    duplicate_rows: int
    duplicates_resolution: str
    changed_numbers_applied: int
    extract_persons: int
    matched_persons: int
    unmatched_persons: int
    match_share: float
    unmatched_samordningsnummer: int
    rows_outside_extract: int
    variables: list[str]
    match_by_year: dict[str, dict[str, Any]] = field(default_factory=dict)
    match_by_sex: dict[str, dict[str, Any]] = field(default_factory=dict)
    match_by_lan: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def match_share_by_year(self) -> dict[str, float]:
        return {y: v["share"] for y, v in self.match_by_year.items()}

    def to_dict(self, threshold: int | None = None) -> dict[str, Any]:
        d = asdict(self)
        _protect(d, threshold, tuple(k for k in _PROTECTED if k not in ("rows", "persons")))
        for k in ("match_by_year", "match_by_sex", "match_by_lan"):
            d[k] = _protect_groups(d[k], threshold)
        return d


@dataclass
class LinkageReport:
    """Per register: persons matched and unmatched, duplicates, changes, samordningsnummer, variables."""

    extract: ExtractSummary | None = None
    links: list[RegisterLink] = field(default_factory=list)

    def to_dict(self, threshold: int | None = None) -> dict[str, Any]:
        return {
            "extract": self.extract.to_dict(threshold) if self.extract else None,
            "registers": [link.to_dict(threshold) for link in self.links],
        }


# --------------------------------------------------------------------------------------------
# keys


def _reference(frame: pd.DataFrame, reference_date: dt.date | None, *, extract: bool = False) -> Any:
    """Reference dates for 10-digit forms, one per row when the frame has years.

    The extract is read at its years' measurement dates (as the LSS register is); another
    register at the end of each year, since its year need not be the LSS measurement date
    (a child born in November has assistansersättning that year). Else one given date."""
    if YEAR in frame.columns and len(frame):
        years = pd.to_numeric(frame[YEAR], errors="coerce")
        if years.notna().all() and years.between(1800, 9999).all() and (years % 1 == 0).all():
            years = years.astype(int)
            if extract and years.between(V.FIRST_YEAR, V.LAST_YEAR).all():
                return V.measurement_dates(years).to_numpy()
            if not extract:
                ends = {int(y): pd.Timestamp(int(y), 12, 31) for y in pd.unique(years)}
                return years.map(ends).astype("datetime64[ns]").to_numpy()
    return reference_date


def _parse_keys(
    values: pd.Series, column: str, source: str, reference: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """Normalised keys as int64 and a samordningsnummer flag; refuse invalid values by row, never by value.

    Parsed in chunks: the parser's temporaries stay small however long the register is."""
    n = len(values)
    per_row = reference is not None and not np.isscalar(reference) and not isinstance(reference, dt.date)
    keys = np.zeros(n, np.int64)
    samord = np.zeros(n, bool)
    bad: list[np.ndarray] = []
    reasons: set[str] = set()
    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        parsed = pnr_mod.parse(values.iloc[start:stop], reference[start:stop] if per_row else reference)
        valid = parsed["valid"].to_numpy()
        if not valid.all():
            idx = np.flatnonzero(~valid)
            bad.append(idx + start)
            reasons |= {str(r) for r in parsed["reason"].to_numpy()[idx]}
            continue
        text = pa.array(parsed["personnummer"].array)
        keys[start:stop] = pc.cast(text, pa.int64()).to_numpy(zero_copy_only=False)
        samord[start:stop] = parsed["samordningsnummer"].to_numpy(dtype=bool)
    if bad:
        idx = np.concatenate(bad)
        raise InputDataError(
            Problem(
                "bad_personnummer",
                f"key column has invalid personnummer ({', '.join(sorted(reasons))})",
                file=source,
                column=column,
                rows=tuple(int(i) + 1 for i in idx[:_SHOWN_ROWS]),
                row_count=len(idx),
                hint="linkage keys must be personnummer of ten or twelve digits; rows are counted from 1",
            )
        )
    return keys, samord


def _as_text(keys: np.ndarray) -> pd.arrays.ArrowStringArray:
    """int64 keys back to 12-digit text (a normalised personnummer never starts with 0)."""
    return pd.arrays.ArrowStringArray(pc.cast(pa.array(keys, pa.int64()), pa.string()))


def _resolve_changes(changes: pd.DataFrame) -> tuple[pd.Index, np.ndarray]:
    """Old numbers and the final number each leads to, chains followed; a cycle is refused."""
    missing = [c for c in ("old", "new") if c not in changes.columns]
    if missing:
        raise InputDataError(
            Problem(
                "missing_column",
                f"the table of changed personnummer lacks column(s) {', '.join(missing)}",
                hint="give the columns 'old' and 'new'",
            )
        )
    parsed = {c: pnr_mod.parse(changes[c].reset_index(drop=True)) for c in ("old", "new")}
    bad = ~(parsed["old"]["valid"].to_numpy() & parsed["new"]["valid"].to_numpy())
    if bad.any():
        idx = np.flatnonzero(bad)
        raise InputDataError(
            Problem(
                "bad_personnummer",
                "the table of changed personnummer has invalid values",
                file="the table of changed personnummer",
                column="old/new",
                rows=tuple(int(i) + 1 for i in idx[:_SHOWN_ROWS]),
                row_count=len(idx),
            )
        )
    old = pc.cast(pa.array(parsed["old"]["personnummer"].array), pa.int64()).to_numpy(zero_copy_only=False)
    new = pc.cast(pa.array(parsed["new"]["personnummer"].array), pa.int64()).to_numpy(zero_copy_only=False)
    dup = pd.Series(old).duplicated(keep=False).to_numpy()
    if dup.any():
        raise InputDataError(
            Problem(
                "ambiguous_change",
                "a personnummer is changed more than once in the table",
                file="the table of changed personnummer",
                column="old",
                rows=tuple(int(i) + 1 for i in np.flatnonzero(dup)[:_SHOWN_ROWS]),
                row_count=int(dup.sum()),
            )
        )
    index = pd.Index(old)
    final = new.copy()
    # pointer doubling: after k rounds final[i] is old[i] followed 2**k steps; a chain is at most n long
    for _ in range(math.ceil(math.log2(len(old) + 1)) + 2):
        j = index.get_indexer(final)
        hit = j >= 0
        if not hit.any():
            return index, final
        final = np.where(hit, final[np.where(hit, j, 0)], final)
    raise InputDataError(
        Problem(
            "change_cycle",
            "the table of changed personnummer has a cycle",
            file="the table of changed personnummer",
            hint="a number must not lead back to itself through old -> new",
        )
    )


def _apply(keys: np.ndarray, resolved: tuple[pd.Index, np.ndarray] | None) -> tuple[np.ndarray, int]:
    if resolved is None or len(keys) == 0:
        return keys, 0
    index, final = resolved
    j = index.get_indexer(keys)  # type: ignore[arg-type]
    hit = j >= 0
    if not hit.any():
        return keys, 0
    return np.where(hit, final[np.where(hit, j, 0)], keys), int(hit.sum())


def apply_changes(keys: pd.Series, changes: pd.DataFrame | None) -> tuple[pd.Series, int]:
    """Replace changed personnummer (old -> new), following chains; count the replacements."""
    if changes is None or changes.empty:
        return keys, 0
    ints, _ = _parse_keys(keys, KEY, "the keys")
    out, n = _apply(ints, _resolve_changes(changes))
    return pd.Series(_as_text(out), index=keys.index), n


# --------------------------------------------------------------------------------------------
# policy


def allowed_links(order: Order, policy: Policy) -> dict[str, list[str]]:
    """Registers and variables both the policy allows and the order asks for; refuse the rest by name."""
    problems = link_problems(order, policy)
    if problems:
        raise PolicyRefused(problems)
    return {req.register_name: list(req.variables) for req in order.linkages}


# --------------------------------------------------------------------------------------------
# joining


def _year_codes(frame: pd.DataFrame, source: str) -> np.ndarray:
    years = pd.to_numeric(frame[YEAR], errors="coerce")
    bad = (years.isna() | (years < 0) | (years >= _YEAR_FACTOR) | (years % 1 != 0)).to_numpy()
    if bad.any():
        idx = np.flatnonzero(bad)
        raise InputDataError(
            Problem(
                "bad_year",
                "the year is missing or not a year",
                file=source,
                column=YEAR,
                rows=tuple(int(i) + 1 for i in idx[:_SHOWN_ROWS]),
                row_count=len(idx),
            )
        )
    return years.to_numpy(dtype=np.int64)


def _text_keys(values: pd.Series, column: str, source: str) -> pd.Series:
    """Pseudonym keys as text; a missing one is refused by row."""
    text = values.reset_index(drop=True).astype("string[pyarrow]")
    missing = text.isna().to_numpy()
    if missing.any():
        idx = np.flatnonzero(missing)
        raise InputDataError(
            Problem(
                "missing_key",
                "the key is missing",
                file=source,
                column=column,
                rows=tuple(int(i) + 1 for i in idx[:_SHOWN_ROWS]),
                row_count=len(idx),
            )
        )
    return text


def _nullable(values: pd.Series) -> Any:
    """An array whose take(-1) gives a missing value without turning integers into floats."""
    arr = values.array
    if isinstance(values.dtype, np.dtype) and values.dtype.kind in "iub":
        kind = {"i": "Int", "u": "UInt"}.get(values.dtype.kind)
        target = f"{kind}{values.dtype.itemsize * 8}" if kind else "boolean"
        arr = pd.array(values.to_numpy(), dtype=target)  # type: ignore[call-overload]
    return arr


def _groups(labels: np.ndarray | pd.Categorical[Any], matched: np.ndarray) -> dict[str, dict[str, Any]]:
    if len(labels) == 0:
        return {}
    g = pd.DataFrame({"g": labels, "m": matched}).groupby("g", sort=True, observed=True)["m"]
    rows, hits = g.size(), g.sum()
    return {
        str(k): {
            "rows": int(rows[k]),
            "matched": int(hits[k]),
            "share": round(float(hits[k]) / int(rows[k]), 4),
        }
        for k in rows.index
    }


@dataclass
class _Side:
    """The extract's keys, prepared once for every register it is linked with."""

    person: np.ndarray  # int64 personnummer, or the pseudonym text (object)
    year: np.ndarray | None
    samord: np.ndarray
    sex: pd.Categorical[str] | None
    lan: pd.Categorical | None
    persons: int

    @property
    def on_text(self) -> bool:
        return self.person.dtype == object


def _prepare_extract(extract: pd.DataFrame, key: str, person: np.ndarray | None, samord: np.ndarray) -> _Side:
    if person is None:
        person = _text_keys(extract[key], key, "the extract").to_numpy(dtype=object)
        sex = None
    else:
        sex = pd.Categorical(np.where((person // 10) % 2 == 1, "1", "2"))
    year = _year_codes(extract, "the extract") if YEAR in extract.columns else None
    lan = None
    if "kommun" in extract.columns:
        lan = pd.Categorical(
            extract["kommun"].astype("string[pyarrow]").str[:2].fillna("").to_numpy(dtype=object)
        )
    return _Side(person, year, samord, sex, lan, int(pd.unique(person).size))


def _codes(right: np.ndarray, left: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Codes of both sides from one hash pass (equal keys, equal codes) and the number of codes."""
    codes, uniques = pd.factorize(np.concatenate([right, left]))
    return codes[: len(right)], codes[len(right) :], len(uniques)


def _flags(size: int, codes: np.ndarray) -> np.ndarray:
    out = np.zeros(size, bool)
    out[codes] = True
    return out


class _Target(NamedTuple):
    """The register being linked: its name, key column, name in messages, whether it joins on
    (person, year), its number of rows and how its duplicates are resolved."""

    name: str
    key: str
    source: str
    join_year: bool
    rows: int
    duplicates: Literal["refuse", "first", "last"]


class _RegisterKeys(NamedTuple):
    """A register's person keys (changed numbers applied), samordningsnummer flags and the
    number of keys changed."""

    person: np.ndarray
    samord: np.ndarray
    applied: int


class _JoinCodes(NamedTuple):
    """Codes of both sides from shared hash passes: join codes (person, or person and year) of
    the register's rows (``right``) and the extract's (``left``), and person codes of each."""

    right: np.ndarray
    left: np.ndarray
    n_codes: int
    right_person: np.ndarray
    left_person: np.ndarray
    n_persons: int


class _Picked(NamedTuple):
    """The register row each extract row takes (-1: none), and the duplicates met on the way."""

    rows_kept: np.ndarray
    take: np.ndarray
    matched: np.ndarray
    n_dup: int
    n_dup_rows: int


def _register_keys(
    side: _Side,
    other: pd.DataFrame,
    key: str,
    source: str,
    changes: tuple[pd.Index, np.ndarray] | None,
    reference_date: dt.date | None,
) -> _RegisterKeys:
    """The register's keys read the way the extract's were (pseudonym text, or personnummer with
    the changed numbers applied), so that equal persons get equal keys."""
    samord_flags = np.zeros(len(other), bool)
    applied = 0
    if side.on_text:
        right_person = _text_keys(other[key], key, source).to_numpy(dtype=object)
    else:
        right_person, samord_flags = _parse_keys(other[key], key, source, _reference(other, reference_date))
        right_person, applied = _apply(right_person, changes)
    return _RegisterKeys(right_person, samord_flags, applied)


def _join_codes(
    side: _Side, other: pd.DataFrame, right_person: np.ndarray, join_year: bool, source: str
) -> _JoinCodes:
    """Code both sides' keys in one hash pass (per person, then per person and year when joined
    on years), so the join is a table lookup."""
    if join_year:
        # persons first (as codes), then (person, year) packed in one int64
        rp, lp, n_persons = _codes(right_person, side.person)
        rc, lc, n_codes = _codes(
            rp * _YEAR_FACTOR + _year_codes(other, source), lp * _YEAR_FACTOR + side.year
        )
    else:
        rc, lc, n_codes = _codes(right_person, side.person)
        rp, lp, n_persons = rc, lc, n_codes
    return _JoinCodes(rc, lc, n_codes, rp, lp, n_persons)


def _pick_rows(codes: _JoinCodes, target: _Target) -> _Picked:
    """Resolve duplicate keys as the policy says (or refuse them), then look up each extract
    row's register row: duplicates are never multiplied into extra rows."""
    rc, lc, n_codes = codes.right, codes.left, codes.n_codes
    key, source, duplicates = target.key, target.source, target.duplicates
    counts = np.bincount(rc, minlength=n_codes)
    dup_rows = counts[rc] > 1
    n_dup_rows = int(dup_rows.sum())
    n_dup = int((counts > 1).sum())
    rows_kept = np.arange(target.rows)
    if n_dup:
        if duplicates == "refuse":
            raise InputDataError(
                Problem(
                    "duplicate_keys",
                    f"{source} has {n_dup} key(s) that occur more than once",
                    file=source,
                    column=key if not target.join_year else f"{key}+{YEAR}",
                    rows=tuple(int(i) + 1 for i in np.flatnonzero(dup_rows)[:_SHOWN_ROWS]),
                    row_count=n_dup_rows,
                    hint="the policy refuses duplicates; resolve them at the source or set duplicates: first/last",
                )
            )
        rows_kept = np.flatnonzero(~pd.Series(rc).duplicated(keep=duplicates).to_numpy())
    row_of = np.full(n_codes, -1, np.int64)
    row_of[rc[rows_kept]] = rows_kept
    take = row_of[lc]
    matched = take >= 0
    return _Picked(rows_kept, take, matched, n_dup, n_dup_rows)


def _linked_columns(
    existing: set[str], target: _Target, other: pd.DataFrame, wanted: list[str], take: np.ndarray
) -> dict[str, Any]:
    """The wanted variables in the extract's rows, renamed ``<register>_<variable>`` where the
    extract has the name already; a column is never overwritten."""
    name, source = target.name, target.source
    columns: dict[str, Any] = {}
    for v in wanted:
        column = v if v not in existing else f"{name}_{v}"
        if column in existing or column in columns:
            raise InputDataError(
                Problem(
                    "column_clash", f"linking {source} would overwrite the column '{column}'", file=source
                )
            )
        columns[column] = _nullable(other[v]).take(take, allow_fill=True)
    return columns


def _link_record(
    side: _Side,
    target: _Target,
    keys: _RegisterKeys,
    codes: _JoinCodes,
    picked: _Picked,
    variables: list[str],
) -> RegisterLink:
    """What linking the register did, in counts of persons and rows (no person is named)."""
    lp, rp, n_persons = codes.left_person, codes.right_person, codes.n_persons
    matched, rows_kept, n_dup = picked.matched, picked.rows_kept, picked.n_dup
    samord_flags, key, n_dup_rows = keys.samord, target.key, picked.n_dup_rows
    in_extract = _flags(n_persons, lp)
    hit = _flags(n_persons, lp[matched])
    in_register = _flags(n_persons, rp)
    samord_left = _flags(n_persons, lp[side.samord]) if side.samord.any() else np.zeros(n_persons, bool)
    samord_right = int(_flags(n_persons, rp[samord_flags]).sum()) if samord_flags.any() else 0
    other_persons = int(in_register.sum())
    all_persons = side.persons
    matched_persons = int(hit.sum())
    return RegisterLink(
        register=target.name,
        key=key,
        join_on=[key, YEAR] if target.join_year else [key],
        rows=target.rows,
        persons=other_persons,
        samordningsnummer=samord_right,
        samordningsnummer_share=round(samord_right / other_persons, 4) if other_persons else 0.0,
        duplicate_keys=n_dup,
        duplicate_rows=n_dup_rows,
        duplicates_resolution=target.duplicates if n_dup else "none",
        changed_numbers_applied=keys.applied,
        extract_persons=all_persons,
        matched_persons=matched_persons,
        unmatched_persons=all_persons - matched_persons,
        match_share=round(matched_persons / all_persons, 4) if all_persons else 0.0,
        unmatched_samordningsnummer=int((samord_left & ~hit).sum()),
        rows_outside_extract=int((~in_extract[rp[rows_kept]]).sum()),
        variables=variables,
        match_by_year=_groups(side.year, matched) if side.year is not None else {},
        match_by_sex=_groups(side.sex, matched) if side.sex is not None else {},
        match_by_lan=_groups(side.lan, matched) if side.lan is not None else {},
    )


def _link_one(
    existing: set[str],
    side: _Side,
    name: str,
    other: pd.DataFrame,
    variables: list[str],
    key: str,
    duplicates: Literal["refuse", "first", "last"],
    changes: tuple[pd.Index, np.ndarray] | None,
    reference_date: dt.date | None = None,
) -> tuple[dict[str, Any], RegisterLink]:
    """New columns for the extract from one register, and what linking it did.

    Keys of both sides are coded in one hash pass; the extract's rows pick their register row
    through a code -> row table, so the result has the extract's rows whatever the register holds.
    """
    source = f"register '{name}'"
    join_year = side.year is not None and YEAR in other.columns
    wanted = [v for v in variables if not (join_year and v == YEAR)]
    missing = [c for c in (key, *wanted) if c not in other.columns]
    if missing:
        raise InputDataError(
            Problem("missing_column", f"{source} lacks column(s) {', '.join(missing)}", file=source)
        )
    target = _Target(name, key, source, join_year, len(other), duplicates)
    keys = _register_keys(side, other, key, source, changes, reference_date)
    codes = _join_codes(side, other, keys.person, join_year, source)
    picked = _pick_rows(codes, target)
    columns = _linked_columns(existing, target, other, wanted, picked.take)
    link = _link_record(side, target, keys, codes, picked, list(columns))
    return columns, link


def wanted_links(registers: Iterable[str], order: Order, policy: Policy, key: str) -> dict[str, list[str]]:
    """The ordered and allowed registers linked on ``key``; a register given but not ordered is refused."""
    registers = list(registers)
    allowed = allowed_links(order, policy)
    wanted = {r: v for r, v in allowed.items() if policy.linkage[r].key == key}
    problems = [
        Problem(
            "link_not_ordered",
            f"the register '{r}' was given, but the order does not ask to link it",
            file=order.source or None,
            hint="only registers the order asks for (and the policy allows) may be linked",
        )
        for r in registers
        if r not in allowed
    ]
    problems += [
        Problem(
            "wrong_key",
            f"the policy links '{r}' on the {policy.linkage[r].key}, not on the {key}",
            file=policy.source or None,
        )
        for r in registers
        if r in allowed and r not in wanted
    ]
    unknown = [r for r in wanted if r not in COMPANIONS]
    if unknown:
        problems.append(Problem("unknown_register", f"unknown register(s): {', '.join(unknown)}"))
    if problems:
        raise PolicyRefused(problems)
    return wanted


def link(
    extract: pd.DataFrame,
    registers: dict[str, pd.DataFrame],
    order: Order,
    policy: Policy,
    changes: pd.DataFrame | None = None,
    reference_date: dt.date | None = None,
) -> tuple[pd.DataFrame, LinkageReport]:
    """Link ``extract`` (with a ``personnummer`` column) with the registers the order asks for and
    the policy allows. Returns the linked extract (same rows, same order, keys normalised and
    changed numbers applied) and the report.

    ``reference_date`` reads 10-digit keys of registers without a ``year`` column (the register's
    own date); the extract's and year-wise registers' keys are read at each year's measurement date.
    """
    wanted = wanted_links(registers, order, policy, KEY)
    missing = [r for r in wanted if r not in registers]
    if missing:
        raise InputDataError(
            Problem(
                "missing_register", f"the order links {', '.join(missing)}, but no such register was given"
            )
        )
    if KEY not in extract.columns:
        raise InputDataError(Problem("missing_column", "the extract has no personnummer column to link on"))
    resolved = _resolve_changes(changes) if changes is not None and len(changes) else None
    keys, samord = _parse_keys(extract[KEY], KEY, "the extract", _reference(extract, None, extract=True))
    keys, applied = _apply(keys, resolved)
    side = _prepare_extract(extract, KEY, keys, samord)
    persons = side.persons
    samord_persons = int(pd.unique(keys[samord]).size) if samord.any() else 0
    report = LinkageReport(
        extract=ExtractSummary(
            key=KEY,
            rows=len(extract),
            persons=persons,
            samordningsnummer=samord_persons,
            samordningsnummer_share=round(samord_persons / persons, 4) if persons else 0.0,
            changed_numbers_applied=applied,
        )
    )
    new_columns: dict[str, Any] = {KEY: _as_text(keys)}
    for name, variables in wanted.items():
        rule = policy.linkage[name]
        cols, rec = _link_one(
            set(extract.columns) | set(new_columns),
            side,
            name,
            registers[name],
            variables,
            rule.key,
            rule.duplicates,
            resolved,
            reference_date,
        )
        new_columns.update(cols)
        report.links.append(rec)
    out = extract.copy()
    for c, values in new_columns.items():
        out[c] = pd.Series(values, index=extract.index)
    return out, report


def link_pseudonymised(
    extract: pd.DataFrame,
    registers: dict[str, pd.DataFrame],
    order: Order,
    policy: Policy,
) -> tuple[pd.DataFrame, LinkageReport]:
    """Link partner extracts pseudonymised with the project key (see :mod:`lsssdc.identity.partner`).

    Only registers the order asks for and the policy links on the pseudonym; each may arrive on
    its own, so registers the order asks for but that are not given are not an error here.
    """
    wanted = wanted_links(registers, order, policy, "pseudonym")
    column = policy.pseudonymisation.column
    out = extract
    report = LinkageReport()
    for name in registers:
        rule = policy.linkage[name]
        out, rec = link_on_pseudonym(out, registers[name], wanted[name], name, column, rule.duplicates)
        report.links.append(rec)
    return out, report


def link_on_pseudonym(
    extract: pd.DataFrame,
    partner: pd.DataFrame,
    variables: list[str],
    name: str = "partner",
    column: str = "pseudonym",
    duplicates: Literal["refuse", "first", "last"] = "refuse",
) -> tuple[pd.DataFrame, RegisterLink]:
    """Join a partner agency's extract, pseudonymised with the same project key, on the pseudonym.

    Joins per pseudonym and year when both have a ``year`` column; same rows, same order."""
    for frame, what in ((extract, "the extract"), (partner, f"register '{name}'")):
        if column not in frame.columns:
            raise InputDataError(Problem("missing_column", f"{what} has no column '{column}'"))
    side = _prepare_extract(extract, column, None, np.zeros(len(extract), bool))
    cols, rec = _link_one(set(extract.columns), side, name, partner, variables, column, duplicates, None)
    out = extract.copy()
    for c, values in cols.items():
        out[c] = pd.Series(values, index=extract.index)
    return out, rec
