"""kill -9 at every step boundary of prepare, approve, reject and deliver (and at random
instants): afterwards the work area and the ledger agree. No candidate, decision file or
package is visible without its ledger entry, the ledger verifies, and an approved candidate is
never lost. Each case runs with a SQLite ledger and with a PostgreSQL one (``--ledger
postgresql://...`` on a throwaway server). The checks read the files and the raw ledger (sqlite3
on the file, psycopg on the tables) with code of their own."""

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
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from lsssdc import faults
from lsssdc.register import files
from tests.pg import create_database, postgres_server  # noqa: F401 - fixture
from tests.release.conftest import DAGLIG, PASSPHRASE, make_keystore, order_path, policy_path

pytestmark = pytest.mark.slow  # each case runs the command line in a process of its own

ORDER = "B2026-0017"
CLI = "from lsssdc.cli import main; main()"
STORES = ("sqlite", "postgresql")


@dataclass(frozen=True)
class Site:
    """A work area (registers, key store, work, out) and its ledger: a SQLite file in it, or a
    ``postgresql://`` URL; ``server`` is the PostgreSQL server's socket folder."""

    root: Path
    ledger: str
    server: str | None = None

    @property
    def postgres(self) -> bool:
        return self.server is not None


@pytest.fixture(scope="module", params=STORES)
def base(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, small) -> Site:
    """A site with registers, a key store and a ledger holding one approved candidate (attempt 1)."""
    root = tmp_path_factory.mktemp(f"crash-base-{request.param}")
    if request.param == "sqlite":
        base = Site(root, str(root / "ledger" / "l.sqlite"))
    else:
        server = request.getfixturevalue("postgres_server")
        base = Site(root, create_database(server), server)
    files.write_registers({"lss": small.register}, root / "data", "parquet")
    make_keystore(root / "keys" / "k.json", ("ordering-service", "reviewer-a", "reviewer-b"))
    assert _cli(base, *_prepare(base)).returncode == 0
    assert _cli(base, *_decide(base, "approve", 1)).returncode == 0
    return base


def _copy_database(server: str, url: str) -> str:
    """A new database made from the one ``url`` names (PostgreSQL's own copy: CREATE DATABASE
    ... TEMPLATE, which needs that no one is connected to it)."""
    import psycopg

    source = url.split("?", 1)[0].rsplit("/", 1)[1]
    name = f"crash_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(f"postgresql://lsssdc@/postgres?host={server}", autocommit=True) as con:
        con.execute(f"CREATE DATABASE {name} TEMPLATE {source}")
    return f"postgresql://lsssdc@/{name}?host={server}"


def _cli(site: Site, *args: str, kill_at: str | None = None, timeout: float = 600):
    env = {**os.environ, "LSSSDC_PASSPHRASE": PASSPHRASE}
    env.pop(faults.ENV, None)
    if kill_at:
        env[faults.ENV] = kill_at
    return subprocess.run(
        [sys.executable, "-c", CLI, *args],
        cwd=site.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _common(site: Site) -> list[str]:
    return ["--key-store", str(site.root / "keys" / "k.json"), "--ledger", site.ledger]


def _prepare(site: Site) -> list[str]:
    root = site.root
    return [
        "prepare", "--policy", str(policy_path(DAGLIG[0])), "--order", str(order_path(DAGLIG[1])),
        "--register", str(root / "data" / "lss.parquet"), "--work", str(root / "work"), *_common(site),
    ]  # fmt: skip


def _decide(site: Site, verb: str, attempt: int, reviewer: str = "reviewer-a") -> list[str]:
    extra = ["--reason", "purpose too broad"] if verb == "reject" else []
    candidate = str(site.root / "work" / ORDER / str(attempt))
    return [verb, candidate, "--reviewer", reviewer, *extra, *_common(site)]


def _deliver(site: Site, attempt: int = 1, name: str = "pkg") -> list[str]:
    return [
        "deliver",
        str(site.root / "work" / ORDER / str(attempt)),
        "--to",
        str(site.root / "out" / name),
        *_common(site),
    ]


def _entries(site: Site) -> list[tuple[str, dict]]:
    """(kind, payload) of every entry, read from the raw tables."""
    if site.postgres:
        import psycopg

        with psycopg.connect(site.ledger) as con:
            rows = con.execute("select kind, body from entries order by seq").fetchall()
    else:
        con = sqlite3.connect(f"file:{site.ledger}?mode=ro", uri=True)
        try:
            rows = con.execute("select kind, body from entries order by seq").fetchall()
        finally:
            con.close()
    return [(k, json.loads(b)["payload"]) for k, b in rows]


def _agree(site: Site) -> None:
    """Every visible effect has its entry; the ledger verifies; attempt 1 is still approved."""
    root = site.root
    entries = _entries(site)
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
    verify = _cli(site, "audit", "verify", *_common(site))
    assert verify.returncode == 0 and "intact" in verify.stdout, verify.stdout + verify.stderr
    recover = _cli(
        site, "audit", "recover", "--work", str(root / "work"), "--ledger", site.ledger,
        "--deliveries", str(root / "out"), "--json",
    )  # fmt: skip
    assert recover.returncode == 0, recover.stdout + recover.stderr
    # a deliver entry whose package never appeared is reported (the delivery is made again)
    missing = {p.get("package") for k, p in entries if k == "deliver"} - (
        {p.name for p in out.iterdir()} if out.exists() else set()
    )
    reported = json.loads(recover.stdout)["entry_without_effect"]
    assert all(any(f"'{name}'" in line for line in reported) for name in missing), reported


@pytest.fixture
def site(base: Site, tmp_path: Path) -> Site:
    """A copy of the base site: its folder, and its ledger (the file within, or a database copy)."""
    root = tmp_path / "site"
    shutil.copytree(base.root, root, symlinks=True)
    if base.postgres:
        return Site(root, _copy_database(base.server, base.ledger), base.server)
    return Site(root, str(root / "ledger" / "l.sqlite"))


@pytest.mark.parametrize("point", [p for p in faults.POINTS if p.startswith("prepare.")])
def test_kill_during_prepare(site: Site, point: str) -> None:
    done = _cli(site, *_prepare(site), kill_at=point)
    assert done.returncode == -signal.SIGKILL, done.stderr
    _agree(site)


@pytest.mark.parametrize("point", [p for p in faults.POINTS if p.startswith(("approve.", "reject."))])
def test_kill_during_a_decision(site: Site, point: str) -> None:
    assert _cli(site, *_prepare(site)).returncode == 0  # attempt 2
    verb = point.split(".")[0]
    done = _cli(site, *_decide(site, verb, 2, "reviewer-b"), kill_at=point)
    assert done.returncode == -signal.SIGKILL, done.stderr
    _agree(site)


@pytest.mark.parametrize("point", [p for p in faults.POINTS if p.startswith("deliver.")])
def test_kill_during_deliver(site: Site, point: str) -> None:
    done = _cli(site, *_deliver(site), kill_at=point)
    assert done.returncode == -signal.SIGKILL, done.stderr
    _agree(site)
    again = _cli(site, *_deliver(site, name="pkg-again"))  # the delivery can be made again
    assert again.returncode == 0, again.stderr
    _agree(site)


def test_kill_during_reject_of_an_approved_candidate_keeps_it(site: Site) -> None:
    done = _cli(site, *_decide(site, "reject", 1, "reviewer-b"), kill_at="reject.entry")
    assert done.returncode == -signal.SIGKILL
    _agree(site)
    refused = _cli(site, *_deliver(site))  # the rejection is on the ledger: final
    assert refused.returncode == 1 and not (site.root / "out" / "pkg").exists()


def test_kill_at_random_instants(site: Site) -> None:
    rng = random.Random(20261202)
    commands = [_prepare(site), _deliver(site, name="r0"), _decide(site, "reject", 1, "reviewer-b")]
    for i in range(6):
        args = commands[i % len(commands)]
        if args[0] == "deliver":
            args = _deliver(site, name=f"r{i}")
        env = {**os.environ, "LSSSDC_PASSPHRASE": PASSPHRASE}
        proc = subprocess.Popen([sys.executable, "-c", CLI, *args], cwd=site.root, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(rng.uniform(0.5, 6.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        _agree(site)


def test_three_prepares_of_one_order_at_once_never_collide(site: Site) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CLI, *_prepare(site)],
            cwd=site.root,
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
    attempts = sorted(d.name for d in (site.root / "work" / ORDER).iterdir() if not d.name.startswith("."))
    assert attempts == ["1", "2", "3", "4"]  # the approved first one and three new ones
    assert [k for k, _ in _entries(site)].count("prepare") == 4
    _agree(site)
