"""Benchmark of the audit ledger: prints one JSON object.

Appending 10,000 signed entries (one transaction each, as in use), verifying a ledger of
100,000 entries, the Merkle root of 1 million leaves, and the person index of 75,000 persons.
Run: python benchmarks/bench_ledger.py [--quick]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lsssdc.audit import merkle
from lsssdc.audit import person_index as pindex
from lsssdc.audit.ledger import Ledger
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="Sizes divided by ten (smoke run).")
    args = parser.parse_args()
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
