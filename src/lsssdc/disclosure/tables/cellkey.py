"""The cell key method: noise on frequency tables, the same for the same persons everywhere.

A second protection for count tables next to cell suppression, the method of the EU 2021
census (the sdcTools R packages ``ptable`` and ``cellKey`` are the reference; nothing here is
taken from their code). Every person gets a secret 32-bit *record key*, the same in every year,
table and order. A cell's key is the sum modulo 2**32 of the record keys of what it counts, so a
cell of the same persons has the same key in every table that shows it. The noise of a cell is
looked up in a *perturbation table* (ptable) by the cell's true count and its key: the same
cell gets the same noise in every release, so publishing it again, in another order, or next to
a table of other dimensions gives an attacker nothing to average away. That is the point of the
method, and what :func:`audit` checks against an attacker who holds every release.

* :func:`record_keys`: the keys of the register rows (a keyed AES PRF of the personnummer);
* :class:`PTableParams` and :func:`ptable`: per true count ``i`` a maximum-entropy distribution
  of the published count with mean ``i``, variance ``V``, noise at most ``D`` and no published
  value in ``1..js-1``, as intervals of the key space;
* :func:`perturb`: the published values of one count table and what the noise costs;
* :func:`audit`: how far an attacker who holds every release and every relation can narrow
  each small cell (linear programmes over the feasible true values).

Margins are perturbed on their own key, not recomputed from their perturbed cells: a published
table does not add up (a reader cannot difference a margin against its cells to undo the
noise). Zero cells stay zero, so a published positive count shows that a cell is not empty;
the audit counts that against the frequency rule's lower protection (see :func:`audit`).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from scipy.optimize import linprog
from scipy.sparse.csgraph import connected_components

from lsssdc.disclosure.tables.model import DISJOINT, SUM, UNION, Table
from lsssdc.disclosure.tables.rules import FrequencyRule
from lsssdc.errors import InputDataError, KeyStoreError, PolicyError, Problem
from lsssdc.identity.pseudonym import personnummer_digits

#: The key space: a cell key ``k`` (uint32) stands for the point ``k / 2**32`` of [0, 1).
KEY_SPACE = 1 << 32
#: Key-store label of the secret behind the record keys.
KEY_LABEL = "table-record-keys"
_LABEL = b"CKY1"  # cell key, version 1: keeps these AES blocks apart from other uses of AES
_SUBKEY_INFO = b"lsssdc cell key record keys v1"
#: A row whose variance cannot be reached keeps this share of its reachable range from the end
#: (at the very ends all the mass sits on two values; inside, every value of the support stays
#: possible).
_REACH = 0.95
_TOL = 1e-6


# ---------------------------------------------------------------------------------------------
# record keys


def record_keys(
    personnummer: pd.Series | Sequence[Any], secret: bytes, reference_date: Any = None
) -> np.ndarray:
    """One uint32 key per row: a keyed AES PRF of the normalised personnummer, 32 bits of it.

    The key depends on the person only (same in every year, table and row order), so a cell of
    the same persons gets the same cell key everywhere. Without ``secret`` (32 bytes from the
    key store, label :data:`KEY_LABEL`) the keys cannot be computed, even though the
    personnummer space is small enough to enumerate. An invalid value refuses the whole
    column, naming rows, never values. (:func:`lsssdc.audit.person_index.tags` uses the same
    construction but returns sorted unique tags, not one per row, so the block is built here.)
    """
    if not isinstance(secret, bytes | bytearray) or len(secret) < 16:
        raise KeyStoreError(
            Problem(
                "record_key_secret",
                "the record-key secret must be at least 16 bytes",
                hint=f"take it from the key store: derive_key('{KEY_LABEL}')",
            )
        )
    try:
        digits = personnummer_digits(personnummer, reference_date)
    except InputDataError as err:  # the same problems (rows, never values), this step's hint
        raise InputDataError(
            [replace(p, hint="correct or remove them; no record key was made") for p in err.problems]
        ) from None
    n = len(digits)
    if n == 0:
        return np.zeros(0, np.uint32)
    aes_key = hmac.new(bytes(secret), _SUBKEY_INFO, hashlib.sha256).digest()
    blocks = np.empty((n, 16), dtype=np.uint8)
    blocks[:, :12] = digits
    blocks[:, 12:] = np.frombuffer(_LABEL, dtype=np.uint8)
    enc = Cipher(algorithms.AES(aes_key), modes.ECB()).encryptor()
    out = np.frombuffer(enc.update(blocks.tobytes()) + enc.finalize(), dtype=np.uint8).reshape(n, 16)
    return np.ascontiguousarray(out[:, :4]).view(">u4").ravel().astype(np.uint32)


# ---------------------------------------------------------------------------------------------
# the perturbation table


@dataclass(frozen=True)
class PTableParams:
    """What the noise may be: ``D`` the largest absolute noise, ``V`` its variance, ``js`` the
    smallest positive count that may be published (``1..js-1`` never are; ``js=1`` blocks
    nothing; the ``ptable`` package's ``js`` is this one minus 1), ``max_value`` the largest
    true count with a row of its own (larger counts use its row; at least ``D + js``, from
    where every row is the same shifted, which is also the default).
    """

    D: int
    V: float
    js: int = 1
    max_value: int | None = None

    def __post_init__(self) -> None:
        d, v, js = self.D, self.V, self.js
        if isinstance(d, bool) or not isinstance(d, int | np.integer) or d < 1:
            raise PolicyError(Problem("ptable_d", "the largest noise D must be a whole number of at least 1"))
        if isinstance(v, bool) or not isinstance(v, int | float | np.number) or not np.isfinite(v) or v <= 0:
            raise PolicyError(Problem("ptable_v", "the noise variance V must be a positive number"))
        if v >= d * d:
            raise PolicyError(
                Problem(
                    "ptable_v",
                    f"a variance of {v} cannot be reached with noise of at most {d}",
                    hint=f"the variance must be below D**2 = {d * d} (noise spread to +-D); "
                    f"a bell-shaped noise needs V <= D(D+1)/3 = {d * (d + 1) / 3:.3g}",
                )
            )
        if isinstance(js, bool) or not isinstance(js, int | np.integer) or js < 1:
            raise PolicyError(Problem("ptable_js", "js must be a whole number of at least 1"))
        if js > d:
            raise PolicyError(
                Problem(
                    "ptable_js",
                    f"with js = {js} and D = {d} some count cannot get noise both ways "
                    "(its mean would pin it, or a count of 1 could not keep its mean)",
                    hint=f"choose js <= D = {d}",
                )
            )
        if self.max_value is not None and (
            isinstance(self.max_value, bool)
            or not isinstance(self.max_value, int | np.integer)
            or self.max_value < d + js
        ):
            raise PolicyError(
                Problem(
                    "ptable_max_value",
                    f"max_value must be a whole number of at least D + js = {d + js}",
                    hint="below it the last row's noise could publish a blocked value or lose its mean",
                )
            )

    @property
    def last(self) -> int:
        """The largest true count with its own row."""
        return int(self.max_value) if self.max_value is not None else int(self.D + self.js)

    def to_dict(self) -> dict[str, Any]:
        return {"D": int(self.D), "V": float(self.V), "js": int(self.js), "max_value": self.last}


@dataclass(frozen=True)
class PTable:
    """Per true count ``i`` (row ``i``, the last row for every larger count) the probability of
    each noise ``-D..D`` (column ``k`` is noise ``k - D``) and its share of the key space.

    ``counts[i, k]`` is how many of the 2**32 cell keys give row ``i`` noise ``k - D``; the keys
    are cut in ascending order of the noise, so ``upper[i, k]`` (the cumulative counts) ends the
    interval of noise ``k - D``: a key ``r`` gets the first ``k`` with ``r < upper[i, k]``.
    ``probability`` is the solved distribution, ``counts / 2**32`` what the lookup realises.
    """

    params: PTableParams
    probability: np.ndarray
    counts: np.ndarray
    upper: np.ndarray
    target_variance: np.ndarray
    variance: np.ndarray
    notes: tuple[str, ...] = ()

    @property
    def n_rows(self) -> int:
        return int(self.probability.shape[0])

    @property
    def offsets(self) -> np.ndarray:
        return np.arange(-self.params.D, self.params.D + 1, dtype=np.int64)

    @property
    def realised(self) -> np.ndarray:
        return self.counts.astype(np.float64) / KEY_SPACE

    def noise(self, values: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """The noise of each cell from its true count and its key (vectorised lookup)."""
        v = np.asarray(values, dtype=np.int64)
        row = np.minimum(v, self.n_rows - 1)
        k = np.asarray(keys, dtype=np.uint64)
        index = np.zeros(len(v), np.int64)
        for col in range(self.upper.shape[1]):  # 2D + 1 columns, each vectorised over the cells
            index += self.upper[row, col] <= k
        return self.offsets[index]

    def feasible(self, published: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per published value the smallest and largest true count that can give it, and
        whether every count in between can too (False means the set has holes: the bounds are
        its hull). A published value no count can give has ``lo > hi``."""
        p = np.asarray(published, dtype=np.int64)
        possible = self.counts > 0
        lo = np.full(len(p), np.iinfo(np.int64).max)
        hi = np.full(len(p), -1, np.int64)
        n_ok = np.zeros(len(p), np.int64)
        for k, o in enumerate(self.offsets):
            i = p - o
            ok = i >= 0
            row = np.minimum(np.maximum(i, 0), self.n_rows - 1)
            ok &= possible[row, k]
            lo = np.where(ok, np.minimum(lo, i), lo)
            hi = np.where(ok, np.maximum(hi, i), hi)
            n_ok += ok
        contiguous = n_ok == np.maximum(hi - lo + 1, 0)
        return lo, hi, contiguous

    def to_frame(self) -> pd.DataFrame:
        """The ptable in long form: true ``i``, published ``j``, noise ``v``, probability ``p``
        and the key interval ``[p_int_lb, p_int_ub)`` as shares of [0, 1)."""
        rows, cols = np.nonzero(self.counts > 0)
        lb = (self.upper - self.counts).astype(np.float64) / KEY_SPACE
        return pd.DataFrame(
            {
                "i": rows,
                "j": rows + self.offsets[cols],
                "v": self.offsets[cols],
                "p": self.realised[rows, cols],
                "p_int_lb": lb[rows, cols],
                "p_int_ub": self.upper[rows, cols].astype(np.float64) / KEY_SPACE,
            }
        )

    def to_dict(self) -> dict[str, Any]:
        real = self.realised
        off = self.offsets.astype(np.float64)
        rows = np.arange(self.n_rows)
        mean = real @ off
        var = real @ (off**2) - mean**2
        return {
            "params": self.params.to_dict(),
            "rows": self.n_rows,
            "variance": [round(float(x), 6) for x in var],
            "target_variance": [round(float(x), 6) for x in self.target_variance],
            "max_bias": float(np.max(np.abs(mean))) if len(rows) else 0.0,
            "p_stay": [round(float(real[i, self.params.D]), 6) for i in rows],
            "notes": list(self.notes),
        }


def _support(i: int, d: int, js: int) -> np.ndarray:
    """Published values row ``i`` may give: within ``i +- D``, not negative, none in ``1..js-1``."""
    j = np.arange(max(0, i - d), i + d + 1)
    return j[(j == 0) | (j >= js)]


def _maxent(t: np.ndarray, var: float) -> np.ndarray:
    """The maximum-entropy distribution on the points ``t`` with mean 0 and variance ``var``:
    ``p ~ exp(a t + b t**2)``, found by Newton's method on the convex dual (deterministic)."""
    if len(t) <= 2:
        # two points and a mean fix the distribution; one point is the row of zero
        if len(t) == 1:
            return np.ones(1)
        lo, hi = t
        return np.array([hi / (hi - lo), -lo / (hi - lo)])
    theta = np.zeros(2)
    feats = np.stack([t, t * t - var])  # gradient of the dual = E[feats]

    def dual(th: np.ndarray) -> tuple[float, np.ndarray]:
        z = th @ feats
        m = z.max()
        w = np.exp(z - m)
        return float(m + np.log(w.sum())), w / w.sum()

    f, p = dual(theta)
    for _ in range(500):
        g = feats @ p
        if np.max(np.abs(g)) < 1e-14:
            break
        c = feats - g[:, None]
        h = (c * p) @ c.T
        step = np.linalg.solve(h + 1e-14 * np.eye(2), g)
        s = 1.0
        while True:  # backtracking: the dual decreases at every step
            new = theta - s * step
            f_new, p_new = dual(new)
            if f_new <= f - 1e-4 * s * float(g @ step) or s < 1e-12:
                break
            s *= 0.5
        theta, f, p = new, f_new, p_new
    for _ in range(3):  # polish: first-order corrections of the two moments (stays positive)
        g = feats @ p
        c = feats * p
        step = np.linalg.lstsq(c @ feats.T, -g, rcond=None)[0]
        p = p * (1.0 + step @ feats)
        p = p / p.sum()
    return p


def _quantise(p: np.ndarray) -> np.ndarray:
    """Probabilities as whole numbers of keys summing to 2**32 (largest remainders; ties to the
    smaller noise). A probability too small for a key may get none: that noise never happens."""
    exact = p * KEY_SPACE
    q = np.floor(exact).astype(np.int64)
    rest = KEY_SPACE - int(q.sum())
    frac = exact - q
    order = np.lexsort((np.arange(len(p)), -frac))
    q[order[:rest]] += 1
    return q


def ptable(params: PTableParams) -> PTable:
    """Build the perturbation table: per true count the maximum-entropy noise distribution.

    Row ``i`` puts its mass on the published values ``max(0, i-D)..i+D`` outside ``1..js-1``
    with mean ``i`` (unbiased) and variance ``V``; row 0 publishes 0. Where the support is cut
    at 0 or ``js`` (small ``i``) the variance may be out of reach: such a row takes the
    variance closest to ``V`` that keeps 5% of its reachable range from either end (at an end
    all the mass sits on two values), and ``notes`` says so (so does every record made with
    the ptable). Maximum entropy spreads the mass as evenly as
    the constraints allow, so no published value is more telling than it has to be.
    """
    d, js = int(params.D), int(params.js)
    n_rows = params.last + 1
    width = 2 * d + 1
    prob = np.zeros((n_rows, width))
    target = np.zeros(n_rows)
    prob[0, d] = 1.0
    capped: list[str] = []
    for i in range(1, n_rows):  # a handful of rows, each a two-parameter problem
        if i > d + js:
            prob[i] = prob[i - 1]  # the support is no longer cut: the same distribution, shifted
            target[i] = target[i - 1]
            continue
        j = _support(i, d, js)
        t = (j - i).astype(np.float64)
        below, above = t[t < 0], t[t > 0]
        v_max = float(-t.min() * t.max())
        v_min = 0.0 if (t == 0).any() else float(-below.max() * above.min())
        want = float(params.V)
        v_i = want
        if len(t) <= 2:
            v_i = v_max  # two values and the mean fix the distribution
        elif i < d + js and want > v_min + _REACH * (v_max - v_min):
            v_i = v_min + _REACH * (v_max - v_min)
        elif want < v_min + (1 - _REACH) * (v_max - v_min) and v_min > 0:
            v_i = v_min + (1 - _REACH) * (v_max - v_min)
        if abs(v_i - want) > 1e-12:
            capped.append(f"{i}: {v_i:.4g}")
        target[i] = v_i
        prob[i, j - i + d] = _maxent(t, v_i)
    counts = np.stack([_quantise(row) for row in prob]).astype(np.uint64)
    upper = np.cumsum(counts, axis=1, dtype=np.uint64)
    off = np.arange(-d, d + 1, dtype=np.float64)
    mean = prob @ off
    variance = prob @ off**2 - mean**2
    notes = []
    if capped:
        notes.append(
            f"variance {params.V} is out of reach where the support is cut at 0 or js; "
            "row: variance used = " + ", ".join(capped)
        )
    if float(params.V) > d * (d + 1) / 3:
        notes.append(
            f"variance {params.V} exceeds that of uniform noise on -D..D ({d * (d + 1) / 3:.3g}): "
            "the noise is most likely at its extremes"
        )
    dropped = int(((prob > 0) & (counts == 0)).sum())
    if dropped:
        notes.append(f"{dropped} noise value(s) are too unlikely for one key in 2**32 and never occur")
    return PTable(
        params=params,
        probability=prob,
        counts=counts,
        upper=upper,
        target_variance=target,
        variance=variance,
        notes=tuple(notes),
    )


# ---------------------------------------------------------------------------------------------
# perturbing one table


@dataclass(frozen=True)
class CellKeyRecord:
    """What the noise did to one table: the figures the reviewer report shows (no cell values)."""

    table: str
    params: dict[str, Any]
    cells: int
    changed: int
    share_unchanged: float
    mean_abs_error: float
    mean_abs_error_leaves: float
    mean_abs_error_margins: float
    mean_abs_error_nonzero: float
    max_abs_error: int
    mean_noise: float
    relative_error_mean: float
    relative_error_by_size: dict[str, dict[str, float]]
    sum_relations: int
    sum_relations_broken: int
    ptable: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "method": "cell key",
            "params": dict(self.params),
            "cells": self.cells,
            "changed": self.changed,
            "share_unchanged": self.share_unchanged,
            "mean_abs_error": self.mean_abs_error,
            "mean_abs_error_leaves": self.mean_abs_error_leaves,
            "mean_abs_error_margins": self.mean_abs_error_margins,
            "mean_abs_error_nonzero": self.mean_abs_error_nonzero,
            "max_abs_error": self.max_abs_error,
            "mean_noise": self.mean_noise,
            "relative_error_mean": self.relative_error_mean,
            "relative_error_by_size": {k: dict(v) for k, v in self.relative_error_by_size.items()},
            "sum_relations": self.sum_relations,
            "sum_relations_broken": self.sum_relations_broken,
            "additive": False,
            "ptable": dict(self.ptable),
            "notes": list(self.notes),
        }


_SIZE_CLASSES = ((1, 10, "1-9"), (10, 100, "10-99"), (100, 1000, "100-999"), (1000, None, "1000+"))


def _mean(x: np.ndarray) -> float:
    return float(x.mean()) if len(x) else 0.0


def _count_table(table: Table, what: str) -> None:
    if table.measure is not None:
        raise PolicyError(
            Problem(
                "cellkey_magnitude",
                f"table '{table.name}': the cell key method here perturbs count tables only",
                hint="protect a table of sums by suppression",
            )
        )
    if what == "key" and "cell_key" not in table.cells:
        raise PolicyError(
            Problem(
                "cellkey_no_key",
                f"table '{table.name}' has no cell keys",
                hint="build it with record_keys (build_table(..., record_keys=record_keys(...)))",
            )
        )


def perturb(table: Table, pt: PTable) -> tuple[np.ndarray, CellKeyRecord]:
    """Published values of a count table: each cell's value plus the noise its key draws.

    Every cell, margins too, is perturbed on its own key (row ``min(value, last row)``); zero
    cells stay zero. The published table therefore does not add up, which is what keeps a
    margin from undoing the noise of its cells; the record counts the broken sums.
    """
    _count_table(table, "key")
    value = table.cells["value"].to_numpy(dtype=np.int64)
    if (value < 0).any():
        raise PolicyError(Problem("cellkey_negative", f"table '{table.name}' has negative counts"))
    keys = table.cells["cell_key"].to_numpy()
    if keys.dtype != np.uint32:
        raise PolicyError(Problem("cellkey_key_type", f"table '{table.name}': cell keys must be uint32"))
    noise = pt.noise(value, keys)
    published = value + noise
    err = np.abs(noise)
    margin = table.cells["margin"].to_numpy(dtype=bool)
    nz = value > 0
    rel = err[nz] / value[nz]
    by_size: dict[str, dict[str, float]] = {}
    for lo, hi, name in _SIZE_CLASSES:
        sel = (value >= lo) & (value < hi) if hi is not None else value >= lo
        if sel.any():
            by_size[name] = {
                "cells": int(sel.sum()),
                "mean_abs_error": round(_mean(err[sel]), 6),
                "mean_relative_error": round(_mean(err[sel] / value[sel]), 6),
                "max_relative_error": round(float((err[sel] / value[sel]).max()), 6),
            }
    rels = table.relations
    sums = np.flatnonzero(rels.kind == SUM)
    broken = 0
    if len(sums):
        child_sum = np.add.reduceat(published[rels.children], rels.ptr[:-1]) if len(rels.children) else 0
        broken = int((child_sum[sums] != published[rels.parent[sums]]).sum())
    record = CellKeyRecord(
        table=table.name,
        params=pt.params.to_dict(),
        cells=int(len(value)),
        changed=int((noise != 0).sum()),
        share_unchanged=round(_mean((noise == 0).astype(np.float64)), 6) if len(value) else 1.0,
        mean_abs_error=round(_mean(err), 6),
        mean_abs_error_leaves=round(_mean(err[~margin]), 6),
        mean_abs_error_margins=round(_mean(err[margin]), 6),
        mean_abs_error_nonzero=round(_mean(err[nz]), 6),
        max_abs_error=int(err.max()) if len(err) else 0,
        mean_noise=round(_mean(noise.astype(np.float64)), 6),
        relative_error_mean=round(_mean(rel), 6),
        relative_error_by_size=by_size,
        sum_relations=int(len(sums)),
        sum_relations_broken=broken,
        ptable=pt.to_dict(),
        notes=(
            "every cell, margins too, is perturbed on its own key: the published table does not add up",
            "zero cells stay zero",
            *pt.notes,
        ),
    )
    return published, record


# ---------------------------------------------------------------------------------------------
# the attacker with every release


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


_GEO = {"lan": "kommun"}  # a län is a level of the kommun dimension
_POP, _UNIT, _YEAR = 0, 1, 2  # the first columns of a cell's coordinates; dimensions follow


def _inner(h: Any) -> np.ndarray:
    has_children = np.zeros(h.size, bool)
    p = np.asarray(h.parents)
    has_children[p[p >= 0]] = True
    return has_children


def _node_codes(h: Any) -> np.ndarray:
    """A node's code as a coordinate: a top node with children (a total) is '*'."""
    return np.where((np.asarray(h.parents) < 0) & _inner(h), "*", np.asarray(h.codes, dtype=object))


def _coordinates(table: Table, dims: list[str]) -> list[np.ndarray]:
    """What a cell counts (population, unit class), its year and its codes over ``dims`` ('*'
    for a total or a dimension the table lacks). A persons cell of one insats in one year is
    the insatser cell of the same coordinates (a person holds an insats once a year, from one
    kommun), so its unit class is ''."""
    one_insats = np.zeros(table.size, bool)
    if "insats" in table.dims:
        one_insats = ~_inner(table.hierarchies["insats"])[table.nodes[:, table.dims.index("insats")]]
    if "year" in table.dims:
        h = table.hierarchies["year"]
        node = table.nodes[:, table.dims.index("year")]
        year = _node_codes(h)[node]
        one_insats &= ~_inner(h)[node]
    else:
        ys = [y for y in table.scope.get("years", "").split(",") if y]
        year = np.full(table.size, ys[0] if len(ys) == 1 else "*" + ",".join(ys), dtype=object)
    out = [
        np.full(table.size, table.scope.get("insatser", ""), dtype=object),
        np.where(one_insats, "", table.unit).astype(object),
        year.astype(object),
    ]
    for d in dims:
        own = [x for x in table.dims if _GEO.get(x, x) == d]
        if not own:
            out.append(np.full(table.size, "*", dtype=object))
            continue
        out.append(_node_codes(table.hierarchies[own[0]])[table.nodes[:, table.dims.index(own[0])]])
    return out


@dataclass
class _Space:
    """Every distinct cell of the releases: its coordinates as codes (population, unit class,
    year, then one column per dimension), a lookup from coordinates to the cell, and per
    dimension the hierarchy over its codes."""

    names: list[str]
    vocab: list[np.ndarray]
    codes: np.ndarray
    strides: np.ndarray
    keys: pd.Index
    parent: dict[int, np.ndarray]
    child_ptr: dict[int, np.ndarray]
    child: dict[int, np.ndarray]
    star: dict[int, int]

    @property
    def size(self) -> int:
        return len(self.codes)

    def lookup(self, codes: np.ndarray) -> np.ndarray:
        """The cell with these coordinates (rows of codes), -1 where no release shows one."""
        if not len(codes):
            return np.zeros(0, np.int64)
        return self.keys.get_indexer(codes @ self.strides).astype(np.int64)

    def ancestors(self, col: int, ids: np.ndarray) -> np.ndarray:
        """Per code its chain up to the top (self first) as a padded matrix (-1 pads)."""
        par = self.parent[col]
        out = [ids]
        cur = ids
        while (cur >= 0).any():
            cur = np.where(cur >= 0, par[np.maximum(cur, 0)], -1)
            if not (cur >= 0).any():
                break
            out.append(cur)
        return np.stack(out, axis=1)


def _identify(tables: list[Table]) -> tuple[list[np.ndarray], _Space]:
    """Global cells over all releases: the same population, unit class, year and coordinates
    are one cell. A persons and an insatser cell that differ in value (the same insats from two
    kommuner) stay two cells; two releases that disagree otherwise are refused."""
    dims = sorted({_GEO.get(d, d) for t in tables for d in t.dims} - {"year"})
    names = ["population", "unit", "year", *dims]
    cols = [_coordinates(t, dims) for t in tables]
    merged = [np.concatenate([c[j] for c in cols]) for j in range(len(names))]
    value = np.concatenate([t.cells["value"].to_numpy(dtype=np.int64) for t in tables])

    def number(columns: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray], np.ndarray, np.ndarray]:
        codes, vocab = [], []
        for c in columns:
            k, uniq = pd.factorize(c, sort=False)
            codes.append(k.astype(np.int64))
            vocab.append(np.asarray(uniq, dtype=object))
        sizes = np.array([max(len(v), 1) for v in vocab], dtype=object)
        if int(np.prod(sizes)) >= 2**62:  # pragma: no cover - needs billions of distinct codes
            raise PolicyError("too many distinct coordinates for one audit")
        strides = np.ones(len(sizes), np.int64)
        for j in range(len(sizes) - 2, -1, -1):
            strides[j] = strides[j + 1] * int(sizes[j + 1])
        mat = np.stack(codes, axis=1)
        return mat, vocab, strides, mat @ strides

    mat, vocab, strides, key = number(merged)
    ids, uniq = pd.factorize(key, sort=False)
    clash = _disagree(ids, len(uniq), value)
    if clash.any():
        units = np.concatenate([np.full(t.size, t.unit, dtype=object) for t in tables])
        merged[_UNIT] = np.where(clash, units, merged[_UNIT])
        mat, vocab, strides, key = number(merged)
        ids, uniq = pd.factorize(key, sort=False)
        if _disagree(ids, len(uniq), value).any():
            raise PolicyError(
                Problem("cellkey_clash", "two releases disagree on the true value of a shared cell")
            )
    ids = ids.astype(np.int64)
    first = np.full(len(uniq), -1, np.int64)
    first[ids[::-1]] = np.arange(len(ids))[::-1]
    parent: dict[int, np.ndarray] = {}
    child_ptr: dict[int, np.ndarray] = {}
    child: dict[int, np.ndarray] = {}
    for j in range(3, len(names)):
        index = pd.Index(vocab[j])
        par = np.full(len(vocab[j]), -1, np.int64)
        known = np.zeros(len(vocab[j]), bool)
        for t in tables:  # a handful of tables; the first that shows a code gives its parent
            for d in t.dims:
                if _GEO.get(d, d) != names[j]:
                    continue
                h = t.hierarchies[d]
                code = index.get_indexer(_node_codes(h))
                hp = np.asarray(h.parents)
                pc = np.where(hp >= 0, code[np.maximum(hp, 0)], -1)
                fresh = (code >= 0) & ~known[np.maximum(code, 0)]
                par[code[fresh]] = pc[fresh]
                known[code[fresh]] = True
        parent[j] = par
        order = np.argsort(par, kind="stable")
        order = order[par[order] >= 0]
        child[j] = order
        child_ptr[j] = np.concatenate([[0], np.cumsum(np.bincount(par[par >= 0], minlength=len(par)))])
    space = _Space(
        names=names,
        vocab=vocab,
        codes=mat[first],
        strides=strides,
        keys=pd.Index(uniq),
        parent=parent,
        child_ptr=child_ptr,
        child=child,
        star={j: int(pd.Index(vocab[j]).get_indexer(["*"])[0]) for j in range(3, len(names))},
    )
    out, start = [], 0
    for t in tables:
        out.append(ids[start : start + t.size])
        start += t.size
    return out, space


def _disagree(ids: np.ndarray, n: int, value: np.ndarray) -> np.ndarray:
    lo = np.full(n, np.iinfo(np.int64).max)
    hi = np.full(n, np.iinfo(np.int64).min)
    np.minimum.at(lo, ids, value)
    np.maximum.at(hi, ids, value)
    return lo[ids] != hi[ids]


def _constraints(tables: list[Table], ids: list[np.ndarray], n: int) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Every relation of every table over the global cells: equations ``A_eq x = 0`` (sums)
    and inequalities ``A_ub x <= 0`` (a union's parent within [largest child, sum of
    children]; disjoint children summing to at most their parent)."""
    eq: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    ub: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    n_eq = n_ub = 0
    for t, gid in zip(tables, ids, strict=True):
        rel = t.relations
        if rel.size == 0:
            continue
        cnt = np.diff(rel.ptr)
        of_child = np.repeat(np.arange(rel.size), cnt)
        pg, cg = gid[rel.parent], gid[rel.children]
        for kind, sign in ((SUM, 1.0), (UNION, 1.0), (DISJOINT, -1.0)):
            sel = np.flatnonzero(rel.kind == kind)
            if not len(sel):
                continue
            base = n_eq if kind == SUM else n_ub
            row_of = np.full(rel.size, -1, np.int64)
            row_of[sel] = base + np.arange(len(sel))
            cs = np.flatnonzero(rel.kind[of_child] == kind)
            triplet = (
                np.concatenate([row_of[sel], row_of[of_child[cs]]]),
                np.concatenate([pg[sel], cg[cs]]),
                np.concatenate([np.full(len(sel), sign), np.full(len(cs), -sign)]),
            )
            if kind == SUM:
                eq.append(triplet)
                n_eq += len(sel)
                continue
            ub.append(triplet)
            n_ub += len(sel)
            if kind == UNION:  # every child <= its parent
                rows = n_ub + np.arange(len(cs))
                ub.append(
                    (
                        np.concatenate([rows, rows]),
                        np.concatenate([cg[cs], pg[of_child[cs]]]),
                        np.concatenate([np.ones(len(cs)), -np.ones(len(cs))]),
                    )
                )
                n_ub += len(cs)

    def build(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]], m: int) -> sp.csr_matrix:
        if not parts:
            return sp.csr_matrix((0, n))
        r, c, v = (np.concatenate([p[i] for p in parts]) for i in range(3))
        return sp.csr_matrix((v, (r, c)), shape=(m, n))

    return build(eq, n_eq), build(ub, n_ub)


# ---------------------------------------------------------------------------------------------
# proofs: feasible tables as deviations from the true one


@dataclass
class _Problem:
    """The attacker's feasible set as deviations ``z`` from the true table ``x*``:
    ``A_eq z = 0``, ``A_ub z <= slack`` and ``-room_down <= z <= room_up``."""

    a_eq: sp.csr_matrix
    a_ub: sp.csr_matrix
    slack: np.ndarray
    room_up: np.ndarray
    room_down: np.ndarray


def _steps(prob: _Problem, y: sp.csc_matrix) -> np.ndarray:
    """Per column of ``y`` (a direction) the largest ``t`` with ``t * y`` feasible (0 when it
    breaks an equation): a ratio test over every relation and bound, one sparse product."""
    k = y.shape[1]
    t = np.full(k, np.inf)
    tol = 1e-9
    if prob.a_eq.shape[0]:
        r = (prob.a_eq @ y).tocoo()
        t[r.col[np.abs(r.data) > tol]] = 0.0
    if prob.a_ub.shape[0]:
        r = (prob.a_ub @ y).tocoo()
        pos = r.data > tol
        np.minimum.at(t, r.col[pos], prob.slack[r.row[pos]] / r.data[pos])
    c = y.tocoo()
    up = c.data > 0
    np.minimum.at(t, c.col[up], prob.room_up[c.row[up]] / c.data[up])
    np.minimum.at(t, c.col[~up], prob.room_down[c.row[~up]] / -c.data[~up])
    return np.maximum(t, 0.0)


def _apply(y: sp.csc_matrix, t: np.ndarray, reach_up: np.ndarray, reach_down: np.ndarray) -> None:
    """Every feasible deviation ``t * y`` shows how far each cell it moves can go."""
    c = y.tocoo()
    step = c.data * np.where(np.isfinite(t), t, 0.0)[c.col]
    np.maximum.at(reach_up, c.row, step)
    np.minimum.at(reach_down, c.row, step)


def _ragged(ptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each of ``rows`` the positions ``ptr[r]..ptr[r+1]``: (owner, position), vectorised."""
    cnt = ptr[rows + 1] - ptr[rows]
    owner = np.repeat(np.arange(len(rows)), cnt)
    starts = np.repeat(ptr[rows] - (np.cumsum(cnt) - cnt), cnt)
    return owner, starts + np.arange(int(cnt.sum()))


def _with(space: _Space, base: np.ndarray, col: int, code: np.ndarray) -> np.ndarray:
    """Cells with the coordinates ``base`` but ``code`` in column ``col`` (any unit class);
    where no release shows one, the nearest shown margin (other dimensions at their total,
    one after the other): the cell whose room a choice along ``col`` is judged by."""
    rows = base.copy()
    rows[:, col] = code
    found = np.full(len(rows), -1, np.int64)
    for d in [None, *(j for j in range(3, len(space.names)) if j != col)]:
        miss = np.flatnonzero(found < 0)
        if not len(miss):
            break
        if d is not None:
            if space.star[d] < 0:
                continue
            rows[miss, d] = space.star[d]
        for u in range(len(space.vocab[_UNIT])):
            rows[miss, _UNIT] = u
            hit = space.lookup(rows[miss])
            found[miss] = np.where(found[miss] >= 0, found[miss], hit)
    return found


def _descend(
    space: _Space, base: np.ndarray, col: int, start: np.ndarray, room: np.ndarray
) -> list[np.ndarray]:
    """From each ``start`` code down to a leaf, each step to the child whose cell (``base``
    with that code) has the most ``room``: the path a deviation takes below a margin."""
    path = [start]
    cur = start.copy()
    ptr, kids = space.child_ptr[col], space.child[col]
    for _ in range(32):  # hierarchies are a few levels deep
        inner = np.flatnonzero((cur >= 0) & (ptr[np.maximum(cur, 0) + 1] > ptr[np.maximum(cur, 0)]))
        if not len(inner):
            break
        owner, pos = _ragged(ptr, cur[inner])
        code = kids[pos]
        cell = _with(space, base[inner][owner], col, code)
        score = np.where(cell >= 0, room[np.maximum(cell, 0)], -1.0)
        best = np.lexsort((-score, owner))
        first = np.searchsorted(owner[best], np.arange(len(inner)))
        nxt = np.full(len(cur), -1, np.int64)
        nxt[inner] = code[best[first]]
        path.append(nxt)
        cur = nxt
    return path


def _leaves(
    space: _Space, base: np.ndarray, room: np.ndarray, cols: Sequence[int] | None = None
) -> np.ndarray:
    """``base`` with each code of ``cols`` (default every dimension) taken down to a leaf,
    each step to the child whose cell has the most ``room``."""
    out = base.copy()
    for j in range(3, len(space.names)) if cols is None else cols:
        down = _descend(space, base, j, base[:, j], room)
        leaf = down[-1].copy()
        for lvl in down[::-1]:
            leaf = np.where(leaf >= 0, leaf, lvl)
        out[:, j] = leaf
    return out


def _plain(space: _Space, leaf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The cells of ``leaf`` (one row of leaf codes each) with all their margins: every
    combination of the codes on the paths to the top, in every unit class. Moving them all
    by the same amount keeps every sum of every table. Returns (row of ``leaf``, cell)."""
    owner = np.arange(len(leaf))
    key = leaf @ space.strides  # a cell's key changes by (new code - old) * stride per column
    for j in range(3, len(space.names)):
        path = space.ancestors(j, leaf[:, j])
        ptr = np.concatenate([[0], np.cumsum((path >= 0).sum(axis=1))])
        flat = path[path >= 0]  # each row is a prefix of codes, then -1s
        e_own, pos = _ragged(ptr, owner)
        owner = owner[e_own]
        key = key[e_own] + (flat[pos] - leaf[owner, j]) * space.strides[j]
    cells, rows = [], []
    shift = leaf[owner, _UNIT] * space.strides[_UNIT]
    for u in range(len(space.vocab[_UNIT])):
        hit = space.keys.get_indexer(key - shift + u * space.strides[_UNIT]).astype(np.int64)
        ok = hit >= 0
        cells.append(hit[ok])
        rows.append(owner[ok])
    return np.concatenate(rows), np.concatenate(cells)


def _siblings(
    space: _Space, base: np.ndarray, j: int, room: np.ndarray, rank: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Siblings along column ``j`` of each row of ``base``, those ranked ``rank`` to
    ``rank + width - 1`` by the room of their cell: (row, sibling code)."""
    own = base[:, j]
    par = space.parent[j][own]
    has = np.flatnonzero(par >= 0)
    if not len(has):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    owner, pos = _ragged(space.child_ptr[j], par[has])
    sib = space.child[j][pos]
    keep = sib != own[has][owner]
    owner, sib = owner[keep], sib[keep]
    cell = _with(space, base[has][owner], j, sib)
    score = np.where(cell >= 0, room[np.maximum(cell, 0)], -1.0)
    order = np.lexsort((-score, owner))
    owner, sib = owner[order], sib[order]
    start = np.searchsorted(owner, np.arange(len(has)))
    r = np.arange(len(owner)) - start[owner]
    pick = (r >= rank) & (r < rank + width)
    return has[owner[pick]], sib[pick]


def _candidates(
    space: _Space,
    cells: np.ndarray,
    sigma: float,
    prob: _Problem,
    rank: int = 0,
    width: int = 2,
    cube: int = 2,
    descents: bool = False,
) -> tuple[sp.csc_matrix, np.ndarray]:
    """Candidate deviations that move each cell by ``sigma`` (+1 up, -1 down), as columns,
    and the cell each one is for. Each is a signed sum of *corners*: a cell with all its
    margins (per dimension the path from a leaf to the top; a margin code goes down to the
    child with the most room), which keeps every sum of every table. The corners of one
    candidate share their paths except where they differ, so their common margins cancel:

    * the cell alone (its margins up to the grand total move with it);
    * against a partner: the cell with one code replaced by a sibling moves the other way,
      and the margins they share stay put;
    * a square: along two dimensions the cell, two partners and the opposite corner (+ - - +),
      the classic hypercube move, which leaves every margin of the two lines as it was.

    Unions, disjoint sets and bounds are left to the ratio test. Siblings are ranked by the
    room of their cell: ``rank`` and ``width`` choose the partners, ``cube`` the second
    dimension's partners of a square; ``descents`` adds the cell moved through each child of
    a margin code (not only the roomiest).
    """
    base = space.codes[cells]
    room_same = prob.room_up if sigma > 0 else prob.room_down
    room_other = prob.room_down if sigma > 0 else prob.room_up
    leaf = _leaves(space, base, room_same)
    dims = list(range(3, len(space.names)))
    cell_of = np.arange(len(cells))
    if descents:
        # every child of a margin code as another way down (with every partner and square)
        more_cell, more_leaf = [cell_of], [leaf]
        for j in dims:
            own = base[:, j]
            inner = np.flatnonzero(space.child_ptr[j][own + 1] > space.child_ptr[j][own])
            owner, pos = _ragged(space.child_ptr[j], own[inner])
            coords = base[inner][owner].copy()
            coords[:, j] = space.child[j][pos]
            alt = leaf[inner][owner].copy()
            alt[:, j] = _leaves(space, coords, room_same, [j])[:, j]
            more_cell.append(inner[owner])
            more_leaf.append(alt)
        cell_of = np.concatenate(more_cell)
        leaf = np.concatenate(more_leaf)
        base = base[cell_of]
    corners: list[np.ndarray] = []  # leaf codes of each corner
    corner_cand: list[np.ndarray] = []
    corner_sign: list[np.ndarray] = []
    target: list[np.ndarray] = []
    n_cand = 0

    def add(rows: np.ndarray, parts: list[tuple[np.ndarray, float]]) -> None:
        nonlocal n_cand
        ids = n_cand + np.arange(len(rows))
        for coords, sign in parts:
            corners.append(coords)
            corner_cand.append(ids)
            corner_sign.append(np.full(len(rows), sign))
        target.append(cells[cell_of[rows]])
        n_cand += len(rows)

    def partner_leaf(rows: np.ndarray, j: int, code: np.ndarray, room: np.ndarray) -> np.ndarray:
        coords = base[rows].copy()
        coords[:, j] = code
        return _leaves(space, coords, room, [j])[:, j]

    if rank == 0:
        add(np.arange(len(base)), [(leaf, 1.0)])
    sibs = {}
    for j in dims:
        rows, sib = _siblings(space, base, j, room_other, rank, width)
        sibs[j] = (rows, partner_leaf(rows, j, sib, room_other))
        if not len(rows):
            continue
        partner = leaf[rows].copy()
        partner[:, j] = sibs[j][1]
        add(rows, [(leaf[rows], 1.0), (partner, -1.0)])
    for a_i, j1 in enumerate(dims):
        rows1, leaf1 = sibs[j1]
        for j2 in dims[a_i + 1 :]:
            rows2, sib2 = _siblings(space, base, j2, room_other, 0, cube)
            if not len(rows1) or not len(rows2):
                continue
            leaf2 = partner_leaf(rows2, j2, sib2, room_other)
            order2 = np.argsort(rows2, kind="stable")
            rows2, leaf2 = rows2[order2], leaf2[order2]
            lo = np.searchsorted(rows2, rows1, side="left")
            cnt = np.searchsorted(rows2, rows1, side="right") - lo
            owner, pos = _ragged(np.concatenate([[0], np.cumsum(cnt)]), np.arange(len(rows1)))
            pos = pos - np.repeat(np.cumsum(cnt) - cnt, cnt) + np.repeat(lo, cnt)
            if not len(owner):
                continue
            rows = rows1[owner]
            c0 = leaf[rows]
            c1 = c0.copy()
            c1[:, j1] = leaf1[owner]
            c2 = c0.copy()
            c2[:, j2] = leaf2[pos]
            c12 = c1.copy()
            c12[:, j2] = leaf2[pos]
            add(rows, [(c0, 1.0), (c1, -1.0), (c2, -1.0), (c12, 1.0)])
    if not n_cand:
        return sp.csc_matrix((space.size, 0)), np.zeros(0, np.int64)
    cand = np.concatenate(corner_cand)
    sign = np.concatenate(corner_sign)
    own, cell = _plain(space, np.concatenate(corners))
    y = sp.csc_matrix((sign[own] * sigma, (cell, cand[own])), shape=(space.size, n_cand))
    y.sum_duplicates()
    y.eliminate_zeros()
    return y, np.concatenate(target)


def _keeps_sums(prob: _Problem, y: sp.csc_matrix) -> np.ndarray:
    """Columns that keep every equation (all do by construction, unless two tables disagree
    on a hierarchy)."""
    keep = np.ones(y.shape[1], bool)
    if prob.a_eq.shape[0]:
        r = (prob.a_eq @ y).tocoo()
        keep[r.col[np.abs(r.data) > 1e-9]] = False
    return keep


def _combine(
    prob: _Problem,
    y: sp.csc_matrix,
    target: np.ndarray,
    keep: np.ndarray,
    cells: np.ndarray,
    sigma: float,
    need: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Per cell the best combination ``y @ lam`` (``lam >= 0``) of its candidate deviations,
    for a batch of cells in one LP of independent blocks (each with its own copy of the
    relations it touches): the optimum mixes partial moves (one unit through a margin with
    room, the next against a partner, a third through another age band). Returns how far
    up and down the batch's solutions (a feasible table each) move every cell."""
    blocks, rhs, objs, parts = [], [], [], []
    for cell, nd in zip(cells, need, strict=True):
        cols = np.flatnonzero((target == cell) & keep)
        if not len(cols):
            continue
        yc = y[:, cols].tocsr()
        touched = np.flatnonzero(np.diff(yc.indptr) > 0)
        yt = yc[touched]
        rows = [yt, -yt]
        b = [prob.room_up[touched], prob.room_down[touched]]
        if prob.a_ub.shape[0]:
            ay = (prob.a_ub @ yc).tocsr()
            hit = np.flatnonzero(np.diff(ay.indptr) > 0)
            rows.append(ay[hit])
            b.append(prob.slack[hit])
        own = (yc[cell] * sigma).toarray().ravel()
        rows.append(sp.csr_matrix(own))  # no further than the need
        b.append(np.array([nd]))
        blocks.append(sp.vstack(rows).tocsr())
        rhs.append(np.concatenate(b))
        objs.append(-own)
        parts.append(yc)
    z = np.zeros(prob.room_up.shape[0])
    if not blocks:
        return z, z
    res = linprog(
        np.concatenate(objs),
        A_ub=sp.block_diag(blocks, format="csr"),
        b_ub=np.concatenate(rhs),
        bounds=(0, None),
        method="highs",
    )
    if res.status != 0 or res.x is None:  # lam = 0 is feasible: anything else is a solver failure
        return z, z
    start = 0
    up, down = z.copy(), z.copy()
    for yc in parts:
        k = yc.shape[1]
        move = np.asarray(yc @ res.x[start : start + k]).ravel()
        start += k
        np.maximum(up, move, out=up)
        np.minimum(down, move, out=down)
    return up, down


def _ball(rows_of: sp.csc_matrix, vars_of: sp.csr_matrix, cell: int, size: int) -> np.ndarray:
    """Cells a few relations away from ``cell``, breadth first, whole layers while they fit
    (then the rest of a layer in order), at most ``size``."""
    seen = np.zeros(rows_of.shape[1], bool)
    seen[cell] = True
    count, frontier = 1, np.array([cell])
    while len(frontier) and count < size:
        rows = np.unique(rows_of[:, frontier].indices)
        nxt = np.unique(vars_of[rows].indices) if len(rows) else np.zeros(0, np.int64)
        nxt = nxt[~seen[nxt]][: size - count]
        seen[nxt] = True
        count += len(nxt)
        frontier = nxt
    return np.flatnonzero(seen)


def _local_lp(
    prob: _Problem, rows_eq: np.ndarray, rows_ub: np.ndarray, cols: np.ndarray, cell: int, sigma: float
) -> tuple[np.ndarray, float]:
    """Move ``cell`` as far as it goes over the cells ``cols`` and the given relations."""
    c = np.zeros(len(cols))
    k = int(np.searchsorted(cols, cell))
    c[k] = -sigma
    a_eq = prob.a_eq[rows_eq][:, cols]
    a_ub = prob.a_ub[rows_ub][:, cols]
    res = linprog(
        c,
        A_ub=a_ub if len(rows_ub) else None,
        b_ub=prob.slack[rows_ub] if len(rows_ub) else None,
        A_eq=a_eq if len(rows_eq) else None,
        b_eq=np.zeros(len(rows_eq)) if len(rows_eq) else None,
        bounds=np.stack([-prob.room_down[cols], prob.room_up[cols]], axis=1),
        method="highs",
    )
    if res.status != 0 or res.x is None:  # z = 0 is feasible: anything else is a solver failure
        raise RuntimeError(f"the attacker's linear programme did not solve: {res.message}")
    return np.asarray(res.x), float(sigma * res.x[k])


def _touching(a: sp.csr_matrix, cols: np.ndarray) -> np.ndarray:
    return np.unique(a[:, cols].tocoo().row) if a.shape[0] else np.zeros(0, np.int64)


def _restricted(prob: _Problem, free: np.ndarray, cell: int, sigma: float) -> np.ndarray:
    """Every cell outside ``free`` at its true value: any solution is a feasible table."""
    z, _ = _local_lp(prob, _touching(prob.a_eq, free), _touching(prob.a_ub, free), free, cell, sigma)
    return z


def _relaxed(prob: _Problem, near: np.ndarray, cell: int, sigma: float) -> float:
    """Only the relations touching ``near`` (their other cells free within their bounds): a
    larger feasible set, so its optimum bounds how far the attacker lets ``cell`` move."""
    rows_eq, rows_ub = _touching(prob.a_eq, near), _touching(prob.a_ub, near)
    cols = np.union1d(
        near,
        np.concatenate([prob.a_eq[rows_eq].indices, prob.a_ub[rows_ub].indices]).astype(np.int64),
    )
    _, reach = _local_lp(prob, rows_eq, rows_ub, cols, cell, sigma)
    return max(reach, 0.0)


def _exact(prob: _Problem, comp: np.ndarray, cell: int, sigma: float) -> np.ndarray:
    """The deviation that moves ``cell`` as far as it goes (by ``sigma``) over its whole
    connected component: the attacker's exact bound (interior point: the simplex stalls on
    these degenerate problems)."""
    a_eq = prob.a_eq[:, comp]
    a_ub = prob.a_ub[:, comp]
    r_eq = np.flatnonzero(np.diff(a_eq.tocsr().indptr) > 0)
    r_ub = np.flatnonzero(np.diff(a_ub.tocsr().indptr) > 0)
    c = np.zeros(len(comp))
    c[int(np.searchsorted(comp, cell))] = -sigma
    res = linprog(
        c,
        A_ub=a_ub[r_ub] if len(r_ub) else None,
        b_ub=prob.slack[r_ub] if len(r_ub) else None,
        A_eq=a_eq[r_eq] if len(r_eq) else None,
        b_eq=np.zeros(len(r_eq)) if len(r_eq) else None,
        bounds=np.stack([-prob.room_down[comp], prob.room_up[comp]], axis=1),
        method="highs-ipm" if len(comp) > 2000 else "highs",
    )
    if res.status != 0 or res.x is None:  # z = 0 is feasible: anything else is a solver failure
        raise RuntimeError(f"the attacker's linear programme did not solve: {res.message}")
    return np.asarray(res.x)


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
                t = _steps(prob, y)
                _apply(y, t, reach_up, reach_down)
                figures["deviations"] += int(y.shape[1])
                figures["deviations_valid"] += int((t > _TOL).sum())
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
            t = _steps(prob, y)  # one of them may do on its own
            _apply(y, t, reach_up, reach_down)
            figures["deviations"] += int(y.shape[1])
            figures["deviations_valid"] += int((t > _TOL).sum())
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
        need = float((need_up if sigma > 0 else need_down)[j])
        for size in neighbourhoods:
            free = _ball(rows_of, vars_of, j, size)
            z = _restricted(prob, free, j, sigma)
            figures["neighbourhood_lps"] += 1
            np.maximum.at(reach_up, free, z)
            np.minimum.at(reach_down, free, z)
            if (reach_up[j] if sigma > 0 else -reach_down[j]) >= need - _TOL:
                break
            outer = _relaxed(prob, free, j, sigma)
            figures["neighbourhood_lps"] += 1
            if sigma > 0:
                bound_up[j] = min(bound_up[j], outer)
            else:
                bound_down[j] = min(bound_down[j], outer)
            if outer < need - _TOL:
                break
    # last: the exact optimum over the component, for a few
    left = [
        (j, s)
        for s, bound, need in ((1.0, bound_up, need_up), (-1.0, bound_down, need_down))
        for j in np.flatnonzero(todo[s] & ~proven(s) & (bound >= need - _TOL))
    ]
    if left and max_exact > 0:
        pattern = (abs(sp.vstack([a_eq, a_ub]).tocsr()) > 0).astype(np.int8)
        graph = sp.bmat([[None, pattern.T], [pattern, None]], format="csr")
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
    cells = pd.DataFrame(
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
    bad = cells[~cells["ok"]]
    failures = [
        {
            "table": r.table,
            "cell": int(r.cell),
            "problem": r.why,
            "lower": float(r.lower),
            "upper": float(r.upper),
            "required_lower": float(r.required_lower),
            "required_upper": float(r.required_upper),
        }
        for r in bad.itertuples(index=False)
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
    return CellKeyAudit(passed=not failures, cells=cells, summary=summary, failures=failures)


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
