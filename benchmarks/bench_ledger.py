"""Benchmark of the audit ledger: prints one JSON object.

Appending 10,000 signed entries (one transaction each, as in use), verifying a ledger of
100,000 entries, the Merkle root of 1 million leaves, and the person index of 75,000 persons.
Run: python benchmarks/bench_ledger.py [--quick]

``--load``: a bounded load test instead. For each store (a SQLite file in a temporary folder, and
a throwaway PostgreSQL server started as the tests start theirs, see tests/pg.py), 8 processes
append signed entries at once for ``--seconds`` (default 60), each payload carrying the process's
number and its own sequence number. Afterwards the entries are read back and checked: as many as
the processes reported (none lost), no (process, seq) twice, each process's entries in ledger
order, and ``verify()`` intact. Prints appends per second per store; exits 1 when a check fails.
Run: python benchmarks/bench_ledger.py --load [--seconds 60] [--processes 8] [--stores sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import multiprocessing
import os
import queue
import resource
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lsssdc.ledger import merkle
from lsssdc.ledger import person_index as pindex
from lsssdc.ledger.chain import Ledger
from lsssdc.register import synth


def _payload(i: int) -> dict:
    return {
        "order": f"O-{i:06d}",
        "project": "P-2024-017",
        "policy_sha256": hashlib.sha256(b"policy").hexdigest(),
        "inputs": {"lss.parquet": hashlib.sha256(str(i).encode()).hexdigest()},
        "risk": {"k_min": 5, "max_risk": 0.031, "suppressed": 12},
        "verdict": "release",
    }


# --- the load test (--load) -----------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
LOAD_ORIGIN = "lsssdc-load-bench"


def _load_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"bench load").digest())


def load_actor(worker: int) -> str:
    return f"load-{worker}"


def load_actor_keys(processes: int) -> dict:
    """The trusted public key of every load process's actor (all share one signing key)."""
    public = _load_key().public_key()
    return {load_actor(w): public for w in range(processes)}


def _load_worker(
    target: str, worker: int, processes: int, seconds: float, barrier: Any, results: Any
) -> None:
    """Append until ``seconds`` after the common start; report how many appends succeeded.

    The payload's ``load_seq`` is the number of this process's appends that succeeded before:
    after a failed append the same number is tried again, so the entries of process ``w`` must
    read back as exactly 0, 1, ..., n-1 in ledger order.
    """
    errors: Counter[str] = Counter()
    latencies: list[float] = []
    n = 0
    led = None
    try:
        led = Ledger.open(target, signer=_load_key(), actor_keys=load_actor_keys(processes), create=False)
    except Exception as exc:
        errors[f"open: {type(exc).__name__}: {str(exc)[:200]}"] += 1
    barrier.wait(timeout=300)
    deadline = time.monotonic() + seconds
    failures_in_a_row = 0
    while led is not None and time.monotonic() < deadline and failures_in_a_row < 100:
        t = time.perf_counter()
        try:
            led.append("prepare", load_actor(worker), {"load_worker": worker, "load_seq": n})
        except Exception as exc:
            errors[f"{type(exc).__name__}: {str(exc)[:200]}"] += 1
            failures_in_a_row += 1
            continue
        latencies.append(time.perf_counter() - t)
        failures_in_a_row = 0
        n += 1
    if led is not None:
        led.close()
    results.put({"worker": worker, "appends": n, "errors": dict(errors), "latencies": latencies})


def run_load(target: str, processes: int = 8, seconds: float = 60.0) -> dict[str, Any]:
    """Create a ledger at ``target`` and let ``processes`` processes (spawned) append signed
    entries to it at once for ``seconds``; return what they reported (nothing is checked here).

    The result: ``reported`` (process number -> appends that succeeded), ``errors`` (message ->
    count), ``exitcodes``, ``seconds`` (from the common start to the last report) and
    ``latencies`` (seconds per successful append, sorted).
    """
    Ledger.open(target, signer=_load_key(), origin=LOAD_ORIGIN).close()
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(processes + 1)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_load_worker, args=(target, w, processes, seconds, barrier, results))
        for w in range(processes)
    ]
    for p in procs:
        p.start()
    reports: list[dict[str, Any]] = []
    try:
        barrier.wait(timeout=300)  # every process has opened the ledger: the clock starts now
        start = time.perf_counter()
        while len(reports) < processes:
            try:
                reports.append(results.get(timeout=1.0))
            except queue.Empty:
                if not any(p.is_alive() for p in procs) and results.empty():
                    break  # a process died without reporting
        wall = time.perf_counter() - start
    finally:
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
                p.join()
    errors: Counter[str] = Counter()
    for r in reports:
        errors.update(r["errors"])
    return {
        "reported": {r["worker"]: r["appends"] for r in reports},
        "errors": dict(errors),
        "exitcodes": [p.exitcode for p in procs],
        "seconds": wall,
        "latencies": sorted(x for r in reports for x in r["latencies"]),
    }


def check_load(target: str, reported: dict[int, int], processes: int) -> dict[str, Any]:
    """Read the entries back and check them against what the processes reported."""
    led = Ledger.open(target, actor_keys=load_actor_keys(processes), create=False, readonly=True)
    try:
        order: dict[int, list[int]] = {}
        stray = 0
        for e in led.entries():
            w, seq = e.payload.get("load_worker"), e.payload.get("load_seq")
            if not isinstance(w, int) or not isinstance(seq, int) or e.actor != load_actor(w):
                stray += 1
                continue
            order.setdefault(w, []).append(seq)
        t = time.perf_counter()
        report = led.verify()
        verify_seconds = time.perf_counter() - t
        size = report.size
    finally:
        led.close()
    read = sum(len(v) for v in order.values())
    pairs = [(w, s) for w, seqs in order.items() for s in seqs]
    checks = {
        "processes_all_reported": len(reported) == processes,
        "count_matches_reported": read == sum(reported.values()) and stray == 0,
        "no_duplicates": len(pairs) == len(set(pairs)),
        "in_order_per_process": all(all(a < b for a, b in itertools.pairwise(v)) for v in order.values()),
        "none_lost": all(order.get(w, []) == list(range(n)) for w, n in reported.items())
        and set(order) <= set(reported),
        "verify_intact": report.ok,
    }
    return {
        "entries": size,
        "checks": checks,
        "verify_seconds": round(verify_seconds, 3),
        "verify_problems": [p.render() for p in report.problems[:5]],
    }


def _load_one(target: str, processes: int, seconds: float) -> dict[str, Any]:
    run = run_load(target, processes, seconds)
    total = sum(run["reported"].values())
    lat = run["latencies"]

    def pct(q: float) -> float | None:
        return round(1000 * lat[min(len(lat) - 1, int(q * len(lat)))], 2) if lat else None

    out: dict[str, Any] = {
        "appends": total,
        "duration_seconds": round(run["seconds"], 3),
        "appends_per_second": round(total / run["seconds"], 1) if run["seconds"] else None,
        "per_process": [run["reported"].get(w, 0) for w in range(processes)],
        "append_latency_ms": {"p50": pct(0.5), "p99": pct(0.99), "max": pct(1.0)},
        "errors": run["errors"],
        "exitcodes": run["exitcodes"],
    }
    out.update(check_load(target, run["reported"], processes))
    out["ok"] = all(out["checks"].values()) and not run["errors"] and run["exitcodes"] == [0] * processes
    return out


def load_main(processes: int, seconds: float, stores: list[str]) -> int:
    out: dict[str, Any] = {
        "mode": "load",
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "processes": processes,
        "seconds": seconds,
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
        "stores": {},
    }
    for name in stores:
        if name == "sqlite":
            with tempfile.TemporaryDirectory() as tmp:
                result = _load_one(str(Path(tmp) / "load.sqlite"), processes, seconds)
            result["store"] = "SQLite file (WAL, synchronous=FULL), temporary folder"
        elif name == "postgresql":
            sys.path.insert(0, str(ROOT))
            from tests import pg  # the tests' throwaway server: one way to start it

            reason = pg.unavailable()
            if reason is not None:
                out["stores"][name] = {"skipped": reason}
                continue
            with pg.running_server() as server:
                result = _load_one(pg.create_database(server, "ledger_load"), processes, seconds)
            result["store"] = "throwaway local PostgreSQL server (Unix socket, fsync=off)"
        else:
            raise SystemExit(f"unknown store {name!r} (sqlite, postgresql)")
        out["stores"][name] = result
    out["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(out, indent=2))
    return 0 if all(r.get("ok", True) for r in out["stores"].values()) else 1


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="Sizes divided by ten (smoke run).")
    parser.add_argument("--load", action="store_true", help="Run the concurrent load test instead.")
    parser.add_argument("--seconds", type=float, default=60.0, help="--load: how long to append (60).")
    parser.add_argument("--processes", type=int, default=8, help="--load: appending processes (8).")
    parser.add_argument(
        "--stores", default="sqlite,postgresql", help="--load: stores to load (sqlite,postgresql)."
    )
    args = parser.parse_args()
    if args.load:
        raise SystemExit(load_main(args.processes, args.seconds, args.stores.split(",")))
    scale = 10 if args.quick else 1
    n_append, n_verify, n_leaves, n_persons = 10_000 // scale, 100_000 // scale, 1_000_000 // scale, 75_000
    key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"bench").digest())
    out: dict = {"python": sys.version.split()[0]}
    with tempfile.TemporaryDirectory() as tmp:
        led = Ledger.open(Path(tmp) / "append.sqlite", signer=key)
        t = time.perf_counter()
        for i in range(n_append):
            led.append("prepare", "operator", _payload(i))
        out["append_entries"] = n_append
        out["append_seconds"] = round(time.perf_counter() - t, 3)
        led.close()

        led = Ledger.open(Path(tmp) / "verify.sqlite", signer=key)
        t = time.perf_counter()
        for start in range(0, n_verify, 10_000):
            led.extend(
                [("prepare", "operator", _payload(i)) for i in range(start, min(start + 10_000, n_verify))]
            )
        out["bulk_build_seconds"] = round(time.perf_counter() - t, 3)
        led.checkpoint()
        t = time.perf_counter()
        report = led.verify()
        out["verify_entries"] = n_verify
        out["verify_seconds"] = round(time.perf_counter() - t, 3)
        out["verify_ok"] = report.ok
        out["ledger_bytes"] = (Path(tmp) / "verify.sqlite").stat().st_size
        led.close()

    t = time.perf_counter()
    leaves = [merkle.leaf_hash(i.to_bytes(8, "big")) for i in range(n_leaves)]
    out["merkle_leaves"] = n_leaves
    out["merkle_leaf_hash_seconds"] = round(time.perf_counter() - t, 3)
    t = time.perf_counter()
    merkle.root(leaves)
    out["merkle_root_seconds"] = round(time.perf_counter() - t, 3)
    t = time.perf_counter()
    proof = merkle.consistency_proof(n_leaves // 3, leaves)
    out["merkle_consistency_proof_seconds"] = round(time.perf_counter() - t, 3)
    out["merkle_consistency_proof_hashes"] = len(proof)
    del leaves

    persons = synth.synthesise([2024], persons=n_persons, seed=0).register["personnummer"]
    index_key = hashlib.sha256(b"bench index").digest()
    t = time.perf_counter()
    index = pindex.build(persons, index_key)
    out["person_index_persons"] = index.persons
    out["person_index_seconds"] = round(time.perf_counter() - t, 3)
    out["person_index_bytes"] = len(index.tags)
    out["peak_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
