"""kill -9 at every step boundary of prepare, approve, reject and deliver (and at random
instants): afterwards the work area and the ledger agree. No candidate, decision file or
package is visible without its ledger entry, the ledger verifies, and an approved candidate is
never lost. The checks read the files and the raw SQLite ledger with code of their own."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lsssdc import faults
from lsssdc.register import files
from tests.release.conftest import DAGLIG, PASSPHRASE, make_keystore, order_path, policy_path

pytestmark = pytest.mark.slow  # each case runs the command line in a process of its own

ORDER = "B2026-0017"
CLI = "from lsssdc.cli import main; main()"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, small) -> Path:
    """A site with registers, a key store and a ledger holding one approved candidate (attempt 1)."""
    root = tmp_path_factory.mktemp("crash-base")
    files.write_registers({"lss": small.register}, root / "data", "parquet")
    make_keystore(root / "keys" / "k.json", ("ordering-service", "reviewer-a", "reviewer-b"))
    assert _cli(root, *_prepare(root)).returncode == 0
    assert _cli(root, *_decide(root, "approve", 1)).returncode == 0
    return root


def _cli(root: Path, *args: str, kill_at: str | None = None, timeout: float = 600):
    env = {**os.environ, "LSSSDC_PASSPHRASE": PASSPHRASE}
    env.pop(faults.ENV, None)
    if kill_at:
        env[faults.ENV] = kill_at
    return subprocess.run(
        [sys.executable, "-c", CLI, *args], cwd=root, env=env, capture_output=True, text=True, timeout=timeout
    )


def _common(root: Path) -> list[str]:
    return ["--key-store", str(root / "keys" / "k.json"), "--ledger", str(root / "ledger" / "l.sqlite")]


def _prepare(root: Path) -> list[str]:
    return [
        "prepare", "--policy", str(policy_path(DAGLIG[0])), "--order", str(order_path(DAGLIG[1])),
        "--register", str(root / "data" / "lss.parquet"), "--work", str(root / "work"), *_common(root),
    ]  # fmt: skip


def _decide(root: Path, verb: str, attempt: int, reviewer: str = "reviewer-a") -> list[str]:
    extra = ["--reason", "purpose too broad"] if verb == "reject" else []
    return [verb, str(root / "work" / ORDER / str(attempt)), "--reviewer", reviewer, *extra, *_common(root)]


def _deliver(root: Path, attempt: int = 1, name: str = "pkg") -> list[str]:
    return [
        "deliver",
        str(root / "work" / ORDER / str(attempt)),
        "--to",
        str(root / "out" / name),
        *_common(root),
    ]


def _entries(root: Path) -> list[tuple[str, dict]]:
    con = sqlite3.connect(f"file:{root / 'ledger' / 'l.sqlite'}?mode=ro", uri=True)
    try:
        rows = con.execute("select kind, body from entries order by seq").fetchall()
    finally:
        con.close()
    return [(k, json.loads(b)["payload"]) for k, b in rows]


def _agree(root: Path) -> None:
    """Every visible effect has its entry; the ledger verifies; attempt 1 is still approved."""
    entries = _entries(root)
    hashes = {
        k: {p.get("content_hash") for kk, p in entries if kk == k}
        for k in ("prepare", "refuse", "approve", "reject")
    }
    for folder in sorted((root / "work" / ORDER).iterdir()):
        if folder.name.startswith("."):
            continue  # an unfinished .part folder is not a candidate
        h = json.loads((folder / "candidate.json").read_text(encoding="utf-8"))["content_hash"]
        assert h in hashes["prepare"] | hashes["refuse"], f"{folder} has no prepare entry"
        if (folder / "approval.json").exists():
            assert h in hashes["approve"], f"{folder}/approval.json has no entry"
        if (folder / "rejection.json").exists():
            assert h in hashes["reject"], f"{folder}/rejection.json has no entry"
    delivered = {p.get("package") for k, p in entries if k == "deliver"}
    out = root / "out"
    for pkg in sorted(out.iterdir()) if out.exists() else []:
        if not pkg.name.startswith("."):
            assert pkg.name in delivered, f"package {pkg} has no deliver entry"
    first = root / "work" / ORDER / "1"
    assert (first / "candidate.json").is_file(), "the approved candidate was lost"
    verify = _cli(root, "audit", "verify", *_common(root))
    assert verify.returncode == 0 and "intact" in verify.stdout, verify.stdout + verify.stderr
    recover = _cli(
        root, "audit", "recover", "--work", str(root / "work"), "--ledger", str(root / "ledger" / "l.sqlite")
    )
    assert recover.returncode == 0, recover.stdout + recover.stderr


@pytest.fixture
def site(base: Path, tmp_path: Path) -> Path:
    root = tmp_path / "site"
    shutil.copytree(base, root, symlinks=True)
    return root


@pytest.mark.parametrize("point", [p for p in faults.POINTS if p.startswith("prepare.")])
def test_kill_during_prepare(site: Path, point: str) -> None:
    done = _cli(site, *_prepare(site), kill_at=point)
    assert done.returncode == -signal.SIGKILL, done.stderr
    _agree(site)


@pytest.mark.parametrize("point", [p for p in faults.POINTS if p.startswith(("approve.", "reject."))])
def test_kill_during_a_decision(site: Path, point: str) -> None:
    assert _cli(site, *_prepare(site)).returncode == 0  # attempt 2
    verb = point.split(".")[0]
    done = _cli(site, *_decide(site, verb, 2, "reviewer-b"), kill_at=point)
    assert done.returncode == -signal.SIGKILL, done.stderr
    _agree(site)


@pytest.mark.parametrize("point", [p for p in faults.POINTS if p.startswith("deliver.")])
def test_kill_during_deliver(site: Path, point: str) -> None:
    done = _cli(site, *_deliver(site), kill_at=point)
    assert done.returncode == -signal.SIGKILL, done.stderr
    _agree(site)
    again = _cli(site, *_deliver(site, name="pkg-again"))  # the delivery can be made again
    assert again.returncode == 0, again.stderr
    _agree(site)


def test_kill_during_reject_of_an_approved_candidate_keeps_it(site: Path) -> None:
    done = _cli(site, *_decide(site, "reject", 1, "reviewer-b"), kill_at="reject.entry")
    assert done.returncode == -signal.SIGKILL
    _agree(site)
    refused = _cli(site, *_deliver(site))  # the rejection is on the ledger: final
    assert refused.returncode == 1 and not (site / "out" / "pkg").exists()


def test_kill_at_random_instants(site: Path) -> None:
    rng = random.Random(20261202)
    commands = [_prepare(site), _deliver(site, name="r0"), _decide(site, "reject", 1, "reviewer-b")]
    for i in range(6):
        args = commands[i % len(commands)]
        if args[0] == "deliver":
            args = _deliver(site, name=f"r{i}")
        env = {**os.environ, "LSSSDC_PASSPHRASE": PASSPHRASE}
        proc = subprocess.Popen([sys.executable, "-c", CLI, *args], cwd=site, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(rng.uniform(0.5, 6.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        _agree(site)


def test_three_prepares_of_one_order_at_once_never_collide(site: Path) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CLI, *_prepare(site)],
            cwd=site,
            env={**os.environ, "LSSSDC_PASSPHRASE": PASSPHRASE},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    results = [p.communicate(timeout=600) for p in procs]
    for p, (_out, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err
        assert "internal error" not in err
    attempts = sorted(d.name for d in (site / "work" / ORDER).iterdir() if not d.name.startswith("."))
    assert attempts == ["1", "2", "3", "4"]  # the approved first one and three new ones
    assert [k for k, _ in _entries(site)].count("prepare") == 4
    _agree(site)
