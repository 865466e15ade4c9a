"""Benchmark: link ~2 M LSS rows with a 10.5 M-row population register and the death register.

Prints one JSON object. The data are built in one subprocess and written to Parquet; the
linkage runs in a fresh subprocess, so that its peak memory (``ru_maxrss``) is the linkage's
own: reading the three files plus :func:`lsssdc.linkage.link`. Targets: < 30 s, < 6 GB.

    python benchmarks/bench_linkage.py                 # 1999-2024 at 75,000 persons a year
    python benchmarks/bench_linkage.py --persons 5000 --population 500000   # a quick look

Synthetic data only.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_SECONDS = 30.0
TARGET_PEAK_GB = 6.0

POLICY = """\
policy_version: 1
name: bench-linkage
allowed_variables: [year, kommun, personkrets]
linkage:
  population:
    variables: [kommun, birth_date, sex]
    duplicates: refuse
  deaths:
    variables: [death_date]
    duplicates: refuse
"""

ORDER = """\
order_version: 1
order_id: BENCH-1
diarienummer: "Dnr bench"
project_id: bench-linkage
recipient:
  name: Benchmark
  organisation: Benchmark
purpose: Linkage benchmark on synthetic data.
policy: bench-linkage
years: [{years}]
variables: [year, kommun, personkrets]
linkages:
  - register: population
    variables: [kommun, birth_date, sex]
  - register: deaths
    variables: [death_date]
"""


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KB on Linux


def _population_fallback(result, size: int, seed: int):
    """A population register like synthesise_population's, with unique numbers drawn without replacement."""
    import numpy as np
    import pandas as pd

    from lsssdc import refdata
    from lsssdc.identity.personnummer import luhn_check_digit

    rng = np.random.default_rng([seed, 11])
    persons = result.persons
    people = persons[~persons["samordningsnummer"] & persons["death_date"].isna()]
    k = size - len(people)
    first = np.datetime64("1920-01-01")
    days = int((np.datetime64("2024-12-31") - first).astype(int)) + 1
    taken = set((persons["personnummer"].astype(str).str[:11].astype(np.int64)).tolist())
    slots = rng.choice(days * 999, size=k + len(taken) + 1000, replace=False)
    birth = first + (slots // 999).astype("timedelta64[D]")
    nnn = (slots % 999 + 1).astype(np.int64)
    ymd = pd.DatetimeIndex(birth)
    y = ymd.year.to_numpy().astype(np.int64)
    m = ymd.month.to_numpy().astype(np.int64)
    d = ymd.day.to_numpy().astype(np.int64)
    key11 = ((y * 100 + m) * 100 + d) * 1000 + nnn
    keep = ~pd.Series(key11).isin(taken).to_numpy()
    y, m, d, nnn = (a[keep][:k] for a in (y, m, d, nnn))
    yy = y % 100
    digits = np.stack(
        [yy // 10, yy % 10, m // 10, m % 10, d // 10, d % 10, nnn // 100, nnn // 10 % 10, nnn % 10], 1
    )
    pnr = (y * 10**8 + (m * 100 + d) * 10**4 + nnn * 10 + luhn_check_digit(digits)).astype(str)
    b = refdata.befolkning()
    codes = b["kommun_kod"].to_numpy()
    w = b["folkmangd"].to_numpy(dtype=float)
    pop = pd.DataFrame(
        {
            "personnummer": np.concatenate([people["personnummer"].astype(str).to_numpy(), pnr]),
            "birth_date": np.concatenate(
                [
                    people["birth_date"].to_numpy(),
                    pd.to_datetime(y * 10000 + m * 100 + d, format="%Y%m%d").to_numpy(),
                ]
            ),
            "sex": np.concatenate([people["sex"].to_numpy(), np.where(nnn % 2 == 1, "1", "2")]),
            "kommun": np.concatenate(
                [codes[people["home"].to_numpy()], rng.choice(codes, size=k, p=w / w.sum())]
            ),
        }
    )
    pop = pop.iloc[rng.permutation(len(pop))].reset_index(drop=True)
    for col in ("personnummer", "sex", "kommun"):
        pop[col] = pop[col].astype("string[pyarrow]")
    return pop


def build(workdir: Path, years: list[int], persons: int, population: int, seed: int, builder: str) -> dict:
    """Synthesise the registers and write them as Parquet (not timed as linkage)."""
    from lsssdc.register import synth

    t0 = time.perf_counter()
    result = synth.synthesise(years, persons=persons, seed=seed)
    t1 = time.perf_counter()
    pop = None
    if builder == "bench":
        builder = "bench (chosen)"
    else:
        builder = "synthesise_population"
        try:
            pop = synth.synthesise_population(result, population, seed=seed, year=years[-1])
            dups = int(pop["personnummer"].duplicated().sum())
            if dups:
                builder = f"bench fallback (synthesise_population gave {dups} duplicate personnummer)"
                pop = None
        except ValueError as exc:
            builder = f"bench fallback (synthesise_population: {exc})"
    if pop is None:
        pop = _population_fallback(result, population, seed)
    t2 = time.perf_counter()
    result.register.to_parquet(workdir / "lss.parquet", index=False)
    pop.to_parquet(workdir / "population.parquet", index=False)
    result.deaths.to_parquet(workdir / "deaths.parquet", index=False)
    return {
        "synthesise_seconds": round(t1 - t0, 2),
        "population_seconds": round(t2 - t1, 2),
        "population_builder": builder,
        "population_duplicates": int(pop["personnummer"].duplicated().sum()),
    }


def link(workdir: Path, years: list[int]) -> dict:
    """Read the three registers and link them; time both; report peak memory."""
    import pandas as pd

    from lsssdc import linkage
    from lsssdc.policy import check_order, load_order, load_policy

    (workdir / "policy.yaml").write_text(POLICY, encoding="utf-8")
    (workdir / "order.yaml").write_text(ORDER.format(years=", ".join(map(str, years))), encoding="utf-8")
    policy, order = load_policy(workdir / "policy.yaml"), load_order(workdir / "order.yaml")
    check_order(order, policy)
    t0 = time.perf_counter()
    lss = pd.read_parquet(workdir / "lss.parquet")
    registers = {
        "population": pd.read_parquet(workdir / "population.parquet"),
        "deaths": pd.read_parquet(workdir / "deaths.parquet"),
    }
    t1 = time.perf_counter()
    out, report = linkage.link(lss, registers, order, policy)
    t2 = time.perf_counter()
    assert len(out) == len(lss)
    summary = {
        r.register: {
            "rows": r.rows,
            "matched_persons": r.matched_persons,
            "unmatched_persons": r.unmatched_persons,
            "match_share": r.match_share,
            "unmatched_samordningsnummer": r.unmatched_samordningsnummer,
        }
        for r in report.links
    }
    return {
        "lss_rows": len(lss),
        "lss_persons": report.extract.persons,
        "population_rows": len(registers["population"]),
        "death_rows": len(registers["deaths"]),
        "read_seconds": round(t1 - t0, 2),
        "link_seconds": round(t2 - t1, 2),
        "peak_rss_gb": round(_peak_gb(), 2),
        "report": summary,
    }


def _child(step: str, args: argparse.Namespace, workdir: Path) -> dict:
    cmd = [sys.executable, __file__, "--step", step, "--workdir", str(workdir)]
    cmd += ["--first", str(args.first), "--last", str(args.last), "--persons", str(args.persons)]
    cmd += ["--population", str(args.population), "--seed", str(args.seed), "--builder", args.builder]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--first", type=int, default=1999)
    ap.add_argument("--last", type=int, default=2024)
    ap.add_argument("--persons", type=int, default=75_000)
    ap.add_argument("--population", type=int, default=10_500_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--builder",
        choices=("auto", "bench"),
        default="auto",
        help="population register: synthesise_population (auto: with a fallback) or this file's builder",
    )
    ap.add_argument("--data", type=Path, help="keep the built registers here; reuse them when present")
    ap.add_argument("--step", choices=("build", "link"), help=argparse.SUPPRESS)
    ap.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    years = list(range(args.first, args.last + 1))
    if args.step == "build":
        print(json.dumps(build(args.workdir, years, args.persons, args.population, args.seed, args.builder)))
        return
    if args.step == "link":
        print(json.dumps(link(args.workdir, years)))
        return
    with tempfile.TemporaryDirectory(prefix="bench-linkage-") as tmp:
        work = args.data or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        files = [work / f"{n}.parquet" for n in ("lss", "population", "deaths")]
        if all(f.exists() for f in files):
            built = {"reused": str(work)}
        else:
            t0 = time.perf_counter()
            built = _child("build", args, work)
            built["build_seconds"] = round(time.perf_counter() - t0, 2)
        linked = _child("link", args, work)
    total = linked["read_seconds"] + linked["link_seconds"]
    result = {
        "benchmark": "linkage",
        "synthetic": True,
        "years": f"{args.first}-{args.last}",
        "persons_per_year": args.persons,
        **{k: linked[k] for k in ("lss_rows", "lss_persons", "population_rows", "death_rows")},
        "read_seconds": linked["read_seconds"],
        "link_seconds": linked["link_seconds"],
        "peak_rss_gb": linked["peak_rss_gb"],
        "target": {"seconds": TARGET_SECONDS, "peak_rss_gb": TARGET_PEAK_GB},
        "within_target": linked["link_seconds"] < TARGET_SECONDS and linked["peak_rss_gb"] < TARGET_PEAK_GB,
        "read_plus_link_seconds": round(total, 2),
        "build": built,
        "report": linked["report"],
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
