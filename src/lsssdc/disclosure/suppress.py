"""Local suppression: blank quasi-identifier values until k (and l) hold.

Why suppression is safe to do in rounds: under the "compatible records" definition
(:mod:`lsssdc.disclosure.risk`), blanking a value only removes constraints. The record itself
then matches a superset of what it matched, and every record that matched it still does. So no
record's class size can fall, and distinct l (the union of sensitive values over the class)
cannot fall either. A round can therefore treat all unsafe records at once without undoing
earlier work. Entropy l is not monotone (adding records can make a distribution more skewed),
so every round re-measures everything and treats whatever is unsafe then.

One round, on the distinct combinations of quasi-identifiers (never per record):

1. Measure every combination; stop when none is unsafe.
2. For each unsafe combination and each of its non-missing quasi-identifiers, measure the
   combination as it would be with that one value blanked ("what if").
3. Choose, in the suppression order (least important first), the first variable whose
   blanking alone makes it safe; if none does, the first non-missing variable in the order.
4. Spare what need not be blanked: unsafe combinations that would blank the same variable and
   agree on every other quasi-identifier become compatible with each other once some of them
   are blanked. Taking them smallest first, a combination is spared as soon as its own count
   plus the records already blanked in its group reaches k (and it satisfies l already); the
   rest of the group is spared too (their counts are at least as large). This is what a
   record-by-record greedy pass does, done for all groups at once.
5. Blank the chosen values, merge combinations that became equal, and go again.

With ``Criteria.missing_weight = 0`` a blanked record no longer counts for others, so blanking
can lower another record's count: nothing is spared on the strength of others' blanks, every
round re-measures, and the rounds are capped (``max_rounds``); the verification below decides.
With a person ``unit`` nothing is spared on the strength of others' blanks either: a blanked
row may belong to a person the class already counts.

Each round blanks at least one value or ends, so the loop ends. The result is re-measured
from the released columns; a record that cannot be made safe (all its quasi-identifiers
blank and still too few compatible records) or a suppression share above the policy's limit
refuses the release with the best result reached attached.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from lsssdc.disclosure.risk import (
    UNIT,
    ComboRisk,
    Combos,
    Criteria,
    RiskReport,
    SensitivePairs,
    _dense_ids,
    _radix,
    compatible,
    measure,
    patterns,
    refuse,
    risk_from,
    sensitive_pairs,
)
from lsssdc.errors import PolicyError, Problem


@dataclass
class SuppressionReport:
    """What local suppression did (no row is ever dropped: ``rows_dropped`` is always 0)."""

    rows: int
    quasi_identifiers: tuple[str, ...]
    order: tuple[str, ...]
    criteria: Criteria
    rounds: int
    suppressed_values: dict[str, int]
    records_suppressed: int
    rows_dropped: int
    before: RiskReport
    after: RiskReport
    problems: list[Problem] = field(default_factory=list)
    unit: str | None = None

    @property
    def suppressed_share(self) -> dict[str, float]:
        return {q: (v / self.rows if self.rows else 0.0) for q, v in self.suppressed_values.items()}

    @property
    def records_suppressed_share(self) -> float:
        return self.records_suppressed / self.rows if self.rows else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": "local suppression (greedy rounds, suppression order least important first)",
            "rows": self.rows,
            "rows_dropped": self.rows_dropped,
            "unit": self.unit or "record",
            "quasi_identifiers": list(self.quasi_identifiers),
            "suppression_order": list(self.order),
            "criteria": self.criteria.to_dict(),
            "rounds": self.rounds,
            "suppressed_values": dict(self.suppressed_values),
            "suppressed_share": {k: round(v, 6) for k, v in self.suppressed_share.items()},
            "records_suppressed": self.records_suppressed,
            "records_suppressed_share": round(self.records_suppressed_share, 6),
            "before": self.before.to_dict(),
            "after": self.after.to_dict(),
            "satisfied": not self.problems,
            "problems": [p.to_dict() for p in self.problems],
        }


def _check_order(qis: tuple[str, ...], order: Sequence[str] | None) -> tuple[str, ...]:
    if order is None:
        return qis
    order = tuple(order)
    if sorted(order) != sorted(qis):
        raise PolicyError(
            Problem(
                "bad_suppression_order",
                "the suppression order must list every quasi-identifier exactly once",
                hint=f"quasi-identifiers: {', '.join(qis)}",
            )
        )
    return order


def _risk_of(
    query: np.ndarray,
    codes: np.ndarray,
    counts: np.ndarray,
    cards: Sequence[int],
    pairs: dict[str, SensitivePairs],
    missing_weight: int,
) -> ComboRisk:
    res = compatible(query, codes, counts, cards, list(pairs.values()), missing_weight)
    return risk_from(res, list(pairs), len(query))


def merge_combinations(
    codes: np.ndarray, counts: np.ndarray, cards: Sequence[int], pairs: dict[str, SensitivePairs]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, SensitivePairs]]:
    """Merge combinations that became equal; returns the old -> new index too."""
    m = codes.shape[1]
    key, space = _radix([codes[:, i] for i in range(m)], [c + 1 for c in cards], offset=1)
    new_id, _, _ = _dense_ids(key, space)
    nd = int(new_id.max()) + 1 if len(new_id) else 0
    new_counts = np.bincount(new_id, weights=counts, minlength=nd).astype(np.int64)
    new_codes = np.empty((nd, m), dtype=codes.dtype)
    new_codes[new_id] = codes
    new_pairs = {}
    for name, sp in pairs.items():
        ns = sp.n_values
        pk = new_id[sp.combo] * ns + sp.value
        ids, uniq, _ = _dense_ids(pk, nd * ns)
        cnt = np.bincount(ids, weights=sp.count, minlength=len(uniq)).astype(np.int64)
        new_pairs[name] = SensitivePairs(uniq // ns, uniq % ns, cnt, ns)
    return new_codes, new_counts, new_id, new_pairs


def _choose(
    unsafe_idx: np.ndarray,
    codes: np.ndarray,
    counts: np.ndarray,
    cards: Sequence[int],
    pairs: dict[str, SensitivePairs],
    criteria: Criteria,
    order_pos: np.ndarray,
) -> np.ndarray:
    """The variable to blank for each unsafe combination (-1: nothing left to blank)."""
    m = codes.shape[1]
    u_codes = codes[unsafe_idx]
    # candidates in suppression order: column order_pos[j] is the j-th to suppress
    cand_owner = np.repeat(np.arange(len(unsafe_idx)), m)
    cand_var = np.tile(order_pos, len(unsafe_idx))
    valid = u_codes[cand_owner, cand_var] >= 0
    cand_owner, cand_var = cand_owner[valid], cand_var[valid]
    queries = u_codes[cand_owner].copy()
    queries[np.arange(len(cand_var)), cand_var] = -1
    ok = ~_risk_of(queries, codes, counts, cards, pairs, criteria.missing_weight).unsafe(criteria)
    chosen = np.full(len(unsafe_idx), -1, dtype=np.int64)
    if len(cand_owner) == 0:
        return chosen
    # first candidate per owner (the order is already the suppression order within an owner)
    first = np.ones(len(cand_owner), bool)
    first[1:] = cand_owner[1:] != cand_owner[:-1]
    chosen[cand_owner[first]] = cand_var[first]
    # the first candidate that makes it safe, where there is one (later rows overwrite earlier:
    # walk the ok candidates backwards so the earliest wins)
    ok_owner, ok_var = cand_owner[ok][::-1], cand_var[ok][::-1]
    chosen[ok_owner] = ok_var
    return chosen


def _spare(
    unsafe_idx: np.ndarray,
    chosen: np.ndarray,
    codes: np.ndarray,
    counts: np.ndarray,
    cards: Sequence[int],
    f: np.ndarray,
    l_bad: np.ndarray,
    k: int,
    gain: int,
) -> np.ndarray:
    """Which of the unsafe combinations to blank this round (the rest are spared)."""
    m = codes.shape[1]
    masked = codes[unsafe_idx].copy()
    masked[np.arange(len(unsafe_idx)), chosen] = -1
    pat = patterns(codes[unsafe_idx])
    bases = [c + 1 for c in cards] + [int(pat.max()) + 1, m]
    key, space = _radix([masked[:, i] + 1 for i in range(m)] + [pat, chosen], bases)
    group, _, _ = _dense_ids(key, space)
    size = counts[unsafe_idx]
    fu = f[unsafe_idx]
    lb = l_bad[unsafe_idx]
    order = np.lexsort((unsafe_idx, fu, ~lb, group))  # group, l-failing first, then smallest f
    g = group[order]
    s = size[order]
    start = np.ones(len(g), bool)
    start[1:] = g[1:] != g[:-1]
    cum = np.cumsum(s) - s  # records before this one, as if all earlier were blanked
    cum -= np.maximum.accumulate(np.where(start, cum, 0))
    cond = ~lb[order] & (fu[order] + gain * cum >= k)
    csum = np.cumsum(cond)
    csum_start = np.maximum.accumulate(np.where(start, csum - cond, 0))
    spared_sorted = (csum - csum_start) > 0
    blank = np.empty(len(g), bool)
    blank[order] = ~spared_sorted
    return blank


class _Combinations(NamedTuple):
    """The distinct combinations being worked on: their codes, record counts, the number of
    codes of each quasi-identifier and the sensitive (and person) values within each."""

    codes: np.ndarray
    counts: np.ndarray
    cards: Sequence[int]
    pairs: dict[str, SensitivePairs]


class _Rounds(NamedTuple):
    """Where the rounds ended: the final combinations, each original combination's index among
    them, the number of rounds and whether some unsafe combination had nothing left to blank."""

    codes: np.ndarray
    to_current: np.ndarray
    rounds: int
    stuck: bool


class _Blanked(NamedTuple):
    """The released frame and what was blanked in it."""

    out: pd.DataFrame
    suppressed_values: dict[str, int]
    records_suppressed: int


def _start(df: pd.DataFrame, combos0: Combos, criteria: Criteria, unit: str | None) -> _Combinations:
    """Copies of the measured combinations, so the rounds never change the ``before`` report."""
    codes = combos0.codes.copy()
    counts = combos0.counts.copy()
    cards = combos0.cards
    pairs = {s: sensitive_pairs(combos0.of_row, len(counts), df[s]) for s in criteria.sensitive}
    if unit:
        pairs[UNIT] = sensitive_pairs(combos0.of_row, len(counts), df[unit])
    return _Combinations(codes, counts, cards, pairs)


def _run_rounds(
    start: _Combinations, criteria: Criteria, order_pos: np.ndarray, gain: int, limit: int
) -> _Rounds:
    """Blank values round by round (see the module docstring) until nothing is unsafe, nothing
    can be blanked, or ``limit`` rounds were made."""
    codes, counts, cards, pairs = start
    to_current = np.arange(len(counts), dtype=np.int64)
    rounds = 0
    stuck = False
    while rounds < limit and len(counts):
        risk = _risk_of(codes, codes, counts, cards, pairs, criteria.missing_weight)
        unsafe = risk.unsafe(criteria)
        if not unsafe.any():
            break
        rounds += 1
        unsafe_idx = np.flatnonzero(unsafe)
        chosen = _choose(unsafe_idx, codes, counts, cards, pairs, criteria, order_pos)
        movable = chosen >= 0
        if not movable.any():
            stuck = True
            break
        unsafe_idx, chosen = unsafe_idx[movable], chosen[movable]
        blank = _spare(
            unsafe_idx,
            chosen,
            codes,
            counts,
            cards,
            risk.f,
            criteria.unsafe(risk, sensitive_only=True),
            criteria.k,
            gain,
        )
        codes = codes.copy()
        codes[unsafe_idx[blank], chosen[blank]] = -1
        codes, counts, new_id, pairs = merge_combinations(codes, counts, cards, pairs)
        to_current = new_id[to_current]
    return _Rounds(codes, to_current, rounds, stuck)


def _blank(df: pd.DataFrame, qis: tuple[str, ...], combos0: Combos, final: np.ndarray) -> _Blanked:
    """Carry the blanks from the combinations back to the rows (one mask per column), counting
    the values and records suppressed."""
    out = df.copy()
    suppressed_values: dict[str, int] = {}
    touched = np.zeros(len(combos0.counts), bool)
    of_row = combos0.of_row
    for i, q in enumerate(qis):
        newly = (final[:, i] < 0) & (combos0.codes[:, i] >= 0)
        touched |= newly
        suppressed_values[q] = int(combos0.counts[newly].sum())
        if newly.any():
            col = out[q]
            if isinstance(col.dtype, np.dtype) and col.dtype.kind in "iub":
                col = col.astype("boolean" if col.dtype.kind == "b" else "Int64")
            out[q] = col.mask(newly[of_row])
    records_suppressed = int(combos0.counts[touched].sum())
    return _Blanked(out, suppressed_values, records_suppressed)


def _problems_after(
    after: RiskReport, stuck: bool, records_suppressed: int, n: int, criteria: Criteria
) -> list[Problem]:
    """Why the result cannot be released: the re-measured criteria, and a suppression share
    above the policy's limit."""
    problems = after.problems()
    if stuck and not problems:  # cannot happen: a stuck record is unsafe in ``after`` as well
        problems = [Problem("suppression_failed", "local suppression could not reach the criteria")]
    if n and records_suppressed / n > criteria.max_suppressed_share:
        problems.append(
            Problem(
                "max_suppression",
                f"{records_suppressed} records ({records_suppressed / n:.2%}) need suppressed values, more than "
                f"the allowed {criteria.max_suppressed_share:.2%}",
                row_count=records_suppressed,
                hint="coarsen the quasi-identifiers further (e.g. wider age bands, län instead of kommun)",
            )
        )
    return problems


def suppress_locally(
    df: pd.DataFrame,
    quasi_identifiers: Sequence[str],
    criteria: Criteria,
    *,
    order: Sequence[str] | None = None,
    max_rounds: int | None = None,
    unit: str | None = None,
) -> tuple[pd.DataFrame, SuppressionReport]:
    """Blank quasi-identifier values until ``criteria`` hold; refuse when that cannot be done.

    ``order`` lists the quasi-identifiers from least to most important (the first is blanked
    first); default: the order of ``quasi_identifiers``. The share of records with at least
    one blanked value must not exceed ``criteria.max_suppressed_share``. Returns a new frame
    (same rows, same index; integer columns become nullable) and the report. ``unit`` names
    the person column when a person has several rows (classes then count distinct persons).
    """
    qis = tuple(quasi_identifiers)
    order_names = _check_order(qis, order)
    order_pos = np.array([qis.index(q) for q in order_names], dtype=np.int64)
    before = measure(df, qis, criteria, unit=unit)
    combos0: Combos = before.combos
    start = _start(df, combos0, criteria, unit)
    # blanked rows raise other rows' counts only with missing_weight 1, and by their number of
    # rows only when rows are the unit (with persons, the gain is not known in advance)
    gain = criteria.missing_weight if unit is None else 0
    m = len(qis)
    limit = max_rounds if max_rounds is not None else 4 * m + 10
    done = _run_rounds(start, criteria, order_pos, gain, limit)

    final = done.codes[done.to_current]  # (D0, m) final codes of each original combination
    blanked = _blank(df, qis, combos0, final)
    after = measure(blanked.out, qis, criteria, unit=unit)
    n = len(df)
    problems = _problems_after(after, done.stuck, blanked.records_suppressed, n, criteria)
    report = SuppressionReport(
        rows=n,
        quasi_identifiers=qis,
        order=order_names,
        criteria=criteria,
        rounds=done.rounds,
        suppressed_values=blanked.suppressed_values,
        records_suppressed=blanked.records_suppressed,
        rows_dropped=0,
        before=before,
        after=after,
        problems=problems,
        unit=unit,
    )
    if problems:
        raise refuse(problems, report)
    return blanked.out, report
