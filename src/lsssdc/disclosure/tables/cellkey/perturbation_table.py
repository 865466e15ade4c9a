"""The perturbation table (ptable): per true count a maximum-entropy noise distribution, cut
into intervals of the key space, so that a cell's true count and key fix its noise.

:class:`PTableParams` says what the noise may be, :func:`ptable` solves it, and :class:`PTable`
looks noise up and tells which true counts a published value can come from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lsssdc.disclosure.tables.cellkey.keys import KEY_SPACE
from lsssdc.errors import PolicyError, Problem

#: A row whose variance cannot be reached keeps this share of its reachable range from the end
#: (at the very ends all the mass sits on two values; inside, every value of the support stays
#: possible).
_REACH = 0.95


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
