"""What a reader of new tables already holds: the table packages and microdata extracts
delivered before for the same years.

A delivered table package is public, whoever ordered it, so every one that shares a year with a
new table order is part of the reader's knowledge: its published cells are constants and its
hidden cells stay hidden (a series is suppressed consistently). A microdata extract of those
years gives its holder counts at the extract's detail. The ledger says what was delivered (no
file in the work area is trusted for that); the sealed candidates are read back from the work
area and checked against the content hash the ledger holds, and the earlier tables are built
again from the register and compared cell by cell with what was published. Nothing here keeps a
hidden value: the earlier tables' truth comes from the register the new order is built from.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lsssdc.disclosure.tables import ProtectedTables, Table
from lsssdc.disclosure.tables.model import renumber_witnesses
from lsssdc.errors import DisclosureRefused, Problem
from lsssdc.fileio import atomic_path
from lsssdc.ledger import kinds
from lsssdc.release import candidate as cand
from lsssdc.release import history

HIDDEN = ".."
#: a table release's witnesses (deviations that keep every relation and move its hidden cells
#: far enough), kept in the candidate for the reviewer and for the next release: never
#: delivered (a deviation tells how far a hidden cell can go down)
WITNESSES = "table-witnesses.parquet"
_WITNESS_COLUMNS = ("witness", "target_table", "target_cell", "direction", "table", "cell", "y")


@dataclass
class EarlierTables:
    """The tables of one earlier delivery, built again, and which of their cells it published."""

    order_id: str
    content_hash: str
    entry: int
    tables: list[Table]
    published: list[np.ndarray]
    #: how the release protected its tables (``suppression`` or ``cell_key``)
    protection: str = "suppression"
    #: per table the values it showed (whole counts; -1 where hidden), for a cell key release
    shown: list[np.ndarray] = field(default_factory=list)
    #: the release's witnesses as kept in its candidate (reviewer-only), tables by name
    witnesses: pd.DataFrame | None = None
    #: the policy the release was protected under, as its report recorded it
    policy: dict[str, Any] = field(default_factory=dict)


@dataclass
class Extract:
    """A delivered microdata extract: its rows as delivered (no personnummer in them)."""

    order_id: str
    content_hash: str
    entry: int
    data: pd.DataFrame
    #: who the order selected (persons with any of these insatser, in these personkretsar; an
    #: empty list: everybody): the extract holds every such person of its years
    population: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class TableHistory:
    tables: list[EarlierTables] = field(default_factory=list)
    extracts: list[Extract] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tables": [
                {"order_id": t.order_id, "content_hash": t.content_hash, "entry": t.entry}
                for t in self.tables
            ],
            "extracts": [
                {"order_id": e.order_id, "content_hash": e.content_hash, "entry": e.entry}
                for e in self.extracts
            ],
        }


def _refuse(code: str, message: str, file: str | None = None, hint: str | None = None) -> DisclosureRefused:
    return DisclosureRefused(Problem(code, message, file=file, hint=hint))


def _published(c: cand.Candidate, t: Table, where: str, exact: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Which cells of table ``t`` the earlier package published, checked against the register
    (``exact``: a suppression release shows true values), and the values it showed."""
    path = c.path / "tables" / f"{t.name}.csv"
    if not path.is_file():
        raise _refuse(
            "history_changed", f"the earlier release {where} has no table '{t.name}'", file=str(c.path)
        )
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    header, body = rows[0], rows[1:]
    if len(body) != t.size or "value" not in header:
        raise _refuse(
            "history_changed",
            f"table '{t.name}' of the earlier release {where} no longer matches the register "
            "(another number of cells)",
            file=str(path),
            hint="build new tables from the register the earlier release was made from",
        )
    frame = pd.DataFrame(body, columns=header)
    for d in t.dims:
        if d not in frame or (frame[d].to_numpy() != t.cells[d].astype(str).to_numpy()).any():
            raise _refuse("history_changed", f"table '{t.name}' of {where}: its codes differ", file=str(path))
    shown = frame["value"].to_numpy()
    published = shown != HIDDEN
    numbers = pd.to_numeric(pd.Series(np.where(published, shown, "-1")), errors="coerce").to_numpy()
    if not exact:
        if np.isnan(numbers).any() or t.measure is not None:
            raise _refuse(
                "history_changed", f"table '{t.name}' of {where}: a value is not a count", file=str(path)
            )
        return published, numbers.astype(np.int64)
    if t.measure is None:
        truth = t.cells["value"].astype(np.int64).astype(str).to_numpy()
        differ = published & (shown != truth)
    else:
        got = pd.to_numeric(pd.Series(shown[published]), errors="coerce").to_numpy()
        differ = np.zeros(t.size, bool)
        differ[published] = ~np.isclose(got, np.round(t.values[published], 1), atol=0.051)
    if differ.any():
        raise _refuse(
            "history_changed",
            f"{int(differ.sum())} published cell(s) of table '{t.name}' in the earlier release {where} "
            "differ from the register now; the new tables cannot be checked against what readers hold",
            file=str(path),
            hint="build new tables from the register the earlier release was made from",
        )
    return published, np.where(published, np.nan_to_num(numbers, nan=-1.0), -1.0).astype(np.int64)


def earlier(
    ledger: Any,
    work_dir: str | Path,
    years: set[int],
    build: Callable[[dict[str, Any], dict[str, Any]], list[Table]],
    *,
    extracts: bool = True,
) -> TableHistory:
    """Every delivery on the ledger that shares a year with ``years``: table packages built again
    with ``build(order_dump, policy_dump)`` and read back, microdata extracts read back (unless
    ``extracts`` is False: an extract is measured with the tables only, not with other extracts).

    Refuses (fail closed) when a delivered candidate is missing or changed, or the register no
    longer gives the values an earlier table published.
    """
    out = TableHistory()
    if ledger is None:
        return out
    seen: set[str] = set()
    for entry in ledger.entries("deliver"):
        pl = kinds.delivered(entry)
        where = f"(ledger entry {entry.seq}, order {pl.get('order_id')})"
        c = history.find(Path(work_dir), str(pl.get("order_id")), str(pl.get("content_hash")))
        if c is None:
            raise _refuse(
                "history_missing",
                f"an earlier delivery {where} is not in the work area; new tables are measured "
                "together with every delivery of their years",
                file=str(work_dir),
                hint="restore the delivered candidate into the work area",
            )
        if c.content_hash in seen:
            continue
        seen.add(c.content_hash)
        now, changed = c.recompute()
        if now != c.content_hash or changed:
            raise _refuse(
                "history_changed", f"the earlier delivery {where} changed after it was sealed", str(c.path)
            )
        meta = json.loads((c.path / "metadata.json").read_text(encoding="utf-8"))
        if not {int(y) for y in meta.get("years") or []} & years:
            continue
        if meta.get("kind") == "tables":
            report = json.loads((c.path / "report.json").read_text(encoding="utf-8"))
            built = build(report["order"], report["policy"])
            tables = [replace(t, name=f"{c.order_id}/{t.name}") for t in built]
            protection = ((report["policy"].get("tables") or {}).get("protection")) or "suppression"
            read = [_published(c, t, where, exact=protection == "suppression") for t in built]
            out.tables.append(
                EarlierTables(
                    c.order_id,
                    c.content_hash,
                    entry.seq,
                    tables,
                    [r[0] for r in read],
                    protection,
                    [r[1] for r in read],
                    _read_witnesses(c),
                    report["policy"],
                )
            )
        elif extracts and (c.path / history.DATA).is_file():
            data = pd.read_parquet(c.path / history.DATA)
            report = json.loads((c.path / "report.json").read_text(encoding="utf-8"))
            population = (report.get("order") or {}).get("population") or {}
            out.extracts.append(Extract(c.order_id, c.content_hash, entry.seq, data, population))
    return out


# ---------------------------------------------------------------------------------------------
# witnesses kept with a release


def save_witnesses(protected: ProtectedTables, names: Sequence[str], path: Path) -> Path | None:
    """Write the witnesses of ``protected`` (its tables called ``names``: the order and table,
    ``order/table``, as an earlier release's tables are called when read back) to ``path``,
    one row per moved cell. Nothing is written when there are none."""
    w = protected.witnesses
    if not w or len(w.get("target_table", [])) == 0:
        return None
    label = np.asarray(list(names), dtype=object)
    wid = np.asarray(w["witness"], np.int64)
    frame = pd.DataFrame(
        {
            "witness": wid,
            "target_table": label[np.asarray(w["target_table"], np.int64)][wid],
            "target_cell": np.asarray(w["target_cell"], np.int64)[wid],
            "direction": np.asarray(w["direction"], np.int8)[wid],
            "table": label[np.asarray(w["table"], np.int64)],
            "cell": np.asarray(w["cell"], np.int64),
            "y": np.asarray(w["y"], np.float64),
        }
    )
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)
    return path


def _read_witnesses(c: cand.Candidate) -> pd.DataFrame | None:
    """The witnesses a sealed candidate kept (its content hash was checked), or None."""
    if WITNESSES not in (c.manifest.get("files") or {}):
        return None
    frame = pd.read_parquet(c.path / WITNESSES)
    return frame if set(_WITNESS_COLUMNS) <= set(frame.columns) else None


def witnesses_for(
    past: TableHistory, names: Sequence[str], sizes: Sequence[int]
) -> dict[str, np.ndarray] | None:
    """The earlier releases' witnesses placed among tables called ``names`` with ``sizes`` cells
    (found by name; an entry naming a table that is not there, twice there, or a cell outside
    it drops its witness). They are hints only: the suppression checks each against the joint
    problem before it relies on it."""
    frames = [e.witnesses for e in past.tables if e.witnesses is not None and len(e.witnesses)]
    if not frames:
        return None
    named = pd.Series(list(names))
    unique = named[~named.duplicated(keep=False)]
    # a name not there (or there twice) is table n, which every witness touching it is dropped with
    n = len(names)
    position = pd.Series(unique.index.to_numpy(), index=unique.to_numpy())
    offset = 0
    parts = []
    for f in frames:
        f = f.assign(witness=f["witness"].to_numpy(np.int64) + offset)
        offset = int(f["witness"].max()) + 1
        parts.append(f)
    frame = pd.concat(parts, ignore_index=True)
    table = position.reindex(frame["table"].to_numpy()).fillna(n).to_numpy(np.int64)
    target = position.reindex(frame["target_table"].to_numpy()).fillna(n).to_numpy(np.int64)
    _, first, wid = np.unique(frame["witness"].to_numpy(np.int64), return_index=True, return_inverse=True)
    target_cell = frame["target_cell"].to_numpy(np.int64)
    direction = frame["direction"].to_numpy(np.int8)
    # every row of a witness names the same target; one that does not is dropped whole
    torn = (target != target[first][wid]) | (target_cell != target_cell[first][wid])
    torn |= direction != direction[first][wid]
    per_witness_target = target[first]
    per_witness_target[np.unique(wid[torn])] = n
    placed = renumber_witnesses(
        {
            "target_table": per_witness_target,
            "target_cell": target_cell[first],
            "direction": direction[first],
            "witness": wid,
            "table": table,
            "cell": frame["cell"].to_numpy(np.int64),
            "y": frame["y"].to_numpy(np.float64),
        },
        np.append(np.arange(n), -1),
        sizes=np.asarray(sizes, np.int64),
    )
    return placed if placed is not None and len(placed["target_table"]) else None


# ---------------------------------------------------------------------------------------------
# what an extract tells about a table's cells

#: extract columns that give a table dimension (in order of preference)
_SOURCES = {"kommun": ("kommun",), "lan": ("lan", "kommun"), "sex": ("sex",), "personkrets": ("personkrets",)}


def _derivable_dims(t: Table, data: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per dimension of ``t``, the nodes whose persons the extract can count (a bool per node)."""
    out: dict[str, np.ndarray] = {}
    for d in t.dims:
        h = t.hierarchies[d]
        root = (h.parent_array < 0) & ~h.is_leaf
        ok = root.copy()
        codes = np.asarray(h.codes, dtype=object)
        if d == "year":
            held = {str(y) for y in pd.unique(data["year"])} if "year" in data else set()
            ok |= np.isin(codes.astype(str), list(held))
        elif d == "insats":
            ok |= np.isin(codes.astype(str), list(data.columns))
        elif d == "kommun":
            if "kommun" in data:
                ok |= np.ones(h.size, bool)  # kommuner, and the län and riket above them
            elif "lan" in data:
                ok |= ~h.is_leaf  # län nodes only
        elif d == "age_band":
            if "age_band" in data:
                held = {str(x) for x in pd.unique(data["age_band"].dropna())}
                ok |= np.isin(codes.astype(str), list(held))
            elif "age" in data:
                ok |= np.ones(h.size, bool)
        elif any(s in data for s in _SOURCES.get(d, (d,))):
            ok |= np.ones(h.size, bool)
        out[d] = ok
    return out


def derivable(t: Table, data: pd.DataFrame, year: set[str]) -> np.ndarray:
    """Cells of ``t`` whose count the holder of the extract can make: every coordinate either a
    total or something the extract shows, and the table's year among the extract's. Taken as
    known exactly (the holder may lack a suppressed value or a withheld person, so this is the
    stronger reader)."""
    if not set(t.years) & year:
        return np.zeros(t.size, bool)
    ok = np.ones(t.size, bool)
    nodes = _derivable_dims(t, data)
    for j, d in enumerate(t.dims):
        ok &= nodes[d][t.nodes[:, j]]
    return ok


def _covered(t: Table, population: dict[str, list[str]]) -> np.ndarray:
    """Cells whose every person the extract holds (its order selected them all): only there does
    a published count less the extract's own count tell what the extract's blanks hold. Where
    the cell also counts persons the order did not select, the difference mixes them in."""
    wanted = set(population.get("insatser") or [])
    kretsar = set(population.get("personkrets") or [])
    scope = {s for s in str(t.scope.get("insatser", "")).split(",") if s}
    ok = np.full(t.size, not wanted or scope <= wanted)
    if "insats" in t.dims and wanted:
        ok |= _leaf_among(t, "insats", wanted)
    if kretsar:
        if "personkrets" not in t.dims:
            return np.zeros(t.size, bool)
        ok &= _leaf_among(t, "personkrets", kretsar)
    return ok


def _leaf_among(t: Table, dim: str, codes: set[str]) -> np.ndarray:
    """Cells whose ``dim`` coordinate is a leaf with one of ``codes``."""
    h = t.hierarchies[dim]
    leaf_in = h.is_leaf & np.isin(np.asarray(h.codes, dtype=object).astype(str), list(codes))
    return leaf_in[t.nodes[:, t.dims.index(dim)]]


#: table dimensions and the extract variables that give them
_VARIABLE_OF = {"kommun": ("kommun", "lan"), "lan": ("lan", "kommun"), "age_band": ("age_band", "age")}
_FLAGS = "suppressed"


def refill(t: Table, ex: Extract) -> list[str]:
    """The dimensions of ``t`` on which its published cells would fill values the extract left
    blank (suppressed for some persons of the table's years): the holder counts the extract's
    persons in a cell, and the table's count minus theirs says what the blanks hold. Coarse on
    purpose (a blank anywhere in the year counts): refusing too often is the safe side. Persons
    the extract withheld are not in it: the table's counts tell their number, not who they are."""
    data = ex.data
    years = set(t.years)
    if "year" in data:
        y = data["year"]
        in_year = y.isna().to_numpy() | y.astype("string").isin(years).fillna(False).to_numpy()
    else:
        in_year = np.ones(len(data), bool)
    if not in_year.any():
        return []
    blank: set[str] = set()
    if _FLAGS in data:
        for text in pd.unique(data.loc[in_year, _FLAGS].dropna()):
            blank |= set(str(text).split())
    derivable_nodes = _derivable_dims(t, data)
    covered = _covered(t, ex.population)
    out = []
    for j, d in enumerate(t.dims):
        names = _VARIABLE_OF.get(d, (d,))
        if not blank & set(names) or not any(n in data for n in names):
            continue
        h = t.hierarchies[d]
        shown = ~((h.parent_array < 0) & ~h.is_leaf)  # below the total
        at = shown[t.nodes[:, j]] & covered
        for k, other in enumerate(t.dims):
            if k != j:
                at &= derivable_nodes[other][t.nodes[:, k]]
        if at.any():
            out.append(d)
    return out
