"""Checking an order against a policy: everything the order asks for that the policy does not
allow is refused by name, with its line in the order file. Kept apart from :mod:`lsssdc.policy`
(the models and their loading, which still exports :func:`check_order` and :func:`link_problems`);
the models are imported here for type checking only, so the two modules do not import each other."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lsssdc.errors import PolicyRefused, Problem
from lsssdc.strict_yaml import _line_for

if TYPE_CHECKING:
    from lsssdc.policy import Order, Policy


def link_problems(order: Order, policy: Policy) -> list[Problem]:
    """What the order asks to link that the policy does not allow (or asks for twice), by name."""
    lines, source = order._lines, order._source
    problems: list[Problem] = []
    seen: set[str] = set()
    for i, link in enumerate(order.linkages):
        rule = policy.linkage.get(link.register_name)
        if link.register_name in seen:
            problems.append(
                Problem(
                    "duplicate_link",
                    f"the order asks for '{link.register_name}' twice",
                    file=source,
                    line=_line_for(("linkages", i, "register"), lines),
                )
            )
            continue
        seen.add(link.register_name)
        if rule is None:
            problems.append(
                Problem(
                    "link_not_allowed",
                    f"the policy '{policy.name}' does not allow linking the register '{link.register_name}'",
                    file=source,
                    line=_line_for(("linkages", i, "register"), lines),
                )
            )
            continue
        for j, v in enumerate(link.variables):
            if v not in rule.variables:
                problems.append(
                    Problem(
                        "link_not_allowed",
                        f"the policy '{policy.name}' does not allow '{v}' from '{link.register_name}'",
                        file=source,
                        line=_line_for(("linkages", i, "variables", j), lines),
                    )
                )
    return problems


def check_order(order: Order, policy: Policy) -> None:
    """Refuse, by name, everything the order asks for that the policy does not allow."""
    lines, source = order._lines, order._source
    problems: list[Problem] = []
    if order.policy != policy.name:
        problems.append(
            Problem(
                "wrong_policy",
                f"the order is written for policy '{order.policy}', not '{policy.name}'",
                file=source,
                line=_line_for(("policy",), lines),
            )
        )
    allowed = set(policy.allowed_variables)
    for i, v in enumerate(order.variables):
        if v in policy.identifiers:
            problems.append(
                Problem(
                    "identifier",
                    f"'{v}' is a direct identifier and is never delivered",
                    file=source,
                    line=_line_for(("variables", i), lines),
                )
            )
        elif v not in allowed:
            problems.append(
                Problem(
                    "not_allowed",
                    f"the policy '{policy.name}' does not allow the variable '{v}'",
                    file=source,
                    line=_line_for(("variables", i), lines),
                )
            )
    problems += link_problems(order, policy)
    if order.tables:
        if policy.tables is None:
            problems.append(
                Problem(
                    "not_allowed",
                    f"the policy '{policy.name}' does not allow tables",
                    file=source,
                    line=_line_for(("tables",), lines),
                )
            )
        else:
            for i, t in enumerate(order.tables):
                for j, d in enumerate(t.dimensions):
                    if d not in policy.tables.dimensions:
                        problems.append(
                            Problem(
                                "not_allowed",
                                f"the policy '{policy.name}' does not allow the table dimension '{d}'",
                                file=source,
                                line=_line_for(("tables", i, "dimensions", j), lines),
                            )
                        )
                if t.unit not in policy.tables.units:
                    problems.append(
                        Problem(
                            "not_allowed",
                            f"unit '{t.unit}' is not allowed",
                            file=source,
                            line=_line_for(("tables", i, "unit"), lines),
                        )
                    )
                if t.magnitude and t.magnitude not in policy.tables.magnitudes:
                    problems.append(
                        Problem(
                            "not_allowed",
                            f"magnitude '{t.magnitude}' is not allowed",
                            file=source,
                            line=_line_for(("tables", i, "magnitude"), lines),
                        )
                    )
    if problems:
        raise PolicyRefused(problems)
