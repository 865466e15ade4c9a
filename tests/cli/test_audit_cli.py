"""`lsssdc audit ...`: exit codes, JSON output, and a personnummer never taken from argv or printed."""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from lsssdc.cli import run
from lsssdc.ledger import person_index as pindex
from lsssdc.ledger.chain import Ledger
from lsssdc.register import synth
from tests.conftest import ACTOR_SECRET

KEY = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"cli reviewer").digest())
INDEX_KEY = hashlib.sha256(b"cli audit index").digest()


@pytest.fixture(scope="module")
def persons() -> list[str]:
    return list(synth.synthesise([2023], persons=300, seed=3).register["personnummer"].unique())


@pytest.fixture
def setup(tmp_path: Path, persons: list[str]) -> dict[str, Path]:
    ledger_path = tmp_path / "ledger.sqlite"
    led = Ledger.open(ledger_path, signer=KEY)
    led.append("prepare", "reviewer", {"order_id": "O-1", "verdict": "ok"})
    led.append("approve", "reviewer", {"order_id": "O-1", "content_hash": "c" * 64})
    led.append(
        "deliver",
        "reviewer",
        {"order_id": "O-1", "package": "D-1"},
        persons=pindex.build(persons[:200], INDEX_KEY),
    )
    led.append(
        "deliver",
        "reviewer",
        {"order_id": "O-2", "package": "D-2"},
        persons=pindex.build(persons[150:], INDEX_KEY),
    )
    led.close()
    pem = tmp_path / "reviewer.pem"
    pem.write_bytes(KEY.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    pub = tmp_path / "reviewer.pub.pem"
    pub.write_bytes(KEY.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    index_key = tmp_path / "audit-index.key"
    index_key.write_text(INDEX_KEY.hex())
    return {"ledger": ledger_path, "pem": pem, "pub": pub, "index_key": index_key, "dir": tmp_path}


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = run(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_verify_clean_exits_0(setup, capsys) -> None:
    code, out, _ = _run(["audit", "verify", "--ledger", str(setup["ledger"])], capsys)
    assert code == 1 and "NOT VERIFIED" in out and "intact" not in out  # no trusted keys given
    code, out, _ = _run(
        ["audit", "verify", "-l", str(setup["ledger"]), "--actor-key", f"reviewer={setup['pub']}"], capsys
    )
    assert code == 0 and "intact" in out
    code, out, _ = _run(
        ["audit", "verify", "-l", str(setup["ledger"]), "--actor-key", f"reviewer={setup['pub']}", "--json"],
        capsys,
    )
    report = json.loads(out)
    assert (
        code == 0 and report["ok"] and report["size"] == 4 and report["trusted_keys"] and report["verified"]
    )


def test_verify_ledger_path_from_environment(setup, capsys, monkeypatch) -> None:
    monkeypatch.setenv("LSSSDC_LEDGER", str(setup["ledger"]))
    assert _run(["audit", "verify", "--actor-key", f"reviewer={setup['pub']}"], capsys)[0] == 0


def test_verify_tampered_exits_1_and_names_the_entry(setup, capsys) -> None:
    db = sqlite3.connect(setup["ledger"])
    db.execute("DROP TRIGGER entries_no_update")
    db.execute("UPDATE entries SET body = replace(body, 'O-1', 'O-9') WHERE seq = 2")
    db.commit()
    db.close()
    code, out, err = _run(["audit", "verify", "--ledger", str(setup["ledger"])], capsys)
    assert code == 1 and "first divergent entry 2" in out and "entry 2" in err
    code, out, _ = _run(["audit", "verify", "--ledger", str(setup["ledger"]), "--json"], capsys)
    assert code == 1 and json.loads(out)["first_divergent"] == 2


def test_verify_unusable_input_exits_2(setup, capsys) -> None:
    assert _run(["audit", "verify", "--ledger", str(setup["dir"] / "none.sqlite")], capsys)[0] == 2
    bad = setup["dir"] / "cp.json"
    bad.write_text("[]")
    assert (
        _run(["audit", "verify", "--ledger", str(setup["ledger"]), "--checkpoint", str(bad)], capsys)[0] == 2
    )
    assert (
        _run(["audit", "verify", "--ledger", str(setup["ledger"]), "--actor-key", "nofile"], capsys)[0] == 2
    )


def test_checkpoint_export_then_truncation_is_caught(setup, capsys) -> None:
    cp = setup["dir"] / "exported" / "cp.json"
    code, out, _ = _run(
        [
            "audit",
            "checkpoint",
            "--ledger",
            str(setup["ledger"]),
            "--signing-key",
            str(setup["pem"]),
            "--out",
            str(cp),
        ],
        capsys,
    )
    assert code == 0 and "size   4" in out
    assert json.loads(cp.read_text())["size"] == 4
    args = ["audit", "verify", "--ledger", str(setup["ledger"]), "--checkpoint", str(cp)]
    args += ["--actor-key", f"reviewer={setup['pub']}"]
    assert _run(args, capsys)[0] == 0
    db = sqlite3.connect(setup["ledger"])
    for t in ("entries", "checkpoints", "person_index"):
        db.execute(f"DROP TRIGGER {t}_no_delete")
    db.execute("DELETE FROM person_index WHERE seq = 4")
    db.execute("DELETE FROM entries WHERE seq = 4")
    db.execute("DELETE FROM checkpoints")
    db.commit()
    db.close()
    code, out, err = _run([*args, "--json"], capsys)
    assert code == 1 and "ledger_truncated" in out


def test_checkpoint_with_an_encrypted_pem_prompts_for_its_passphrase(setup, capsys, monkeypatch) -> None:
    enc = setup["dir"] / "enc.pem"
    enc.write_bytes(
        KEY.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(b"secret words"))
    )
    monkeypatch.setattr(sys, "stdin", io.StringIO("secret words\n"))
    code, out, _ = _run(
        ["audit", "checkpoint", "-l", str(setup["ledger"]), "--signing-key", str(enc), "--json"], capsys
    )
    assert code == 0 and json.loads(out[out.index("{") :])["size"] == 4


def test_checkpoint_without_key_exits_2(setup, capsys) -> None:
    assert _run(["audit", "checkpoint", "--ledger", str(setup["ledger"])], capsys)[0] == 2


def test_list_and_show(setup, capsys) -> None:
    code, out, _ = _run(["audit", "list", "--ledger", str(setup["ledger"])], capsys)
    assert code == 0 and len(out.splitlines()) == 4 and "delivery=D-2" in out
    code, out, _ = _run(
        ["audit", "list", "--ledger", str(setup["ledger"]), "--kind", "deliver", "--json"], capsys
    )
    assert [e["seq"] for e in json.loads(out)] == [3, 4]
    code, out, _ = _run(["audit", "show", "2", "--ledger", str(setup["ledger"]), "--json"], capsys)
    assert code == 0 and json.loads(out)["kind"] == "approve"
    code, out, _ = _run(["audit", "show", "3", "--ledger", str(setup["ledger"])], capsys)
    assert code == 0 and '"package": "D-1"' in out
    assert _run(["audit", "show", "99", "--ledger", str(setup["ledger"])], capsys)[0] == 2


def test_person_reads_stdin_and_never_prints_the_number(setup, capsys, monkeypatch, persons) -> None:
    both, only_first, only_second = persons[160], persons[10], persons[250]
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{both}\n{only_first}\n{only_second}\n"))
    args = ["audit", "person", "--ledger", str(setup["ledger"]), "--index-key-file", str(setup["index_key"])]
    code, out, err = _run([*args, "--json"], capsys)
    answers = json.loads(out)
    assert code == 0
    assert [[d["delivery"] for d in a["deliveries"]] for a in answers] == [["D-1", "D-2"], ["D-1"], ["D-2"]]
    for p in (both, only_first, only_second):
        assert p not in out + err and p[2:] not in out + err
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{only_first}\n"))
    code, out, _ = _run(args, capsys)
    assert code == 0 and "entry 3" in out and "D-1" in out


def test_person_refuses_a_number_on_the_command_line(setup, capsys, persons) -> None:
    code, out, err = _run(
        [
            "audit",
            "person",
            "--ledger",
            str(setup["ledger"]),
            "--index-key-file",
            str(setup["index_key"]),
            persons[0],
        ],
        capsys,
    )
    assert code == 2 and persons[0] not in out + err


def test_person_with_a_wrong_key_exits_2(setup, capsys, monkeypatch, persons) -> None:
    wrong = setup["dir"] / "wrong.key"
    wrong.write_bytes(bytes(32))
    monkeypatch.setattr(sys, "stdin", io.StringIO(persons[0] + "\n"))
    code, _, err = _run(
        ["audit", "person", "-l", str(setup["ledger"]), "--index-key-file", str(wrong)], capsys
    )
    assert code == 2 and "audit-index key" in err


@pytest.mark.parametrize("command", ["verify", "list", "show", "person", "checkpoint"])
def test_help_has_an_example(command: str, capsys) -> None:
    code, out, _ = _run(["audit", command, "--help"], capsys)
    assert code == 0 and "Example: lsssdc audit " + command in out.replace("\n", " ").replace("  ", " ")


def test_key_store_gives_the_signing_key_the_trusted_keys_and_the_index_key(
    tmp_path: Path, capsys, monkeypatch, persons
) -> None:
    import os

    from lsssdc.identity.keystore import KdfParams, KeyStore

    passphrase = "a long test passphrase"
    store_path = tmp_path / "keys" / "lsssdc-keys.json"
    store = KeyStore.create(store_path, passphrase, kdf=KdfParams("scrypt", salt=os.urandom(16), log2_n=10))
    store.add_signer("reviewer", ACTOR_SECRET, ("reviewer",))
    ledger_path = tmp_path / "work" / "ledger.sqlite"
    led = Ledger.open(ledger_path, signer=store.get_signing_key("reviewer"), actor_keys=store.public_keys())
    index = pindex.build(persons[:50], store.audit_index_key())
    led.append("deliver", "reviewer", {"package": "D-9"}, persons=index)
    led.close()
    monkeypatch.setenv("LSSSDC_PASSPHRASE", passphrase)
    ks = ["--key-store", str(store_path)]
    cp = tmp_path / "work" / "cp.json"
    code, out, err = _run(
        ["audit", "checkpoint", "-l", str(ledger_path), *ks, "--actor", "reviewer", "-o", str(cp)], capsys
    )
    assert code == 0, err
    code, out, _ = _run(
        ["audit", "verify", "-l", str(ledger_path), *ks, "--checkpoint", str(cp), "--json"], capsys
    )
    assert code == 0 and json.loads(out)["trusted_keys"] is True
    monkeypatch.setattr(sys, "stdin", io.StringIO(persons[7] + "\n"))
    code, out, _ = _run(["audit", "person", "-l", str(ledger_path), *ks], capsys)
    assert code == 0 and "D-9" in out and persons[7] not in out
    # an entry signed by a key the store does not know is flagged
    other = Ledger.open(ledger_path, signer=KEY)
    other.append("approve", "reviewer", {"candidate": "x"})
    other.close()
    code, out, _ = _run(["audit", "verify", "-l", str(ledger_path), *ks, "--json"], capsys)
    assert code == 1 and json.loads(out)["first_divergent"] == 2
    monkeypatch.setenv("LSSSDC_PASSPHRASE", "the wrong passphrase")
    assert _run(["audit", "verify", "-l", str(ledger_path), *ks], capsys)[0] == 2
