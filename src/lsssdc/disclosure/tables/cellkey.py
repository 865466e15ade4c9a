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
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from scipy.optimize import linprog
from scipy.sparse.csgraph import connected_components

from lsssdc.disclosure.tables.model import DISJOINT, SUM, UNION, Table
from lsssdc.disclosure.tables.rules import FrequencyRule
from lsssdc.errors import KeyStoreError, PolicyError, Problem
from lsssdc.identity.pseudonym import personnummer_digits

#: The key space: a cell key ``k`` (uint32) stands for the point ``k / 2**32`` of [0, 1).
KEY_SPACE = 1 << 32
#: Key-store label of the secret behind the record keys.
KEY_LABEL = "table-record-keys"
_LABEL = b"CKY1"  # cell key, version 1: keeps these AES blocks apart from other uses of AES
_SUBKEY_INFO = b"lsssdc cell key record keys v1"
#: A row whose variance cannot be reached is given this share of its reachable range (the very
#: ends put all the mass on two values; just inside them every value of the support stays possible).
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
    digits = personnummer_digits(personnummer, reference_date)
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
    for _ in range(200):
        g = feats @ p
        if np.max(np.abs(g)) < 1e-13:
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
    return p


def _quantise(p: np.ndarray) -> np.ndarray:
    """Probabilities as whole numbers of keys summing to 2**32 (largest remainders; ties to the
    smaller noise). A probability below half a key gets none: that noise never happens."""
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
    variance closest to ``V`` within 95% of its reachable range (the ends put every bit of
    mass on two values), and ``notes`` says so. Maximum entropy spreads the mass as evenly as
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
        notes.append(f"{dropped} noise value(s) have a probability below 2**-33 and never occur")
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
        notes=(
            "every cell, margins too, is perturbed on its own key: the published table does not add up",
            "zero cells stay zero",
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


def _inner(h: Any) -> np.ndarray:
    has_children = np.zeros(h.size, bool)
    p = np.asarray(h.parents)
    has_children[p[p >= 0]] = True
    return has_children


def _coordinates(table: Table, dims: list[str]) -> list[np.ndarray]:
    """What a cell counts, its year and its codes over ``dims`` ('*' for a total or a missing
    dimension). A persons cell of one insats in one year is the insatser cell of the same
    coordinates (a person holds an insats once a year, from one kommun)."""
    one_insats = np.zeros(table.size, bool)
    if "insats" in table.dims:
        one_insats = ~_inner(table.hierarchies["insats"])[table.nodes[:, table.dims.index("insats")]]
    if "year" in table.dims:
        h = table.hierarchies["year"]
        node = table.nodes[:, table.dims.index("year")]
        year = np.where(_inner(h)[node], "*", np.asarray(h.codes, dtype=object)[node])
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
        h = table.hierarchies[own[0]]
        star = (np.asarray(h.parents) < 0) & _inner(h)
        code = np.where(star, "*", np.asarray(h.codes, dtype=object))
        out.append(code[table.nodes[:, table.dims.index(own[0])]])
    return out


def _factorise(columns: list[np.ndarray]) -> tuple[np.ndarray, int]:
    """One id per distinct row of the columns."""
    codes = []
    radix = 1
    for c in columns:
        k, uniq = pd.factorize(c, sort=False)
        codes.append((k.astype(np.int64), max(len(uniq), 1)))
        radix *= max(len(uniq), 1)
    if radix < 2**62:
        key = np.zeros(len(columns[0]), np.int64)
        for k, size in codes:
            key = key * size + k
        ids, uniq = pd.factorize(key, sort=False)
        return ids.astype(np.int64), len(uniq)
    mat = np.stack([k for k, _ in codes], axis=1)  # pragma: no cover - very many distinct codes
    _, ids = np.unique(mat, axis=0, return_inverse=True)
    return ids.ravel().astype(np.int64), int(ids.max()) + 1


def _identify(tables: list[Table]) -> tuple[list[np.ndarray], int, list[list[np.ndarray]], list[str]]:
    """Global cell ids over all releases: cells with the same population, unit class, year
    and coordinates are one cell. Returns ids per table, their number, the coordinate columns
    (for the report) and the dimension names."""
    dims = sorted({_GEO.get(d, d) for t in tables for d in t.dims} - {"year"})
    cols = [_coordinates(t, dims) for t in tables]
    merged = [np.concatenate([c[j] for c in cols]) for j in range(len(dims) + 3)]
    ids, n = _factorise(merged)
    value = np.concatenate([t.cells["value"].to_numpy(dtype=np.int64) for t in tables])
    lo = np.full(n, np.iinfo(np.int64).max)
    hi = np.full(n, np.iinfo(np.int64).min)
    np.minimum.at(lo, ids, value)
    np.maximum.at(hi, ids, value)
    clash = lo[ids] != hi[ids]
    if clash.any():
        # a persons and an insatser cell that differ (the same insats from two kommuner) are
        # two cells: keep the unit in their key
        units = np.concatenate([np.full(t.size, t.unit, dtype=object) for t in tables])
        merged[1] = np.where(clash, units, merged[1])
        ids, n = _factorise(merged)
        lo = np.full(n, np.iinfo(np.int64).max)
        hi = np.full(n, np.iinfo(np.int64).min)
        np.minimum.at(lo, ids, value)
        np.maximum.at(hi, ids, value)
        if (lo[ids] != hi[ids]).any():
            raise PolicyError(
                Problem("cellkey_clash", "two releases disagree on the true value of a shared cell")
            )
    out, start = [], 0
    for t in tables:
        out.append(ids[start : start + t.size])
        start += t.size
    return out, n, cols, dims


def _constraints(tables: list[Table], ids: list[np.ndarray], n: int) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Every relation of every table over the global cells: equations ``A_eq x = 0`` (sums)
    and inequalities ``A_ub x <= 0`` (a union's parent within [largest child, sum of
    children]; disjoint children summing to at most their parent)."""
    eq_r, eq_c, eq_v, ub_r, ub_c, ub_v = [], [], [], [], [], []
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
            r = np.concatenate([row_of[sel], row_of[of_child[cs]]])
            c = np.concatenate([pg[sel], cg[cs]])
            v = np.concatenate([np.full(len(sel), sign), np.full(len(cs), -sign)])
            if kind == SUM:
                eq_r.append(r), eq_c.append(c), eq_v.append(v)
                n_eq += len(sel)
                continue
            ub_r.append(r), ub_c.append(c), ub_v.append(v)
            n_ub += len(sel)
            if kind == UNION:  # every child <= its parent
                rows = n_ub + np.arange(len(cs))
                ub_r.append(np.concatenate([rows, rows]))
                ub_c.append(np.concatenate([cg[cs], pg[of_child[cs]]]))
                ub_v.append(np.concatenate([np.ones(len(cs)), -np.ones(len(cs))]))
                n_ub += len(cs)

    def build(r: list, c: list, v: list, m: int) -> sp.csr_matrix:
        if not r:
            return sp.csr_matrix((0, n))
        return sp.csr_matrix((np.concatenate(v), (np.concatenate(r), np.concatenate(c))), shape=(m, n))

    return build(eq_r, eq_c, eq_v, n_eq), build(ub_r, ub_c, ub_v, n_ub)


def _solve(
    c: np.ndarray, a_ub: sp.csr_matrix, a_eq: sp.csr_matrix, lb: np.ndarray, ub: np.ndarray
) -> np.ndarray:
    res = linprog(
        c,
        A_ub=a_ub if a_ub.shape[0] else None,
        b_ub=np.zeros(a_ub.shape[0]) if a_ub.shape[0] else None,
        A_eq=a_eq if a_eq.shape[0] else None,
        b_eq=np.zeros(a_eq.shape[0]) if a_eq.shape[0] else None,
        bounds=np.stack([lb, ub], axis=1),
        method="highs",
    )
    if res.status != 0 or res.x is None:  # the true table is feasible: anything else is a defect
        raise RuntimeError(f"the attacker's linear programme did not solve: {res.message}")
    return np.asarray(res.x)


def _batch(
    up: bool,
    cand: np.ndarray,
    goal: np.ndarray,
    a_eq: sp.csr_matrix,
    a_ub: sp.csr_matrix,
    lb: np.ndarray,
    ub: np.ndarray,
) -> np.ndarray:
    """One LP that pushes every candidate cell towards its goal at once (each capped at its
    goal, so no cell takes more room than it needs); its solution is a feasible table."""
    n, m = len(lb), len(cand)
    sel = sp.csr_matrix((np.ones(m), (np.arange(m), cand)), shape=(m, n))
    eye = sp.identity(m, format="csr")
    # up: y - x_c <= 0, y <= goal, maximise sum y; down: x_c - y <= 0, y >= goal, minimise sum y
    link = sp.hstack([-sel, eye]) if up else sp.hstack([sel, -eye])
    a_ub2 = sp.vstack([sp.hstack([a_ub, sp.csr_matrix((a_ub.shape[0], m))]), link]).tocsr()
    a_eq2 = sp.hstack([a_eq, sp.csr_matrix((a_eq.shape[0], m))]).tocsr()
    y_lb = lb[cand] if up else goal
    y_ub = goal if up else ub[cand]
    c = np.concatenate([np.zeros(n), np.full(m, -1.0 if up else 1.0)])
    x = _solve(c, a_ub2, a_eq2, np.concatenate([lb, y_lb]), np.concatenate([ub, y_ub]))
    return x[:n]


def audit(
    releases: Sequence[tuple[Table, np.ndarray]],
    pt: PTable,
    rules_threshold: int | FrequencyRule,
    *,
    require_lower: bool = True,
    rounds: int = 4,
    max_exact: int = 2000,
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

    Proofs are feasible tables: LPs that push every unproven cell to its goal at once (a few
    rounds), then per remaining cell the exact LP over its connected component (at most
    ``max_exact``; beyond, a cell counts as failed, "not proven"). A cell whose own feasible
    counts already miss the goal fails without an LP (its attacker interval is at most that).
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
    ids, n, coords, dims = _identify(tables)

    lb = np.zeros(n, np.int64)
    ub = np.full(n, np.iinfo(np.int64).max)
    value = np.zeros(n, np.int64)
    persons = np.zeros(n, np.int64)
    structural = np.zeros(n, bool)
    pub_of = np.full(n, -1, np.int64)
    first = np.full(n, -1, np.int64)  # (table, cell) of the first release showing the cell
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
    if (lb > ub).any() or (value < lb).any() or (value > ub).any():
        raise PolicyError(
            Problem(
                "cellkey_inconsistent",
                "the releases do not come from these tables with this ptable "
                f"({int(((value < lb) | (value > ub) | (lb > ub)).sum())} cell(s) out of reach)",
                hint="a cell must get the same key (and so the same noise) in every release",
            )
        )
    lb[structural] = 0
    ub[structural] = 0
    a_eq, a_ub = _constraints(tables, ids, n)
    lbf, ubf = lb.astype(np.float64), ub.astype(np.float64)

    sensitive = (persons >= 1) & (persons < t_req) & ~structural
    goal_up = (value + np.maximum(1, t_req - persons)).astype(np.float64)
    goal_down = (value - 1).astype(np.float64)
    reach_up = value.astype(np.float64)
    reach_down = value.astype(np.float64)
    exact_up = np.zeros(n, bool)
    exact_down = np.zeros(n, bool)
    # the cell's own feasible counts bound what any attacker table can do
    own_up = sensitive & (ubf < goal_up - _TOL)
    own_down = sensitive & (lbf > goal_down + _TOL)
    todo_up = sensitive & ~own_up
    todo_down = sensitive & ~own_down & require_lower
    lps = 0
    for up in (True, False):
        todo = todo_up if up else todo_down
        goal = goal_up if up else goal_down
        for _ in range(max(rounds, 0)):
            cand = np.flatnonzero(todo)
            if not len(cand):
                break
            x = _batch(up, cand, goal[cand], a_eq, a_ub, lbf, ubf)
            lps += 1
            np.maximum(reach_up, x, out=reach_up)
            np.minimum(reach_down, x, out=reach_down)
            done = reach_up >= goal - _TOL if up else reach_down <= goal + _TOL
            progress = bool((todo & done).any())
            todo &= ~done
            if not progress:
                break

    # the rest: the exact optimum over the cell's component
    rest = np.flatnonzero(todo_up | todo_down)
    exact_done = 0
    unproven = np.zeros(n, bool)
    if len(rest):
        m = sp.vstack([a_eq, a_ub]).tocsr()
        pattern = (abs(m) > 0).astype(np.int8)
        graph = sp.bmat([[None, pattern.T], [pattern, None]], format="csr")
        _, label = connected_components(graph, directed=False)
        label = label[:n]
        m_eq, m_ub = (abs(a_eq) > 0).tocsc(), (abs(a_ub) > 0).tocsc()
        for lab in np.unique(label[rest]):  # one sub-problem per component holding such cells
            comp = np.flatnonzero(label == lab)
            sub_eq = a_eq[np.unique(m_eq[:, comp].indices)][:, comp]
            sub_ub = a_ub[np.unique(m_ub[:, comp].indices)][:, comp]
            for j in rest[label[rest] == lab]:
                k = int(np.searchsorted(comp, j))
                for up in (True, False):
                    if not (todo_up if up else todo_down)[j]:
                        continue
                    if exact_done >= max_exact:
                        unproven[j] = True
                        continue
                    c = np.zeros(len(comp))
                    c[k] = -1.0 if up else 1.0
                    x = _solve(c, sub_ub, sub_eq, lbf[comp], ubf[comp])
                    lps += 1
                    exact_done += 1
                    reach_up[comp] = np.maximum(reach_up[comp], x)
                    reach_down[comp] = np.minimum(reach_down[comp], x)
                    (exact_up if up else exact_down)[j] = True

    # what the attacker can do, as far as known: a reach when proven, else the exact or own bound
    ok_up = reach_up >= goal_up - _TOL
    ok_down = reach_down <= goal_down + _TOL
    upper = np.where(ok_up | exact_up, reach_up, ubf)
    lower = np.where(ok_down | exact_down, reach_down, lbf)
    upper = np.where(own_up, ubf, upper)
    lower = np.where(own_down, lbf, lower)
    ok = ok_up & (ok_down | (not require_lower))
    sens = np.flatnonzero(sensitive)
    where = first[sens]
    tab_of = np.searchsorted(offsets, where, side="right") - 1
    cell_of = where - offsets[tab_of]
    coord_text = _coordinate_text(coords, dims, tab_of, cell_of)
    why = np.where(
        ok[sens],
        "",
        np.where(
            unproven[sens],
            "not proven",
            np.where(
                ~ok_up[sens],
                np.where(own_up[sens], "upper: own interval", "upper: relations"),
                np.where(own_down[sens], "lower: own interval (not empty)", "lower: relations"),
            ),
        ),
    )
    cells = pd.DataFrame(
        {
            "table": np.asarray([tables[i].name for i in tab_of], dtype=object),
            "cell": cell_of.astype(np.int64),
            "coordinates": coord_text,
            "releases": seen_in[sens],
            "value": value[sens],
            "persons": persons[sens],
            "published": pub_of[sens],
            "feasible_lower": lb[sens],
            "feasible_upper": ub[sens],
            "required_lower": goal_down[sens],
            "required_upper": goal_up[sens],
            "lower": lower[sens],
            "upper": upper[sens],
            "lower_ok": ok_down[sens],
            "upper_ok": ok_up[sens],
            "ok": ok[sens],
            "why": why,
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
    n_s = int(sensitive.sum())
    summary = {
        "releases": len(tables),
        "cells": int(sum(t.size for t in tables)),
        "distinct_cells": int(n),
        "shared_cells": int((seen_in > 1).sum()),
        "sensitive": n_s,
        "threshold": t_req,
        "failed": len(failures),
        "upper_too_narrow": int((sensitive & ~ok_up).sum()),
        "lower_too_narrow": int((sensitive & ~ok_down).sum()),
        "not_empty_shown": int((sensitive & own_down).sum()),
        "narrowed_by_relations": int((sensitive & ((~ok_up & ~own_up) | (~ok_down & ~own_down))).sum()),
        "share_protected": round(float(ok[sens].mean()), 6) if n_s else 1.0,
        "require_lower": bool(require_lower),
        "unproven": int(unproven.sum()),
        "lps": int(lps),
        "exact_lps": int(exact_done),
        "feasible_sets_with_holes": int(holes),
        "relaxation": "linear",
        "params": pt.params.to_dict(),
        "seconds": round(time.perf_counter() - started, 3),
    }
    return CellKeyAudit(passed=not failures, cells=cells, summary=summary, failures=failures)


def _coordinate_text(
    coords: list[list[np.ndarray]], dims: list[str], tab: np.ndarray, cell: np.ndarray
) -> np.ndarray:
    """'unit=persons|year=2023|kommun=0180|insats=...' per reported cell (totals left out)."""
    out = np.full(len(tab), "", dtype=object)
    names = ["population", "unit", "year", *dims]
    for t in np.unique(tab):  # a handful of tables
        sel = np.flatnonzero(tab == t)
        text = np.full(len(sel), "", dtype=object)
        for name, col in zip(names[1:], coords[t][1:], strict=True):
            v = col[cell[sel]].astype(str).astype(object)
            part = np.where((v == "*") | (v == ""), "", name + "=" + v)
            sep = np.where((text != "") & (part != ""), "|", "")
            text = text + sep + part
        out[sel] = text
    return out
