"""Table orders: build the ordered tables, suppress, let the attacker audit, write them.

The policy's frequency threshold, zero rule and magnitude rules decide the primary cells; the
audit runs on every table before anything is written, and a table set that fails it is refused
(nothing is written).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from lsssdc.disclosure import table_output
from lsssdc.disclosure import tables as T
from lsssdc.disclosure.tables import attack as table_audit
from lsssdc.disclosure.tables import cellkey
from lsssdc.errors import DisclosureRefused, InputDataError, PolicyRefused, Problem
from lsssdc.policy import Order, Policy
from lsssdc.release import table_history
from lsssdc.release.extract import derive
from lsssdc.release.plan import Plan, make_plan, table_rules


def build_tables(
    order: Order, cuts: tuple[int, ...], register: pd.DataFrame, secret: bytes | None = None
) -> list[T.Table]:
    """The tables of a table order from the register (every margin, the order's years); with
    the record-key ``secret``, each count cell carries its cell key."""
    years = sorted(set(order.years))
    rows = register[register["year"].isin(years)].reset_index(drop=True)
    missing = sorted(set(years) - {int(y) for y in pd.unique(rows["year"])})
    if missing:
        raise InputDataError(
            Problem(
                "years_missing",
                f"the register holds no rows for {', '.join(map(str, missing))}, which order "
                f"{order.order_id} covers",
                column="year",
            )
        )
    rows = derive(rows)
    keys = cellkey.record_keys(rows["personnummer"], secret) if secret is not None else None
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
                record_keys=keys if req.magnitude is None else None,
            )
        )
    return built


def _rebuild(
    register: pd.DataFrame, secret: bytes | None = None
) -> Callable[[dict[str, Any], dict[str, Any]], list[T.Table]]:
    """Build an earlier order's tables again from its recorded order and policy."""

    def build(order_dump: dict[str, Any], policy_dump: dict[str, Any]) -> list[T.Table]:
        order = Order.model_validate({k: v for k, v in order_dump.items() if k != "hash"})
        age = (policy_dump.get("hierarchies") or {}).get("age")
        cuts = tuple(age["cuts"]) if age else T.AGE_BANDS
        cell_key = ((policy_dump.get("tables") or {}).get("protection")) == "cell_key"
        return build_tables(order, cuts, register, secret if cell_key else None)

    return build


def _subset(protected: T.ProtectedTables, n: int) -> T.ProtectedTables:
    """The first ``n`` tables of a protected set (the order's own, without the earlier ones)."""
    return T.ProtectedTables(
        tables=protected.tables[:n],
        rules=protected.rules,
        status=protected.status[:n],
        reason=protected.reason[:n],
        upper=protected.upper[:n],
        lower=protected.lower[:n],
        report=dict(protected.report),
        known=protected.known[:n] if protected.known else None,
    )


def _extract_check(
    protected: T.ProtectedTables, past: table_history.TableHistory, known: list[np.ndarray]
) -> list[dict[str, Any]]:
    """The attacker again, for a holder of each extract of the years: the cells it can count are
    constants. Returns one finding per extract with which the tables expose a cell."""
    found = []
    for ex in past.extracts:
        years = {str(y) for y in pd.unique(ex.data["year"].dropna())} if "year" in ex.data else set()
        held = [
            k | table_history.derivable(t, ex.data, years)
            for t, k in zip(protected.tables, known, strict=True)
        ]
        if not any(h.any() for h in held):
            continue
        # the suppression's witnesses go along: the attacker checks them and proves faster
        report = table_audit.audit(replace(protected, known=held))
        if not report.passed:
            found.append({"order_id": ex.order_id, "entry": ex.entry, "cells": len(report.failures)})
    return found


def _refills(
    tables: list[tuple[int, T.Table]], extracts: list[table_history.Extract]
) -> list[tuple[int, T.Table, table_history.Extract, list[str]]]:
    """Every (table, extract) pair where the table's counts would fill what the extract left
    blank: (the table's ledger entry, the table, the extract, the dimensions refilled). Both
    directions ask it: a table order of an extract's years, and an extract of tables' years."""
    return [
        (entry, t, ex, dims)
        for ex in extracts
        for entry, t in tables
        if (dims := table_history.refill(t, ex))
    ]


def _refuse_refills(tables: list[T.Table], past: table_history.TableHistory) -> None:
    """Refuse tables whose counts would fill what an extract of their years left blank."""
    refills = _refills([(0, t) for t in tables], past.extracts)
    if refills:
        _, table, ex, dims = refills[0]
        name = table.name
        raise DisclosureRefused(
            Problem(
                "extract_refill",
                f"table '{name}' shows {', '.join(dims)} at a detail where the microdata extract of "
                f"order {ex.order_id} (ledger entry {ex.entry}) left values blank: "
                "its counts would tell the extract's holder what the blanks hold"
                + (f" ({len(refills)} table-extract pairs in all)" if len(refills) > 1 else ""),
                hint="order the tables without that dimension, or at a detail the extract does not show",
            )
        )


def _with_cell_key(
    policy: Policy, order: Order, built: list[T.Table], past: table_history.TableHistory
) -> tuple[T.ProtectedTables, Any, dict[str, Any]]:
    """The cell key method: every count published with the noise its persons' keys draw,
    audited with every earlier release of the same years (their shown values, checked)."""
    if any(req.magnitude for req in order.tables):
        raise PolicyRefused(
            Problem(
                "cellkey_magnitude", "the cell key method protects count tables; order sums by suppression"
            )
        )
    assert policy.tables is not None  # a cell key policy has its tables section
    ck = policy.tables.cell_key
    pt = cellkey.ptable(cellkey.PTableParams(D=ck.max_noise, V=ck.variance, js=ck.smallest_published))
    noisy = [cellkey.perturb(t, pt) for t in built]
    releases = [(t, p) for t, (p, _) in zip(built, noisy, strict=True)]
    for e in past.tables:
        for t, shown in zip(e.tables, e.shown, strict=True):
            again, _ = cellkey.perturb(t, pt)
            if (again != shown).any():
                raise DisclosureRefused(
                    Problem(
                        "history_changed",
                        f"table '{t.name}' (ledger entry {e.entry}) shows other values than its cell keys "
                        "give now: another register, perturbation table or key store",
                        hint="build new tables from the register and policy the earlier release used",
                    )
                )
            releases.append((t, shown))
    report = cellkey.audit(releases, pt, policy.thresholds.table_frequency, require_lower=False)
    _refuse_refills(built, past)
    shown_tables = [replace(t, cells=t.cells.assign(value=p)) for t, (p, _) in zip(built, noisy, strict=True)]
    protected = T.ProtectedTables(
        tables=shown_tables,
        rules=table_rules(policy),
        status=[np.zeros(t.size, np.int8) for t in built],
        reason=[np.zeros(t.size, np.int64) for t in built],
        upper=[np.zeros(t.size) for t in built],
        lower=[np.zeros(t.size) for t in built],
        report={"protection": {"method": "cell_key", **pt.params.to_dict()}},
    )
    per_table = [
        {
            "name": req.name,
            "dimensions": list(req.dimensions),
            "unit": req.unit,
            "cells": int(t.size),
            "primary": 0,
            "secondary": 0,
            "audit_ok": bool(report.passed),
        }
        for req, t in zip(order.tables, built, strict=True)
    ]
    summary = {
        "order_id": order.order_id,
        "policy": policy.name,
        "policy_hash": policy.hash,
        "order_hash": order.hash,
        "years": sorted(set(order.years)),
        "tables": per_table,
        "history": past.to_dict(),
        "protection": "cell_key",
        "cell_key": [rec.to_dict() for _, rec in noisy],
        "audit": report.to_dict(cells=False),
    }
    return protected, report, summary


@dataclass
class KeptWitnesses:
    """The witnesses of a table release's joint problem with the names of its tables, kept in
    the candidate (reviewer-only) so that a later release of the same years starts from them."""

    protected: T.ProtectedTables
    names: list[str]

    def save(self, path: Path) -> Path | None:
        return table_history.save_witnesses(self.protected, self.names, path)


def protect_tables(
    plan: Plan,
    register: pd.DataFrame,
    *,
    ledger: Any = None,
    work_dir: str | Path | None = None,
    record_secret: bytes | None = None,
) -> tuple[T.ProtectedTables, Any, dict[str, Any], KeptWitnesses | None]:
    """Build, protect and audit every table of a table order (nothing is written).

    With a ledger, every table package delivered before for the same years is part of what the
    reader knows (its published cells fixed, its hidden cells kept hidden) and every microdata
    extract of those years is checked with the tables; an order that history exposes is
    refused, naming the release. The earlier releases' kept witnesses are hints that make
    the joint problem quick; the last item is this release's, to keep (None for cell keys)."""
    policy, order, rules = plan.policy, plan.order, plan.table_rules
    if not order.tables or rules is None:
        raise PolicyRefused(Problem("no_tables", "the order asks for no table"))
    years = list(plan.years)
    cell_key = plan.cell_key
    if cell_key and record_secret is None:
        raise PolicyRefused(
            Problem("cellkey_no_secret", "the cell key method needs the record-key secret of the key store")
        )
    built = build_tables(order, plan.age_cuts, register, record_secret if cell_key else None)
    past = (
        table_history.earlier(ledger, work_dir, set(years), _rebuild(register, record_secret))
        if ledger is not None and work_dir is not None
        else table_history.TableHistory()
    )
    mixed = [e for e in past.tables if e.protection != ("cell_key" if cell_key else "suppression")]
    if mixed:
        raise DisclosureRefused(
            Problem(
                "mixed_protection",
                f"tables of the same years were released with {mixed[0].protection} (order "
                f"{mixed[0].order_id}, ledger entry {mixed[0].entry}): exact and perturbed values of "
                "the same cells together undo both",
                hint="protect tables of these years the way the earlier release did",
            )
        )
    if cell_key:
        return (*_with_cell_key(policy, order, built, past), None)
    tables = [*built, *(t for e in past.tables for t in e.tables)]
    published_before = [p for e in past.tables for p in e.published]
    known = [np.zeros(t.size, bool) for t in built] + published_before
    hidden_before = [np.zeros(t.size, bool) for t in built] + [~p for p in published_before]
    # the new tables under the names a later release will give them when it reads this one back
    names = [f"{order.order_id}/{t.name}" for t in built] + [t.name for t in tables[len(built) :]]
    hints = table_history.witnesses_for(past, names, [t.size for t in tables])
    everything = T.protect(tables, rules, known=known, hidden_before=hidden_before, witnesses=hints)
    report = table_audit.audit(everything)
    protected = _subset(everything, len(built))
    exposed = _extract_check(everything, past, everything.known or known) if report.passed else []
    if exposed:
        raise DisclosureRefused(
            Problem(
                "extract_exposes",
                "with the microdata extract(s) delivered for the same year ("
                + ", ".join(
                    f"order {x['order_id']}, ledger entry {x['entry']}: {x['cells']} cell(s)" for x in exposed
                )
                + ") a reader could narrow hidden cells of these tables too much",
                hint="order the tables at a detail the extract does not show (another age banding or kommun grouping)",
            )
        )
    _refuse_refills(protected.tables, past)
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
        "history": past.to_dict() | {"witnesses_adopted": int(everything.report.get("witnesses_adopted", 0))},
        "audit": report.to_dict(cells=False),  # never the intervals of hidden cells
    }
    return protected, report, summary, KeptWitnesses(everything, names)


def check_extract(
    order: Order,
    data: pd.DataFrame,
    register: pd.DataFrame,
    *,
    ledger: Any,
    work_dir: str | Path,
    record_secret: bytes | None = None,
) -> dict[str, Any] | None:
    """A microdata extract (its rows as they would be delivered) against the table packages
    delivered before for its years: the reverse of a table order measured with the extracts.

    The holder of the extract can count every cell whose coordinates the extract shows; with
    those as constants the attacker must still not narrow a hidden cell of the published tables
    too much (``extract_exposes``), and the published counts must not tell what the extract
    leaves blank (``extract_refill``). Refuses naming the table release. None when no table of
    the years was delivered."""
    years = sorted(set(order.years))
    past = table_history.earlier(
        ledger, work_dir, set(years), _rebuild(register, record_secret), extracts=False
    )
    if not past.tables:
        return None
    ex = table_history.Extract(order.order_id, "", 0, data, order.population.model_dump())
    refills = _refills([(e.entry, t) for e in past.tables for t in e.tables], [ex])
    if refills:
        entry, table, _, dims = refills[0]
        raise DisclosureRefused(
            Problem(
                "extract_refill",
                f"the extract leaves {', '.join(dims)} blank for some persons where table "
                f"'{table.name}' (ledger entry {entry}) publishes counts at that detail: the "
                "counts would tell the extract's holder what the blanks hold"
                + (f" ({len(refills)} tables in all)" if len(refills) > 1 else ""),
                hint="deliver the variable coarser (or not at all) for the years of the tables",
            )
        )
    exact = [e for e in past.tables if e.protection == "suppression"]
    summary: dict[str, Any] = {"tables": past.to_dict()["tables"], "cells_held": 0}
    if not exact:
        return summary
    tables = [t for e in exact for t in e.tables]
    published = [p for e in exact for p in e.published]
    # the rules the latest table release was protected under say which cells are sensitive
    latest = max(exact, key=lambda e: e.entry)
    try:
        earlier_policy = Policy.model_validate({k: v for k, v in latest.policy.items() if k != "hash"})
    except ValidationError:
        raise DisclosureRefused(
            Problem(
                "history_changed",
                f"the policy the table release of ledger entry {latest.entry} was protected under "
                "no longer reads; the extract cannot be measured with its tables",
                hint="prepare the extract with the lsssdc version that made the tables",
            )
        ) from None
    rules = table_rules(earlier_policy)
    hints = table_history.witnesses_for(
        table_history.TableHistory(tables=exact), [t.name for t in tables], [t.size for t in tables]
    )
    protected = T.protect(
        tables, rules, known=published, hidden_before=[~p for p in published], witnesses=hints
    )
    in_years = {str(y) for y in years}
    held = [k | table_history.derivable(t, data, in_years) for t, k in zip(tables, published, strict=True)]
    summary["cells_held"] = int(sum(int((h & ~k).sum()) for h, k in zip(held, published, strict=True)))
    report = table_audit.audit(replace(protected, known=held))
    if not report.passed:
        first = report.failures[0]
        raise DisclosureRefused(
            Problem(
                "extract_exposes",
                f"with this extract a reader could narrow {len(report.failures)} hidden cell(s) of the "
                f"tables delivered for the same years too much, e.g. table '{first['table']}'"
                f" (ledger entries {', '.join(str(e.entry) for e in exact)})",
                hint="deliver the variables the tables show coarser, or fewer of them, for those years",
            )
        )
    return summary


#: written next to `lsssdc tables` output: a draft, not a release
DRAFT_NOTICE = "UTKAST-DRAFT.txt"


def make_tables(policy: Policy, order: Order, register: pd.DataFrame, out_dir: str | Path) -> dict[str, Any]:
    """Protect and audit every table of a table order; write them to ``out_dir`` only if the
    audit passes. Returns the summary (the same facts as the written ``audit.json``)."""
    protected, report, summary, _ = protect_tables(make_plan(policy, order), register)
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
