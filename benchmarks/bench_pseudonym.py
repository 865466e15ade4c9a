"""Seconds and peak memory to pseudonymise 10 million personnummer, printed as JSON.

The personnummer are synthetic (lsssdc.register.synth.make_personnummer) and made before the
clock starts. The timed call is what a user of the API runs on a column read from a file:
``pseudonymise(series, key)``, i.e. parsing and validation, one AES
call over all rows, the collision check and rendering. Peak memory is the process's resident set sampled
during the call, also given as the growth over the resident set before it. Processor time
(``cpu_seconds``: user + system of the process, all threads, from ``getrusage``) is given next to
the wall-clock seconds, since other work on a shared machine stretches the latter.

Usage: python benchmarks/bench_pseudonym.py [--n 10000000] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from lsssdc.identity.pseudonym import PseudonymKey, personnummer_digits, pseudonymise, reidentify
from lsssdc.register.synth import make_personnummer

_PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * _PAGE / 2**20


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(fn: Callable[[], Any]) -> tuple[Any, float, float, float, float]:
    """(result, seconds, processor seconds, peak resident MB during the call, growth in MB over the start).

    The processor seconds include the memory sampler's, a few milliseconds per second.
    """
    start_mb = _rss_mb()
    peak = [start_mb]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_mb())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0, c0 = time.perf_counter(), _cpu_seconds()
    result = fn()
    seconds, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
    done.set()
    sampler.join()
    peak[0] = max(peak[0], _rss_mb())
    return result, seconds, cpu, peak[0], peak[0] - start_mb


def synthetic(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    birth = np.datetime64("1925-01-01") + rng.integers(0, 365 * 99, n).astype("timedelta64[D]")
    sex = np.where(rng.random(n) < 0.5, "1", "2")
    return make_personnummer(rng, birth, sex, rng.random(n) < 0.02)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    load = os.getloadavg()[0]  # other work on a shared machine stretches the wall-clock seconds

    t0 = time.perf_counter()
    values = synthetic(args.n, args.seed)
    column = pd.Series(values.astype(object), name="personnummer")  # as fileio.read_table gives it
    arrow_column = column.astype("string[pyarrow]")
    del values
    key = PseudonymKey.derive(os.urandom(32), "BENCH-1", 1)
    make_seconds = time.perf_counter() - t0

    pseudonyms, seconds, cpu, peak_mb, growth_mb = measure(lambda: pseudonymise(column, key))
    _, arrow_seconds, arrow_cpu, _, _ = measure(lambda: pseudonymise(arrow_column, key))
    _, parse_seconds, parse_cpu, _, _ = measure(lambda: personnummer_digits(column))
    back, reidentify_seconds, reidentify_cpu, _, _ = measure(lambda: reidentify(pseudonyms, key))
    assert pseudonyms.nunique() == args.n and back.iloc[:1000].tolist() == column.iloc[:1000].tolist()

    print(
        json.dumps(
            {
                "benchmark": "pseudonymise",
                "n": args.n,
                "input": "object strings, as read_table returns them",
                "seconds": round(seconds, 3),
                "cpu_seconds": round(cpu, 3),
                "peak_mb": round(peak_mb, 1),
                "peak_growth_mb": round(growth_mb, 1),
                "seconds_arrow_string_input": round(arrow_seconds, 3),
                "cpu_seconds_arrow_string_input": round(arrow_cpu, 3),
                "parse_seconds": round(parse_seconds, 3),
                "parse_cpu_seconds": round(parse_cpu, 3),
                "seconds_after_parse": round(seconds - parse_seconds, 3),
                "reidentify_seconds": round(reidentify_seconds, 3),
                "reidentify_cpu_seconds": round(reidentify_cpu, 3),
                "target_seconds": 5.0,
                "within_target": seconds < 5.0,
                "setup_seconds": round(make_seconds, 1),
                "cpus": os.cpu_count(),
                "load_average_1min_at_start": round(load, 2),
                "python": platform.python_version(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
