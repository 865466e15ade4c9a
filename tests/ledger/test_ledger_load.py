"""A short run of the ledger load test (``benchmarks/bench_ledger.py --load``) on both stores.

Four processes append signed entries at once for a few seconds. Only the load driver is shared
with the benchmark; what it left behind is read here with code of this module's own (raw SQL,
the JSON bodies, SHA-256 and Ed25519): no entry lost, none twice, each process's entries in its
own order, the chain unbroken and every signature valid, and ``Ledger.verify`` intact too.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections import defaultdict
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from benchmarks.bench_ledger import run_load
from lsssdc.ledger.chain import Ledger
from tests.pg import postgres_server, postgres_url  # noqa: F401 - fixtures

pytestmark = pytest.mark.slow  # two stores, a few seconds of appending each, spawned processes

PROCESSES = 4
SECONDS = 3.0


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "load.sqlite")
    return request.getfixturevalue("postgres_url")


def _rows(target: str) -> list[tuple[int, str, str, str]]:
    """(seq, hash, signature, body) of every stored entry, as the database holds them."""
    sql = "SELECT seq, hash, signature, body FROM entries ORDER BY seq"
    if target.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(target) as con:
            return [tuple(r) for r in con.execute(sql).fetchall()]
    con = sqlite3.connect(f"file:{target}?mode=ro", uri=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_concurrent_appends_lose_repeat_and_reorder_nothing(target: str) -> None:
    run = run_load(target, PROCESSES, SECONDS)
    assert run["exitcodes"] == [0] * PROCESSES, run["errors"]
    assert run["errors"] == {}
    reported = run["reported"]
    assert sorted(reported) == list(range(PROCESSES)), "a process did not report"
    assert all(n > 0 for n in reported.values()), reported

    rows = _rows(target)
    assert [r[0] for r in rows] == list(range(1, len(rows) + 1)), "the sequence numbers have a gap"
    assert len(rows) == sum(reported.values()), "entries lost or added"
    prev = "0" * 64
    by_process: dict[int, list[int]] = defaultdict(list)
    ledger_order: list[int] = []
    for seq, digest, signature, body in rows:
        raw = body.encode("utf-8")
        assert hashlib.sha256(raw).hexdigest() == digest, f"entry {seq} does not match its hash"
        d = json.loads(raw)
        assert (d["seq"], d["prev"]) == (seq, prev), f"entry {seq} breaks the chain"
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(d["key"])).verify(bytes.fromhex(signature), raw)
        prev = digest
        worker, n = d["payload"]["load_worker"], d["payload"]["load_seq"]
        assert d["actor"] == f"load-{worker}"
        by_process[worker].append(n)
        ledger_order.append(worker)
    # a process's n-th successful append carries n: exactly 0..n-1, in ledger order
    assert dict(by_process) == {w: list(range(n)) for w, n in reported.items()}
    switches = sum(a != b for a, b in zip(ledger_order, ledger_order[1:], strict=False))
    assert switches >= PROCESSES, "the processes did not append at the same time"

    led = Ledger.open(target, create=False, readonly=True)
    try:
        report = led.verify()
    finally:
        led.close()
    assert report.ok and report.size == len(rows), [p.render() for p in report.problems]
