"""The cell key audit: an attacker who holds every release, the ptable and every relation, and
how far it can narrow each small cell (the bounds from all releases at once), against what the
frequency rule requires.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

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
            "summary": dict(self.summary),
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
    ids, space = _identify(tables)
    n = space.size

    lb = np.zeros(n, np.int64)
    ub = np.full(n, np.iinfo(np.int64).max)
    value = np.zeros(n, np.int64)
    persons = np.zeros(n, np.int64)
    structural = np.zeros(n, bool)
    pub_of = np.full(n, -1, np.int64)
    first = np.full(n, -1, np.int64)  # position (over all releases) of the first showing
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
    a_eq, a_ub = _constraints(tables, ids, n)
    x = value.astype(np.float64)
    prob = _Problem(
        a_eq=a_eq,
        a_ub=a_ub,
        slack=np.maximum(-(a_ub @ x), 0.0) if a_ub.shape[0] else np.zeros(0),
        room_up=ub - x,
        room_down=x - lb,
    )

    sensitive = (persons >= 1) & (persons < t_req) & ~structural
    need_up = np.maximum(1, t_req - persons).astype(np.float64)  # how far up the cell must go
    need_down = np.ones(n)
    reach_up = np.zeros(n)  # deviations proven feasible (x* + reach is a feasible value)
    reach_down = np.zeros(n)
    own_up = sensitive & (prob.room_up < need_up - _TOL)
    own_down = sensitive & (prob.room_down < need_down - _TOL)
    todo = {1.0: sensitive & ~own_up, -1.0: sensitive & ~own_down & require_lower}

    def proven(sigma: float) -> np.ndarray:
        return reach_up >= need_up - _TOL if sigma > 0 else -reach_down >= need_down - _TOL

    figures = {
        "deviations": 0,
        "deviations_valid": 0,
        "combined_lps": 0,
        "neighbourhood_lps": 0,
        "exact_lps": 0,
    }
    for sigma in (1.0, -1.0):
        for r in range(max(rounds, 0)):
            cells = np.flatnonzero(todo[sigma] & ~proven(sigma))
            if not len(cells):
                break
            for chunk in np.array_split(cells, max(1, len(cells) // 4000)):
                y, _ = _candidates(space, chunk, sigma, prob, rank=2 * r)
                if not y.shape[1]:
                    continue
                step = _steps(prob, y)
                _apply(y, step, reach_up, reach_down)
                figures["deviations"] += int(y.shape[1])
                figures["deviations_valid"] += int((step > _TOL).sum())
    # the rest: per cell the best combination of all its candidates (every sibling as a
    # partner, every child of a margin code), a small LP each
    for sigma in (1.0, -1.0):
        cells = np.flatnonzero(todo[sigma] & ~proven(sigma))
        if not len(cells):
            continue
        need = need_up if sigma > 0 else need_down
        for chunk in np.array_split(cells, max(1, len(cells) // 200)):
            y, target = _candidates(
                space, chunk, sigma, prob, width=combine_width, cube=combine_width, descents=True
            )
            step = _steps(prob, y)  # one of them may do on its own
            _apply(y, step, reach_up, reach_down)
            figures["deviations"] += int(y.shape[1])
            figures["deviations_valid"] += int((step > _TOL).sum())
            keep = _keeps_sums(prob, y)
            for batch in np.array_split(chunk, max(1, len(chunk) // 25)):
                batch = batch[~proven(sigma)[batch]]
                if not len(batch):
                    continue
                up, down = _combine(prob, y, target, keep, batch, sigma, need[batch])
                figures["combined_lps"] += 1
                np.maximum(reach_up, up, out=reach_up)
                np.minimum(reach_down, down, out=reach_down)
    # then per cell a neighbourhood (relations away from it): every other cell fixed at its
    # true value gives a feasible table (a proof it can move); dropping every relation that
    # does not touch the neighbourhood gives a bound (a proof it cannot)
    bound_up = prob.room_up.copy()  # no feasible table moves a cell further than these
    bound_down = prob.room_down.copy()
    rows_of = vars_of = None
    left = [(int(j), s) for s in (1.0, -1.0) for j in np.flatnonzero(todo[s] & ~proven(s))]
    if left:
        pattern = (abs(sp.vstack([a_eq, a_ub]).tocsr()) > 0).astype(np.int8)
        rows_of, vars_of = pattern.tocsc(), pattern.tocsr()
    for j, sigma in left:
        assert rows_of is not None and vars_of is not None  # made above when anything is left
        need_j = float((need_up if sigma > 0 else need_down)[j])
        for size in neighbourhoods:
            free = _ball(rows_of, vars_of, j, size)
            z = _restricted(prob, free, j, sigma)
            figures["neighbourhood_lps"] += 1
            np.maximum.at(reach_up, free, z)
            np.minimum.at(reach_down, free, z)
            if (reach_up[j] if sigma > 0 else -reach_down[j]) >= need_j - _TOL:
                break
            outer = _relaxed(prob, free, j, sigma)
            figures["neighbourhood_lps"] += 1
            if sigma > 0:
                bound_up[j] = min(bound_up[j], outer)
            else:
                bound_down[j] = min(bound_down[j], outer)
            if outer < need_j - _TOL:
                break
    # last: the exact optimum over the component, for a few
    left = [
        (j, s)
        for s, bound, need in ((1.0, bound_up, need_up), (-1.0, bound_down, need_down))
        for j in np.flatnonzero(todo[s] & ~proven(s) & (bound >= need - _TOL)).tolist()
    ]
    if left and max_exact > 0:
        pattern = (abs(sp.vstack([a_eq, a_ub]).tocsr()) > 0).astype(np.int8)
        graph = sp.bmat([[None, pattern.T], [pattern, None]], format="csr")  # type: ignore[call-overload]
        _, label = connected_components(graph, directed=False)
        label = label[:n]
        for j, sigma in left[:max_exact]:
            comp = np.flatnonzero(label == label[j])
            z = _exact(prob, comp, int(j), sigma)
            figures["exact_lps"] += 1
            np.maximum.at(reach_up, comp, z)
            np.minimum.at(reach_down, comp, z)
            if sigma > 0:
                bound_up[j] = min(bound_up[j], max(z[np.searchsorted(comp, j)], 0.0))
            else:
                bound_down[j] = min(bound_down[j], max(-z[np.searchsorted(comp, j)], 0.0))

    ok_up = reach_up >= need_up - _TOL
    ok_down = -reach_down >= need_down - _TOL
    bad_up = ~ok_up & (bound_up < need_up - _TOL)  # proven too narrow
    bad_down = ~ok_down & (bound_down < need_down - _TOL)
    unproven = sensitive & ((~ok_up & ~bad_up) | ((~ok_down & ~bad_down) & require_lower))
    ok = ok_up & (ok_down | (not require_lower))
    # the attacker's interval as far as known: a proven reach where the need is met, else the
    # best bound (own feasible counts, a relaxation or the exact optimum): it does no worse
    upper = x + np.where(ok_up, reach_up, bound_up)
    lower = x - np.where(ok_down, -reach_down, bound_down)
    sens = np.flatnonzero(sensitive)
    tab_of = np.searchsorted(offsets, first[sens], side="right") - 1
    cell_of = first[sens] - offsets[tab_of]
    up_bad, down_bad = bad_up[sens], bad_down[sens] & require_lower
    why = np.full(len(sens), "", dtype=object)
    why = np.where(unproven[sens], "not proven", why)
    why = np.where(
        down_bad, np.where(own_down[sens], "lower: own interval (not empty)", "lower: relations"), why
    )
    why = np.where(up_bad, np.where(own_up[sens], "upper: own interval", "upper: relations"), why)
    reported = pd.DataFrame(
        {
            "table": np.asarray([tables[i].name for i in tab_of], dtype=object),
            "cell": cell_of.astype(np.int64),
            "coordinates": _coordinate_text(space, sens),
            "releases": seen_in[sens],
            "value": value[sens],
            "persons": persons[sens],
            "published": pub_of[sens],
            "feasible_lower": lb[sens],
            "feasible_upper": ub[sens],
            "required_lower": (x - need_down)[sens],
            "required_upper": (x + need_up)[sens],
            "lower": lower[sens],
            "upper": upper[sens],
            "lower_ok": ok_down[sens],
            "upper_ok": ok_up[sens],
            "ok": ok[sens],
            "why": why.astype(str),
        }
    )
    bad = reported[~reported["ok"]]
    failures = [
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
    n_s = len(sens)
    summary = {
        "releases": len(tables),
        "cells": int(sum(t.size for t in tables)),
        "distinct_cells": int(n),
        "shared_cells": int((seen_in > 1).sum()),
        "sensitive": n_s,
        "threshold": t_req,
        "failed": len(failures),
        "upper_too_narrow": int((sensitive & bad_up).sum()),
        "lower_too_narrow": int((sensitive & bad_down).sum()),
        "not_empty_shown": int((sensitive & own_down).sum()),
        "narrowed_by_relations": int(
            (sensitive & ((bad_up & ~own_up) | (bad_down & ~own_down & require_lower))).sum()
        ),
        "unproven": int(unproven.sum()),
        "share_protected": round(float(ok[sens].mean()), 6) if n_s else 1.0,
        "require_lower": bool(require_lower),
        **figures,
        "feasible_sets_with_holes": int(holes),
        "relaxation": "linear",
        "params": pt.params.to_dict(),
        "seconds": round(time.perf_counter() - started, 3),
    }
    return CellKeyAudit(passed=not failures, cells=reported, summary=summary, failures=failures)


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
