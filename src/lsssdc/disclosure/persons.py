"""k-anonymity of persons against an intruder who knows a person's history.

The pseudonym links a person's rows, so an intruder does not look at one row: they look for
the persons *all* of whose released rows agree with what they know about a target (the true
values of the quasi-identifiers in some or all years, the years with services, the year of
death, what the register's rules imply, what earlier deliveries to the project show). Any such
test is a function of a person's released rows. Two persons whose released rows are the same
(the same multiset of years and quasi-identifier values, a suppressed value being a value of
its own, and the released flags that narrow a quasi-identifier through a register rule) pass or
fail every such test together. So the guarantee is built on that *profile*: every released
person shares it with at least k-1 others, and then every target has at least k candidates,
whatever subset of the true values the intruder holds, whichever years they know, and however
they refill a blank from the person's other rows.

Treatment reaches it with the least loss the search finds: persons whose profile is shared by
fewer than k (or whose class lacks l distinct values of a sensitive variable) get variables
suppressed on *every* row (a value shown elsewhere would refill the blank), trying the subsets
of quasi-identifiers from the smallest; a subset's blank pattern is visible, so each subset
forms classes of its own and must reach k on its own. Persons no subset protects (their years
alone are rare) are withheld, counted and named as a figure in the report.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import pandas as pd

#: The code a suppressed value has in text columns (Statistics Sweden's ".." for "not shown").
SUPPRESSED = ".."
#: The column that names, per row, the variables suppressed on it.
FLAG_COLUMN = "suppressed"

_M1 = np.uint64(0xFF51AFD7ED558CCD)
_M2 = np.uint64(0xC4CEB9FE1A85EC53)
_BLANK = np.uint64(0x5BD1E9955BD1E995)
_SALT = np.uint64(0x9E3779B97F4A7C15)

_Hashes = TypeVar("_Hashes", np.ndarray, np.uint64)


def _mix(x: _Hashes) -> _Hashes:
    """A 64-bit finaliser: spreads every input bit over the output (sums stay collision-poor)."""
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint64(33))
        x = x * _M1
        x = x ^ (x >> np.uint64(33))
        x = x * _M2
        return x ^ (x >> np.uint64(33))


def _column_hash(s: pd.Series) -> np.ndarray:
    return pd.util.hash_pandas_object(s.astype("string"), index=False).to_numpy(np.uint64)


# --------------------------------------------------------------------------------------------
# what the register's rules let an intruder infer from a released flag


@dataclass(frozen=True)
class Implication:
    """A released flag that narrows a quasi-identifier by a register rule.

    ``age_range`` is the age (in the year of the row) the rule allows when the flag is 1;
    ``allowed`` the codes it allows. The flag matters for a row only when what is released
    about the variable does not already say as much.
    """

    rule: str
    flag: str
    variable: str
    age_range: tuple[int, int] | None = None
    allowed: frozenset[str] | None = None


#: From the register's plausibility checks.
IMPLICATIONS: tuple[Implication, ...] = (
    Implication("R04", "korttidstillsyn", "age", age_range=(12, 23)),
    Implication("R10", "familjehem", "age", age_range=(0, 25)),
    Implication("R11", "bostad_barn", "age", age_range=(0, 25)),
    Implication("R12", "bostad_vuxna", "age", age_range=(17, 200)),
    Implication("R12", "boende_vuxna", "age", age_range=(17, 200)),
    Implication("R13", "annan_bostad_vuxna", "age", age_range=(17, 200)),
    Implication("R15", "daglig_verksamhet", "age", age_range=(16, 200)),
    Implication("R14", "daglig_verksamhet", "personkrets", allowed=frozenset({"1", "2"})),
    # a warning only (the register accepts it), but an intruder may well take it as a rule
    Implication("R20", "daglig_verksamhet", "age", age_range=(0, 70)),
)

_BAND = re.compile(r"^(\d+)(?:-(\d+)|(\+))?$")


def age_band_range(labels: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Lowest and highest age each released value allows (a blank or unknown label: any age)."""
    codes, uniques = pd.factorize(labels.astype("string"), sort=False)
    lo_u = np.zeros(len(uniques) + 1, np.int64)
    hi_u = np.full(len(uniques) + 1, 200, np.int64)
    for i, label in enumerate(uniques):  # a handful of band labels, not rows
        m = _BAND.match(str(label))
        if m:
            lo_u[i] = int(m.group(1))
            hi_u[i] = 200 if m.group(3) else int(m.group(2) or m.group(1))
    return lo_u[codes], hi_u[codes]  # code -1 (missing) takes the last: any age


def _implication_hashes(
    rows: pd.DataFrame, age_column: str | None, blanked: set[str], known: set[str]
) -> np.ndarray:
    """Per row: what the register's rules add to what is released about a variable the intruder
    knows. Age: the interval the released band and the row's flags leave, where it is narrower
    than the band; personkrets: the codes a flag allows, where personkrets is not shown."""
    n = len(rows)
    out = np.zeros(n, np.uint64)
    if "age" in known:
        if age_column is not None and age_column not in blanked and age_column in rows.columns:
            lo, hi = age_band_range(rows[age_column])
        else:
            lo, hi = np.zeros(n, np.int64), np.full(n, 200, np.int64)
        new_lo, new_hi = lo.copy(), hi.copy()
        for imp in IMPLICATIONS:
            if imp.age_range is None or imp.flag not in rows.columns:
                continue
            on = _flag_on(rows[imp.flag])
            # an age measured on 1 November and "the year the person turns N" differ by one
            a, b = imp.age_range[0] - 1, imp.age_range[1] + 1
            new_lo = np.where(on, np.maximum(new_lo, a), new_lo)
            new_hi = np.where(on, np.minimum(new_hi, b), new_hi)
        narrowed = (new_lo > lo) | (new_hi < hi)
        if narrowed.any():
            v = (new_lo.astype(np.uint64) << np.uint64(16)) | new_hi.astype(np.uint64)
            with np.errstate(over="ignore"):
                out += np.where(narrowed, _mix(v + _SALT * np.uint64(101)), np.uint64(0))
    for i, imp in enumerate(IMPLICATIONS):
        if imp.allowed is None or imp.flag not in rows.columns or imp.variable not in known:
            continue
        col = imp.variable
        hidden = (
            np.ones(n, bool)
            if col not in rows.columns or col in blanked
            else (rows[col].isna() | (rows[col].astype("string") == SUPPRESSED)).fillna(True).to_numpy(bool)
        )
        on = _flag_on(rows[imp.flag]) & hidden
        if on.any():
            with np.errstate(over="ignore"):
                out += np.where(on, _mix(_SALT * np.uint64(2 * i + 103)), np.uint64(0))
    return out


def _flag_on(s: pd.Series) -> np.ndarray:
    return (pd.to_numeric(s, errors="coerce") == 1).fillna(False).to_numpy(bool)


# --------------------------------------------------------------------------------------------
# profiles


def _person_codes(person: pd.Series) -> tuple[np.ndarray, int]:
    codes, uniques = pd.factorize(person, sort=False)
    return codes.astype(np.int64), len(uniques)


def _sum_per_person(codes: np.ndarray, n: int, values: np.ndarray) -> np.ndarray:
    out = np.zeros(n, np.uint64)
    np.add.at(out, codes, values)
    return out


@dataclass(frozen=True)
class Profiles:
    """Per person: a 128-bit digest of the multiset of their released rows, and their row count."""

    a: np.ndarray
    b: np.ndarray
    rows: np.ndarray

    def key(self, extra: Profiles | None = None) -> pd.DataFrame:
        cols = {"a": self.a, "b": self.b, "n": self.rows}
        if extra is not None:
            cols |= {"xa": extra.a, "xb": extra.b, "xn": extra.rows}
        return pd.DataFrame(cols)


def profiles(
    rows: pd.DataFrame,
    codes: np.ndarray,
    n: int,
    qis: Sequence[str],
    blanked: set[str] = frozenset(),  # type: ignore[assignment]
    *,
    known: set[str] | None = None,
    age_column: str | None = None,
    hashes: Mapping[str, np.ndarray] | None = None,
) -> Profiles:
    """Digest of each person's released rows with the variables in ``blanked`` suppressed."""
    hashes = hashes or {q: _column_hash(rows[q]) for q in qis}
    h = np.zeros(len(rows), np.uint64)
    with np.errstate(over="ignore"):
        for i, q in enumerate(qis):
            salt = _SALT * np.uint64(2 * i + 1)
            h += _BLANK * salt if q in blanked else _mix(hashes[q] + salt)
        h += _implication_hashes(rows, age_column, set(blanked), known if known is not None else set(qis))
        a = _sum_per_person(codes, n, _mix(h))
        b = _sum_per_person(codes, n, _mix(h ^ _BLANK))
    count = np.bincount(codes, minlength=n).astype(np.int64)
    return Profiles(a, b, count)


def class_sizes(key: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Class number and class size per person."""
    if key.empty:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    g = key.groupby(list(key.columns), sort=False).ngroup().to_numpy()
    return g, np.bincount(g)[g]


def _diversity(
    rows: pd.DataFrame, codes: np.ndarray, n: int, sensitive: Sequence[str]
) -> dict[str, np.ndarray]:
    """Per person and sensitive variable: a digest of the set of values over their rows."""
    out = {}
    for s in sensitive:
        pairs = pd.DataFrame({"p": codes, "v": _column_hash(rows[s])}).drop_duplicates()
        out[s] = _sum_per_person(pairs["p"].to_numpy(), n, _mix(pairs["v"].to_numpy()))
    return out


def _l_per_person(groups: np.ndarray, signature: np.ndarray) -> np.ndarray:
    frame = pd.DataFrame({"g": groups, "s": signature})
    distinct = frame.groupby("g")["s"].nunique()
    return distinct.reindex(groups).to_numpy()


@dataclass(frozen=True)
class PersonClasses:
    """The intruder's view of one delivery: each person's class (the persons whose released
    rows over all years, joined with the earlier deliveries, look the same) and its size."""

    #: per row: the person's number; and the number of persons
    codes: np.ndarray
    persons: int
    #: per person: class number and class size
    groups: np.ndarray
    sizes: np.ndarray

    def l_per_person(self, rows: pd.DataFrame, sensitive: Sequence[str]) -> dict[str, np.ndarray]:
        """Per sensitive variable and person: the distinct sets of its values over their rows
        that the person's class holds (the gate's l)."""
        if not self.persons:
            return {s: np.zeros(0, np.int64) for s in sensitive}
        return {
            s: _l_per_person(self.groups, sig).astype(np.int64)
            for s, sig in _diversity(rows, self.codes, self.persons, list(sensitive)).items()
        }

    def lowest_l(self, rows: pd.DataFrame, sensitive: Sequence[str]) -> int:
        """The fewest distinct value sets of a sensitive variable a class holds (over every
        sensitive variable; a large number when there is none to count)."""
        worst = 1 << 30
        for lv in self.l_per_person(rows, sensitive).values():
            worst = min(worst, int(lv.min()) if len(lv) else worst)
        return worst


def measure(
    rows: pd.DataFrame,
    person: str,
    qis: Sequence[str],
    *,
    known: Sequence[str],
    age_column: str | None = None,
    history: Profiles | None = None,
    history_persons: pd.Series | None = None,
) -> PersonClasses:
    """Group the persons of ``rows`` as the intruder of :func:`protect` sees them (a blanked
    value is a value of its own), with their earlier deliveries when given."""
    codes, n = _person_codes(rows[person])
    extra = _history_for(rows[person], codes, n, history, history_persons)
    prof = profiles(rows, codes, n, qis, known=set(known), age_column=age_column)
    groups, sizes = class_sizes(prof.key(extra))
    return PersonClasses(codes, n, groups, sizes)


# --------------------------------------------------------------------------------------------
# treatment


@dataclass
class PersonProtection:
    """What the person-level treatment did and what it reached."""

    k: int
    l: int  # noqa: E741 - the established name
    persons: int
    rows: int
    quasi_identifiers: list[str]
    sensitive: list[str]
    min_class: int
    min_l: int
    classes: int
    before_below_k: int
    before_unique: int
    levels: list[dict[str, Any]] = field(default_factory=list)
    withheld_persons: int = 0
    withheld_rows: int = 0
    suppressed_persons: dict[str, int] = field(default_factory=dict)
    suppressed_rows: dict[str, int] = field(default_factory=dict)
    rows_touched: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    implications: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _subsets(order: Sequence[str], year: str | None) -> list[frozenset[str]]:
    """Blank sets from the least loss: fewer variables first, earlier in the suppression order first;
    the year (the row's time) last of all, with everything else."""
    # every subset while there are few variables; beyond that, small subsets and then prefixes
    most = len(order) if len(order) <= 7 else 2
    subsets = [frozenset(s) for r in range(most + 1) for s in itertools.combinations(order, r)]
    subsets += [frozenset(order[:r]) for r in range(most + 1, len(order) + 1)]
    subsets.sort(key=lambda s: (len(s), sorted(order.index(x) for x in s)))
    if year is not None:
        subsets.append(frozenset(order) | {year})
    return subsets


def protect(
    rows: pd.DataFrame,
    person: str,
    qis: Sequence[str],
    *,
    k: int,
    l: int = 1,  # noqa: E741
    sensitive: Sequence[str] = (),
    order: Sequence[str] = (),
    known: Sequence[str] = (),
    age_column: str | None = None,
    year: str | None = "year",
    history: Profiles | None = None,
    history_persons: pd.Series | None = None,
) -> tuple[pd.DataFrame, PersonProtection]:
    """Suppress (and as a last resort withhold) until every person's class has k persons and l values.

    ``rows`` are the delivered rows (one person may have many). ``history`` holds, per person of
    ``history_persons``, the digest of what earlier deliveries to the project released about them;
    classes are formed on both, so a supplement cannot undo an earlier delivery's protection.
    Returns the treated rows (suppressed values set to :data:`SUPPRESSED` or missing for numbers,
    withheld persons removed, a :data:`FLAG_COLUMN` naming what was suppressed) and a record.
    """
    qis = list(qis)
    codes, n = _person_codes(rows[person])
    knows = set(known) | set(qis)
    sens = [s for s in sensitive if s in rows.columns] if l > 1 else []
    view = _View(
        narrow=rows[[c for c in rows.columns if c in set(qis) | {imp.flag for imp in IMPLICATIONS}]],
        codes=codes,
        n=n,
        qis=qis,
        knows=knows,
        hashes={q: _column_hash(rows[q]) for q in qis},
        extra=_history_for(rows[person], codes, n, history, history_persons),
        signatures=_diversity(rows, codes, n, sens),
        age_column=age_column,
    )
    year_col = year if year in qis else None
    blankable = [q for q in order if q in qis and q != year_col]
    blankable += [q for q in qis if q not in blankable and q != year_col]
    subsets = _subsets(blankable, year_col)

    done = _Settled(level=np.full(n, -1, np.int64), unsettled=np.ones(n, bool))
    for i, blank in enumerate(subsets):
        idx = np.flatnonzero(done.unsettled)
        if not len(idx):
            break
        groups, sizes, lmin, ok = view.classes(idx, done.unsettled, blank, k, l)
        if i == 0:
            done.before_below, done.before_unique = int((sizes < k).sum()), int((sizes == 1).sum())
        if ok.any():
            done.settle(i, blank, idx[ok], groups[ok], sizes[ok], lmin[ok] if sens else None)

    withheld = done.unsettled
    out, sup_persons, sup_rows, touched = _apply(rows, codes, qis, subsets, done.level, withheld, year_col)
    record = PersonProtection(
        k=k,
        l=l,
        persons=n,
        rows=len(rows),
        quasi_identifiers=qis,
        sensitive=list(sens),
        min_class=done.min_class,
        min_l=done.min_l if sens else 0,
        classes=done.classes,
        before_below_k=done.before_below,
        before_unique=done.before_unique,
        levels=done.levels,
        withheld_persons=int(withheld.sum()),
        withheld_rows=int(withheld[codes].sum()),
        suppressed_persons=sup_persons,
        suppressed_rows=sup_rows,
        rows_touched=touched,
        implications=sorted(
            {
                f"{imp.rule}: {imp.flag} -> {imp.variable}"
                for imp in IMPLICATIONS
                if imp.flag in rows.columns and imp.variable in knows
            }
        ),
    )
    return out, record


@dataclass(frozen=True)
class _View:
    """What the treatment measures every blank set on: the delivery's quasi-identifier
    columns, the persons, their value hashes, history and sensitive-value signatures."""

    narrow: pd.DataFrame
    codes: np.ndarray
    n: int
    qis: list[str]
    knows: set[str]
    hashes: dict[str, np.ndarray]
    extra: Profiles | None
    signatures: dict[str, np.ndarray]
    age_column: str | None

    def classes(
        self,
        idx: np.ndarray,
        unsettled: np.ndarray,
        blank: frozenset[str],
        k: int,
        l: int,  # noqa: E741
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The unsettled persons ``idx`` with ``blank`` suppressed: class, class size, lowest l,
        and whether k and l hold for them."""
        row_mask = unsettled[self.codes]
        sub_rows = self.narrow.loc[row_mask] if not row_mask.all() else self.narrow
        sub_codes = np.searchsorted(idx, self.codes[row_mask])
        sub_hashes = {q: self.hashes[q][row_mask] for q in self.qis}
        prof = profiles(
            sub_rows,
            sub_codes,
            len(idx),
            self.qis,
            set(blank),
            known=self.knows,
            age_column=self.age_column,
            hashes=sub_hashes,
        )
        groups, sizes = class_sizes(prof.key(_take(self.extra, idx)))
        ok = sizes >= k
        lmin = np.full(len(idx), 1 << 30)
        for sig in self.signatures.values():
            lv = _l_per_person(groups, sig[idx])
            lmin = np.minimum(lmin, lv)
            ok &= lv >= l
        return groups, sizes, lmin, ok


@dataclass
class _Settled:
    """Who is settled at which blank set so far, and the figures of the classes they settled in."""

    level: np.ndarray
    unsettled: np.ndarray
    levels: list[dict[str, Any]] = field(default_factory=list)
    min_class: int = 0
    min_l: int = 0
    classes: int = 0
    before_below: int = 0
    before_unique: int = 0

    def settle(
        self,
        i: int,
        blank: frozenset[str],
        settled: np.ndarray,
        groups: np.ndarray,
        sizes: np.ndarray,
        lmin: np.ndarray | None,
    ) -> None:
        self.level[settled] = i
        self.unsettled[settled] = False
        self.levels.append({"suppressed": sorted(blank), "persons": len(settled)})
        smallest = int(sizes.min())
        self.min_class = smallest if not self.min_class else min(self.min_class, smallest)
        if lmin is not None:
            m = int(lmin.min())
            self.min_l = m if not self.min_l else min(self.min_l, m)
        self.classes += int(len(np.unique(groups)))


def _take(extra: Profiles | None, idx: np.ndarray) -> Profiles | None:
    if extra is None:
        return None
    return Profiles(extra.a[idx], extra.b[idx], extra.rows[idx])


def _history_for(
    person: pd.Series, codes: np.ndarray, n: int, history: Profiles | None, persons: pd.Series | None
) -> Profiles | None:
    """Earlier deliveries' digests aligned to this delivery's persons (absent: a digest of nothing)."""
    if history is None or persons is None:
        return None
    first = pd.Series(np.arange(len(codes))).groupby(codes).first().to_numpy()
    ids = person.to_numpy()[first]
    pos = pd.Index(persons.astype("string")).get_indexer(pd.Index(pd.Series(ids).astype("string")))
    found = pos >= 0
    safe = np.where(found, pos, 0)
    return Profiles(
        np.where(found, history.a[safe], np.uint64(0)),
        np.where(found, history.b[safe], np.uint64(0)),
        np.where(found, history.rows[safe], 0),
    )


def _apply(
    rows: pd.DataFrame,
    codes: np.ndarray,
    qis: list[str],
    subsets: list[frozenset[str]],
    level: np.ndarray,
    withheld: np.ndarray,
    year: str | None,
) -> tuple[pd.DataFrame, dict[str, int], dict[str, int], int]:
    keep = ~withheld[codes]
    out = rows.loc[keep].copy()
    kept_codes = codes[keep]
    person_level = level[kept_codes]
    flag = np.full(len(out), "", dtype=object)
    sup_persons: dict[str, int] = {}
    sup_rows: dict[str, int] = {}
    touched = np.zeros(len(out), bool)
    for q in qis:
        hit_levels = np.array([q in s for s in subsets] + [False])  # index -1: withheld
        person_hit = hit_levels[np.where(level >= 0, level, len(subsets))]
        row_hit = person_hit[kept_codes]
        sup_persons[q] = int((person_hit & (level >= 0)).sum())
        sup_rows[q] = int(row_hit.sum())
        if not row_hit.any():
            continue
        touched |= row_hit
        if q == year or pd.api.types.is_numeric_dtype(out[q]):
            kind = "Int16" if q == year else ("Int64" if pd.api.types.is_integer_dtype(out[q]) else "Float64")
            out[q] = out[q].astype(kind).mask(row_hit)
        else:
            out[q] = out[q].astype("string[pyarrow]").mask(row_hit, SUPPRESSED)
        flag = np.where(row_hit, np.where(flag == "", q, flag + " " + q), flag)
    del person_level
    out[FLAG_COLUMN] = pd.array(flag, dtype="string[pyarrow]")
    return out.reset_index(drop=True), sup_persons, sup_rows, int(touched.sum())
