"""Table orders: build the ordered tables, suppress, let the attacker audit, write them.

The policy's frequency threshold, zero rule and magnitude rules decide the primary cells; the
audit runs on every table before anything is written, and a table set that fails it is refused
(nothing is written).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from lsssdc.disclosure import table_output
from lsssdc.disclosure import tables as T
from lsssdc.disclosure.tables import attack as table_audit
from lsssdc.errors import DisclosureRefused, PolicyRefused, Problem
from lsssdc.policy import Order, Policy, check_order
from lsssdc.release.extract import derive


def rules_of(policy: Policy) -> T.Rules:
    t = policy.thresholds
    dominance = (T.DominanceRule(n=t.dominance.n, k=t.dominance.k),) if t.dominance else ()
    p_rule = T.PRule(p=t.p_percent) if t.p_percent else None
    return T.Rules(
        T.FrequencyRule(threshold=t.table_frequency, zero_is_safe=t.zero_is_safe), dominance, p_rule
    )


def protect_tables(
    policy: Policy, order: Order, register: pd.DataFrame
) -> tuple[T.ProtectedTables, table_audit.AuditReport, dict[str, Any]]:
    """Build, protect and audit every table of a table order (nothing is written)."""
    check_order(order, policy)
    if not order.tables:
        raise PolicyRefused(Problem("no_tables", "the order asks for no table"))
    years = sorted(set(order.years))
    rows = register[register["year"].isin(years)].reset_index(drop=True)
    rows = derive(rows)
    cuts = tuple(policy.hierarchies.age.cuts) if policy.hierarchies.age else T.AGE_BANDS
    several = len(years) > 1
    built = []
    for req in order.tables:
        dims = list(req.dimensions)
        if several and "year" not in dims:
            dims = ["year", *dims]
        built.append(
            T.build_table(
                rows,
                dims,
                unit=req.unit,
                measure=req.magnitude,
                name=req.name,
                insatser=order.population.insatser or None,
                age_bands=cuts,
            )
        )
    protected = T.protect(built, rules_of(policy))
    report = table_audit.audit(protected)
    per_table = [
        {
            "name": req.name,
            "dimensions": list(req.dimensions),
            "unit": req.unit,
            "cells": int(len(status)),
            "primary": int((status == 1).sum()),
            "secondary": int((status == 2).sum()),
            "audit_ok": bool(report.passed),
        }
        for req, status in zip(order.tables, protected.status, strict=True)
    ]
    summary = {
        "order_id": order.order_id,
        "policy": policy.name,
        "policy_hash": policy.hash,
        "order_hash": order.hash,
        "years": years,
        "tables": per_table,
        "audit": report.to_dict(cells=False),  # never the intervals of hidden cells
    }
    return protected, report, summary


#: written next to `lsssdc tables` output: a draft, not a release
DRAFT_NOTICE = "UTKAST-DRAFT.txt"


def make_tables(policy: Policy, order: Order, register: pd.DataFrame, out_dir: str | Path) -> dict[str, Any]:
    """Protect and audit every table of a table order; write them to ``out_dir`` only if the
    audit passes. Returns the summary (the same facts as the written ``audit.json``)."""
    protected, report, summary = protect_tables(policy, order, register)
    if not report.passed:
        raise DisclosureRefused(
            Problem(
                "table_audit_failed",
                "the attacker can narrow a hidden cell too much; nothing was written",
                hint="see the audit in the reviewer report",
            )
        )
    files = table_output.write_tables(protected, out_dir, report)
    notice = Path(out_dir) / DRAFT_NOTICE
    notice.write_text(
        "UTKAST - INTE FÖR PUBLICERING. Tabellerna är inte granskade, godkända eller loggade.\n"
        "DRAFT - NOT FOR PUBLICATION. These tables were not reviewed, approved or logged.\n"
        "Only a package delivered through `lsssdc prepare`, `approve` and `deliver` is publishable.\n",
        encoding="utf-8",
    )
    summary["files"] = [str(p) for p in [*files, notice]]
    summary["draft"] = True
    return summary
