"""An independent reader of published LSS tables, and the linear programme it attacks them with.

Nothing here imports lsssdc. The reader holds what a release gives (the package files: every
``<name>.csv`` with a code and a label per dimension, then ``value``, ".." when hidden, and
``notes``; every ``<name>.json`` with the dimensions' codes and parents, the unit and the
scope), what the register's rules tell anybody (DOMAIN.md, the quality declaration), and
what another release gives them (earlier table packages, a microdata extract of the same
year). From that it writes its own model of the cells, and bounds every hidden cell with
``scipy.optimize.linprog(method="highs")`` on sparse matrices.

The model, written from the domain:

* A cell is what it counts: the unit, the year(s), the insatser in scope and the coordinates.
  Cells of different tables and packages that count the same thing are one variable. A
  dimension a table lacks is at its total; a län code is a level of the kommun dimension
  (kommun codes have four digits, the first two are the län; riket is "00"). A persons cell
  whose insats is one insats in one year counts the same as the insatser cell there: the same
  insats is never given to one person twice, nor by two kommuner (rule 9), so both are one
  variable. Such a cell counts all holders of that insats whatever the scope, since a holder
  of an insats in scope is in scope.
* Margins. Insatser add up over every dimension. Persons add up over sex, and over age band
  in one year (each person has one); over insats, kommun, year, personkrets a persons margin
  is a union: at least its largest part, at most the sum of its parts; over kommun it is a
  sum again when the insats is one insats and the year one year (rule 9). Housing insatser
  are held by a person one at a time (rule 5), so a persons total over insatser is at least
  the sum of its housing cells; until 2019 daglig verksamhet and korttidstillsyn were
  exclusive too (rule 6).
* Structural zeros (rules 4, 10-15): a cell of an insats and an age band (age on the
  measurement date, 1 October, so the person turns that age or one more during the year)
  that the rules forbid is 0; so is daglig verksamhet for personkrets 3.
* A microdata extract of the same year: its persons are lower bounds of the cells they
  certainly fall in (distinct persons; a ".." fits anything). Where the extract holds the whole
  population of a cell (the insats is one the order selected persons by), the cell is at most
  the persons who could fall in it plus the persons the extract lacks, which the reader
  reads off a published national count of that insats.

The programme: one variable per hidden cell (a cell shown anywhere is a constant; a cell
hidden in one table and shown in another is counted as pinned), every relation above, bounds
propagated through the relations and rounded to whole numbers (the cells are counts, so the
rounded bounds hold for the truth and the LP may use them), then per connected part of the
programme the LP minimum and maximum of each hidden cell. Without ``exact``, feasible points
found for many cells at once settle most cells first (they show a cell can be below its
value and at the threshold, or two whole numbers apart); only the rest get their own LPs, and
the decisions are those of the per-cell LPs (a test on random registers checks that).
Cells are integers, so an interval [lower, upper] from the LP means [ceil(lower), floor(upper)].
A hidden cell with true value v, 1 <= v < threshold, is *exposed* when the reader can tell it
is small (floor(upper) < threshold) or non-empty and at least v (ceil(lower) >= v); a hidden
cell is *pinned* when its integer interval holds one value. The truth never enters the
programme: it scores the attack (and tells the quick mode which cells need their own LPs).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import time
import zipfile
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.optimize import linprog

HIDDEN = ".."
#: the eleven insatser from 2004 on; 1999-2003 the two adult housing insatser were one
INSATSER = (
    "personlig_assistans",
    "ledsagarservice",
    "kontaktperson",
    "avlosarservice",
    "korttidsvistelse",
    "korttidstillsyn",
    "familjehem",
    "bostad_barn",
    "bostad_vuxna",
    "annan_bostad_vuxna",
    "daglig_verksamhet",
)
INSATSER_1999 = (*INSATSER[:8], "boende_vuxna", INSATSER[10])
#: rule 5: one LSS housing insats per person
HOUSING = frozenset({"familjehem", "bostad_barn", "bostad_vuxna", "annan_bostad_vuxna", "boende_vuxna"})
#: rule 6: not both, an error until 2019 (a warning from 2020 on)
EXCLUSIVE_UNTIL_2019 = frozenset({"daglig_verksamhet", "korttidstillsyn"})
#: rules 4, 10-13, 15: the ages a person may TURN in a year with the insats (None: no limit)
TURNS = {
    "korttidstillsyn": (12, 23),
    "familjehem": (None, 25),
    "bostad_barn": (None, 25),
    "bostad_vuxna": (17, None),
    "annan_bostad_vuxna": (17, None),
    "boende_vuxna": (17, None),
    "daglig_verksamhet": (16, None),
}
#: rule 14: daglig verksamhet only for personkrets 1 and 2 (4 meant 3 in 1999-2003)
PERSONKRETS = {"daglig_verksamhet": frozenset({"1", "2"})}
GEO_DIMS = ("kommun", "lan")
RIKET = "00"
ALL = "all"  # the scope of a table over every insats

# --------------------------------------------------------------------------------------------
# reading a package


@dataclass
class Table:
    """One published table as a reader has it: codes per row, the shown value, the notes."""

    package: str
    name: str
    unit: str
    measure: str | None
    years: tuple[int, ...]
    scope: frozenset[str]
    dims: tuple[str, ...]
    #: per dimension: code -> parent code (None at a root)
    parents: dict[str, dict[str, str | None]]
    codes: list[tuple[str, ...]]
    shown: list[str]
    notes: list[str]
    description: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def hidden(self) -> np.ndarray:
        return np.array([v == HIDDEN for v in self.shown], bool)

    def children(self, dim: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = defaultdict(list)
        for code, parent in self.parents[dim].items():
            if parent is not None:
                out[parent].append(code)
        return dict(out)


def _read_csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_bytes().decode("utf-8-sig"))))


def _years(text: Any) -> tuple[int, ...]:
    if isinstance(text, list):
        return tuple(sorted(int(y) for y in text))
    return tuple(sorted(int(y) for y in re.findall(r"\d{4}", str(text))))


def _scope(text: Any) -> frozenset[str]:
    if isinstance(text, list):
        return frozenset(map(str, text))
    return frozenset(s.strip() for s in str(text or "").split(",") if s.strip())


def read_package(path: str | Path, label: str | None = None) -> list[Table]:
    """Every table of a delivered package: each ``<name>.json`` with dimensions and its CSV."""
    folder = Path(path)
    label = label or folder.name
    out = []
    for desc_path in sorted(folder.glob("*.json")):
        desc = json.loads(desc_path.read_text(encoding="utf-8"))
        if not isinstance(desc, dict) or "dimensions" not in desc:
            continue
        csv_path = folder / f"{desc_path.stem}.csv"
        rows = _read_csv(csv_path)
        dims = tuple(d["name"] for d in desc["dimensions"])
        parents = {
            d["name"]: {
                str(c): (None if p is None else str(p)) for c, p in zip(d["codes"], d["parents"], strict=True)
            }
            for d in desc["dimensions"]
        }
        scope = desc.get("scope") or {}
        out.append(
            Table(
                package=label,
                name=str(desc.get("name") or desc_path.stem),
                unit=str(desc.get("unit") or "persons"),
                measure=desc.get("measure"),
                years=_years(scope.get("years")),
                scope=_scope(scope.get("insatser")),
                dims=dims,
                parents=parents,
                codes=[tuple(r[d] for d in dims) for r in rows],
                shown=[r["value"] for r in rows],
                notes=[r.get("notes", "") for r in rows],
                description=desc,
            )
        )
    return out


def read_xlsx_rows(path: str | Path) -> list[list[str]]:
    """The first sheet of a workbook as rows of text (inline strings, shared strings, numbers)."""
    ns = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
    with zipfile.ZipFile(path) as zf:
        shared: list[str] = []
        if "xl/sharedStrings.xml" in zf.namelist():
            root = ElementTree.fromstring(zf.read("xl/sharedStrings.xml"))
            shared = ["".join(t.text or "" for t in si.iter(f"{{{ns['m']}}}t")) for si in root]
        sheets = sorted(n for n in zf.namelist() if n.startswith("xl/worksheets/") and n.endswith(".xml"))
        root = ElementTree.fromstring(zf.read(sheets[0]))
    rows = []
    for row in root.iter(f"{{{ns['m']}}}row"):
        cells: dict[int, str] = {}
        for c in row.iter(f"{{{ns['m']}}}c"):
            ref = re.match(r"([A-Z]+)", c.get("r", "A"))
            col = 0
            for ch in ref.group(1) if ref else "A":
                col = col * 26 + ord(ch) - 64
            kind = c.get("t")
            if kind == "inlineStr":
                text = "".join(t.text or "" for t in c.iter(f"{{{ns['m']}}}t"))
            else:
                v = c.find("m:v", ns)
                text = "" if v is None or v.text is None else v.text
                if kind == "s":
                    text = shared[int(text)]
            cells[col - 1] = text
        width = max(cells) + 1 if cells else 0
        rows.append([cells.get(i, "") for i in range(width)])
    return rows


# --------------------------------------------------------------------------------------------
# what a cell is


def band(code: str | None) -> tuple[float, float] | None:
    """The ages an age band holds ("7-12", "80+", "17"); None for no band (the total)."""
    if code is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*(?:(-)\s*(\d+)|(\+))?\s*", str(code))
    if not m:
        return None
    lo = float(m.group(1))
    hi = math.inf if m.group(4) else float(m.group(3)) if m.group(3) else lo
    return lo, hi


@dataclass(frozen=True)
class Key:
    """What a cell counts. ``None`` for a coordinate at its total."""

    unit: str
    years: tuple[int, ...]
    scope: str | frozenset[str]
    geo: str
    sex: str | None
    age: str | None
    insats: str | None
    personkrets: str | None
    other: tuple[tuple[str, str], ...] = ()

    def replace(self, **kw: Any) -> Key:
        d = dict(self.__dict__)
        d.update(kw)
        return Key(**d)


def _is_all(scope: frozenset[str]) -> bool:
    return not scope or set(INSATSER) <= scope or set(INSATSER_1999) <= scope


def canonical(
    unit: str, years: tuple[int, ...], scope: frozenset[str], coords: Mapping[str, str | None]
) -> Key:
    """The cell a coordinate tuple counts (None in ``coords``: at the total)."""
    geo = RIKET
    for d in ("lan", "kommun"):  # the finer wins
        if coords.get(d) is not None:
            geo = str(coords[d])
    if coords.get("year") is not None:
        years = (int(coords["year"]),)
    ins = coords.get("insats")
    sc: str | frozenset[str] = ALL if _is_all(scope) else scope
    if ins is not None and (sc == ALL or ins in scope):
        sc = ALL  # every holder of an insats in scope is in scope
    if unit == "persons" and ins is not None and len(years) == 1:
        unit = "insatser"  # one insats, one year: persons are insatser (rule 9)
    other = tuple(
        sorted(
            (d, str(v))
            for d, v in coords.items()
            if v is not None
            and d not in ("lan", "kommun", "year", "insats", "sex", "age_band", "personkrets")
        )
    )
    pk = coords.get("personkrets")
    return Key(
        unit=unit,
        years=tuple(years),
        scope=sc,
        geo=geo,
        sex=coords.get("sex"),
        age=coords.get("age_band"),
        insats=ins,
        personkrets=None if pk is None else ("3" if pk == "4" else pk),
        other=other,
    )


def structural_zero(key: Key) -> bool:
    """Whether the register's rules make the cell 0 (rules 4, 10-15)."""
    if key.insats is None:
        return False
    if key.personkrets is not None and key.personkrets not in PERSONKRETS.get(key.insats, {key.personkrets}):
        return True
    limits = TURNS.get(key.insats)
    ages = band(key.age)
    if limits is None or ages is None:
        return False
    lo_turn, hi_turn = ages[0], ages[1] + 1  # aged a on 1 October: turns a or a + 1 that year
    lo_ok, hi_ok = limits
    if lo_ok is not None and hi_turn < lo_ok:
        return True
    return hi_ok is not None and lo_turn > hi_ok


# --------------------------------------------------------------------------------------------
# the model: variables, known values, relations


@dataclass
class Relation:
    """lo <= sum(coef * cell) <= hi, with where it comes from."""

    cells: tuple[Key, ...]
    coefs: tuple[float, ...]
    lo: float
    hi: float
    why: str


@dataclass
class Source:
    package: str
    table: str
    row: int


class Model:
    """The reader's cells (shown or hidden), and every relation it knows between them."""

    def __init__(self) -> None:
        self.known: dict[Key, float] = {}
        self.hidden: dict[Key, list[Source]] = {}
        #: cells hidden in one table but shown in another (same key): the reader has them
        self.revealed: dict[Key, list[Source]] = {}
        self.sources: dict[Key, list[Source]] = defaultdict(list)
        self.relations: list[Relation] = []
        self._seen_relations: set[tuple] = set()
        self.conflicts: list[str] = []
        self.tables: list[Table] = []
        self.skipped: list[str] = []

    # cells -----------------------------------------------------------------------------------
    def _cell(self, key: Key, shown: str, src: Source) -> None:
        self.sources[key].append(src)
        if shown == HIDDEN or shown == "":
            if key in self.known:  # hidden here, shown in another table or package
                self.revealed.setdefault(key, []).append(src)
            else:
                self.hidden.setdefault(key, []).append(src)
            return
        v = float(shown)
        if key in self.known and abs(self.known[key] - v) > 1e-9:
            self.conflicts.append(f"{src.package}/{src.table} row {src.row}: {v} vs {self.known[key]}")
        self.known[key] = v
        if key in self.hidden:
            self.revealed.setdefault(key, []).extend(self.hidden.pop(key))

    def add(self, rel: Relation) -> None:
        sig = (frozenset(zip(rel.cells, rel.coefs, strict=True)), rel.lo, rel.hi)
        if sig in self._seen_relations:
            return
        self._seen_relations.add(sig)
        self.relations.append(rel)

    # tables ----------------------------------------------------------------------------------
    def add_tables(self, tables: Iterable[Table]) -> Model:
        for t in tables:
            self.add_table(t)
        return self

    def add_table(self, t: Table) -> None:
        if t.measure:  # sums of hours are not counts: this reader attacks counts
            self.skipped.append(f"{t.package}/{t.name}: a magnitude table")
            return
        self.tables.append(t)
        totals = {d: {c for c, p in t.parents[d].items() if p is None and c in t.children(d)} for d in t.dims}
        keys = []
        for i, codes in enumerate(t.codes):
            coords = {d: (None if c in totals[d] else c) for d, c in zip(t.dims, codes, strict=True)}
            key = canonical(t.unit, t.years, t.scope, coords)
            keys.append(key)
            self._cell(key, t.shown[i], Source(t.package, t.name, i))
        index = {codes: i for i, codes in enumerate(t.codes)}
        for j, d in enumerate(t.dims):
            kids = t.children(d)
            for i, codes in enumerate(t.codes):
                sub = kids.get(codes[j])
                if not sub:
                    continue
                rows = [index.get(codes[:j] + (c,) + codes[j + 1 :]) for c in sub]
                if any(r is None for r in rows):
                    continue  # a part the table does not show: no relation the reader can write
                self._margin(t, d, keys[i], [keys[r] for r in rows])

    def _margin(self, t: Table, dim: str, parent: Key, parts: list[Key]) -> None:
        why = f"{t.package}/{t.name}: {dim}"
        if t.unit == "insatser" or _adds_up(dim, parent):
            self.add(Relation((parent, *parts), (1.0,) + (-1.0,) * len(parts), 0.0, 0.0, why + " sum"))
            return
        for p in parts:  # union: at least each part ...
            self.add(Relation((parent, p), (1.0, -1.0), 0.0, math.inf, why + " union >= part"))
        # ... at most their sum
        self.add(
            Relation((parent, *parts), (-1.0,) + (1.0,) * len(parts), 0.0, math.inf, why + " union <= sum")
        )
        if dim == "insats":
            groups = [HOUSING]
            if parent.years and max(parent.years) <= 2019:
                groups.append(EXCLUSIVE_UNTIL_2019)
            for g in groups:
                excl = [p for p in parts if p.insats in g]
                if len(excl) > 1:
                    self.add(
                        Relation(
                            (parent, *excl), (1.0,) + (-1.0,) * len(excl), 0.0, math.inf, why + " exclusive"
                        )
                    )

    # the register's rules ---------------------------------------------------------------------
    def add_structural_zeros(self) -> list[Key]:
        """Every cell the rules make 0 becomes a known 0 bound; returns the hidden ones."""
        hidden = []
        for key in list(self.sources):
            if structural_zero(key):
                self.add(Relation((key,), (1.0,), 0.0, 0.0, "structural zero"))
                if key in self.hidden:
                    hidden.append(key)
        return hidden

    # the evaluation ---------------------------------------------------------------------------
    def violations(self, truth: Mapping[Key, float], tol: float = 1e-6) -> list[str]:
        """Relations the true values break: the reader's model would be wrong (it must be none)."""
        out = []
        for rel in self.relations:
            vals = []
            for k in rel.cells:
                v = self.known.get(k, truth.get(k))
                if v is None:
                    break
                vals.append(v)
            else:
                s = float(np.dot(vals, rel.coefs))
                if s < rel.lo - tol or s > rel.hi + tol:
                    out.append(f"{rel.why}: {s} not in [{rel.lo}, {rel.hi}] ({rel.cells[0]})")
        return out + [f"conflict: {c}" for c in self.conflicts]


def _adds_up(dim: str, parent: Key) -> bool:
    """Whether a persons margin over ``dim`` is the sum of its parts (see the module text)."""
    if dim == "sex":
        return True
    if dim == "age_band":
        return len(parent.years) == 1
    if dim in GEO_DIMS:
        return parent.insats is not None and len(parent.years) == 1
    return False


# --------------------------------------------------------------------------------------------
# a microdata extract


@dataclass
class Extract:
    """A delivered microdata package as its recipient reads it."""

    path: Path
    rows: pd.DataFrame
    years: tuple[int, ...]
    #: the insatser the order selected persons by (all their holders are in it, less withheld)
    population: frozenset[str]

    @classmethod
    def read(cls, path: str | Path) -> Extract:
        folder = Path(path)
        if (folder / "data.csv").exists():
            rows = pd.read_csv(folder / "data.csv", dtype=str, keep_default_na=False)
        else:
            rows = pd.read_parquet(folder / "data.parquet").astype("string").fillna("")
        population: frozenset[str] = frozenset()
        order_file = folder / "order.yaml"
        if order_file.exists():
            import yaml

            order = yaml.safe_load(order_file.read_text(encoding="utf-8")) or {}
            population = frozenset((order.get("population") or {}).get("insatser") or [])
        years = tuple(sorted({int(y) for y in rows["year"] if str(y).isdigit()}))
        return cls(folder, rows, years, population)


def _known(col: pd.Series) -> np.ndarray:
    s = col.astype(str).to_numpy(object)
    return ~np.isin(s, ["..", "", "nan", "<NA>", "None"])


class _ExtractIndex:
    """The extract's rows as arrays, with a cached mask per attribute value."""

    def __init__(self, ex: Extract, year: int) -> None:
        r = ex.rows[ex.rows["year"].astype(str) == str(year)].reset_index(drop=True)
        self.n = len(r)
        person = "pseudonym" if "pseudonym" in r.columns else r.columns[0]
        self.person = pd.factorize(r[person])[0]
        self.cols = set(r.columns)
        self.r = r
        geo_col = "kommun" if "kommun" in r.columns else "lan" if "lan" in r.columns else None
        self.geo = r[geo_col].astype(str).to_numpy(object) if geo_col else np.full(self.n, HIDDEN, object)
        self.geo_known = _known(pd.Series(self.geo))
        if "age_band" in r.columns:
            b = [band(v) for v in r["age_band"].astype(str)]
            self.age_lo = np.array([x[0] if x else -math.inf for x in b])
            self.age_hi = np.array([x[1] if x else math.inf for x in b])
        else:
            self.age_lo = np.full(self.n, -math.inf)
            self.age_hi = np.full(self.n, math.inf)
        self.age_known = np.isfinite(self.age_lo)
        self._cache: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}

    def attr(self, col: str, value: str | None) -> tuple[np.ndarray, np.ndarray]:
        """Rows certainly with the value, rows possibly with it."""
        key = ("attr", col, value)
        if key not in self._cache:
            if value is None:
                out = (np.ones(self.n, bool), np.ones(self.n, bool))
            elif col not in self.cols:
                out = (np.zeros(self.n, bool), np.ones(self.n, bool))
            else:
                s = self.r[col].astype(str).to_numpy(object)
                if col == "personkrets":
                    s = np.where(s == "4", "3", s)
                known = _known(self.r[col])
                out = (known & (s == value), ~known | (s == value))
            self._cache[key] = out
        return self._cache[key]

    def geo_mask(self, geo: str) -> tuple[np.ndarray, np.ndarray]:
        key = ("geo", geo)
        if key not in self._cache:
            if geo == RIKET:
                out = (np.ones(self.n, bool), np.ones(self.n, bool))
            else:
                g = self.geo.astype(str)
                is_kommun = np.char.str_len(g.astype("U")) == 4
                lan = np.array([x[:2] for x in g], object)
                if len(geo) == 2:  # a län holds its kommuner and any group of them
                    certain = self.geo_known & (lan == geo)
                    possible = ~self.geo_known | (lan == geo)
                else:
                    certain = self.geo_known & is_kommun & (g == geo)
                    possible = ~self.geo_known | (g == geo) | (~is_kommun & (lan == geo[:2]))
                out = (certain, possible)
            self._cache[key] = out
        return self._cache[key]

    def age_mask(self, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
        certain = self.age_known & (self.age_lo >= lo) & (self.age_hi <= hi)
        possible = ~self.age_known | ((self.age_hi >= lo) & (self.age_lo <= hi))
        return certain, possible

    def cell(self, key: Key, ages: tuple[float, float] | None) -> tuple[int, int]:
        """Distinct persons certainly in the cell, and possibly in it (persons, or insatser of
        one insats in one year)."""
        c, p = self.geo_mask(key.geo)
        for col, v in (("sex", key.sex), ("personkrets", key.personkrets)):
            cc, pp = self.attr(col, v)
            c, p = c & cc, p & pp
        if ages is not None:
            cc, pp = self.age_mask(*ages)
            c, p = c & cc, p & pp
        if key.insats is not None:
            if key.insats not in self.cols:
                return 0, -1  # nothing known about the insats
            cc, pp = self.attr(key.insats, "1")
            c, p = c & cc, p & pp
        return len(np.unique(self.person[c])), len(np.unique(self.person[p]))


def add_extract(model: Model, ex: Extract, *, whole_population: bool = True) -> dict[str, Any]:
    """What the holder of an extract knows about the cells of its years.

    Every extract person certainly in a cell is in it (a lower bound). With
    ``whole_population``, a cell of one of the insatser the order selected persons by holds at
    most the extract persons who could be in it plus those the extract lacks (the published
    national count of that insats less the extract's holders); without that count, no upper
    bound. Returns what was added.
    """
    added = {"lower": 0, "upper": 0, "sums": 0, "lacking": {}}
    for year in ex.years:
        idx = _ExtractIndex(ex, year)
        lacking: dict[str, float] = {}
        if whole_population:
            for ins in ex.population:
                national = Key("insatser", (year,), ALL, RIKET, None, None, ins, None)
                if national in model.known and ins in idx.cols:
                    have = len(np.unique(idx.person[idx.attr(ins, "1")[0]]))
                    lacking[ins] = max(0.0, model.known[national] - have)
        added["lacking"][year] = lacking
        bands_in_extract = sorted(
            {b for b in zip(idx.age_lo, idx.age_hi, strict=True) if math.isfinite(b[0])}
        )
        groups: dict[Key, dict[tuple[float, float], Key]] = defaultdict(dict)
        for key in list(model.sources):
            if key.years != (year,) or key.scope != ALL or key.other:
                continue
            if key.unit == "insatser" and key.insats is None:
                continue  # pairs of persons and insatser: left out
            ages = band(key.age)
            if key.age is not None and ages is None:
                continue
            if ages is not None:
                groups[key.replace(age=None)][ages] = key
            if key not in model.hidden:
                continue
            certain, possible = idx.cell(key, ages)
            if certain > 0:
                model.add(Relation((key,), (1.0,), float(certain), math.inf, "extract: persons in it"))
                added["lower"] += 1
            if possible >= 0 and key.insats in lacking:
                model.add(
                    Relation(
                        (key,),
                        (1.0,),
                        0.0,
                        float(possible) + lacking[key.insats],
                        "extract: whole population",
                    )
                )
                added["upper"] += 1
        # an extract band that is several of the table's bands bounds their sum
        for base, by_band in groups.items():
            for lo, hi in bands_in_extract:
                inside = [(b, k) for b, k in by_band.items() if b[0] >= lo and b[1] <= hi]
                if len(inside) < 2 or not _covers(sorted(b for b, _ in inside), lo, hi):
                    continue
                cells = tuple(k for _, k in inside)
                if not any(k in model.hidden for k in cells):
                    continue
                certain, possible = idx.cell(base, (lo, hi))
                upper = (
                    possible + lacking[base.insats] if base.insats in lacking and possible >= 0 else math.inf
                )
                if certain > 0 or math.isfinite(upper):
                    model.add(
                        Relation(cells, (1.0,) * len(cells), float(certain), upper, "extract: a wider band")
                    )
                    added["sums"] += 1
    return added


def _covers(bands: list[tuple[float, float]], lo: float, hi: float) -> bool:
    at = lo
    for b_lo, b_hi in bands:
        if b_lo != at:
            return False
        at = b_hi + 1
    return at > hi or (math.isinf(hi) and math.isinf(bands[-1][1]))


# --------------------------------------------------------------------------------------------
# the linear programme


@dataclass
class CellBound:
    key: Key
    lower: float
    upper: float
    #: whether lower/upper are the LP optimum (else the range of feasible points: the LP bounds
    #: are at least as wide)
    solved: bool
    value: float | None = None
    sensitive: bool = False
    exposed: bool = False
    pinned: bool = False
    #: exposed as small: the reader can tell it is below the threshold
    small: bool = False
    sources: list[Source] = field(default_factory=list)


@dataclass
class AttackResult:
    cells: list[CellBound]
    figures: dict[str, Any]

    def exposed(self) -> list[CellBound]:
        return [c for c in self.cells if c.exposed]

    def pinned(self) -> list[CellBound]:
        return [c for c in self.cells if c.pinned]

    def describe(self, n: int = 5) -> str:
        rows = [
            f"{c.sources[0].package}/{c.sources[0].table} row {c.sources[0].row} {c.key}: "
            f"value {c.value}, bounds [{c.lower:.2f}, {c.upper:.2f}]"
            for c in (self.exposed() or self.pinned())[:n]
        ]
        return json.dumps(self.figures) + "\n" + "\n".join(rows)


EPS = 1e-6


class _Unbounded(Exception):
    """A cell the reader cannot bound from above."""


class _Component:
    """One connected part of the programme: its hidden cells and the relations between them."""

    def __init__(self, cols: list[int], a_ub, b_ub, a_eq, b_eq, bounds) -> None:
        self.cols, self.a_ub, self.b_ub, self.a_eq, self.b_eq, self.bounds = (
            cols,
            a_ub,
            b_ub,
            a_eq,
            b_eq,
            bounds,
        )
        self.lps = 0

    def solve(self, c: np.ndarray) -> np.ndarray:
        self.lps += 1
        res = linprog(
            c,
            A_ub=self.a_ub,
            b_ub=self.b_ub,
            A_eq=self.a_eq,
            b_eq=self.b_eq,
            bounds=self.bounds,
            method="highs",
        )
        if res.status == 3:  # unbounded: only a maximum can be
            raise _Unbounded
        if res.status != 0:
            raise RuntimeError(f"the reader's programme has no solution ({res.message}): its model is wrong")
        return res.x


def attack(
    model: Model,
    truth: Mapping[Key, float] | None = None,
    threshold: int = 3,
    *,
    exact: bool = False,
) -> AttackResult:
    """Bound every hidden cell. Without ``exact``, a cell is settled by feasible points found
    for many cells at once when they already show it is neither exposed nor pinned; only the
    others get their own two LPs. ``exact`` solves min and max for every hidden cell."""
    t0 = time.perf_counter()
    truth = truth or {}
    hidden = list(model.hidden)
    col = {k: i for i, k in enumerate(hidden)}
    n = len(hidden)
    lo = np.zeros(n)
    hi = np.full(n, math.inf)
    rows_ub: list[tuple[list[int], list[float], float]] = []
    rows_eq: list[tuple[list[int], list[float], float]] = []
    infeasible_known = []
    for rel in model.relations:
        const, idx, coef = 0.0, [], []
        for k, a in zip(rel.cells, rel.coefs, strict=True):
            if k in col:
                idx.append(col[k])
                coef.append(a)
            elif k in model.known:
                const += a * model.known[k]
            else:
                break  # a cell the reader has no row for: nothing to write
        else:
            r_lo, r_hi = rel.lo - const, rel.hi - const
            if not idx:
                if r_lo > EPS or r_hi < -EPS:
                    infeasible_known.append(rel.why)
                continue
            if len(idx) == 1:  # a bound
                a = coef[0]
                b_lo, b_hi = (r_lo / a, r_hi / a) if a > 0 else (r_hi / a, r_lo / a)
                lo[idx[0]] = max(lo[idx[0]], b_lo)
                hi[idx[0]] = min(hi[idx[0]], b_hi)
                continue
            if r_lo == r_hi:
                rows_eq.append((idx, coef, r_lo))
                continue
            if math.isfinite(r_hi):
                rows_ub.append((idx, coef, r_hi))
            if math.isfinite(r_lo):
                rows_ub.append((idx, [-a for a in coef], -r_lo))
    # cells are whole numbers: bounds implied by every relation, rounded, until nothing moves
    _tighten(rows_ub, rows_eq, lo, hi)
    # the connected parts
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for idx, _, _ in rows_ub + rows_eq:
        r0 = find(idx[0])
        for i in idx[1:]:
            ri = find(i)
            if ri != r0:
                parent[ri] = r0
    comp_of = np.array([find(i) for i in range(n)], dtype=np.int64)
    members: dict[int, list[int]] = defaultdict(list)
    for i in range(n):
        members[int(comp_of[i])].append(i)
    ub_by: dict[int, list] = defaultdict(list)
    eq_by: dict[int, list] = defaultdict(list)
    for r in rows_ub:
        ub_by[int(comp_of[r[0][0]])].append(r)
    for r in rows_eq:
        eq_by[int(comp_of[r[0][0]])].append(r)

    lower = lo.copy()
    upper = hi.copy()
    solved = np.zeros(n, bool)
    value = np.array([truth.get(k, np.nan) for k in hidden], float)
    sensitive = (value >= 1) & (value < threshold)
    # what the reader decides from the bounds alone (cells in no relation with another hidden one)
    small = sensitive & (_floor(hi) < threshold)  # exposed as small (1 or 2)
    exposed = small | (sensitive & (_ceil(lo) >= value))  # ... or as at least its value
    pinned = _floor(hi) - _ceil(lo) < 0.5
    lps = 0
    for root, cols in members.items():
        if root not in ub_by and root not in eq_by:  # a cell alone: its bounds are all there is
            solved[cols[0]] = True
            continue
        comp = _make_component(cols, ub_by[root], eq_by[root], lo, hi)
        _bound_component(
            comp, lower, upper, solved, small, exposed, pinned, value, sensitive, threshold, exact
        )
        lps += comp.lps
    for k in model.revealed:  # hidden somewhere, shown elsewhere: pinned
        v = model.known[k]
        sens = 1 <= v < threshold
        lower, upper = np.append(lower, v), np.append(upper, v)
        solved = np.append(solved, True)
        value = np.append(value, v)
        sensitive = np.append(sensitive, sens)
        small, exposed, pinned = np.append(small, sens), np.append(exposed, sens), np.append(pinned, True)
    hidden_and_revealed = hidden + list(model.revealed)
    sources = {**model.hidden, **model.revealed}
    cells = [
        CellBound(
            k,
            float(lower[i]),
            float(upper[i]),
            bool(solved[i]),
            None if np.isnan(value[i]) else float(value[i]),
            bool(sensitive[i]),
            bool(exposed[i]),
            bool(pinned[i]),
            bool(small[i]),
            sources=sources[k],
        )
        for i, k in enumerate(hidden_and_revealed)
    ]
    figures = {
        "hidden": len(cells),
        "shown_elsewhere": len(model.revealed),
        "sensitive": int(sensitive.sum()),
        "exposed": int(exposed.sum()),
        "exposed_as_small": int(small.sum()),
        "pinned": int(pinned.sum()),
        "pinned_sensitive": int((pinned & sensitive).sum()),
        "relations": len(model.relations),
        "lp_rows": len(rows_ub) + len(rows_eq),
        "components": len(members),
        "lps": int(lps),
        "inconsistent_known": len(infeasible_known),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    return AttackResult(cells, figures)


def _tighten(rows_ub: list, rows_eq: list, lo: np.ndarray, hi: np.ndarray, rounds: int = 200) -> None:
    """Bound propagation with integer rounding, in place: from lo_r <= sum(a x) <= hi_r each
    cell gets the bounds the others' bounds leave it, rounded to whole numbers (the cells are
    counts). Valid for every integer solution, so the LP may use them too."""
    rows = [(idx, coef, -math.inf, b) for idx, coef, b in rows_ub] + [
        (idx, coef, b, b) for idx, coef, b in rows_eq
    ]
    if not rows:
        return
    r = np.concatenate([np.full(len(idx), k) for k, (idx, _, _, _) in enumerate(rows)])
    c = np.concatenate([np.asarray(idx) for idx, _, _, _ in rows])
    a = np.concatenate([np.asarray(coef, float) for _, coef, _, _ in rows])
    r_lo = np.array([x[2] for x in rows])[r]
    r_hi = np.array([x[3] for x in rows])[r]
    nrows = len(rows)
    pos = a > 0
    for _ in range(rounds):
        lo_c, hi_c = lo[c], hi[c]
        cmin = np.where(pos, a * lo_c, a * hi_c)
        cmax = np.where(pos, a * hi_c, a * lo_c)
        inf_min, inf_max = ~np.isfinite(cmin), ~np.isfinite(cmax)
        smin = np.bincount(r, np.where(inf_min, 0.0, cmin), nrows)[r]
        smax = np.bincount(r, np.where(inf_max, 0.0, cmax), nrows)[r]
        nmin = np.bincount(r, inf_min, nrows)[r] - inf_min
        nmax = np.bincount(r, inf_max, nrows)[r] - inf_max
        rest_min = np.where(nmin == 0, smin - np.where(inf_min, 0.0, cmin), -math.inf)
        rest_max = np.where(nmax == 0, smax - np.where(inf_max, 0.0, cmax), math.inf)
        with np.errstate(invalid="ignore"):
            from_hi = (r_hi - rest_min) / a  # a x <= hi_r - (the others at their least)
            from_lo = (r_lo - rest_max) / a  # a x >= lo_r - (the others at their most)
        up = np.where(pos, from_hi, from_lo)
        down = np.where(pos, from_lo, from_hi)
        up = np.where(np.isnan(up), math.inf, up)
        down = np.where(np.isnan(down), -math.inf, down)
        new_hi, new_lo = hi.copy(), lo.copy()
        np.minimum.at(new_hi, c, up)
        np.maximum.at(new_lo, c, down)
        new_hi = np.where(np.isfinite(new_hi), np.floor(new_hi + EPS), new_hi)
        new_lo = np.ceil(new_lo - EPS)
        if (new_lo > new_hi + EPS).any():
            raise RuntimeError("the reader's relations contradict each other: its model is wrong")
        if np.array_equal(new_lo, lo) and np.array_equal(new_hi, hi):
            return
        lo[:], hi[:] = new_lo, new_hi


def _ceil(x: np.ndarray) -> np.ndarray:
    return np.ceil(np.asarray(x, float) - EPS)


def _floor(x: np.ndarray) -> np.ndarray:
    return np.floor(np.asarray(x, float) + EPS)


def _make_component(cols, ub, eq, lo, hi) -> _Component:
    local = {c: j for j, c in enumerate(cols)}

    def matrix(rows):
        if not rows:
            return None, None
        r_idx, c_idx, data, rhs = [], [], [], []
        for r, (idx, coef, b) in enumerate(rows):
            r_idx += [r] * len(idx)
            c_idx += [local[i] for i in idx]
            data += coef
            rhs.append(b)
        return sp.csr_matrix((data, (r_idx, c_idx)), shape=(len(rows), len(cols))), np.array(rhs)

    a_ub, b_ub = matrix(ub)
    a_eq, b_eq = matrix(eq)
    bounds = [(lo[c], None if not math.isfinite(hi[c]) else hi[c]) for c in cols]
    return _Component(cols, a_ub, b_ub, a_eq, b_eq, bounds)


def _bound_component(
    comp, lower, upper, solved, small, exposed, pinned, value, sensitive, threshold, exact, max_rounds=200
) -> None:
    """Decide, for every cell of the component, whether it is exposed and whether it is pinned.

    ``lower``/``upper`` hold each cell's own bounds on entry. Feasible points of the programme
    (found for many cells at once) settle a cell when they show what its LP bounds would:
    for a sensitive cell a point at or below v - 1 (else its own lower bound already reaches
    v) and one at or above the threshold (else its own upper bound is below it), and for every
    cell two points an integer apart (else its own bounds pin it). The other cells, and with
    ``exact`` all, get their min and max by LP. On return ``lower``/``upper`` hold the LP
    bounds, or for a cell settled by points the range of those points (the LP bounds are at
    least that wide)."""
    cols = np.array(comp.cols)
    m = len(cols)
    blo, bhi = lower[cols].copy(), upper[cols].copy()
    seen_lo = np.full(m, math.inf)
    seen_hi = np.full(m, -math.inf)
    v = value[cols]
    sens = sensitive[cols]
    done = np.zeros(m, bool)
    low_by_bound = sens & (_ceil(blo) >= v)  # exposed: its own lower bound says it is >= v
    high_by_bound = sens & (_floor(bhi) < threshold)  # exposed: its own upper bound says small
    narrow = _floor(bhi) - _ceil(blo) < 0.5  # pinned by its own bounds

    def record(x: np.ndarray | None) -> None:
        if x is None or np.isnan(x).any():
            return
        np.minimum(seen_lo, x, out=seen_lo)
        np.maximum(seen_hi, x, out=seen_hi)

    def needs() -> tuple[np.ndarray, np.ndarray]:
        """Unsettled cells that need a lower point, and those that need a higher one."""
        low_known = ~sens | low_by_bound | (seen_lo <= v - 1 + EPS)
        high_known = ~sens | high_by_bound | (seen_hi >= threshold - EPS)
        pin_known = narrow | (_floor(seen_hi) - _ceil(seen_lo) >= 1)
        open_ = ~done & ~(low_known & high_known & pin_known)
        return open_ & (~low_known | ~pin_known), open_ & (~high_known | ~pin_known)

    if not exact:
        # points for many cells at once: the least and the most of all cells, then of the
        # cells still open with random weights (cells that share a margin take turns)
        rng = np.random.default_rng(len(cols))
        try:
            record(comp.solve(np.ones(m)))
            record(comp.solve(-np.ones(m)))
            stalled = 0
            for _ in range(max_rounds):
                down, up = needs()
                before = int(down.sum() + up.sum())
                if not before:
                    break
                if down.any():
                    record(comp.solve(down * rng.uniform(0.05, 1.0, m)))
                if up.any():
                    record(comp.solve(-(up * rng.uniform(0.05, 1.0, m))))
                down, up = needs()
                gained = before - int(down.sum() + up.sum())
                # a round costs two LPs; a cell of its own costs two: stop when rounds settle less
                stalled = stalled + 1 if gained < 4 else 0
                if stalled >= 2:
                    break
        except _Unbounded:
            pass
    todo = np.arange(m) if exact else np.flatnonzero(np.logical_or(*needs()))
    for j in todo:
        if not exact and not np.logical_or(*needs())[j]:
            continue  # settled by a point found for another cell
        c = np.zeros(m)
        c[j] = 1.0
        x = comp.solve(c)
        record(x)
        lo_j = x[j]
        c[j] = -1.0
        try:
            x = comp.solve(c)
            record(x)
            hi_j = x[j]
        except _Unbounded:
            hi_j = math.inf
        i = cols[j]
        lower[i], upper[i], solved[i], done[j] = lo_j, hi_j, True, True
        L, U = _ceil(lo_j), _floor(hi_j)
        small[i] = bool(sens[j] and threshold > U)
        exposed[i] = bool(small[i] or (sens[j] and v[j] <= L))
        pinned[i] = bool(U - L < 0.5)
    for j in np.flatnonzero(~done):  # settled by points: decided by the cell's own bounds
        i = cols[j]
        small[i] = bool(high_by_bound[j])
        exposed[i] = bool(low_by_bound[j] or high_by_bound[j])
        pinned[i] = bool(narrow[j])
        lower[i], upper[i] = seen_lo[j], seen_hi[j]


# --------------------------------------------------------------------------------------------
# the truth, for scoring (the reviewer's audit kept in the candidate)


def truth_from_audit(tables: Iterable[Table], audit_file: str | Path) -> dict[Key, float]:
    """The true value of every hidden cell of a package's tables, by the reader's key."""
    full = json.loads(Path(audit_file).read_text(encoding="utf-8"))
    by_row = {(c["table"], int(c["cell"])): c for c in full["cells"]}
    out: dict[Key, float] = {}
    for t in tables:
        totals = {d: {c for c, p in t.parents[d].items() if p is None and c in t.children(d)} for d in t.dims}
        for i, codes in enumerate(t.codes):
            c = by_row.get((t.name, i))
            if c is None or c.get("value") is None:
                continue
            coords = {d: (None if x in totals[d] else x) for d, x in zip(t.dims, codes, strict=True)}
            out[canonical(t.unit, t.years, t.scope, coords)] = float(c["value"])
    return out


def audit_rows(audit_file: str | Path) -> dict[tuple[str, int], dict[str, Any]]:
    """The reviewer's audit of a candidate by (table, row) for its own tables (an earlier
    release's tables, which it names with their order in front, are left out)."""
    full = json.loads(Path(audit_file).read_text(encoding="utf-8"))
    return {(c["table"], int(c["cell"])): c for c in full["cells"] if "/" not in c["table"]}


def reveal(package: str | Path, rows: Mapping[tuple[str, int], float], out: str | Path) -> Path:
    """A copy of a package's tables (CSV and JSON) with the given hidden rows shown with the
    given values and without the hidden note: a weakened release, for controls."""
    src, dst = Path(package), Path(out)
    dst.mkdir(parents=True, exist_ok=True)
    for p in src.iterdir():
        if p.suffix in (".json", ".csv"):
            dst.joinpath(p.name).write_bytes(p.read_bytes())
    for p in dst.glob("*.csv"):
        table = _read_csv(p)
        if not table or "value" not in table[0]:
            continue
        for i, r in enumerate(table):
            if r["value"] == HIDDEN and (p.stem, i) in rows:
                r["value"] = str(int(rows[(p.stem, i)]))
                r["notes"] = ""
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(table[0]), lineterminator="\r\n")
        w.writeheader()
        w.writerows(table)
        p.write_bytes(buf.getvalue().encode("utf-8-sig"))
    return dst
