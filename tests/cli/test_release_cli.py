"""`lsssdc prepare && lsssdc approve && lsssdc deliver` from the command line.

Exit codes: 0 done, 1 refused (policy not met, never approved, rejected, changed, wrong key),
2 unusable input. No personnummer in any file produced or anything printed.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pandas as pd
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lsssdc.cli import run
from lsssdc.identity.keystore import KeyStore
from lsssdc.register import files, synth
from lsssdc.release import approval
from lsssdc.release.candidate import APPROVAL, MANIFEST, content_hash, load, write_json
from tests.release.conftest import (
    DAGLIG,
    MORTALITY,
    PASSPHRASE,
    SMALL,
    copy_candidate,
    copy_ledger,
    files_under,
    kinds,
    leaks_in_files,
    make_keystore,
    order_path,
    personnummer_tails,
    policy_path,
    relaxed_deaths_policy,
    scan_bytes,
)

ORDER = "B2026-0023"


@pytest.fixture(scope="module")
def registers(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The small register and its death register as Parquet files, and their personnummer."""
    result = synth.synthesise(**SMALL)
    data = tmp_path_factory.mktemp("registers")
    paths = files.write_registers({"lss": result.register, "deaths": result.deaths}, data, "parquet")
    pnr = pd.concat([result.register["personnummer"], result.deaths["personnummer"]]).unique()
    return {"lss": paths["lss"], "deaths": paths["deaths"], "tails": personnummer_tails(pnr)}


def _env(root: Path, registers: dict, keys: Path) -> dict:
    return {
        "keys": keys,
        "ledger": root / "audit" / "ledger.sqlite",
        "work": root / "work",
        "delivery": root / "delivery",
        "policy": relaxed_deaths_policy(root / "policies"),
        **registers,
        "printed": [],
    }


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registers: dict) -> dict:
    """A fresh key store, ledger, work area and delivery place."""
    monkeypatch.setenv("LSSSDC_PASSPHRASE", PASSPHRASE)
    keys = tmp_path / "keys" / "lsssdc-keys.json"
    make_keystore(keys)
    return _env(tmp_path, registers, keys)


@pytest.fixture(scope="module")
def prepared_once(tmp_path_factory: pytest.TempPathFactory, registers: dict) -> dict:
    """One candidate (the daglig-verksamhet order) prepared from the command line, for the
    refusal tests to copy."""
    root = tmp_path_factory.mktemp("cli-prepared")
    keys = root / "keys" / "lsssdc-keys.json"
    make_keystore(keys)
    e = _env(root, registers, keys)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LSSSDC_PASSPHRASE", PASSPHRASE)
        code = run([str(a) for a in _prepare_args(e, policy_path(DAGLIG[0]), DAGLIG[1])])
    assert code == 0
    return {"keys": keys, "candidate": e["work"] / "B2026-0017" / "1", "ledger": e["ledger"]}


@pytest.fixture
def copied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registers: dict, prepared_once: dict) -> dict:
    """A copy of that candidate (same key store), with a fresh ledger: returns env + 'candidate'."""
    monkeypatch.setenv("LSSSDC_PASSPHRASE", PASSPHRASE)
    e = _env(tmp_path, registers, prepared_once["keys"])
    e["candidate"] = copy_candidate(prepared_once["candidate"], e["work"])
    copy_ledger(prepared_once["ledger"], e["ledger"].parent)  # with its prepare entry
    return e


def cli(env: dict, capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = run([str(a) for a in argv])
    out, err = capsys.readouterr()
    env["printed"].append(out + err)
    assert "Traceback" not in out + err
    return code, out, err


def _prepare_args(env: dict, policy: Path, order: str, *extra: object) -> list[object]:
    return [
        "prepare",
        "--policy",
        policy,
        "--order",
        order_path(order),
        "--register",
        env["lss"],
        "--link",
        f"deaths={env['deaths']}",
        "--work",
        env["work"],
        "--key-store",
        env["keys"],
        "--ledger",
        env["ledger"],
        *extra,
    ]


def prepare(env: dict, capsys, policy: Path | None = None, order: str = MORTALITY[1], *extra: object):
    return cli(env, capsys, *_prepare_args(env, policy or env["policy"], order, *extra))


def approve(env: dict, capsys, candidate: Path, reviewer: str = "reviewer-a"):
    return cli(
        env,
        capsys,
        "approve",
        candidate,
        "--reviewer",
        reviewer,
        "--key-store",
        env["keys"],
        "--ledger",
        env["ledger"],
    )


def deliver(env: dict, capsys, candidate: Path, to: Path, *extra: object):
    return cli(
        env,
        capsys,
        "deliver",
        candidate,
        "--to",
        to,
        "--key-store",
        env["keys"],
        "--ledger",
        env["ledger"],
        *extra,
    )


def test_prepare_approve_deliver(env, capsys, caplog) -> None:
    """The whole flow from the command line, and no personnummer in anything it produced or
    printed (work area with report.html and report.json, package, ledger, stdout, stderr, log)."""
    caplog.set_level("DEBUG")
    code, out, err = prepare(env, capsys, None, MORTALITY[1], "--json")
    assert code == 0, out + err
    # not a terminal: each long step says how far it came and what it produced
    assert re.search(r"reading the register: [\d,]+ rows, \d{4}-\d{4} \(\d+ years\), done in", err), err
    assert re.search(r"preparing the candidate .*: selected [\d,]+ persons, [\d,]+ rows", err), err
    assert "disclosure control on" in err and "releasable, " in err
    summary = json.loads(out)
    cand = Path(summary["candidate"])
    assert summary["verdict"] == "releasable" and cand == env["work"] / ORDER / "1"
    assert summary["content_hash"] == load(cand).content_hash and summary["reasons"] == []
    code, out, _ = approve(env, capsys, cand)
    assert code == 0 and "approved" in out
    to = env["delivery"] / ORDER
    code, out, _ = deliver(env, capsys, cand, to, "--json")
    assert code == 0
    result = json.loads(out)
    assert Path(result["package"]) == to and result["ledger_entry"] == 4
    assert sorted(p.name for p in to.iterdir()) == sorted(
        [
            "data.csv",
            "data.parquet",
            "data.dta",
            "data-labels-en.do",
            "data.sav",
            "data-labels-en.sps",
            "data.xpt",
            "data-report.html",
            "data-formats.sas",
            "codebook.md",
            "datapackage.json",
            "README.md",
            "policy.yaml",
            "order.yaml",
            "MANIFEST.sha256",
            "ledger-head.json",
        ]
    )
    # every manifest line matches, every resource's bytes and hash match
    for line in (to / "MANIFEST.sha256").read_text(encoding="utf-8").splitlines():
        digest, name = line.split("  ")
        assert hashlib.sha256((to / name).read_bytes()).hexdigest() == digest
    dp = json.loads((to / "datapackage.json").read_text(encoding="utf-8"))
    for r in dp["resources"]:
        raw = (to / r["path"]).read_bytes()
        if r["format"] == "parquet":  # read by its own reader: hash and size in MANIFEST.sha256
            assert "bytes" not in r and "hash" not in r
            continue
        assert r["bytes"] == len(raw) and r["hash"] == "sha256:" + hashlib.sha256(raw).hexdigest()
    # Stata with variable and value labels
    with pd.read_stata(to / "data.dta", iterator=True) as reader:
        assert reader.variable_labels()["personkrets"] == "Personkrets"
        assert reader.value_labels()["sex"] == {1: "Man", 2: "Kvinna"}
    assert pd.read_parquet(to / "data.parquet")["death_year"].notna().any()
    code, out, _ = cli(env, capsys, "audit", "verify", "--ledger", env["ledger"], "--key-store", env["keys"])
    assert code == 0 and "intact" in out and "entries     4" in out
    # the head that travels with the package detects a ledger cut back to before the delivery
    head = to / "ledger-head.json"
    assert json.loads(head.read_text(encoding="utf-8"))["size"] == 4
    code, out, _ = cli(env, capsys, "audit", "list", "--ledger", env["ledger"], "--json")
    kinds_listed = [e["kind"] for e in json.loads(out)]
    assert code == 0 and kinds_listed == ["custodians", "prepare", "approve", "deliver"]
    code, out, _ = cli(env, capsys, "audit", "list", "--ledger", env["ledger"])
    lines = out.splitlines()  # a real workflow ledger: order, project and delivery are shown
    assert code == 0 and "custodians=key-custodian" in lines[0]
    assert all(f"order={ORDER}" in ln for ln in lines[1:])
    assert "project=" in lines[1] and f"delivery={ORDER}" in lines[3]

    # a refusal under the shipped policy prints its reasons; it cannot be approved or delivered
    code, out, _ = prepare(env, capsys, policy_path(MORTALITY[0]))
    assert code == 1 and "refused" in out and "reason:" in out
    refused = env["work"] / ORDER / "2"  # a new attempt: the approved first one is untouched
    assert load(cand).content_hash == summary["content_hash"]
    code, _, err = approve(env, capsys, refused)
    assert code == 1 and "cannot be approved" in err
    code, _, err = deliver(env, capsys, refused, env["delivery"] / "x")
    assert code == 1 and not (env["delivery"] / "x").exists()
    assert kinds(env["ledger"], _store(env)) == ["custodians", "prepare", "approve", "deliver", "refuse"]

    produced = files_under(env["work"], env["delivery"], env["ledger"].parent)
    assert {"report.html", "report.json", "data.dta", "data.sav", "data.xpt", "ledger.sqlite"} <= {
        p.name for p in produced
    }
    assert leaks_in_files(produced, env["tails"]) == {}
    printed = "\n".join(env["printed"]) + "\n" + caplog.text
    assert len(env["printed"]) == 9 and scan_bytes(printed.encode("utf-8"), env["tails"]) == 0
    # the same search does find the input's persons in the input
    assert leaks_in_files([env["lss"]], env["tails"])


def _store(env: dict):
    return KeyStore.open(env["keys"], PASSPHRASE)


def _refused(env, capsys, cand: Path, code_expected: int = 1) -> str:
    before = kinds(env["ledger"], _store(env))
    to = env["delivery"] / "refused"
    code, _, err = deliver(env, capsys, cand, to)
    assert code == code_expected, err
    assert not to.exists() and kinds(env["ledger"], _store(env)) == before
    return err


def test_deliver_refuses_a_candidate_never_approved(copied, capsys) -> None:
    assert "needs 1 approval" in _refused(copied, capsys, copied["candidate"])


def test_deliver_refuses_a_rejected_candidate(copied, capsys) -> None:
    cand = copied["candidate"]
    assert approve(copied, capsys, cand)[0] == 0
    code, out, _ = cli(
        copied,
        capsys,
        "reject",
        cand,
        "--reason",
        "purpose too broad",
        "--reviewer",
        "reviewer-a",
        "--key-store",
        copied["keys"],
        "--ledger",
        copied["ledger"],
    )
    assert code == 0 and "rejected" in out
    assert "rejected" in _refused(copied, capsys, cand)
    assert approve(copied, capsys, cand)[0] == 1
    assert kinds(copied["ledger"], _store(copied)) == ["custodians", "prepare", "approve", "reject"]


def _flip_a_byte(cand: Path) -> bytes:
    data = cand / "data.parquet"
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    data.write_bytes(bytes(raw))
    return bytes(raw)


def test_deliver_refuses_a_byte_changed_after_approval(copied, capsys) -> None:
    approve(copied, capsys, copied["candidate"])
    _flip_a_byte(copied["candidate"])
    assert "changed" in _refused(copied, capsys, copied["candidate"])


def test_deliver_refuses_a_change_hidden_in_candidate_json(copied, capsys) -> None:
    cand = copied["candidate"]
    approve(copied, capsys, cand)
    raw = _flip_a_byte(cand)
    manifest = json.loads((cand / MANIFEST).read_text(encoding="utf-8"))
    manifest["files"]["data.parquet"] = hashlib.sha256(raw).hexdigest()
    meta = {k: v for k, v in manifest.items() if k not in ("files", "content_hash")}
    manifest["content_hash"] = content_hash(manifest["files"], meta)
    write_json(cand / MANIFEST, manifest)
    assert "no signed prepare entry" in _refused(copied, capsys, cand)


def test_deliver_refuses_an_approval_signed_with_another_key(copied, capsys) -> None:
    cand = copied["candidate"]
    c = load(cand)
    approval.write_record(
        c, APPROVAL, approval.approval_record(c, "reviewer-a", Ed25519PrivateKey.generate())
    )
    assert (cand / APPROVAL).exists()
    assert "needs 1 approval" in _refused(copied, capsys, cand)  # a file is not an approval


def test_unusable_input_exits_2(copied, capsys, monkeypatch) -> None:
    cand = copied["candidate"]
    approve(copied, capsys, cand)
    to = copied["delivery"] / "taken"
    to.mkdir(parents=True)
    code, _, err = deliver(copied, capsys, cand, to)
    assert code == 2 and "already exists" in err
    code, _, err = approve(copied, capsys, copied["work"] / "no-such-candidate")
    assert code == 2 and "no candidate here" in err
    monkeypatch.setenv("LSSSDC_PASSPHRASE", "not the passphrase at all")
    code, _, err = deliver(copied, capsys, cand, copied["delivery"] / "other")
    assert code == 2 and "passphrase" in err
    assert kinds(copied["ledger"], _store(copied)) == ["custodians", "prepare", "approve"]
