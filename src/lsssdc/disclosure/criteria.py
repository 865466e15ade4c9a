"""The privacy criteria a release is held to: one class per criterion, and their registry.

A criterion answers one question of the risk figures measured once per combination of
quasi-identifier values (:class:`lsssdc.disclosure.risk.ComboRisk`): which combinations break
it. It also says whether it is *monotone*: whether a generalisation that fails it makes every
finer one fail too, even after suppression. The lattice search skips nodes only when every
criterion is (as ARX's criteria declare it of themselves); suppression and the report read the
same classes, so a new criterion is one class and one entry in :data:`REGISTRY`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

from lsssdc.errors import Problem

if TYPE_CHECKING:
    from lsssdc.disclosure.risk import ComboRisk, RiskReport

#: entropies within this of the bound count as meeting it (log of a ratio of counts is inexact)
ENTROPY_EPS = 1e-9


class Criterion(Protocol):
    """One rule a combination of quasi-identifier values must meet."""

    #: the rule's key in :data:`REGISTRY` (the field of :class:`Criteria` that sets it)
    name: ClassVar[str]
    #: failing at a node implies failing at every finer node, also after suppression
    monotone: ClassVar[bool]
    #: a rule on the sensitive values seen (what local suppression's l pass treats)
    about_sensitive: ClassVar[bool]

    def failing(self, risk: ComboRisk) -> np.ndarray:
        """Per combination: does it break the rule?"""
        ...

    def problem(self, records: int, report: RiskReport) -> Problem:
        """Why a release with ``records`` records breaking the rule is refused."""
        ...


@dataclass(frozen=True)
class KAnonymity:
    """At least k records (or persons) compatible with each record."""

    k: int
    name: ClassVar[str] = "k"
    monotone: ClassVar[bool] = True
    about_sensitive: ClassVar[bool] = False

    def failing(self, risk: ComboRisk) -> np.ndarray:
        return risk.f < self.k

    def problem(self, records: int, report: RiskReport) -> Problem:
        return Problem(
            "k_anonymity",
            f"{records} records are compatible with fewer than k={self.k} records "
            f"(smallest class {report.k})",
            row_count=records,
        )


@dataclass(frozen=True)
class DistinctL:
    """At least l distinct values of a sensitive attribute among the compatible records."""

    attribute: str
    l: int  # noqa: E741 - the criterion's own letter
    name: ClassVar[str] = "l_diversity"
    monotone: ClassVar[bool] = True
    about_sensitive: ClassVar[bool] = True

    def failing(self, risk: ComboRisk) -> np.ndarray:
        return risk.distinct[self.attribute] < self.l

    def problem(self, records: int, report: RiskReport) -> Problem:
        s = self.attribute
        return Problem(
            "l_diversity",
            f"{records} records see fewer than l={self.l} distinct values "
            f"of '{s}' (lowest {report.l_distinct[s]})",
            column=s,
            row_count=records,
        )


@dataclass(frozen=True)
class EntropyL:
    """The sensitive values' distribution among the compatible records at least as even as l
    equally likely values (exp(entropy) >= l). Blanking a record can make a mixture more
    skewed, so a coarser node with suppression may fail where a finer one passed: not monotone."""

    attribute: str
    l: float  # noqa: E741 - the criterion's own letter
    name: ClassVar[str] = "entropy_l"
    monotone: ClassVar[bool] = False
    about_sensitive: ClassVar[bool] = True

    def failing(self, risk: ComboRisk) -> np.ndarray:
        return risk.entropy[self.attribute] + ENTROPY_EPS < math.log(self.l)

    def problem(self, records: int, report: RiskReport) -> Problem:
        s = self.attribute
        return Problem(
            "entropy_l_diversity",
            f"{records} records have entropy l below {self.l:g} for '{s}' (lowest {report.l_entropy[s]:.3f})",
            column=s,
            row_count=records,
        )


def _k(c: Criteria, sensitive: Sequence[str]) -> tuple[Criterion, ...]:
    return (KAnonymity(c.k),)


def _distinct_l(c: Criteria, sensitive: Sequence[str]) -> tuple[Criterion, ...]:
    return () if c.l_diversity is None else tuple(DistinctL(s, c.l_diversity) for s in sensitive)


def _entropy_l(c: Criteria, sensitive: Sequence[str]) -> tuple[Criterion, ...]:
    return () if c.entropy_l is None else tuple(EntropyL(s, c.entropy_l) for s in sensitive)


#: the criteria a policy may set, one entry each: its field of :class:`Criteria` -> its rules
REGISTRY: dict[str, Callable[[Criteria, Sequence[str]], tuple[Criterion, ...]]] = {
    "k": _k,
    "l_diversity": _distinct_l,
    "entropy_l": _entropy_l,
}


@dataclass(frozen=True)
class Criteria:
    """What a release must satisfy: k-anonymity and, per sensitive attribute, l-diversity.

    ``max_suppressed_share`` is the share of records a treatment may suppress (0.02 = 2 %).
    ``missing_weight`` (sdcMicro's ``alpha``): 1 counts every compatible record, also one
    that matches only because it is missing a value the record has (the default); 0 leaves
    those out, so a blanked value widens its own record's class but never props up anyone
    else's (stricter: fewer records pass, more must be blanked).
    """

    k: int = 1
    l_diversity: int | None = None
    entropy_l: float | None = None
    sensitive: tuple[str, ...] = ()
    max_suppressed_share: float = 0.0
    missing_weight: int = 1

    def __init__(
        self,
        k: int = 1,
        l_diversity: int | None = None,
        entropy_l: float | None = None,
        sensitive: Sequence[str] = (),
        max_suppressed_share: float = 0.0,
        missing_weight: int = 1,
    ) -> None:
        if int(k) < 1:
            raise ValueError("k must be at least 1")
        if (l_diversity is not None or entropy_l is not None) and not sensitive:
            raise ValueError("l-diversity needs at least one sensitive attribute")
        if not 0.0 <= float(max_suppressed_share) <= 1.0:
            raise ValueError("max_suppressed_share must lie in [0, 1]")
        if missing_weight not in (0, 1):
            raise ValueError("missing_weight must be 1 (wildcards count for everyone) or 0")
        object.__setattr__(self, "k", int(k))
        object.__setattr__(self, "l_diversity", None if l_diversity is None else int(l_diversity))
        object.__setattr__(self, "entropy_l", None if entropy_l is None else float(entropy_l))
        object.__setattr__(self, "sensitive", tuple(sensitive))
        object.__setattr__(self, "max_suppressed_share", float(max_suppressed_share))
        object.__setattr__(self, "missing_weight", int(missing_weight))

    @property
    def needs_l(self) -> bool:
        return self.l_diversity is not None or self.entropy_l is not None

    def rules(self, sensitive: Sequence[str] | None = None) -> tuple[Criterion, ...]:
        """Every rule these criteria set (over ``sensitive``, by default the criteria's own
        sensitive attributes): the rules on classes first, then per sensitive attribute its
        rules in the registry's order."""
        attrs = self.sensitive if sensitive is None else tuple(sensitive)
        made = [rule for make in REGISTRY.values() for rule in make(self, attrs)]

        def place(rule: Criterion) -> tuple[int, int]:
            attribute = getattr(rule, "attribute", None)
            return (0, 0) if attribute is None else (1, attrs.index(attribute))

        return tuple(sorted(made, key=place))

    @property
    def monotone(self) -> bool:
        """Whether every rule is monotone (the lattice may skip below a failing node)."""
        return all(rule.monotone for rule in self.rules())

    def unsafe(self, risk: ComboRisk, *, sensitive_only: bool = False) -> np.ndarray:
        """Per combination: does it break any rule (only the rules on sensitive values)?"""
        bad = np.zeros(len(risk.f), bool)
        for rule in self.rules():
            if rule.about_sensitive or not sensitive_only:
                bad |= rule.failing(risk)
        return bad

    def to_dict(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "l_diversity": self.l_diversity,
            "entropy_l": self.entropy_l,
            "sensitive": list(self.sensitive),
            "max_suppressed_share": self.max_suppressed_share,
            "missing_weight": self.missing_weight,
        }
