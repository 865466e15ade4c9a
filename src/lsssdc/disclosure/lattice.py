"""Optimal generalisation: search the lattice of hierarchy levels for the least loss.

A node of the lattice is one level per quasi-identifier (``(2, 0, 1)``: age at level 2, sex
as it is, kommun at level 1). A node *satisfies* the criteria when the records still unsafe
at that node (too few compatible records, or too little diversity) are no more than the
allowed share: those records are then suppressed (every quasi-identifier blanked, as ARX
does; or, with ``suppression="local"``, only the values local suppression picks).

The search is a best-first branch and bound in the spirit of ARX's Flash and OLA:

- *Monotonicity* (predictive tagging): coarsening merges categories, so for k and distinct l
  a node that fails makes every node below it fail, and the search skips them without
  measuring. Entropy l with suppression is not monotone, so with it nothing is skipped.
  Where blanking can lower other records' figures (entropy l; ``missing_weight = 0`` with
  missing values in the input) a node's suppression is repeated until nothing more is unsafe.
- *Bound*: information loss is Iyengar's loss metric (LM): a value generalised to a category
  that covers g of the G distinct values observed costs (g - 1) / (G - 1), a suppressed (or
  already missing) value costs 1; the loss of a node is the mean over records and
  quasi-identifiers, in [0, 1]. Without suppression that mean splits into one term per
  variable and level, computed once; it is a lower bound of the node's loss because a
  suppressed value costs the most. Nodes are visited in order of that bound and the search
  stops when the bound exceeds the best loss found: the result is optimal for LM.

Ties are broken by fewer suppressed records, then fewer levels in total, then the level vector,
so the result is deterministic. Each node is measured on the distinct combinations of the
level-0 codes (rolled up through the hierarchies' lookup arrays), never on the records.

Reported for the released data (after suppression of either kind): the loss metric, the
discernibility metric (each record costs the number of records compatible with it, so a fully
suppressed record costs n), the normalised average class size (records without a missing
quasi-identifier per class of them, divided by k) and the precision (mean level / height).
``chosen.loss`` is the loss the search ranked the node by (with record suppression).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from lsssdc.coarsen import EncodedHierarchy, Hierarchy, Recoding, summarise_recoding
from lsssdc.disclosure.criteria import REGISTRY
from lsssdc.disclosure.risk import (
    UNIT,
    ComboRisk,
    Criteria,
    RiskReport,
    SensitivePairs,
    _dense_ids,
    collapse_codes,
    compatible,
    measure,
    refuse,
    risk_from,
    sensitive_pairs,
)
from lsssdc.disclosure.suppress import SuppressionReport, merge_combinations, suppress_locally
from lsssdc.errors import DisclosureRefused, InputDataError, PolicyError, Problem

Suppression = Literal["record", "local"]


@dataclass(frozen=True)
class NodeResult:
    """One measured node of the lattice."""

    levels: tuple[int, ...]
    suppressed_records: int
    below_k: int
    below_l: int
    below_entropy_l: int
    loss: float
    satisfies: bool

    def to_dict(self, names: Sequence[str], level_names: Sequence[Sequence[str]]) -> dict[str, Any]:
        return {
            "levels": {
                n: {"level": lv, "name": level_names[i][lv]}
                for i, (n, lv) in enumerate(zip(names, self.levels, strict=True))
            },
            "suppressed_records": self.suppressed_records,
            "records_below_k": self.below_k,
            "records_below_l": self.below_l,
            "records_below_entropy_l": self.below_entropy_l,
            "loss": round(self.loss, 6),
            "satisfies": self.satisfies,
        }


@dataclass
class LatticeReport:
    """The search, the chosen levels and what they cost."""

    rows: int
    quasi_identifiers: tuple[str, ...]
    criteria: Criteria
    suppression: str
    level_names: tuple[tuple[str, ...], ...]
    nodes: int
    evaluated: int
    pruned_by_bound: int
    pruned_by_monotonicity: int
    chosen: NodeResult | None
    best_reached: NodeResult | None
    records_suppressed: int = 0
    suppressed_values: dict[str, int] = field(default_factory=dict)
    utility: dict[str, float] = field(default_factory=dict)
    recodings: list[Recoding] = field(default_factory=list)
    after: RiskReport | None = None
    local: SuppressionReport | None = None
    problems: list[Problem] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        names = self.quasi_identifiers
        n = self.rows
        return {
            "method": "lattice search (best-first branch and bound, monotonicity pruning), loss metric LM",
            "rows": n,
            "rows_dropped": 0,
            "quasi_identifiers": list(names),
            "criteria": self.criteria.to_dict(),
            "suppression": self.suppression,
            "hierarchies": {q: list(self.level_names[i]) for i, q in enumerate(names)},
            "search": {
                "nodes": self.nodes,
                "evaluated": self.evaluated,
                "pruned_by_bound": self.pruned_by_bound,
                "pruned_by_monotonicity": self.pruned_by_monotonicity,
            },
            "chosen": None if self.chosen is None else self.chosen.to_dict(names, self.level_names),
            "best_reached": None
            if self.best_reached is None
            else self.best_reached.to_dict(names, self.level_names),
            "records_suppressed": self.records_suppressed,
            "records_suppressed_share": round(self.records_suppressed / n, 6) if n else 0.0,
            "suppressed_values": dict(self.suppressed_values),
            "suppressed_share": {q: round(v / n, 6) if n else 0.0 for q, v in self.suppressed_values.items()},
            "utility": {k: round(v, 6) for k, v in self.utility.items()},
            "recodings": [r.to_dict() for r in self.recodings],
            "after": None if self.after is None else self.after.to_dict(),
            "local_suppression": None if self.local is None else self.local.to_dict(),
            "satisfied": not self.problems and self.chosen is not None,
            "problems": [p.to_dict() for p in self.problems],
        }


class _Lattice:
    """The encoded data and the measurement of one node."""

    def __init__(
        self,
        df: pd.DataFrame,
        encoded: list[EncodedHierarchy],
        criteria: Criteria,
        budget: int,
        unit: str | None = None,
    ) -> None:
        self.enc = encoded
        self.criteria = criteria
        self.budget = budget
        self.n = len(df)
        self.m = len(encoded)
        combos = collapse_codes([e.codes for e in encoded], [len(e.categories[0]) for e in encoded])
        self.combos = combos
        self.pairs = {
            s: sensitive_pairs(combos.of_row, len(combos.counts), df[s]) for s in criteria.sensitive
        }
        if unit:
            self.pairs[UNIT] = sensitive_pairs(combos.of_row, len(combos.counts), df[unit])
        self.heights = np.array([e.height for e in encoded], dtype=np.int64)
        # per variable and level: summed loss over records (missing values cost 1)
        self.level_loss: list[np.ndarray] = []
        for i, e in enumerate(encoded):
            c = combos.codes[:, i]
            miss = c < 0
            per = []
            for lv in range(e.height + 1):
                loss = np.where(miss, 1.0, e.loss[lv][np.maximum(c, 0)] if e.loss[lv].size else 1.0)
                per.append(float((loss * combos.counts).sum()))
            self.level_loss.append(np.array(per))
        # blanking records can lower others' figures with entropy l (a skewed mixture) and with
        # missing_weight 0 (a blanked record stops counting): then re-measure until stable
        self.iterate = not criteria.monotone or criteria.missing_weight == 0
        # can a fully suppressed record be safe at all? (it is compatible with every record)
        whole = self._measure(
            np.full((1, self.m), -1, np.int32), np.array([self.n], np.int64), self._pairs_all()
        )
        self.suppression_helps = self.n > 0 and not whole.unsafe(criteria)[0]

    def _pairs_all(self) -> dict[str, SensitivePairs]:
        out = {}
        for s, sp in self.pairs.items():
            ids, uniq, _ = _dense_ids(sp.value, sp.n_values)
            cnt = np.bincount(ids, weights=sp.count, minlength=len(uniq)).astype(np.int64)
            out[s] = SensitivePairs(np.zeros(len(uniq), np.int64), uniq, cnt, sp.n_values)
        return out

    def lower_bound(self, levels: tuple[int, ...]) -> float:
        if not self.n or not self.m:
            return 0.0
        return sum(self.level_loss[i][lv] for i, lv in enumerate(levels)) / (self.n * self.m)

    def node_codes(self, levels: tuple[int, ...]) -> np.ndarray:
        cols = [self.enc[i].level_codes(lv, self.combos.codes[:, i]) for i, lv in enumerate(levels)]
        return (
            np.stack(cols, axis=1).astype(np.int32)
            if cols
            else np.zeros((len(self.combos.counts), 0), np.int32)
        )

    def _cards(self, levels: tuple[int, ...]) -> list[int]:
        return [len(self.enc[i].categories[lv]) for i, lv in enumerate(levels)]

    def _measure(
        self,
        codes: np.ndarray,
        counts: np.ndarray,
        pairs: dict[str, SensitivePairs],
        cards: Sequence[int] | None = None,
    ) -> ComboRisk:
        cards = cards if cards is not None else [1] * codes.shape[1]
        res = compatible(codes, codes, counts, cards, list(pairs.values()), self.criteria.missing_weight)
        return risk_from(res, list(pairs), len(codes))

    @staticmethod
    def _roll_up(
        codes: np.ndarray, counts: np.ndarray, cards: Sequence[int], pairs: dict[str, SensitivePairs]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, SensitivePairs]]:
        """Combinations that became equal at a node merged into one (as local suppression does)."""
        return merge_combinations(codes, counts, cards, pairs)

    def evaluate(self, levels: tuple[int, ...]) -> tuple[NodeResult, np.ndarray]:
        """Measure a node; also returns, per level-0 combination, whether it is suppressed."""
        cards = self._cards(levels)
        codes, counts, to_node, pairs = self._roll_up(
            self.node_codes(levels), self.combos.counts, cards, self.pairs
        )
        risk = self._measure(codes, counts, pairs, cards)
        unsafe = risk.unsafe(self.criteria)
        c = self.criteria
        # records below each rule: the most over the sensitive attributes
        below = dict.fromkeys(REGISTRY, 0)
        for rule in c.rules():
            below[rule.name] = max(below[rule.name], int(counts[rule.failing(risk)].sum()))
        below_k, below_l, below_el = below["k"], below["l_diversity"], below["entropy_l"]
        suppressed = unsafe.copy()
        if self.iterate and unsafe.any() and self.suppression_helps:
            for _ in range(len(counts)):
                sup_codes = codes.copy()
                sup_codes[suppressed] = -1
                c2, n2, ids2, p2 = self._roll_up(sup_codes, counts, cards, pairs)
                again = self._measure(c2, n2, p2, cards).unsafe(c)[ids2] & ~suppressed
                if not again.any():
                    break
                suppressed |= again
        n_sup = int(counts[suppressed].sum())
        ok = (not unsafe.any()) or (self.suppression_helps and n_sup <= self.budget)
        # loss: generalised values of kept records + 1 per value of suppressed records
        kept = ~suppressed[to_node]
        total = 0.0
        for i, lv in enumerate(levels):
            col = self.combos.codes[:, i]
            loss_lv = self.enc[i].loss[lv]
            v = np.where(col < 0, 1.0, loss_lv[np.maximum(col, 0)] if loss_lv.size else 1.0)
            total += float((v * self.combos.counts * kept).sum())
        total += float(n_sup * self.m)
        loss = total / (self.n * self.m) if self.n and self.m else 0.0
        result = NodeResult(
            levels=levels,
            suppressed_records=n_sup,
            below_k=below_k,
            below_l=below_l,
            below_entropy_l=below_el,
            loss=loss,
            satisfies=bool(ok),
        )
        return result, suppressed[to_node]


def _check_bounds(
    names: list[str], heights: np.ndarray, bounds: Mapping[str, int] | None, what: str
) -> dict[str, int]:
    out = dict(bounds or {})
    unknown = sorted(set(out) - set(names))
    if unknown:
        raise PolicyError(
            Problem("bad_levels", f"{what} names variables that are not quasi-identifiers: {unknown}")
        )
    for q, v in out.items():
        h = int(heights[names.index(q)])
        if not 0 <= int(v) <= h:
            raise PolicyError(
                Problem("bad_levels", f"{what} for '{q}' must lie in 0..{h}, got {v}", column=q)
            )
    return out


def generalise(
    df: pd.DataFrame,
    hierarchies: Sequence[Hierarchy],
    criteria: Criteria,
    *,
    min_levels: Mapping[str, int] | None = None,
    max_levels: Mapping[str, int] | None = None,
    suppression: Suppression = "record",
    order: Sequence[str] | None = None,
    unit: str | None = None,
) -> tuple[pd.DataFrame, LatticeReport]:
    """Find the least-loss levels that satisfy ``criteria`` and apply them (and suppression).

    Every quasi-identifier needs a hierarchy (use :func:`lsssdc.coarsen.identity_hierarchy`
    for one that is never coarsened). ``min_levels`` / ``max_levels`` bound the levels per
    variable (e.g. the policy's "at least 5-year age bands", "never coarser than län").
    ``order`` is the suppression order for ``suppression="local"`` (least important first).
    ``unit`` names the person column when a person has several rows (classes count persons).
    Refuses (:class:`DisclosureRefused`, report in ``exc.report``) when no node within the
    bounds satisfies the criteria with at most ``criteria.max_suppressed_share`` of records
    suppressed.
    """
    names = [h.variable for h in hierarchies]
    _check_input(df, names, criteria, suppression, unit)
    encoded = [h.encode(df[h.variable]) for h in hierarchies]
    lo, hi = _level_range(names, encoded, min_levels, max_levels)
    n = len(df)
    budget = int(math.floor(criteria.max_suppressed_share * n + 1e-9))
    lat = _Lattice(df, encoded, criteria, budget, unit)
    search = _search(lat, lo, hi, criteria.monotone)
    report = LatticeReport(
        rows=n,
        quasi_identifiers=tuple(names),
        criteria=criteria,
        suppression=suppression,
        level_names=tuple(e.level_names for e in encoded),
        nodes=search.nodes,
        evaluated=search.evaluated,
        pruned_by_bound=search.pruned_by_bound,
        pruned_by_monotonicity=search.pruned_by_monotonicity,
        chosen=None,
        best_reached=None,
    )
    if search.best is None:
        reached = search.best_fail[1] if search.best_fail else None
        report.best_reached = reached
        report.problems = _refusal_problems(reached, criteria, n, budget, lat.suppression_helps)
        raise refuse(report.problems, report)

    chosen, suppressed_rows = search.best[1], search.best[2][lat.combos.of_row]
    report.chosen = chosen
    report.best_reached = chosen
    out = _recode(df, hierarchies, encoded, chosen.levels, report)
    if suppression == "record":
        out = _suppress_records(df, out, names, suppressed_rows, report)
    else:
        try:
            out, local = suppress_locally(out, names, criteria, order=order, unit=unit)
        except DisclosureRefused as exc:
            report.local = exc.report  # type: ignore[attr-defined]
            report.problems = list(exc.problems)
            raise refuse(report.problems, report) from None
        report.local = local
        report.records_suppressed = local.records_suppressed
        report.suppressed_values = dict(local.suppressed_values)
    after = measure(out, names, criteria, unit=unit)
    report.after = after
    report.utility = _utility(encoded, chosen.levels, out, names, after, criteria.k)
    if not after.satisfied:
        report.problems = after.problems()
        raise refuse(report.problems, report)
    return out, report


def _check_input(
    df: pd.DataFrame, names: list[str], criteria: Criteria, suppression: str, unit: str | None
) -> None:
    """One hierarchy per quasi-identifier, every column there, a known suppression."""
    if len(set(names)) != len(names):
        raise PolicyError(Problem("bad_hierarchy", "a quasi-identifier has more than one hierarchy"))
    needed = [*names, *criteria.sensitive, *([unit] if unit else [])]
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise InputDataError([Problem("missing_column", "column not in the data", column=c) for c in missing])
    if suppression not in ("record", "local"):
        raise PolicyError(
            Problem("bad_suppression", f"suppression must be 'record' or 'local', not {suppression!r}")
        )


def _level_range(
    names: list[str],
    encoded: list[EncodedHierarchy],
    min_levels: Mapping[str, int] | None,
    max_levels: Mapping[str, int] | None,
) -> tuple[list[int], list[int]]:
    """The lowest and highest level each quasi-identifier may take (the policy's bounds)."""
    heights = np.array([e.height for e in encoded], dtype=np.int64)
    lo_map = _check_bounds(names, heights, min_levels, "min_levels")
    hi_map = _check_bounds(names, heights, max_levels, "max_levels")
    lo = [int(lo_map.get(q, 0)) for q in names]
    hi = [int(hi_map.get(q, int(heights[i]))) for i, q in enumerate(names)]
    if any(a > b for a, b in zip(lo, hi, strict=True)):
        raise PolicyError(Problem("bad_levels", "a minimum level lies above the maximum level"))
    return lo, hi


@dataclass
class _Search:
    """What the search found: the best node that satisfies (rank, result, suppressed combos),
    the failing node that came closest, and how many nodes it measured or skipped."""

    nodes: int
    best: tuple[tuple[Any, ...], NodeResult, np.ndarray] | None = None
    best_fail: tuple[tuple[Any, ...], NodeResult] | None = None
    evaluated: int = 0
    pruned_by_bound: int = 0
    pruned_by_monotonicity: int = 0


def _search(lat: _Lattice, lo: list[int], hi: list[int], monotone: bool) -> _Search:
    """Best-first over the nodes by their loss bound; skip below a failing node when every
    criterion is monotone; stop when the bound passes the best loss found."""
    nodes = list(itertools.product(*[range(a, b + 1) for a, b in zip(lo, hi, strict=True)]))
    bounds = np.array([lat.lower_bound(nd) for nd in nodes])
    sums = np.array([sum(nd) for nd in nodes])
    # the lambda's argument is inferred as Any, which numpy's stubs read as an array index
    order_idx = sorted(range(len(nodes)), key=lambda j: (round(bounds[j], 12), sums[j], nodes[j]))  # type: ignore[call-overload]
    failing = np.zeros((0, len(lo)), dtype=np.int64)
    found = _Search(len(nodes))
    for pos, j in enumerate(order_idx):
        node = nodes[j]
        if found.best is not None and bounds[j] > found.best[1].loss + 1e-12:
            found.pruned_by_bound = len(order_idx) - pos
            break
        arr = np.asarray(node, dtype=np.int64)
        if monotone and len(failing) and bool((arr <= failing).all(axis=1).any()):
            found.pruned_by_monotonicity += 1
            continue
        result, suppressed = lat.evaluate(node)
        found.evaluated += 1
        if result.satisfies:
            rank = (round(result.loss, 12), result.suppressed_records, int(sums[j]), node)
            if found.best is None or rank < found.best[0]:
                found.best = (rank, result, suppressed)
        else:
            if monotone:
                failing = np.vstack([failing[~(failing <= arr).all(axis=1)], arr])
            frank = (result.suppressed_records, round(result.loss, 12), node)
            if found.best_fail is None or frank < found.best_fail[0]:
                found.best_fail = (frank, result)
    return found


def _recode(
    df: pd.DataFrame,
    hierarchies: Sequence[Hierarchy],
    encoded: list[EncodedHierarchy],
    levels: tuple[int, ...],
    report: LatticeReport,
) -> pd.DataFrame:
    """The data at the chosen levels (categories in the hierarchy's order), each recoding
    recorded in the report."""
    out = df.copy()
    for i, (h, e) in enumerate(zip(hierarchies, encoded, strict=True)):
        lv = levels[i]
        if lv == 0:
            continue
        codes = e.level_codes(lv)
        new: pd.Series = pd.Series(
            pd.Categorical.from_codes(codes, categories=list(e.categories[lv])),  # type: ignore[call-overload]
            index=df.index,
            name=h.variable,
        )
        if e.ordered[lv]:
            new = new.cat.as_ordered()
        report.recodings.append(
            summarise_recoding(
                h.variable,
                "generalise",
                e.level_names[0],
                e.level_names[lv],
                df[h.variable],
                new,
                {"level": lv},
            )
        )
        out[h.variable] = new
    return out


def _suppress_records(
    df: pd.DataFrame, out: pd.DataFrame, names: list[str], suppressed_rows: np.ndarray, report: LatticeReport
) -> pd.DataFrame:
    """Record suppression: every quasi-identifier of an unsafe record blanked."""
    for q in names:
        col = out[q]
        if suppressed_rows.any():
            if isinstance(col.dtype, np.dtype) and col.dtype.kind in "iub":
                col = col.astype("boolean" if col.dtype.kind == "b" else "Int64")
            out[q] = col.mask(suppressed_rows)
    report.records_suppressed = int(suppressed_rows.sum())
    report.suppressed_values = {q: int((suppressed_rows & df[q].notna().to_numpy()).sum()) for q in names}
    return out


def _utility(
    encoded: list[EncodedHierarchy],
    levels: tuple[int, ...],
    out: pd.DataFrame,
    names: list[str],
    after: RiskReport,
    k: int,
) -> dict[str, float]:
    """Information loss of the released data (after suppression, whichever kind)."""
    n, m = len(out), len(names)
    total = 0.0
    for i, (e, lv) in enumerate(zip(encoded, levels, strict=True)):
        loss = e.loss[lv]
        v = np.where(e.codes >= 0, loss[np.maximum(e.codes, 0)] if loss.size else 1.0, 1.0)
        v = np.where(out[names[i]].isna().to_numpy(), 1.0, v)
        total += float(v.sum())
    counts = after.combos.counts
    complete = (after.combos.codes >= 0).all(axis=1)
    n_complete = int(counts[complete].sum())
    classes = int(np.count_nonzero(complete))
    heights = [e.height for e in encoded]
    return {
        "loss_metric": total / (n * m) if n and m else 0.0,
        "discernibility": float((after.per_combo.f * counts).sum()),
        "average_class_size_normalised": (n_complete / classes / k) if classes else 0.0,
        "precision": float(np.mean([lv / h if h else 0.0 for lv, h in zip(levels, heights, strict=True)]))
        if m
        else 0.0,
    }


def _refusal_problems(
    reached: NodeResult | None, criteria: Criteria, n: int, budget: int, suppression_helps: bool
) -> list[Problem]:
    if reached is None:
        return [Problem("no_levels", "no level vector lies within the allowed levels")]
    out: list[Problem] = []
    where = "at the most protective allowed levels"
    if reached.below_k:
        out.append(
            Problem(
                "k_anonymity",
                f"{reached.below_k} records stay in classes smaller than k={criteria.k} {where}",
                row_count=reached.below_k,
            )
        )
    if reached.below_l:
        out.append(
            Problem(
                "l_diversity",
                f"{reached.below_l} records see fewer than l={criteria.l_diversity} sensitive values {where}",
                row_count=reached.below_l,
            )
        )
    if reached.below_entropy_l:
        out.append(
            Problem(
                "entropy_l_diversity",
                f"{reached.below_entropy_l} records have entropy l below {criteria.entropy_l:g} {where}",
                row_count=reached.below_entropy_l,
            )
        )
    if not suppression_helps:
        out.append(
            Problem(
                "suppression_cannot_help",
                f"even a fully suppressed record is unsafe: the extract as a whole ({n} records) does not meet the criteria",
            )
        )
    else:
        out.append(
            Problem(
                "max_suppression",
                f"{reached.suppressed_records} records would need suppression, more than the allowed "
                f"{budget} ({criteria.max_suppressed_share:.2%} of {n})",
                row_count=reached.suppressed_records,
                hint="allow coarser levels or a larger suppression share, or drop a quasi-identifier",
            )
        )
    return out
