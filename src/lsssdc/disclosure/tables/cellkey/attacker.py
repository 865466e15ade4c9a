"""The cell key audit: an attacker who holds every release, the ptable and every relation, and
how far it can narrow each small cell (the bounds from all releases at once), against what the
frequency rule requires.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from lsssdc.disclosure.tables.cellkey.noise import _count_table
from lsssdc.disclosure.tables.cellkey.perturbation_table import PTable
from lsssdc.disclosure.tables.cellkey.proofs import (
    _apply,
    _ball,
    _candidates,
    _combine,
    _exact,
    _keeps_sums,
    _Problem,
    _relaxed,
    _restricted,
    _steps,
)
from lsssdc.disclosure.tables.cellkey.space import _POP, _constraints, _identify, _Space
from lsssdc.disclosure.tables.model import Table
from lsssdc.disclosure.tables.rules import FrequencyRule
from lsssdc.errors import PolicyError, Problem

_TOL = 1e-6


@dataclass(frozen=True)
class CellKeyAudit:
    """How far an attacker with every release narrows each small cell, and whether that is
    far enough. ``cells`` (one row per sensitive cell, for the reviewer, never published)
    holds the true value, the published value, the feasible counts the ptable allows, what
    the rule requires and what the attacker can prove, and ``ok``."""

    passed: bool
    cells: pd.DataFrame
    summary: dict[str, Any]
    failures: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self, *, cells: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {
            "passed": self.passed,
            # the time an audit took varies from run to run; what is written must not
            "summary": {k: v for k, v in self.summary.items() if k != "seconds"},
            "failures": list(self.failures),
        }
        if cells:
            recs = self.cells.to_dict(orient="records")
            for r in recs:
                for k, v in r.items():
                    if isinstance(v, np.generic):
                        r[k] = v.item()
            d["cells"] = recs
        return d


def audit(
    releases: Sequence[tuple[Table, np.ndarray]],
    pt: PTable,
    rules_threshold: int | FrequencyRule,
    *,
    require_lower: bool = True,
    rounds: int = 1,
    combine_width: int = 6,
    neighbourhoods: Sequence[int] = (300, 3000),
    max_exact: int = 10,
) -> CellKeyAudit:
    """Attack every release at once and check that each small cell's bounds stay wide.

    The attacker holds every ``(table, published)`` pair (several orders and years), knows the
    ptable but not the keys, and every relation of every table. A cell seen in several
    releases (same population, unit class, year and coordinates; a persons and an insatser
    cell of one insats are one cell) is one unknown; its true value is one the ptable can turn
    into each of its published values (the intersection over the releases: with the same key
    they agree), relations hold for the true values, structural zeros are known, and the
    linear relaxation is solved (as :mod:`~lsssdc.disclosure.tables.attack` does).

    A cell is *sensitive* when it counts 1 to ``threshold - 1`` persons (``contributors``).
    With ``v`` its value and ``n`` its persons the frequency rule asks (the protection of
    :class:`~lsssdc.disclosure.tables.rules.FrequencyRule`):

    * upper: some feasible table has the cell at ``v + max(1, threshold - n)`` or more (at
      least the threshold for a persons count: it may be a safe count);
    * lower (``require_lower``): some feasible table has it at ``v - 1`` or less (fewer persons
      are possible). Zeros stay zero, so a cell of one person published above 0 fails it: the
      method shows that such a cell is not empty. ``require_lower=False`` checks the upper
      protection only and still reports these cells (``lower_ok``).

    What the attacker can do is proven, cell by cell, from both sides, cheapest first:

    1. a cell whose own feasible counts miss the need fails (no table does better);
    2. candidate deviations for all cells at once (the cell with its margins, against a
       sibling, or a hypercube square; see :func:`_candidates`), each checked by one sparse
       ratio test: a feasible deviation that moves the cell far enough proves it;
    3. for the rest, many more candidates (every sibling, every way down from a margin),
       first on their own, then combined by small LPs (``combine_width`` siblings per
       dimension);
    4. for the rest, LPs over a neighbourhood of each cell (``neighbourhoods``: cells a few
       relations away): with every other cell at its true value a solution is a feasible
       table (it proves the cell can move); with every relation outside it dropped the optimum
       bounds what the attacker can do (it proves the cell cannot);
    5. for at most ``max_exact`` cells still open, the exact LP over the connected component
       (interior point; seconds on a register-scale year).

    A cell still open counts as failed ("not proven"): every pass is proven, and every other
    failure is a real one. ``rounds`` repeats step 2 with the next siblings by room.
    """
    started = time.perf_counter()
    t_req, tables, published = _read_releases(releases, rules_threshold)
    ids, space = _identify(tables)
    rel = _merge(tables, ids, published, pt, space)
    prob = _problem(rel)
    st = _start(rel, prob, t_req, require_lower)
    _ratio_rounds(space, prob, st, rounds)
    _combined(space, prob, st, combine_width)
    _neighbourhood_lps(prob, st, neighbourhoods)
    _exact_lps(prob, st, max_exact, space.size)
    verdict = _verdict(st, require_lower)
    reported = _cell_frame(rel, space, st, verdict, require_lower)
    failures = _failures(reported)
    summary = _summary(rel, pt, st, verdict, t_req, require_lower, len(failures), started)
    return CellKeyAudit(passed=not failures, cells=reported, summary=summary, failures=failures)


def _read_releases(
    releases: Sequence[tuple[Table, np.ndarray]], rules_threshold: int | FrequencyRule
) -> tuple[int, list[Table], list[np.ndarray]]:
    """Refuse a bad threshold or release before any work: the threshold, the tables and their
    published values as whole numbers."""
    t_req = int(rules_threshold.threshold if isinstance(rules_threshold, FrequencyRule) else rules_threshold)
    if t_req < 1:
        raise PolicyError("the frequency threshold must be at least 1")
    tables = [t for t, _ in releases]
    if not tables:
        raise PolicyError("the audit needs at least one release")
    published = []
    for t, pub in releases:
        _count_table(t, "values")
        p = np.asarray(pub)
        if p.shape != (t.size,) or not np.issubdtype(p.dtype, np.integer):
            raise PolicyError(
                Problem("cellkey_release", f"table '{t.name}': one whole published value per cell is needed")
            )
        published.append(p.astype(np.int64))
    return t_req, tables, published


@dataclass(frozen=True)
class _Releases:
    """Every release as one space of distinct cells: what the attacker knows of each cell
    (its feasible counts over all releases) and what the reviewer needs (true value, persons,
    where it was first shown)."""

    tables: list[Table]
    ids: list[np.ndarray]
    lb: np.ndarray
    ub: np.ndarray
    value: np.ndarray
    persons: np.ndarray
    structural: np.ndarray
    pub_of: np.ndarray
    first: np.ndarray  # position (over all releases) of the first showing
    seen_in: np.ndarray
    offsets: np.ndarray
    holes: int

    @property
    def x(self) -> np.ndarray:
        """The true table as floats (the point every deviation starts from)."""
        return self.value.astype(np.float64)


def _merge(
    tables: list[Table], ids: list[np.ndarray], published: list[np.ndarray], pt: PTable, space: _Space
) -> _Releases:
    """Intersect the feasible counts of each cell over every release (the same key gives the
    same noise), and refuse releases the ptable cannot have made from these tables."""
    n = space.size
    lb = np.zeros(n, np.int64)
    ub = np.full(n, np.iinfo(np.int64).max)
    value = np.zeros(n, np.int64)
    persons = np.zeros(n, np.int64)
    structural = np.zeros(n, bool)
    pub_of = np.full(n, -1, np.int64)
    first = np.full(n, -1, np.int64)
    seen_in = np.zeros(n, np.int64)
    holes = 0
    offsets = np.cumsum([0] + [t.size for t in tables])
    for k, (t, gid, p) in enumerate(zip(tables, ids, published, strict=True)):
        lo, hi, contiguous = pt.feasible(p)
        if (lo > hi).any():
            raise PolicyError(
                Problem(
                    "cellkey_impossible",
                    f"table '{t.name}': {int((lo > hi).sum())} published value(s) this ptable cannot give",
                    hint="audit a release with the ptable it was perturbed with",
                )
            )
        holes += int((~contiguous).sum())
        np.maximum.at(lb, gid, lo)
        np.minimum.at(ub, gid, hi)
        value[gid] = t.cells["value"].to_numpy(dtype=np.int64)
        n_col = t.cells["contributors"] if "contributors" in t.cells else t.cells["value"]
        np.maximum.at(persons, gid, n_col.to_numpy(dtype=np.int64))
        structural[gid] |= t.structural
        pub_of[gid] = p
        fresh = first[gid] < 0
        first[gid[fresh]] = offsets[k] + np.flatnonzero(fresh)
        np.add.at(seen_in, gid, 1)
    out_of_reach = (lb > ub) | (value < lb) | (value > ub)
    if out_of_reach.any():
        raise PolicyError(
            Problem(
                "cellkey_inconsistent",
                "the releases do not come from these tables with this ptable "
                f"({int(out_of_reach.sum())} cell(s) out of reach)",
                hint="a cell must get the same key (and so the same noise) in every release",
            )
        )
    lb[structural] = 0
    ub[structural] = 0
    return _Releases(
        tables=tables,
        ids=ids,
        lb=lb,
        ub=ub,
        value=value,
        persons=persons,
        structural=structural,
        pub_of=pub_of,
        first=first,
        seen_in=seen_in,
        offsets=offsets,
        holes=holes,
    )


def _problem(rel: _Releases) -> _Problem:
    """The attacker's feasible set as deviations from the true table: every relation of
    every table and each cell's room within its feasible counts."""
    a_eq, a_ub = _constraints(rel.tables, rel.ids, len(rel.value))
    x = rel.x
    return _Problem(
        a_eq=a_eq,
        a_ub=a_ub,
        slack=np.maximum(-(a_ub @ x), 0.0) if a_ub.shape[0] else np.zeros(0),
        room_up=rel.ub - x,
        room_down=x - rel.lb,
    )


@dataclass(frozen=True)
class _Attack:
    """What each sensitive cell must reach and what has been proven so far. The arrays and
    ``figures`` are updated in place by the steps: ``reach_*`` only grow (a feasible table
    moves the cell that far), ``bound_*`` only shrink (no feasible table moves it further)."""

    sensitive: np.ndarray
    need_up: np.ndarray  # how far up the cell must go
    need_down: np.ndarray
    own_up: np.ndarray  # the cell's own feasible counts already miss the need
    own_down: np.ndarray
    todo: dict[float, np.ndarray]
    reach_up: np.ndarray  # deviations proven feasible (x* + reach is a feasible value)
    reach_down: np.ndarray
    bound_up: np.ndarray
    bound_down: np.ndarray
    figures: dict[str, int]

    def need(self, sigma: float) -> np.ndarray:
        """How far the cell must move in the direction ``sigma``."""
        return self.need_up if sigma > 0 else self.need_down

    def proven(self, sigma: float) -> np.ndarray:
        """Cells shown to move far enough in the direction ``sigma``."""
        if sigma > 0:
            return self.reach_up >= self.need_up - _TOL
        return -self.reach_down >= self.need_down - _TOL

    def open(self, sigma: float) -> np.ndarray:
        """Cells still to prove in the direction ``sigma``."""
        return np.flatnonzero(self.todo[sigma] & ~self.proven(sigma))


def _start(rel: _Releases, prob: _Problem, t_req: int, require_lower: bool) -> _Attack:
    """The sensitive cells, what the rule asks of each, and the cells whose own feasible
    counts already fail it (step 1: no table does better)."""
    n = len(rel.value)
    sensitive = (rel.persons >= 1) & (rel.persons < t_req) & ~rel.structural
    need_up = np.maximum(1, t_req - rel.persons).astype(np.float64)
    need_down = np.ones(n)
    own_up = sensitive & (prob.room_up < need_up - _TOL)
    own_down = sensitive & (prob.room_down < need_down - _TOL)
    return _Attack(
        sensitive=sensitive,
        need_up=need_up,
        need_down=need_down,
        own_up=own_up,
        own_down=own_down,
        todo={1.0: sensitive & ~own_up, -1.0: sensitive & ~own_down & require_lower},
        reach_up=np.zeros(n),
        reach_down=np.zeros(n),
        bound_up=prob.room_up.copy(),
        bound_down=prob.room_down.copy(),
        figures={
            "deviations": 0,
            "deviations_valid": 0,
            "combined_lps": 0,
            "neighbourhood_lps": 0,
            "exact_lps": 0,
        },
    )


def _try(prob: _Problem, st: _Attack, y: sp.csc_matrix) -> None:
    """Check candidate deviations by the ratio test: each feasible one proves how far the
    cells it moves can go."""
    step = _steps(prob, y)
    _apply(y, step, st.reach_up, st.reach_down)
    st.figures["deviations"] += int(y.shape[1])
    st.figures["deviations_valid"] += int((step > _TOL).sum())


def _ratio_rounds(space: _Space, prob: _Problem, st: _Attack, rounds: int) -> None:
    """Step 2: a few candidates for every open cell at once, one sparse ratio test per chunk;
    each round takes the next siblings by room."""
    for sigma in (1.0, -1.0):
        for r in range(max(rounds, 0)):
            cells = st.open(sigma)
            if not len(cells):
                break
            for chunk in np.array_split(cells, max(1, len(cells) // 4000)):
                y, _ = _candidates(space, chunk, sigma, prob, rank=2 * r)
                if not y.shape[1]:
                    continue
                _try(prob, st, y)


def _combined(space: _Space, prob: _Problem, st: _Attack, combine_width: int) -> None:
    """Step 3: per open cell the best combination of all its candidates (every sibling as a
    partner, every child of a margin code), each on its own first, then a small LP each."""
    for sigma in (1.0, -1.0):
        cells = st.open(sigma)
        if not len(cells):
            continue
        need = st.need(sigma)
        for chunk in np.array_split(cells, max(1, len(cells) // 200)):
            y, target = _candidates(
                space, chunk, sigma, prob, width=combine_width, cube=combine_width, descents=True
            )
            _try(prob, st, y)  # one of them may do on its own
            keep = _keeps_sums(prob, y)
            for batch in np.array_split(chunk, max(1, len(chunk) // 25)):
                batch = batch[~st.proven(sigma)[batch]]
                if not len(batch):
                    continue
                up, down = _combine(prob, y, target, keep, batch, sigma, need[batch])
                st.figures["combined_lps"] += 1
                np.maximum(st.reach_up, up, out=st.reach_up)
                np.minimum(st.reach_down, down, out=st.reach_down)


def _pattern(prob: _Problem) -> sp.csr_matrix:
    """Which cell each relation touches (equations, then inequalities)."""
    return (abs(sp.vstack([prob.a_eq, prob.a_ub]).tocsr()) > 0).astype(np.int8)


def _neighbourhood_lps(prob: _Problem, st: _Attack, neighbourhoods: Sequence[int]) -> None:
    """Step 4: per open cell LPs over a neighbourhood (relations away from it): every other
    cell fixed at its true value gives a feasible table (a proof it can move); dropping every
    relation that does not touch the neighbourhood gives a bound (a proof it cannot)."""
    left = [(int(j), s) for s in (1.0, -1.0) for j in st.open(s)]
    if not left:
        return
    pattern = _pattern(prob)
    rows_of, vars_of = pattern.tocsc(), pattern.tocsr()
    for j, sigma in left:
        need_j = float(st.need(sigma)[j])
        for size in neighbourhoods:
            free = _ball(rows_of, vars_of, j, size)
            z = _restricted(prob, free, j, sigma)
            st.figures["neighbourhood_lps"] += 1
            np.maximum.at(st.reach_up, free, z)
            np.minimum.at(st.reach_down, free, z)
            if (st.reach_up[j] if sigma > 0 else -st.reach_down[j]) >= need_j - _TOL:
                break
            outer = _relaxed(prob, free, j, sigma)
            st.figures["neighbourhood_lps"] += 1
            if sigma > 0:
                st.bound_up[j] = min(st.bound_up[j], outer)
            else:
                st.bound_down[j] = min(st.bound_down[j], outer)
            if outer < need_j - _TOL:
                break


def _exact_lps(prob: _Problem, st: _Attack, max_exact: int, n: int) -> None:
    """Step 5: the exact optimum over the connected component, for the first ``max_exact``
    cells no bound has settled yet (the expensive proof, so only a few)."""
    left = [
        (j, s)
        for s, bound, need in ((1.0, st.bound_up, st.need_up), (-1.0, st.bound_down, st.need_down))
        for j in np.flatnonzero(st.todo[s] & ~st.proven(s) & (bound >= need - _TOL)).tolist()
    ]
    if not left or max_exact <= 0:
        return
    pattern = _pattern(prob)
    graph = sp.bmat([[None, pattern.T], [pattern, None]], format="csr")  # type: ignore[call-overload]
    _, label = connected_components(graph, directed=False)
    label = label[:n]
    for j, sigma in left[:max_exact]:
        comp = np.flatnonzero(label == label[j])
        z = _exact(prob, comp, int(j), sigma)
        st.figures["exact_lps"] += 1
        np.maximum.at(st.reach_up, comp, z)
        np.minimum.at(st.reach_down, comp, z)
        if sigma > 0:
            st.bound_up[j] = min(st.bound_up[j], max(z[np.searchsorted(comp, j)], 0.0))
        else:
            st.bound_down[j] = min(st.bound_down[j], max(-z[np.searchsorted(comp, j)], 0.0))


class _Verdict(NamedTuple):
    """Per cell what is proven: met (``ok_*``), proven too narrow (``bad_*``) or neither."""

    ok_up: np.ndarray
    ok_down: np.ndarray
    bad_up: np.ndarray
    bad_down: np.ndarray
    unproven: np.ndarray
    ok: np.ndarray


def _verdict(st: _Attack, require_lower: bool) -> _Verdict:
    """Turn reaches and bounds into the rule's verdict; a cell neither proven nor refuted
    counts as failed."""
    ok_up = st.reach_up >= st.need_up - _TOL
    ok_down = -st.reach_down >= st.need_down - _TOL
    bad_up = ~ok_up & (st.bound_up < st.need_up - _TOL)  # proven too narrow
    bad_down = ~ok_down & (st.bound_down < st.need_down - _TOL)
    unproven = st.sensitive & ((~ok_up & ~bad_up) | ((~ok_down & ~bad_down) & require_lower))
    ok = ok_up & (ok_down | (not require_lower))
    return _Verdict(ok_up, ok_down, bad_up, bad_down, unproven, ok)


def _why(st: _Attack, v: _Verdict, sens: np.ndarray, require_lower: bool) -> np.ndarray:
    """Why each sensitive cell failed (empty when it passed): the reviewer's reason."""
    up_bad, down_bad = v.bad_up[sens], v.bad_down[sens] & require_lower
    why = np.full(len(sens), "", dtype=object)
    why = np.where(v.unproven[sens], "not proven", why)
    why = np.where(
        down_bad, np.where(st.own_down[sens], "lower: own interval (not empty)", "lower: relations"), why
    )
    why = np.where(up_bad, np.where(st.own_up[sens], "upper: own interval", "upper: relations"), why)
    return why.astype(str)


def _cell_frame(rel: _Releases, space: _Space, st: _Attack, v: _Verdict, require_lower: bool) -> pd.DataFrame:
    """One row per sensitive cell for the reviewer, named by its first showing."""
    x = rel.x
    # the attacker's interval as far as known: a proven reach where the need is met, else the
    # best bound (own feasible counts, a relaxation or the exact optimum): it does no worse
    upper = x + np.where(v.ok_up, st.reach_up, st.bound_up)
    lower = x - np.where(v.ok_down, -st.reach_down, st.bound_down)
    sens = np.flatnonzero(st.sensitive)
    tab_of = np.searchsorted(rel.offsets, rel.first[sens], side="right") - 1
    cell_of = rel.first[sens] - rel.offsets[tab_of]
    why = _why(st, v, sens, require_lower)
    return pd.DataFrame(
        {
            "table": np.asarray([rel.tables[i].name for i in tab_of], dtype=object),
            "cell": cell_of.astype(np.int64),
            "coordinates": _coordinate_text(space, sens),
            "releases": rel.seen_in[sens],
            "value": rel.value[sens],
            "persons": rel.persons[sens],
            "published": rel.pub_of[sens],
            "feasible_lower": rel.lb[sens],
            "feasible_upper": rel.ub[sens],
            "required_lower": (x - st.need_down)[sens],
            "required_upper": (x + st.need_up)[sens],
            "lower": lower[sens],
            "upper": upper[sens],
            "lower_ok": v.ok_down[sens],
            "upper_ok": v.ok_up[sens],
            "ok": v.ok[sens],
            "why": why,
        }
    )


def _failures(reported: pd.DataFrame) -> list[dict[str, Any]]:
    """The failed cells as plain records (the audit's failure list)."""
    bad = reported[~reported["ok"]]
    return [
        {
            "table": r["table"],
            "cell": int(r["cell"]),
            "problem": r["why"],
            "lower": float(r["lower"]),
            "upper": float(r["upper"]),
            "required_lower": float(r["required_lower"]),
            "required_upper": float(r["required_upper"]),
        }
        for r in bad.to_dict("records")
    ]


def _summary(
    rel: _Releases,
    pt: PTable,
    st: _Attack,
    v: _Verdict,
    t_req: int,
    require_lower: bool,
    failed: int,
    started: float,
) -> dict[str, Any]:
    """The audit's figures: counts of cells and verdicts, the work done and the time taken."""
    sensitive, own_up, own_down = st.sensitive, st.own_up, st.own_down
    sens = np.flatnonzero(sensitive)
    n_s = len(sens)
    return {
        "releases": len(rel.tables),
        "cells": int(sum(t.size for t in rel.tables)),
        "distinct_cells": int(len(rel.value)),
        "shared_cells": int((rel.seen_in > 1).sum()),
        "sensitive": n_s,
        "threshold": t_req,
        "failed": failed,
        "upper_too_narrow": int((sensitive & v.bad_up).sum()),
        "lower_too_narrow": int((sensitive & v.bad_down).sum()),
        "not_empty_shown": int((sensitive & own_down).sum()),
        "narrowed_by_relations": int(
            (sensitive & ((v.bad_up & ~own_up) | (v.bad_down & ~own_down & require_lower))).sum()
        ),
        "unproven": int(v.unproven.sum()),
        "share_protected": round(float(v.ok[sens].mean()), 6) if n_s else 1.0,
        "require_lower": bool(require_lower),
        **st.figures,
        "feasible_sets_with_holes": int(rel.holes),
        "relaxation": "linear",
        "params": pt.params.to_dict(),
        "seconds": round(time.perf_counter() - started, 3),
    }


def _coordinate_text(space: _Space, cells: np.ndarray) -> np.ndarray:
    """'unit=persons|year=2023|kommun=0180|insats=...' per reported cell (totals left out)."""
    text = np.full(len(cells), "", dtype=object)
    for j, name in enumerate(space.names):
        if j == _POP:
            continue
        v = space.vocab[j][space.codes[cells, j]].astype(str).astype(object)
        part = np.where((v == "*") | (v == ""), "", name + "=" + v)
        sep = np.where((text != "") & (part != ""), "|", "")
        text = text + sep + part
    return text
