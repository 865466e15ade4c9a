"""The release workflow on one work area and one ledger, run from the command line in separate
processes at once: 3 prepares of different orders, 2 approvals and 2 deliveries of different
candidates (prepared, or prepared and approved, beforehand), and 3 prepares of the same order.

Every command must end with exit 0 or a clean refusal (exit 1 or 2, a message, never a
traceback or an internal error). Afterwards the work area, `lsssdc review list --all --json`
and the ledger agree: every candidate folder has its prepare entry and its queue item, each
approval and delivery is recorded once, no two prepares wrote one folder, and `lsssdc audit
verify` finds the ledger intact. On a SQLite ledger and on a PostgreSQL one. The checks read
the files and the raw ledger rows with code of their own.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lsssdc.cli import run
from lsssdc.register import files
from tests.pg import create_database, postgres_server  # noqa: F401 - fixture
from tests.release.conftest import DAGLIG, PASSPHRASE, make_keystore, order_path, policy_path

pytestmark = pytest.mark.slow  # ten command-line processes at once, twice

CLI = "from lsssdc.cli import main; main()"
SAME = "B2026-0017"  # the shipped daglig-verksamhet order: prepared three times at once
#: candidates made before the concurrent run: to approve (A, B) and approved, to deliver (C, D)
READY = {"A": "B2026-0201", "B": "B2026-0202", "C": "B2026-0203", "D": "B2026-0204"}
#: different orders prepared at once: one of the same project as the candidates above (its
#: earlier deliveries are read while C and D are delivered), two of new projects (their keys are
#: created at once)
NEW = {
    "E": ("B2026-0301", None),
    "F": ("B2026-0302", "dv-nytt-2026-f"),
    "G": ("B2026-0303", "dv-nytt-2026-g"),
}
REVIEWER = {"A": "reviewer-a", "B": "reviewer-b", "C": "reviewer-a", "D": "reviewer-b"}


def _order(folder: Path, order_id: str, project_id: str | None = None) -> Path:
    """A copy of the shipped daglig-verksamhet order with another order id (and project)."""
    text = order_path(DAGLIG[1]).read_text(encoding="utf-8")
    text, n = re.subn(rf"(?m)^order_id: {SAME}$", f"order_id: {order_id}", text)
    assert n == 1, "the shipped order's id moved; update the test"
    if project_id is not None:
        text, n = re.subn(r"(?m)^project_id: .*$", f"project_id: {project_id}", text)
        assert n == 1
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{order_id}.yaml"
    out.write_text(text, encoding="utf-8")
    return out


def _common(site: dict[str, Any]) -> list[str]:
    return ["--key-store", str(site["root"] / "keys" / "k.json"), "--ledger", site["ledger"]]


def _prepare(site: dict[str, Any], order: Path) -> list[str]:
    root = site["root"]
    return [
        "prepare", "--policy", str(policy_path(DAGLIG[0])), "--order", str(order),
        "--register", str(root / "data" / "lss.parquet"), "--work", str(root / "work"), *_common(site),
    ]  # fmt: skip


def _candidate(site: dict[str, Any], order_id: str, attempt: int = 1) -> Path:
    return site["root"] / "work" / order_id / str(attempt)


def _env() -> dict[str, str]:
    return {**os.environ, "LSSSDC_PASSPHRASE": PASSPHRASE}


def _cli(site: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CLI, *args],
        cwd=site["root"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, small) -> dict[str, Any]:
    """Registers, a key store, a ledger, candidates A and B prepared, C and D prepared and approved."""
    root = tmp_path_factory.mktemp(f"concurrency-{request.param}")
    if request.param == "sqlite":
        ledger = str(root / "ledger" / "l.sqlite")
    else:
        ledger = create_database(request.getfixturevalue("postgres_server"))
    site = {"root": root, "ledger": ledger, "store": request.param}
    files.write_registers({"lss": small.register}, root / "data", "parquet")
    make_keystore(root / "keys" / "k.json", ("ordering-service", "reviewer-a", "reviewer-b"))
    orders = root / "orders"
    site["orders"] = {name: _order(orders, oid) for name, oid in READY.items()}
    site["orders"] |= {name: _order(orders, oid, project) for name, (oid, project) in NEW.items()}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LSSSDC_PASSPHRASE", PASSPHRASE)
        for name in READY:
            assert run(_prepare(site, site["orders"][name])) == 0, name
        for name in ("C", "D"):
            cand = _candidate(site, READY[name])
            assert run(["approve", str(cand), "--reviewer", REVIEWER[name], *_common(site)]) == 0, name
    return site


def _commands(site: dict[str, Any]) -> dict[str, list[str]]:
    out = {f"prepare {name}": _prepare(site, site["orders"][name]) for name in NEW}
    for i in range(3):
        out[f"prepare {SAME} #{i + 1}"] = _prepare(site, order_path(DAGLIG[1]))
    for name in ("A", "B"):
        out[f"approve {name}"] = [
            "approve", str(_candidate(site, READY[name])), "--reviewer", REVIEWER[name], *_common(site),
        ]  # fmt: skip
    for name in ("C", "D"):
        out[f"deliver {name}"] = [
            "deliver", str(_candidate(site, READY[name])), "--to", str(site["root"] / "out" / name),
            *_common(site),
        ]  # fmt: skip
    return out


def _entries(site: dict[str, Any]) -> list[tuple[int, str, str, dict[str, Any]]]:
    """(seq, kind, actor, payload) of every stored entry, read from the database directly."""
    sql = "SELECT seq, kind, actor, body FROM entries ORDER BY seq"
    if site["store"] == "postgresql":
        import psycopg

        with psycopg.connect(site["ledger"]) as con:
            rows = con.execute(sql).fetchall()
    else:
        con = sqlite3.connect(f"file:{site['ledger']}?mode=ro", uri=True)
        try:
            rows = con.execute(sql).fetchall()
        finally:
            con.close()
    return [(seq, kind, actor, json.loads(body)["payload"]) for seq, kind, actor, body in rows]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def ran(site: dict[str, Any]) -> dict[str, subprocess.CompletedProcess[str]]:
    """The ten commands, started together; each one's exit code and output."""
    commands = _commands(site)
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-c", CLI, *args],
            cwd=site["root"],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, args in commands.items()
    }
    done = {}
    for name, p in procs.items():
        out, err = p.communicate(timeout=900)
        done[name] = subprocess.CompletedProcess(commands[name], p.returncode, out, err)
    return done


def _refusals(ran: dict[str, subprocess.CompletedProcess[str]]) -> list[str]:
    return [f"{n} (exit {d.returncode}): {_reason(d)}" for n, d in ran.items() if d.returncode]


def _reason(d: subprocess.CompletedProcess[str]) -> str:
    """The refusal's message: the gate's reason (printed on stdout) or the error (stderr)."""
    reasons = [ln.strip() for ln in d.stdout.splitlines() if ln.strip().startswith("reason:")]
    errors = [ln for ln in d.stderr.splitlines() if ln.startswith("lsssdc: ") and not _progress(ln)]
    return "; ".join(reasons + errors) or d.stderr.strip()


def _progress(line: str) -> bool:
    return line.endswith(" ...") or bool(re.search(r": done in [0-9.]+ s$", line))


def test_every_command_ends_cleanly(ran: dict[str, subprocess.CompletedProcess[str]]) -> None:
    for name, d in ran.items():
        text = d.stdout + d.stderr
        assert "Traceback" not in text and "internal error" not in text, f"{name}:\n{text}"
        assert d.returncode in (0, 1, 2), f"{name} ended with {d.returncode}:\n{text}"
        if d.returncode:
            assert _reason(d), f"{name} was refused without a message:\n{text}"
            assert all(ln.startswith("lsssdc: ") for ln in d.stderr.splitlines()), text


def test_no_command_is_refused_for_running_alongside_others(
    site: dict[str, Any], ran: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    """Each order is releasable on this register and each decision is due: any refusal here comes
    from another command running at the same time."""
    refused = _refusals(ran)
    assert not refused, f"[{site['store']}] refused: " + " | ".join(refused)


def test_the_work_area_the_queue_and_the_ledger_agree(
    site: dict[str, Any], ran: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    root = site["root"]
    ok = {name: d.returncode == 0 for name, d in ran.items()}
    entries = _entries(site)
    prepared = [p for _, kind, _, p in entries if kind in ("prepare", "refuse")]

    # the work area: each folder a whole candidate, written by one prepare, with its prepare entry
    folders: dict[str, list[Path]] = {}
    for order_dir in sorted((root / "work").iterdir()):
        leftovers = [p.name for p in order_dir.iterdir() if p.name.startswith(".")]
        assert not leftovers, f"unfinished folders left in {order_dir}: {leftovers}"
        folders[order_dir.name] = sorted(order_dir.iterdir(), key=lambda p: int(p.name))
    folder_hash, verdict = {}, {}
    for order_id, attempts in folders.items():
        assert [p.name for p in attempts] == [str(i) for i in range(1, len(attempts) + 1)], order_id
        for folder in attempts:
            meta = json.loads((folder / "candidate.json").read_text(encoding="utf-8"))
            assert meta["order_id"] == order_id
            for fname, digest in meta["files"].items():
                assert _sha256(folder / fname) == digest, f"{folder}/{fname} is not the sealed file"
            folder_hash[folder], verdict[folder] = meta["content_hash"], meta["verdict"]
        on_ledger = [p["content_hash"] for p in prepared if p.get("order_id") == order_id]
        assert sorted(on_ledger) == sorted(folder_hash[f] for f in attempts), (
            f"{order_id}: the candidate folders and the prepare entries differ"
        )

    # prepares: a folder for each prepare that got to the gate (exit 0: releasable, 1: refused by
    # it), each named in its own output, none shared by two prepares
    def made(d: subprocess.CompletedProcess[str]) -> str | None:
        m = re.search(r"^candidate (\S+): (\w+)", d.stdout, re.MULTILINE)
        if d.returncode == 2:
            assert m is None, d.stdout
            return None
        assert m is not None and m.group(2) == ("releasable" if d.returncode == 0 else "refused"), d.stdout
        return str(Path(m.group(1)))

    same = [made(d) for n, d in ran.items() if n.startswith(f"prepare {SAME}")]
    same = [f for f in same if f is not None]
    assert len(same) == len(set(same)), f"two prepares reported one folder: {same}"
    assert sorted(same) == sorted(str(f) for f in folders.get(SAME, [])), same
    for name, (order_id, _project) in NEW.items():
        folder = made(ran[f"prepare {name}"])
        assert [str(f) for f in folders.get(order_id, [])] == ([folder] if folder else []), order_id
    for order_id in READY.values():
        assert len(folders[order_id]) == 1, order_id

    # decisions and deliveries: each recorded once, by its own reviewer, on its own candidate
    def recorded(kind: str, name: str) -> list[tuple[str, dict[str, Any]]]:
        h = folder_hash[_candidate(site, READY[name])]
        return [(actor, p) for _, k, actor, p in entries if k == kind and p.get("content_hash") == h]

    for name in ("C", "D"):  # approved before
        assert [a for a, _ in recorded("approve", name)] == [REVIEWER[name]], name
    for name in ("A", "B"):
        approved = ok[f"approve {name}"]
        assert [a for a, _ in recorded("approve", name)] == [REVIEWER[name]] * approved, name
        assert (_candidate(site, READY[name]) / "approval.json").is_file() == approved, name
        assert recorded("deliver", name) == []
    for name in ("C", "D"):
        delivered = recorded("deliver", name)
        assert [p.get("package") for _, p in delivered] == [name] * ok[f"deliver {name}"], delivered
    assert sum(k == "approve" for _, k, _, _ in entries) == 2 + ok["approve A"] + ok["approve B"]
    assert sum(k == "deliver" for _, k, _, _ in entries) == ok["deliver C"] + ok["deliver D"]
    out = sorted(p.name for p in (root / "out").iterdir()) if (root / "out").exists() else []
    assert out == [n for n in ("C", "D") if ok[f"deliver {n}"]], f"packages without a delivery: {out}"

    # the review queue, as the command line prints it, says the same as the ledger and the folders
    listed = _cli(site, "review", "list", "--all", "--json", *_common(site))
    assert listed.returncode == 0, listed.stderr
    queue = {item["content_hash"]: item for item in json.loads(listed.stdout)}
    assert set(queue) == {p["content_hash"] for p in prepared} == set(folder_hash.values())
    for folder, h in folder_hash.items():
        assert (queue[h]["order_id"], queue[h]["verdict"]) == (folder.parent.name, verdict[folder])
    for name in ("A", "B", "C", "D"):
        item = queue[folder_hash[_candidate(site, READY[name])]]
        approved = name in ("C", "D") or ok[f"approve {name}"]
        delivered = name in ("C", "D") and ok[f"deliver {name}"]
        status = "delivered" if delivered else "approved, not delivered" if approved else "waiting for review"
        assert (item["approved_by"], item["delivered"], item["status"]) == (
            [REVIEWER[name]] * approved,
            int(delivered),
            status,
        ), name

    verify = _cli(site, "audit", "verify", *_common(site))
    assert verify.returncode == 0 and "intact" in verify.stdout, verify.stdout + verify.stderr
