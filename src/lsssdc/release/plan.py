"""The plan of a release: the policy and the order turned into each step's parameters, once.

:func:`make_plan` checks the order against its policy (the one place that does, for a
prepare or a table run) and works out what every later step asks of the policy: which branch
runs, the delivered person column, whether earlier deliveries are joined, the age bands, the
table rules and whether values are perturbed. The steps read the plan, so a question is
answered once and the same way for every step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lsssdc.disclosure import tables as T
from lsssdc.policy import Order, Policy, check_order


@dataclass(frozen=True)
class Plan:
    """What the steps of one release are to do, read from its order and policy."""

    policy: Policy
    order: Order
    #: the order's years, sorted, each once
    years: tuple[int, ...]
    #: the delivered person column: the policy's name, or ``lopnummer`` for running numbers
    person: str
    #: running numbers valid in this delivery only: no earlier delivery can be joined by them
    lopnummer: bool
    #: the columns of earlier deliveries an intruder's history is read for
    history_columns: frozenset[str]
    #: the age band cuts of tables and of the gate's options (with an open top, or not)
    age_cuts: tuple[int, ...]
    age_bands: tuple[tuple[int, ...], bool] | None
    #: tables protected by the cell key method (else by suppression)
    cell_key: bool
    #: the primary rules of the tables (None for a research extract, which has no table)
    table_rules: T.Rules | None

    @property
    def kind(self) -> Literal["tables", "microdata"]:
        return "tables" if self.order.tables else "microdata"


def uses_cell_key(policy: Policy) -> bool:
    """Whether the policy protects its tables by the cell key method (else by suppression)."""
    return policy.tables is not None and policy.tables.protection == "cell_key"


def table_rules(policy: Policy) -> T.Rules:
    """The primary rules of the policy's thresholds: frequency, dominance, p%."""
    t = policy.thresholds
    dominance = (T.DominanceRule(n=t.dominance.n, k=t.dominance.k),) if t.dominance else ()
    p_rule = T.PRule(p=t.p_percent) if t.p_percent else None
    return T.Rules(
        T.FrequencyRule(threshold=t.table_frequency, zero_is_safe=t.zero_is_safe), dominance, p_rule
    )


def person_column(policy: Policy) -> str:
    """The delivered person column: the policy's name, or `lopnummer` for running numbers."""
    ps = policy.pseudonymisation
    return "lopnummer" if ps.output == "lopnummer" and ps.column == "pseudonym" else ps.column


def make_plan(policy: Policy, order: Order) -> Plan:
    """Check ``order`` against ``policy`` and plan its release (raises the order's problems:
    a :class:`~lsssdc.errors.PolicyError` naming what the policy does not allow)."""
    check_order(order, policy)
    age = policy.hierarchies.age
    return Plan(
        policy=policy,
        order=order,
        years=tuple(sorted(set(order.years))),
        person=person_column(policy),
        lopnummer=policy.pseudonymisation.output == "lopnummer",
        history_columns=frozenset({*policy.sensitive, *policy.safe}),
        age_cuts=tuple(age.cuts) if age is not None else T.AGE_BANDS,
        age_bands=(tuple(age.cuts), age.open_top) if age is not None else None,
        cell_key=uses_cell_key(policy),
        table_rules=table_rules(policy) if order.tables else None,
    )
