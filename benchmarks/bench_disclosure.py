"""Time and memory of microdata disclosure control at register scale; prints one JSON object.

Measured, each in a fresh Python process so that the memory peaks are separate:

* ``measure_10m``: k, distinct l and entropy l (:func:`lsssdc.disclosure.risk.measure`) on
  10 million rows with 5 quasi-identifiers (5-year age band, sex, kommun, personkrets, year)
  and one sensitive attribute (daglig verksamhet); 0.5 % of the age bands and kommun codes are
  missing (as if suppressed), so the missing-value path is exercised.
* ``suppress_2m``: local suppression to k = 5 on 2 million rows (5-year age band, sex, kommun,
  personkrets, year; suppression order kommun, year, age band, personkrets, sex).
* ``lattice_2m``: the lattice search on 2 million rows with three hierarchies (age in years ->
  5, 10, 20-year bands -> all; kommun -> small kommuner merged (< 50,000) -> län -> riket;
  personkrets -> 1 / 2-3 (4 is the old code for 3) -> all) and sex and year as they are;
  k = 5, at most 1 % of records suppressed.

The data: the synthetic LSS register 1999-2024 at 75,000 persons a year (about 1.9 million
rows, the size of the real register over all years), its quasi-identifiers derived (age at the
measurement date from the personnummer; personkrets, not collected 2004-2006, coded "-" there).
The 2-million cases use 2 million of its rows drawn without replacement (seeded); the
10-million case draws all its rows with replacement, so each combination keeps the register's
distribution. Quasi-identifiers are categoricals, as the coarsening functions return them.
Building the data is not timed.

Seconds are wall-clock for the measured step only. ``peak_mb`` is the process's peak resident
set size during the step (the peak is reset after the data are built, via
``/proc/self/clear_refs``; elsewhere it is the lifetime peak); ``data_mb`` is the resident
size just before the step, so ``peak_mb - data_mb`` is what the step itself needed.

Usage: ``python benchmarks/bench_disclosure.py [--seed 0]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGETS = {"measure_10m": 2.0, "suppress_2m": 20.0, "lattice_2m": 60.0}
ROWS = {"measure_10m": 10_000_000, "suppress_2m": 2_000_000, "lattice_2m": 2_000_000}


def _status_mb(field: str) -> float | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    m = re.search(rf"{field}:\s+(\d+)\s+kB", text)
    return round(int(m.group(1)) / 1024, 1) if m else None


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_mb() -> float:
    hwm = _status_mb("VmHWM")
    if hwm is not None:
        return hwm
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale, 1)


def _build_base(path: Path, seed: int) -> int:
    """The synthetic register's quasi-identifiers, written once as Parquet."""
    import pandas as pd

    from lsssdc import coarsen
    from lsssdc.identity.personnummer import parse
    from lsssdc.register.synth import synthesise

    reg = synthesise(years=range(1999, 2025), persons=75_000, seed=seed).register
    p = parse(reg["personnummer"])
    age = coarsen.age_at_measurement(p["birth_date"], reg["year"].astype(int))
    base = pd.DataFrame(
        {
            "age": age.astype("int16"),
            "age_band": coarsen.band_ages(age, coarsen.AgeBands.of_width(5, 85)).values,
            "sex": p["sex"].astype(str).astype("category"),
            "kommun": reg["kommun"].astype(str).astype("category"),
            "personkrets": reg["personkrets"].fillna("-").astype(str).astype("category"),
            "year": reg["year"].astype(str).astype("category"),
            "daglig_verksamhet": reg["daglig_verksamhet"].astype("int8").astype("category"),
        }
    )
    base.to_parquet(path)
    return len(base)


def _load(path: Path, rows: int, seed: int):
    import numpy as np
    import pandas as pd

    base = pd.read_parquet(path)
    rng = np.random.default_rng(seed)
    if rows >= 5 * len(base):
        idx = rng.integers(0, len(base), rows)
    elif rows <= len(base):
        idx = np.sort(rng.choice(len(base), rows, replace=False))
    else:
        idx = np.concatenate([np.arange(len(base)), rng.integers(0, len(base), rows - len(base))])
    return base.iloc[idx].reset_index(drop=True)


def _run_case(case: str, path: Path, seed: int) -> dict:
    import numpy as np
    import pandas as pd

    from lsssdc import coarsen
    from lsssdc.disclosure.lattice import generalise
    from lsssdc.disclosure.risk import Criteria, measure
    from lsssdc.disclosure.suppress import suppress_locally

    df = _load(path, ROWS[case], seed)
    out: dict = {"rows": len(df)}
    if case == "measure_10m":
        rng = np.random.default_rng(seed + 1)
        for col in ("age_band", "kommun"):
            codes = df[col].cat.codes.to_numpy().copy()
            codes[rng.random(len(df)) < 0.005] = -1
            df[col] = pd.Categorical.from_codes(codes, categories=df[col].cat.categories)
        qis = ["age_band", "sex", "kommun", "personkrets", "year"]
        crit = Criteria(k=5, l_diversity=2, entropy_l=1.5, sensitive=["daglig_verksamhet"])
        data_mb, reset = _status_mb("VmRSS"), _reset_peak()
        t0 = time.perf_counter()
        rep = measure(df, qis, crit)
        seconds = time.perf_counter() - t0
        out.update(
            k=rep.k,
            records_below_k=rep.records_below_k,
            combinations=rep.combinations,
            l_distinct=rep.l_distinct["daglig_verksamhet"],
            records_below_l=rep.records_below_l["daglig_verksamhet"],
            records_with_missing=rep.records_with_missing,
        )
    elif case == "suppress_2m":
        qis = ["age_band", "sex", "kommun", "personkrets", "year"]
        crit = Criteria(k=5, max_suppressed_share=1.0)
        data_mb, reset = _status_mb("VmRSS"), _reset_peak()
        t0 = time.perf_counter()
        _, rep = suppress_locally(df, qis, crit, order=["kommun", "year", "age_band", "personkrets", "sex"])
        seconds = time.perf_counter() - t0
        out.update(
            records_below_k_before=rep.before.records_below_k,
            rounds=rep.rounds,
            records_suppressed=rep.records_suppressed,
            suppressed_values=rep.suppressed_values,
            k_after=rep.after.k,
        )
    elif case == "lattice_2m":
        df = df[["age", "sex", "kommun", "personkrets", "year"]]
        hierarchies = [
            coarsen.age_hierarchy(
                "age",
                coarsen.AgeBands.of_width(5, 85),
                coarsen.AgeBands.of_width(10, 80),
                coarsen.AgeBands.of_width(20, 80),
                coarsen.AgeBands([0]),
            ),
            coarsen.kommun_hierarchy("kommun", coarsen.MergeSmallKommuner(50_000), "lan", "riket"),
            coarsen.mapping_hierarchy(
                "personkrets",
                [
                    ("1/2-3", {"1": "1", "2": "2-3", "3": "2-3", "4": "2-3", "-": "-"}),
                    ("all", dict.fromkeys("1234-", "*")),
                ],
            ),
            coarsen.identity_hierarchy("sex"),
            coarsen.identity_hierarchy("year"),
        ]
        crit = Criteria(k=5, max_suppressed_share=0.01)
        data_mb, reset = _status_mb("VmRSS"), _reset_peak()
        t0 = time.perf_counter()
        _, rep = generalise(df, hierarchies, crit)
        seconds = time.perf_counter() - t0
        d = rep.to_dict()
        out.update(
            search=d["search"],
            chosen={q: v["name"] for q, v in d["chosen"]["levels"].items()},
            records_suppressed=rep.records_suppressed,
            loss_metric=round(rep.utility["loss_metric"], 4),
        )
    else:
        raise SystemExit(f"unknown case {case}")
    out.update(seconds=round(seconds, 3), peak_mb=_peak_mb(), data_mb=data_mb, peak_reset=reset)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(_run_case(args.case, Path(args.base), args.seed)))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base.parquet"
        base_rows = _build_base(base, args.seed)
        results = {}
        for case in TARGETS:
            proc = subprocess.run(
                [sys.executable, __file__, "--case", case, "--base", str(base), "--seed", str(args.seed)],
                capture_output=True,
                text=True,
                check=False,
                env={**os.environ, "PYTHONHASHSEED": "0"},
            )
            if proc.returncode != 0:
                results[case] = {"error": proc.stderr.strip().splitlines()[-1:] or ["failed"]}
                continue
            res = json.loads(proc.stdout)
            res["target_seconds"] = TARGETS[case]
            res["within_target"] = res["seconds"] < TARGETS[case]
            results[case] = res
    print(
        json.dumps(
            {
                "benchmark": "disclosure",
                "python": platform.python_version(),
                "machine": platform.machine(),
                "cpus": os.cpu_count(),
                "base_rows": base_rows,
                "data": "synthetic LSS register 1999-2024, 75,000 persons a year (2M: drawn without replacement; 10M: with)",
                "cases": results,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
