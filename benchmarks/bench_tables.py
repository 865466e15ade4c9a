"""Cell suppression and its audit at register scale; prints one JSON object.

The table: persons by kommun (290 kommuner within 21 län within riket) x sex x age band
(8 bands) x insats (11 flags of the year, as a union margin), every margin included, one table
per year for the 25 synthetic years 2000-2024 (``synthesise(years=range(2000, 2025),
persons=75000, seed=0)``). Tables of different years share no cell, so each year is its own
problem. Rule: frequency threshold 3, zeros shown.

Then the reader holds this release when the next one comes: a second order per year (persons by
kommun and insats, cells the first shows as margins) is protected with the first release's
published cells fixed and its hidden cells kept hidden (``second_release_seconds``), and the
joint audit attacks both releases of every year at once (``joint_audit_seconds``);
``first_release_kept`` says the first release's statuses did not change. The first release's
witnesses are given to the second, as a release keeps them in its candidate
(``second_release_witnesses_adopted``; ``--no-witnesses`` protects without them).

Timed separately (wall clock): ``build_seconds`` (the 25 tables from the register; the
synthesis itself is not timed), ``protect_seconds`` (primary and secondary suppression,
including the attacks run inside it) and ``audit_seconds`` (the independent attacker over all
25 tables at once, as the release gate runs it). ``total_seconds`` is both releases with their audits, the
target is < 60 s. ``peak_mb`` is this process's peak resident set size during protect and audit
(the peak is reset after the tables are built, via ``/proc/self/clear_refs``; where that is not
possible it is the lifetime peak); ``data_mb`` is the resident size just before protect (the 25
tables); ``worker_peak_mb`` is the largest peak of the worker processes (``--workers``,
default 2). ``cpu_seconds`` is the processor time of protect and audit, this process and its
workers together (``resource.getrusage``, user + system): on a shared machine it says what the
work costs when the wall clock also counts other people's load.

Usage: ``python benchmarks/bench_tables.py [--years 25] [--workers 2] [--persons 75000]``
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import re
import resource
import sys
import time
from pathlib import Path

import numpy as np

from lsssdc.disclosure.tables import FrequencyRule, Rules, build_table, protect
from lsssdc.disclosure.tables.attack import audit
from lsssdc.disclosure.tables.model import renumber_witnesses
from lsssdc.register.synth import synthesise

TARGET_SECONDS = 60.0
DIMS = ["kommun", "sex", "age_band", "insats"]


def _status_mb(field: str) -> float | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    m = re.search(rf"{field}:\s+(\d+)\s+kB", text)
    return round(int(m.group(1)) / 1024, 1) if m else None


def _cpu() -> float:
    """User + system seconds of this process and its finished children."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--years", type=int, default=25, help="number of years ending 2024 (default 25)")
    ap.add_argument("--persons", type=int, default=75_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--no-witnesses",
        dest="witnesses",
        action="store_false",
        help="protect the second release without the first release's witnesses",
    )
    args = ap.parse_args(argv)
    years = range(2025 - args.years, 2025)

    t0 = time.perf_counter()
    reg = synthesise(years=years, persons=args.persons, seed=args.seed).register
    synth_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    reg_years = {y: reg[reg["year"] == y] for y in years}
    tables = [build_table(reg_years[y], DIMS, "persons", name=f"persons_{y}") for y in years]
    build_s = time.perf_counter() - t0
    del reg
    gc.collect()
    peak_reset = _reset_peak()
    data_mb = _status_mb("VmRSS")

    rules = Rules(FrequencyRule(threshold=3, zero_is_safe=True))
    cpu0 = _cpu()
    t0 = time.perf_counter()
    protected = protect(tables, rules, workers=args.workers)
    protect_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    report = audit(protected)
    audit_s = time.perf_counter() - t0

    # the reader holds this release when the next one comes: a second order per year (persons
    # by kommun and insats, cells the first shows as margins) protected with the first release's
    # published cells fixed and its hidden cells kept hidden, then the joint audit of both
    # releases of every year at once
    second = [build_table(reg_years[y], ["kommun", "insats"], "persons", name=f"kommun_{y}") for y in years]
    known = [np.zeros(t.size, bool) for t in second] + [st == 0 for st in protected.status]
    before = [np.zeros(t.size, bool) for t in second] + [st != 0 for st in protected.status]
    t0 = time.perf_counter()
    # the first release's witnesses (kept by the agency with the release, reviewer-only) are
    # placed at the first release's positions in the joint list
    placed = renumber_witnesses(protected.witnesses, np.arange(len(tables)) + len(second))
    both = protect(
        [*second, *tables],
        rules,
        workers=args.workers,
        known=known,
        hidden_before=before,
        witnesses=placed if args.witnesses else None,
    )
    history_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    joint = audit(both)
    joint_s = time.perf_counter() - t0
    cpu_s = _cpu() - cpu0
    kept = all((both.status[len(second) + i] == st).all() for i, st in enumerate(protected.status))

    self_mb = _status_mb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    counts = protected.counts()
    out = {
        "benchmark": "tables",
        "table": "persons by kommun (in län in riket) x sex x age band (8) x insats, all margins",
        "years": args.years,
        "tables": len(tables),
        "cells": counts["cells"],
        "primary": counts["primary"],
        "secondary": counts["secondary"],
        "published": counts["published"],
        "lp_repairs": protected.report.get("lp_repairs"),
        "audit_passed": report.passed,
        "audit_failed_cells": report.summary["failed"],
        "audit_lps": report.summary["lps"],
        "audit_witnesses_valid": report.summary["witnesses_valid"],
        "synth_seconds_untimed": round(synth_s, 2),
        "build_seconds": round(build_s, 2),
        "protect_seconds": round(protect_s, 2),
        "audit_seconds": round(audit_s, 2),
        "second_release_seconds": round(history_s, 2),
        "second_release_witnesses_adopted": both.report.get("witnesses_adopted"),
        "second_release_lp_repairs": both.report.get("lp_repairs"),
        "joint_audit_seconds": round(joint_s, 2),
        "joint_audit_passed": joint.passed,
        "first_release_kept": kept,
        "second_release_hidden": int(sum((st != 0).sum() for st in both.status[: len(second)])),
        "first_release_seconds": round(protect_s + audit_s, 2),
        "total_seconds": round(protect_s + audit_s + history_s + joint_s, 2),
        "cpu_seconds": round(cpu_s, 2),
        "target_seconds": TARGET_SECONDS,
        "within_target": protect_s + audit_s + history_s + joint_s < TARGET_SECONDS,
        "peak_mb": round(self_mb, 1),
        "peak_reset_after_build": peak_reset,
        "data_mb": data_mb,
        "worker_peak_mb": round(child_mb, 1),
        "workers": args.workers,
        "python": platform.python_version(),
    }
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0 if report.passed and joint.passed and kept else 1


if __name__ == "__main__":
    sys.exit(main())
