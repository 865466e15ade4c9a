"""Re-identification risk of microdata: equivalence classes, k-anonymity, l-diversity.

Definition used throughout (the one sdcMicro uses for its frequency counts, ``alpha = 1``):

    A missing value in a quasi-identifier (suppressed, or unknown) can stand for any value.
    Two records are *compatible* when they agree on every quasi-identifier where both have a
    value. A record's class size ``f`` is the number of records compatible with it,
    itself included. The data are k-anonymous when every record has ``f >= k``.

With no missing values this is the ordinary equivalence class. Compatibility is not
transitive, so "classes" with missing values overlap; every figure below is per record.

- ``l_distinct``: the number of distinct values of a sensitive attribute among the records
  compatible with a record (the conservative reading: an intruder who matched the record cannot
  rule out any of them). ``l_entropy``: ``exp(H)`` of the sensitive values' distribution over
  the same records. A missing sensitive value counts as a value of its own ("not given").
- Per-record risk is ``1 / f`` (the data are the whole population, as a register extract is).
  With sampling weights ``w`` the model risk of Benedetti and Franconi (as in sdcMicro's
  ``indivRisk``) is used instead: with ``F`` the summed weight of the compatible records and
  ``p = f / F``, the risk is ``E[1/F | f]`` under a negative binomial model, which is
  ``(p / f) * 2F1(1, 1; f + 1; 1 - p)``; computed exactly for ``f <= 20`` and by the standard
  approximation ``p / (f - (1 - p))`` above that (relative difference below 1e-4 there).
- Expected re-identifications: the sum of the per-record risks. Sample uniques: ``f == 1``.
- Persons, not rows (``unit=``, e.g. the pseudonym column): when one person has several rows
  (years, two kommuner), ``f`` counts the distinct persons among the compatible rows, so a
  person's own other rows never make up a class. Also monotone under blanking.
- Stricter option (``Criteria.missing_weight = 0``, sdcMicro's ``alpha = 0``): a record that
  matches only because it is missing a value the record has is not counted. Under the default
  one blanked value adds to the count of every record it could be; with 0 it widens only its
  own record's class.

Speed: the quasi-identifiers are factorised to integer codes and combined into one int64 key;
records are collapsed to their distinct combinations (with counts) by a bincount or a hash
factorisation, and everything after that works on the combinations, never on pairs of
records. Missing values are handled by grouping the combinations by missingness pattern: a
combination with pattern S matches, for every pattern T, the combinations that agree on the
quasi-identifiers outside S and T, found by one key lookup per pair of patterns.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import hyp2f1

from lsssdc.disclosure.criteria import Criteria, DistinctL, EntropyL
from lsssdc.errors import DisclosureRefused, InputDataError, Problem

DEFINITION = (
    "class size f = number of records compatible with the record, itself included; two records are "
    "compatible when they agree on every quasi-identifier where both have a value (a missing value "
    "stands for any value). l = distinct sensitive values among the compatible records; entropy l = "
    "exp(entropy) of their distribution. Per-record risk 1/f. With missing_weight 0, a record that "
    "is missing a value the record has is not counted."
)

_DENSE_SMALL = 1 << 16  # key spaces up to this are always counted with a dense bincount
_DENSE_MAX = 1 << 25  # ... and up to this when there are at least a quarter as many keys
_I64_LIMIT = 1 << 62


# --------------------------------------------------------------------------------------------
# encoding


def column_codes(column: pd.Series) -> tuple[np.ndarray, int]:
    """Integer codes 0..card-1 of a column (-1 where missing; any signed int dtype) and their number."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return column.cat.codes.to_numpy(), len(column.cat.categories)
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    return codes, len(uniques)


def _check_columns(df: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputDataError(
            [
                Problem("missing_column", "column needed for the risk measure is not in the data", column=c)
                for c in missing
            ]
        )


@dataclass(frozen=True)
class Combos:
    """Records collapsed to their distinct quasi-identifier combinations."""

    of_row: np.ndarray  # (n,) combination index of each record
    codes: np.ndarray  # (D, m) codes, -1 = missing
    counts: np.ndarray  # (D,) records per combination
    cards: tuple[int, ...]


def _radix(cols: list[np.ndarray], bases: list[int], offset: int = 0) -> tuple[np.ndarray, int]:
    """Combine code columns (each ``+ offset`` non-negative) into one int64 key.

    Works in place on one int64 array (no per-column temporaries); re-densifies the key with a
    hash factorisation before the key space would overflow.
    """
    n = len(cols[0]) if cols else 0
    key = np.zeros(n, dtype=np.int64)
    space = 1
    for c, b in zip(cols, bases, strict=True):
        b = max(int(b), 1)
        if space * b >= _I64_LIMIT:
            dense, uniq = pd.factorize(key)
            key = dense.astype(np.int64)
            space = max(len(uniq), 1)
        if space > 1:
            key *= b
        key += c
        if offset:
            key += offset
        space *= b
    return key, space


def _dense(space: int, n: int) -> bool:
    """Count keys with a dense array (O(space) memory and time) rather than by sorting?"""
    return space <= _DENSE_SMALL or (space <= 4 * n and space <= _DENSE_MAX)


def _dense_ids(key: np.ndarray, space: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dense ids (ordered by key) of ``key``, the distinct keys and how often each occurs."""
    if _dense(space, len(key)):
        counts = np.bincount(key, minlength=space)
        present = np.flatnonzero(counts)
        lut = np.full(space, -1, dtype=np.int64)
        lut[present] = np.arange(len(present))
        return lut[key], present.astype(np.int64), counts[present].astype(np.int64)
    uniq, inv, counts = np.unique(key, return_inverse=True, return_counts=True)
    return inv.astype(np.int64).reshape(-1), uniq, counts.astype(np.int64)


def _count_keys(key: np.ndarray, space: int) -> tuple[np.ndarray, np.ndarray]:
    """The distinct keys (sorted) and how often each occurs, without per-row ids."""
    if _dense(space, len(key)):
        counts = np.bincount(key, minlength=space)
        present = np.flatnonzero(counts)
        return present.astype(np.int64), counts[present].astype(np.int64)
    uniq, counts = np.unique(key, return_counts=True)
    return uniq, counts.astype(np.int64)


def collapse_codes(cols: list[np.ndarray], cards: Sequence[int]) -> Combos:
    """Collapse records given as per-column codes (-1 = missing) to distinct combinations."""
    n = len(cols[0]) if cols else 0
    m = len(cols)
    if m == 0:
        return Combos(
            np.zeros(n, np.int64),
            np.zeros((1 if n else 0, 0), np.int32),
            np.array([n] if n else [], np.int64),
            (),
        )
    bases = [int(c) + 1 for c in cards]
    key, space = _radix(cols, bases, offset=1)
    of_row, uniq, counts = _dense_ids(key, space)
    codes = np.empty((len(uniq), m), dtype=np.int32)
    if math.prod(bases) < _I64_LIMIT:
        rest = uniq.copy()
        for i in range(m - 1, -1, -1):
            codes[:, i] = (rest % bases[i]) - 1
            rest //= bases[i]
    else:  # the key was re-densified: read the codes off one representative row per combination
        rep = np.empty(len(uniq), dtype=np.int64)
        rep[of_row] = np.arange(n)
        for i in range(m):
            codes[:, i] = cols[i][rep]
    return Combos(of_row, codes, counts, tuple(int(c) for c in cards))


def collapse(df: pd.DataFrame, quasi_identifiers: Sequence[str]) -> Combos:
    """Collapse ``df`` to its distinct combinations of ``quasi_identifiers``."""
    cols, cards = [], []
    for q in quasi_identifiers:
        c, card = column_codes(df[q])
        cols.append(c)
        cards.append(card)
    return collapse_codes(cols, cards)


@dataclass(frozen=True)
class SensitivePairs:
    """Distinct (combination, sensitive value) pairs with their record counts, sorted by combination."""

    combo: np.ndarray
    value: np.ndarray
    count: np.ndarray
    n_values: int


def sensitive_pairs(of_row: np.ndarray, n_combos: int, column: pd.Series) -> SensitivePairs:
    """Pairs for one sensitive attribute; a missing sensitive value is a value of its own."""
    s, card = column_codes(column)
    ns = card + 1
    key = of_row * ns
    key += s
    if (s < 0).any():
        key[s < 0] += ns  # missing -> code ``card``
    uniq, cnt = _count_keys(key, n_combos * ns)
    return SensitivePairs(uniq // ns, uniq % ns, cnt, ns)


# --------------------------------------------------------------------------------------------
# the compatibility engine


def patterns(codes: np.ndarray) -> np.ndarray:
    """Missingness pattern of each row as a bit mask (bit i set: column i missing)."""
    m = codes.shape[1]
    if m == 0:
        return np.zeros(codes.shape[0], np.int64)
    bits = np.left_shift(np.int64(1), np.arange(m, dtype=np.int64))
    return (codes < 0).astype(np.int64) @ bits


def _expand(starts: np.ndarray, lens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(owner, position) of every element of the ranges ``[starts[i], starts[i] + lens[i])``."""
    total = int(lens.sum())
    owner = np.repeat(np.arange(len(lens), dtype=np.int64), lens)
    offs = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(lens) - lens, lens)
    return owner, np.repeat(starts.astype(np.int64), lens) + offs


def _join_keys(
    q: np.ndarray, d: np.ndarray, cols: list[int], cards: Sequence[int]
) -> tuple[np.ndarray, np.ndarray, int]:
    """Keys over ``cols`` for query and data rows in one key space."""
    if not cols:
        return np.zeros(len(q), np.int64), np.zeros(len(d), np.int64), 1
    both = np.concatenate([q[:, cols], d[:, cols]]).astype(np.int64)
    key, space = _radix([both[:, j] for j in range(len(cols))], [cards[c] for c in cols])
    return key[: len(q)], key[len(q) :], space


@dataclass
class Compatible:
    """Per query row: summed weights of the compatible data rows, and sensitive distributions."""

    weight: np.ndarray  # (Q, p)
    #: per sensitive attribute: (query index, value, count) aggregated over compatible rows
    sensitive: list[tuple[np.ndarray, np.ndarray, np.ndarray]]


def compatible(
    query: np.ndarray,
    data: np.ndarray,
    weights: np.ndarray,
    cards: Sequence[int],
    pairs: Sequence[SensitivePairs] = (),
    missing_weight: int = 1,
) -> Compatible:
    """For each query combination, total the data combinations compatible with it.

    ``weights`` is (D,) or (D, p). ``pairs`` give the sensitive values of the data
    combinations. With ``missing_weight=0`` a data combination that is missing a value the
    query has is left out (it matches only through a wildcard). Work: one key join per (query
    pattern, data pattern restricted to the query's observed columns), each linear in the
    rows involved.
    """
    w = weights.astype(np.float64)
    w = w.reshape(len(data), w.shape[1] if w.ndim > 1 else 1)
    nq, m = query.shape
    total = np.zeros((nq, w.shape[1]), dtype=np.float64)
    sens_parts: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = [[] for _ in pairs]
    pair_start = []
    pair_len = []
    for sp in pairs:
        lens = np.bincount(sp.combo, minlength=len(data)).astype(np.int64)
        pair_len.append(lens)
        pair_start.append(np.cumsum(lens) - lens)
    if nq == 0 or len(data) == 0:
        return Compatible(total, [_aggregate_sens([], sp.n_values) for sp in pairs])
    full = (1 << m) - 1
    qpat = patterns(query)
    dpat = patterns(data)
    q_order = np.argsort(qpat, kind="stable")
    q_sorted = qpat[q_order]
    q_pats, q_first = np.unique(q_sorted, return_index=True)
    q_bounds = [*q_first.tolist(), nq]
    for a, s_pat in enumerate(q_pats.tolist()):
        qi = q_order[q_bounds[a] : q_bounds[a + 1]]
        observed = full & ~s_pat
        w_of_d = dpat & observed
        d_order = np.argsort(w_of_d, kind="stable")
        d_sorted = w_of_d[d_order]
        d_pats, d_first = np.unique(d_sorted, return_index=True)
        d_bounds = [*d_first.tolist(), len(data)]
        qcodes = query[qi]
        for b, w_pat in enumerate(d_pats.tolist()):
            if w_pat and not missing_weight:
                continue
            di = d_order[d_bounds[b] : d_bounds[b + 1]]
            cols = [i for i in range(m) if (observed & ~w_pat) >> i & 1]
            qk, dk, space = _join_keys(qcodes, data[di], cols, cards)
            gid_all, gkeys, _ = _dense_ids(np.concatenate([dk, qk]), space)
            dg = gid_all[: len(dk)]
            qg = gid_all[len(dk) :]
            ng = len(gkeys)
            for j in range(w.shape[1]):
                sums = np.bincount(dg, weights=w[di, j], minlength=ng)
                total[qi, j] += sums[qg]
            for t, sp in enumerate(pairs):
                owner, pos = _expand(pair_start[t][di], pair_len[t][di])
                if len(pos) == 0:
                    continue
                g = dg[owner]
                ns = sp.n_values
                gs_ids, gs_keys, _ = _dense_ids(g * ns + sp.value[pos], ng * ns)
                gs_cnt = np.bincount(gs_ids, weights=sp.count[pos], minlength=len(gs_keys))
                gs_g = gs_keys // ns
                g_len = np.bincount(gs_g, minlength=ng).astype(np.int64)
                g_start = np.cumsum(g_len) - g_len
                q_owner, q_pos = _expand(g_start[qg], g_len[qg])
                if len(q_pos):
                    sens_parts[t].append((qi[q_owner], gs_keys[q_pos] % ns, gs_cnt[q_pos]))
    return Compatible(
        total, [_aggregate_sens(parts, sp.n_values) for parts, sp in zip(sens_parts, pairs, strict=True)]
    )


def _aggregate_sens(
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]], ns: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64)
    q = np.concatenate([p[0] for p in parts]).astype(np.int64)
    v = np.concatenate([p[1] for p in parts]).astype(np.int64)
    c = np.concatenate([p[2] for p in parts]).astype(np.float64)
    ids, keys, _ = _dense_ids(q * ns + v, (int(q.max()) + 1) * ns)
    cnt = np.bincount(ids, weights=c, minlength=len(keys))
    return keys // ns, keys % ns, cnt


def diversity(sens: tuple[np.ndarray, np.ndarray, np.ndarray], nq: int) -> tuple[np.ndarray, np.ndarray]:
    """Per query: distinct sensitive values and entropy (natural log) of their distribution."""
    q, _, cnt = sens
    keep = cnt > 0
    q, cnt = q[keep], cnt[keep]
    distinct = np.bincount(q, minlength=nq).astype(np.int64)
    tot = np.bincount(q, weights=cnt, minlength=nq)
    clog = np.bincount(q, weights=cnt * np.log(cnt), minlength=nq)
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = np.where(tot > 0, np.log(np.where(tot > 0, tot, 1.0)) - clog / np.where(tot > 0, tot, 1.0), 0.0)
    return distinct, np.maximum(ent, 0.0)


def model_risk(f: np.ndarray, big_f: np.ndarray) -> np.ndarray:
    """Benedetti-Franconi risk E[1/F | f] for class size ``f`` and summed weight ``big_f``."""
    f = np.asarray(f, dtype=np.float64)
    p = np.clip(f / np.maximum(np.asarray(big_f, dtype=np.float64), f), 1e-300, 1.0)
    out = p / (f - (1.0 - p))
    small = f <= 20
    if small.any():
        fs, ps = f[small], p[small]
        out[small] = ps / fs * hyp2f1(1.0, 1.0, fs + 1.0, 1.0 - ps)
    return out


# --------------------------------------------------------------------------------------------
# the report


@dataclass
class ComboRisk:
    """Risk figures per combination (what the treatments iterate on)."""

    f: np.ndarray  # (D,) compatible records
    distinct: dict[str, np.ndarray]
    entropy: dict[str, np.ndarray]

    def unsafe(self, criteria: Criteria) -> np.ndarray:
        return criteria.unsafe(self)


#: Name under which the unit's (person's) values travel with the sensitive attributes.
UNIT = "\x00unit"


def risk_from(res: Compatible, names: Sequence[str], n_queries: int) -> ComboRisk:
    """Per-query risk figures from :func:`compatible`; with a unit, f counts distinct units."""
    f = np.rint(res.weight[:, 0]).astype(np.int64)
    distinct, entropy = {}, {}
    for name, sens in zip(names, res.sensitive, strict=True):
        d, e = diversity(sens, n_queries)
        if name == UNIT:
            f = d
        else:
            distinct[name], entropy[name] = d, e
    return ComboRisk(f, distinct, entropy)


def combo_risk(combos: Combos, pairs: dict[str, SensitivePairs], missing_weight: int = 1) -> ComboRisk:
    """Compatible counts and diversity for every combination of ``combos``."""
    res = compatible(
        combos.codes, combos.codes, combos.counts, combos.cards, list(pairs.values()), missing_weight
    )
    return risk_from(res, list(pairs), len(combos.counts))


@dataclass
class RiskReport:
    """Risk of one candidate release.

    Per-record figures (:attr:`class_size`, :attr:`risk`, :meth:`distinct_per_record`,
    :meth:`entropy_l_per_record`) are computed on demand from the per-combination figures and
    are kept out of :meth:`to_dict`.
    """

    rows: int
    quasi_identifiers: tuple[str, ...]
    sensitive: tuple[str, ...]
    criteria: Criteria | None
    k: int
    combinations: int
    complete_classes: int
    sample_uniques: int
    records_below_k: int | None
    expected_reidentifications: float
    max_risk: float
    mean_risk: float
    risk_method: str
    l_distinct: dict[str, int]
    l_entropy: dict[str, float]
    records_below_l: dict[str, int]
    records_below_entropy_l: dict[str, int]
    missing: dict[str, int]
    records_with_missing: int
    missing_weight: int
    unit: str | None
    combos: Combos = field(repr=False)
    per_combo: ComboRisk = field(repr=False)
    risk_per_combo: np.ndarray = field(repr=False)

    @property
    def class_size(self) -> np.ndarray:
        """Per record: the number of records compatible with it (itself included)."""
        return self.per_combo.f[self.combos.of_row]

    @property
    def risk(self) -> np.ndarray:
        """Per record: the re-identification risk."""
        return self.risk_per_combo[self.combos.of_row]

    def distinct_per_record(self, attribute: str) -> np.ndarray:
        return self.per_combo.distinct[attribute][self.combos.of_row]

    def entropy_l_per_record(self, attribute: str) -> np.ndarray:
        return np.exp(self.per_combo.entropy[attribute])[self.combos.of_row]

    def unsafe(self, criteria: Criteria | None = None) -> np.ndarray:
        """Per record: does it break ``criteria`` (default: the criteria measured against)?"""
        c = criteria or self.criteria
        if c is None:
            return np.zeros(self.rows, bool)
        return self.per_combo.unsafe(c)[self.combos.of_row]

    def problems(self) -> list[Problem]:
        """One problem per rule that fails (empty when the criteria hold): every rule of the
        criteria's registry, on the sensitive attributes measured."""
        c = self.criteria
        if c is None:
            return []
        counts = self.combos.counts
        out: list[Problem] = []
        for rule in c.rules([s for s in c.sensitive if s in self.sensitive]):
            records = int(counts[rule.failing(self.per_combo)].sum())
            if records:
                out.append(rule.problem(records, self))
        return out

    @property
    def satisfied(self) -> bool:
        return not self.problems()

    def to_dict(self) -> dict[str, Any]:
        return {
            "definition": DEFINITION,
            "missing_weight": self.missing_weight,
            "unit": self.unit or "record",
            "rows": self.rows,
            "quasi_identifiers": list(self.quasi_identifiers),
            "sensitive": list(self.sensitive),
            "criteria": None if self.criteria is None else self.criteria.to_dict(),
            "k": self.k,
            "combinations": self.combinations,
            "complete_classes": self.complete_classes,
            "sample_uniques": self.sample_uniques,
            "records_below_k": self.records_below_k,
            "expected_reidentifications": round(self.expected_reidentifications, 6),
            "max_risk": round(self.max_risk, 6),
            "mean_risk": round(self.mean_risk, 6),
            "risk_method": self.risk_method,
            "l_distinct": dict(self.l_distinct),
            "l_entropy": {k: round(v, 6) for k, v in self.l_entropy.items()},
            "records_below_l": dict(self.records_below_l),
            "records_below_entropy_l": dict(self.records_below_entropy_l),
            "missing": dict(self.missing),
            "records_with_missing": self.records_with_missing,
            "satisfied": self.satisfied,
            "problems": [p.to_dict() for p in self.problems()],
        }


def _weights_column(df: pd.DataFrame, name: str) -> np.ndarray:
    w = pd.to_numeric(df[name], errors="coerce").astype("float64").to_numpy()
    bad = np.isnan(w) | (w < 1)
    if bad.any():
        raise InputDataError(
            Problem(
                "bad_weights",
                "sampling weights must be numbers of at least 1",
                column=name,
                rows=tuple(int(r) for r in np.flatnonzero(bad)[:10]),
                row_count=int(bad.sum()),
            )
        )
    return w


def measure(
    df: pd.DataFrame,
    quasi_identifiers: Sequence[str],
    criteria: Criteria | None = None,
    *,
    sensitive: Sequence[str] | None = None,
    weights: str | None = None,
    missing_weight: int = 1,
    unit: str | None = None,
) -> RiskReport:
    """Measure k, l, uniques and per-record risk of ``df`` on ``quasi_identifiers``.

    ``sensitive`` defaults to ``criteria.sensitive`` and ``missing_weight`` to
    ``criteria.missing_weight``. ``weights`` names a column of sampling weights (then the
    model risk replaces 1/f); leave it out for a register extract. ``unit`` names a column
    that identifies the person (e.g. the pseudonym) when a person can have several rows: class
    sizes then count the distinct persons among the compatible rows, not the rows.
    """
    qis = tuple(quasi_identifiers)
    sens = tuple(sensitive if sensitive is not None else (criteria.sensitive if criteria else ()))
    _check_columns(df, [*qis, *sens, *([weights] if weights else []), *([unit] if unit else [])])
    if weights and unit:
        raise ValueError("sampling weights and a person unit cannot be combined")
    n = len(df)
    combos = collapse(df, qis)
    pairs = {s: sensitive_pairs(combos.of_row, len(combos.counts), df[s]) for s in sens}
    if unit:
        pairs[UNIT] = sensitive_pairs(combos.of_row, len(combos.counts), df[unit])
    wcols: list[np.ndarray] = [combos.counts.astype(np.float64)]
    if weights:
        w = _weights_column(df, weights)
        wcols.append(np.bincount(combos.of_row, weights=w, minlength=len(combos.counts)))
    mw = criteria.missing_weight if criteria is not None else missing_weight
    res = compatible(
        combos.codes, combos.codes, np.stack(wcols, axis=1), combos.cards, list(pairs.values()), mw
    )
    d = len(combos.counts)
    per_combo = risk_from(res, list(pairs), d)
    f, distinct, entropy = per_combo.f, per_combo.distinct, per_combo.entropy
    if weights:
        risk = model_risk(f, res.weight[:, 1])
        method = "benedetti-franconi (sampling weights)"
    else:
        risk = 1.0 / np.maximum(f, 1)
        method = "1/f (population)"
    cnt = combos.counts
    pats = patterns(combos.codes)
    below_l: dict[str, int] = {}
    below_el: dict[str, int] = {}
    for rule in criteria.rules(sens) if criteria is not None else ():
        if isinstance(rule, DistinctL | EntropyL):
            below = below_l if isinstance(rule, DistinctL) else below_el
            below[rule.attribute] = int(cnt[rule.failing(per_combo)].sum())
    return RiskReport(
        rows=n,
        quasi_identifiers=qis,
        sensitive=sens,
        criteria=criteria,
        k=int(f.min()) if d else 0,
        combinations=int(d),
        complete_classes=int((pats == 0).sum()),
        sample_uniques=int(cnt[f == 1].sum()),
        records_below_k=int(cnt[f < criteria.k].sum()) if criteria else None,
        expected_reidentifications=float((risk * cnt).sum()),
        max_risk=float(risk.max()) if d else 0.0,
        mean_risk=float((risk * cnt).sum() / n) if n else 0.0,
        risk_method=method,
        l_distinct={s: int(v.min()) if d else 0 for s, v in distinct.items()},
        l_entropy={s: float(np.exp(v.min())) if d else 0.0 for s, v in entropy.items()},
        records_below_l=below_l,
        records_below_entropy_l=below_el,
        missing={q: int(cnt[((pats >> i) & 1) == 1].sum()) for i, q in enumerate(qis)},
        records_with_missing=int(cnt[pats != 0].sum()),
        missing_weight=mw,
        unit=unit,
        combos=combos,
        per_combo=per_combo,
        risk_per_combo=risk,
    )


def refuse(problems: list[Problem], report: Any) -> DisclosureRefused:
    """A :class:`DisclosureRefused` carrying the best result reached as ``exc.report``."""
    exc = DisclosureRefused(problems)
    exc.report = report  # type: ignore[attr-defined]
    return exc
