"""Table releases of one year, each protected against every earlier one; prints one JSON object.

A year of the synthetic register (``synthesise(years=[2023], persons=20000, seed=0)``) gets
four table orders in turn, as a statistics agency answers them: (1) persons by kommun x insats
and by län x sex x age band, (2) kommun x sex x insats, (3) län x sex x insats, (4) kommun x age
band x insats. Each is protected with every earlier release's published cells fixed, its hidden
cells kept hidden and its witnesses given (as a release keeps them in its candidate), and the
library's attacker audits all releases together. Per order: seconds to protect and to audit,
witnesses taken over, LP repairs, hidden cells, whether every earlier release kept its statuses.
``--no-witnesses`` protects without the earlier witnesses; ``--alone`` also times each order
protected on its own, for comparison. Rule: frequency threshold 3, zeros shown.

Usage: ``python benchmarks/bench_table_history.py [--persons 20000] [--no-witnesses] [--alone]``
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time

import numpy as np

from lsssdc.disclosure.tables import FrequencyRule, Rules, build_table, protect
from lsssdc.disclosure.tables.attack import audit
from lsssdc.disclosure.tables.model import renumber_witnesses
from lsssdc.register.synth import synthesise

ORDERS = (
    (("kommun", "insats"), ("lan", "sex", "age_band")),
    (("kommun", "sex", "insats"),),
    (("lan", "sex", "insats"),),
    (("kommun", "age_band", "insats"),),
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--persons", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-witnesses", dest="witnesses", action="store_false")
    ap.add_argument("--alone", action="store_true", help="also protect each order on its own")
    args = ap.parse_args(argv)
    reg = synthesise(years=[2023], persons=args.persons, seed=args.seed).register
    rules = Rules(FrequencyRule(threshold=3, zero_is_safe=True))
    tables: list = []
    status: list[np.ndarray] = []
    witnesses = None
    steps = []
    for k, order in enumerate(ORDERS, start=1):
        new = [build_table(reg, list(dims), "persons", name=f"order{k}_{i}") for i, dims in enumerate(order)]
        known = [np.zeros(t.size, bool) for t in new] + [s == 0 for s in status]
        before = [np.zeros(t.size, bool) for t in new] + [s != 0 for s in status]
        placed = (
            renumber_witnesses(witnesses, np.arange(len(tables)) + len(new))
            if args.witnesses and witnesses
            else None
        )
        t0 = time.perf_counter()
        res = protect([*new, *tables], rules, known=known, hidden_before=before, witnesses=placed)
        protect_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        report = audit(res)
        audit_s = time.perf_counter() - t0
        step = {
            "order": k,
            "tables": [" x ".join(d) for d in order],
            "protect_seconds": round(protect_s, 2),
            "audit_seconds": round(audit_s, 2),
            "audit_passed": report.passed,
            "earlier_kept": all((res.status[len(new) + i] == s).all() for i, s in enumerate(status)),
            "witnesses_adopted": res.report.get("witnesses_adopted"),
            "lp_repairs": res.report.get("lp_repairs"),
            "hidden": int(sum((s != 0).sum() for s in res.status[: len(new)])),
            "cells": int(sum(t.size for t in new)),
        }
        if args.alone:
            t0 = time.perf_counter()
            protect(new, rules)
            step["alone_seconds"] = round(time.perf_counter() - t0, 2)
        steps.append(step)
        tables = [*new, *tables]
        status = res.status
        witnesses = res.witnesses
    out = {
        "benchmark": "table_history",
        "persons": args.persons,
        "witnesses": args.witnesses,
        "orders": steps,
        "total_seconds": round(sum(s["protect_seconds"] + s["audit_seconds"] for s in steps), 2),
        "all_passed": all(s["audit_passed"] and s["earlier_kept"] for s in steps),
        "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "python": platform.python_version(),
    }
    json.dump(out, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
