"""Time and memory of the register foundation at full size; prints one JSON object.

Measured, each in a fresh Python process so that the memory peaks are separate:

* ``synthesise``: the LSS register 1999-2024 at 75,000 persons a year (about 1.9 million rows)
  and its death register;
* ``validate``: what ``lsssdc validate FILE --deaths FILE`` does with that register written as
  Parquet: read and type the file, read the death register, run every rule;
* ``parse_10m``: :func:`lsssdc.identity.personnummer.parse` over 10 million values (mixed
  shapes: 12 digits, 12 with '-', 10 with '-' or '+', and a few invalid ones).

Seconds are wall-clock (``seconds``) and processor time of the measuring process
(``cpu_seconds``, all threads) for the measured step only (building the input is not counted: the
register is written by the synthesise process, the 10 million values by a process of their
own); peak MB is the measuring process's maximum resident set size (``ru_maxrss``) when the
step ends, so it includes the interpreter, the libraries and the step's input as read.

Usage: ``python benchmarks/bench_register.py [--persons 75000] [--seed 0]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGETS = {"synthesise": 60.0, "validate": 10.0, "parse_10m": 10.0}
YEARS = range(1999, 2025)


def _peak_mb() -> float:
    # ru_maxrss is in kilobytes on Linux (bytes on macOS)
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale, 1)


def _synthesise(work: Path, persons: int, seed: int) -> dict:
    from lsssdc.register import files, synth

    t0, c0 = time.perf_counter(), time.process_time()
    result = synth.synthesise(YEARS, persons=persons, seed=seed)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = _peak_mb()
    files.write_registers({"lss": result.register, "deaths": result.deaths}, work, "parquet")  # not timed
    return {
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu, 2),
        "peak_mb": peak,
        "rows": len(result.register),
        "deaths": len(result.deaths),
    }


def _validate(work: Path) -> dict:
    from lsssdc.register import files, rules

    t0, c0 = time.perf_counter(), time.process_time()
    register = files.read_register(work / "lss.parquet")
    deaths = files.read_deaths(work / "deaths.parquet")
    t1 = time.perf_counter()
    report = rules.validate(register, deaths, source="lss.parquet")
    t2, c2 = time.perf_counter(), time.process_time()
    return {
        "seconds": round(t2 - t0, 2),
        "cpu_seconds": round(c2 - c0, 2),
        "read_seconds": round(t1 - t0, 2),
        "rules_seconds": round(t2 - t1, 2),
        "peak_mb": _peak_mb(),
        "rows": report.rows,
        "errors": report.errors,
        "warnings": report.warnings,
    }


def _parse_input(work: Path, n: int, seed: int) -> dict:
    """Write ``n`` personnummer in mixed shapes to a Parquet file (in its own process)."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from lsssdc.identity import personnummer as P

    rng = np.random.default_rng(seed)
    born = np.datetime64("1925-01-01") + rng.integers(0, 36_000, size=n).astype("timedelta64[D]")
    ymd = pd.DatetimeIndex(born)
    y, m, d = (ymd.year.to_numpy(np.int64), ymd.month.to_numpy(np.int64), ymd.day.to_numpy(np.int64))
    nnn = rng.integers(1, 1000, size=n)
    nine = np.stack(
        [(y % 100) // 10, y % 10, m // 10, m % 10, d // 10, d % 10, nnn // 100, (nnn // 10) % 10, nnn % 10],
        axis=1,
    )
    check = P.luhn_check_digit(nine).astype(np.int64)
    del nine
    twelve = pa.array(((y * 10000 + m * 100 + d) * 10000 + nnn * 10 + check).astype(str))
    dash = pc.binary_join_element_wise(
        pc.utf8_slice_codeunits(twelve, 0, 8), pc.utf8_slice_codeunits(twelve, 8, 12), "-"
    )
    ten = pc.utf8_slice_codeunits(dash, 2, 13)
    values = pc.choose(pa.array(rng.integers(0, 4, size=n)), twelve, dash, ten, twelve)
    bad = np.zeros(n, bool)
    bad[::1000] = True  # 0.1 % invalid (check digit)
    values = pc.if_else(pa.array(bad), pa.scalar("19640823-3230"), values)
    pq.write_table(pa.table({"personnummer": values}), work / "personnummer.parquet")
    return {"values": n}


def _parse(work: Path) -> dict:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lsssdc.identity import personnummer as P

    table = pq.read_table(work / "personnummer.parquet")
    series = table.column(0).to_pandas(types_mapper={pa.string(): pd.StringDtype("pyarrow")}.get)
    del table
    t0, c0 = time.perf_counter(), time.process_time()
    out = P.parse(series, reference_date="2024-10-01")
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu, 2),
        "peak_mb": _peak_mb(),
        "values": len(out),
        "valid": int(out["valid"].sum()),
    }


def _child(step: str, args: argparse.Namespace) -> None:
    if step == "synthesise":
        out = _synthesise(Path(args.work), args.persons, args.seed)
    elif step == "validate":
        out = _validate(Path(args.work))
    elif step == "parse_input":
        out = _parse_input(Path(args.work), args.values, args.seed)
    else:
        out = _parse(Path(args.work))
    print(json.dumps(out))


def _run_child(step: str, args: argparse.Namespace, work: str) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        step,
        "--work",
        work,
        "--persons",
        str(args.persons),
        "--seed",
        str(args.seed),
        "--values",
        str(args.values),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"failed": True, "exit_code": done.returncode, "stderr_tail": done.stderr[-500:]}
    out = json.loads(done.stdout.strip().splitlines()[-1])
    if step in TARGETS:
        out["target_seconds"] = TARGETS[step]
        out["met"] = out["seconds"] < TARGETS[step]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=75_000)
    parser.add_argument("--values", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", choices=[*TARGETS, "parse_input"])
    parser.add_argument("--work")
    args = parser.parse_args()
    if args.child:
        _child(args.child, args)
        return
    load = os.getloadavg()[0]  # other work on a shared machine stretches the wall-clock seconds
    with tempfile.TemporaryDirectory(prefix="lsssdc-bench-") as work:
        results = {}
        for step in TARGETS:
            if step == "parse_10m":  # the input is built by a process of its own, not measured
                prepared = _run_child("parse_input", args, work)
                if prepared.get("failed"):
                    results[step] = prepared
                    continue
            results[step] = _run_child(step, args, work)
    report = {
        "benchmark": "register",
        "years": f"{YEARS[0]}-{YEARS[-1]}",
        "persons_per_year": args.persons,
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_1min_at_start": round(load, 2),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        **results,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
