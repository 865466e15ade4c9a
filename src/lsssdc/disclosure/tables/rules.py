"""Primary suppression: the frequency, (n, k) dominance and p% rules and their protection
levels (the cells a table may not show, and how far a reader must stay from each)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lsssdc.disclosure.tables.model import REASON_DOMINANCE, REASON_FREQUENCY, REASON_P, REASON_ZERO, Table
from lsssdc.errors import PolicyError


@dataclass(frozen=True)
class FrequencyRule:
    """Cells with 1 to ``threshold - 1`` contributors are primary; zero cells too unless safe.

    Protection asked of a primary count cell with value v and n persons: the attacker's upper
    bound reaches at least ``v + max(1, threshold - n)`` (so at least the threshold for a persons
    count) and the lower bound at most ``v - 1`` (so a single person's presence is never
    certain). A primary zero cell needs an upper bound of at least ``threshold``. In a magnitude
    table a cell with too few contributors needs ``safety_range`` percent of its value each way.
    """

    threshold: int = 3
    zero_is_safe: bool = True
    safety_range: float = 10.0

    def __post_init__(self) -> None:
        if self.threshold < 1:
            raise PolicyError("the frequency threshold must be at least 1")
        if not 0 < self.safety_range <= 100:
            raise PolicyError("the safety range must lie in (0, 100] percent")

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": "frequency",
            "threshold": self.threshold,
            "zero_is_safe": self.zero_is_safe,
            "safety_range": self.safety_range,
        }


@dataclass(frozen=True)
class DominanceRule:
    """(n, k) dominance: a cell whose ``n`` largest contributions exceed ``k`` percent of it.

    Protection: ``(100 / k) * (sum of the n largest) - value`` each way.
    """

    n: int = 1
    k: float = 85.0

    def __post_init__(self) -> None:
        if self.n < 1 or not 0 < self.k < 100:
            raise PolicyError("the dominance rule needs n >= 1 and 0 < k < 100")

    def to_dict(self) -> dict[str, Any]:
        return {"rule": "dominance", "n": self.n, "k": self.k}


@dataclass(frozen=True)
class PRule:
    """p% rule: the second largest contributor must not learn the largest within ``p`` percent.

    A cell is primary when ``value - x1 - x2 < p / 100 * x1``; protection
    ``p / 100 * x1 - (value - x1 - x2)`` each way.
    """

    p: float = 10.0

    def __post_init__(self) -> None:
        if not 0 < self.p < 100:
            raise PolicyError("the p% rule needs 0 < p < 100")

    def to_dict(self) -> dict[str, Any]:
        return {"rule": "p_percent", "p": self.p}


@dataclass(frozen=True)
class Rules:
    """The primary rules of a release: the frequency rule always, magnitude rules optionally."""

    frequency: FrequencyRule = field(default_factory=FrequencyRule)
    dominance: tuple[DominanceRule, ...] = ()
    p_rule: PRule | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "frequency": self.frequency.to_dict(),
            "dominance": [d.to_dict() for d in self.dominance],
            "p_rule": self.p_rule.to_dict() if self.p_rule else None,
        }


# ---------------------------------------------------------------------------------------------
# primary suppression


def primary_cells(table: Table, rules: Rules) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reason bits, upper and lower protection level of each cell (0 where not primary)."""
    v = table.cells["value"].to_numpy(dtype=np.float64)
    n = table.cells["contributors"].to_numpy(dtype=np.float64)
    f = rules.frequency
    small = (n > 0) & (n < f.threshold)
    zero = (n == 0) & (not f.zero_is_safe)
    reason = np.where(small, REASON_FREQUENCY, 0) | np.where(zero, REASON_ZERO, 0)
    if table.measure is None:
        upper = np.where(small, np.maximum(1.0, f.threshold - n), 0.0)
        upper = np.where(zero, float(f.threshold), upper)
        lower = np.where(small, np.minimum(1.0, v), 0.0)
    else:
        share = f.safety_range / 100.0
        upper = np.where(small, share * v, 0.0)
        lower = upper.copy()
        upper = np.where(zero, 1.0, upper)
        top = table.top if table.top is not None else np.zeros((len(v), 2))
        for rule in rules.dominance:
            if rule.n > top.shape[1]:
                raise PolicyError(
                    f"the dominance rule needs the {rule.n} largest contributions; "
                    f"the table '{table.name}' keeps {top.shape[1]} (build it with top={rule.n})"
                )
            largest = top[:, : rule.n].sum(axis=1)
            hit = (v > 0) & (largest * 100.0 > rule.k * v)
            level = largest * 100.0 / rule.k - v
            reason = reason | np.where(hit, REASON_DOMINANCE, 0)
            upper = np.where(hit, np.maximum(upper, level), upper)
            lower = np.where(hit, np.maximum(lower, level), lower)
        if rules.p_rule is not None:
            x1, x2 = top[:, 0], top[:, 1]
            rest = v - x1 - x2
            hit = (v > 0) & (rest * 100.0 < rules.p_rule.p * x1)
            level = rules.p_rule.p / 100.0 * x1 - rest
            reason = reason | np.where(hit, REASON_P, 0)
            upper = np.where(hit, np.maximum(upper, level), upper)
            lower = np.where(hit, np.maximum(lower, level), lower)
    lower = np.minimum(lower, v)
    return reason.astype(np.int64), upper, lower
