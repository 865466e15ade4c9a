"""`lsssdc keys`, `pseudonymise` and `reidentify` from the command line (real KDF parameters).

Every failure is a clear message and exit code 2 without a traceback; no key byte and no
passphrase reaches any file written or any output, which one test checks by searching all of them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

import pandas as pd
import pytest

from lsssdc.cli import run
from lsssdc.identity.keystore import KdfParams, KeyStore
from lsssdc.ledger.chain import Ledger
from lsssdc.register.synth import synthesise
from tests.conftest import ACTOR_SECRET

PASS = "tre små grodor i en bäck"  # non-ASCII on purpose
NEW_PASS = "an entirely new passphrase 42"


def FAST() -> KdfParams:  # noqa: N802 - reads like a constant
    return KdfParams(algorithm="argon2id", salt=os.urandom(16), iterations=1, lanes=1, memory_kib=64)


@pytest.fixture(scope="module")
def persons() -> list[str]:
    return list(synthesise([2023], persons=200, seed=11).register["personnummer"].unique()[:120])


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, persons: list[str]) -> dict[str, Path]:
    monkeypatch.setenv("LSSSDC_PASSPHRASE", PASS)
    monkeypatch.delenv("LSSSDC_NEW_PASSPHRASE", raising=False)
    data = tmp_path / "data"
    data.mkdir()
    frame = pd.DataFrame({"lopnr_in": range(len(persons) * 2), "personnummer": persons * 2, "x": "a"})
    frame.to_csv(data / "in.csv", index=False)
    return {
        "tmp": tmp_path,
        "data": data,
        "keys": tmp_path / "keys" / "lsssdc-keys.json",
        "ledger": tmp_path / "audit" / "ledger.sqlite",
    }


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = run([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def _init(
    capsys: pytest.CaptureFixture[str],
    env: dict[str, Path],
    signer: str | None = "keyholder",
    cli: bool = False,
) -> None:
    """A key store: through `keys init` (real KDF cost), or with cheap KDF parameters to keep tests quick."""
    if cli:
        assert _run(capsys, "keys", "init", "--key-store", env["keys"], "--data-dir", env["data"])[0] == 0
    else:
        KeyStore.create(env["keys"], PASS, apart_from=[env["data"]], kdf=FAST())
    if signer:
        role = "reviewer" if signer.startswith("reviewer") else "custodian"
        args = ("keys", "add-signer", "--key-store", env["keys"], "--name", signer, "--role", role)
        assert _run(capsys, *args)[0] == 0


def _pseudonymise(capsys, env, out: Path, project: str = "PRJ-1", *extra: str) -> tuple[int, str, str]:
    return _run(
        capsys,
        "pseudonymise",
        env["data"] / "in.csv",
        "--project",
        project,
        "--key-store",
        env["keys"],
        "--out",
        out,
        *extra,
    )


def _reidentify(capsys, env, src: Path, out: Path, project: str = "PRJ-1", actor: str = "keyholder"):
    return _run(
        capsys,
        "reidentify",
        src,
        "--project",
        project,
        "--key-store",
        env["keys"],
        "--out",
        out,
        "--reason",
        "correction requested in dnr 2025/17",
        "--ledger",
        env["ledger"],
        "--actor",
        actor,
    )


def test_round_trip_and_the_ledger_entry(capsys, env, persons) -> None:
    _init(capsys, env)
    code, out, _ = _pseudonymise(capsys, env, env["data"] / "out.parquet", "PRJ-1", "--lopnummer", "--json")
    assert code == 0
    report = json.loads(out)
    assert (report["rows"], report["persons"], report["key_version"]) == (240, 120, 1)
    assert report["created_project_key"] is True
    delivered = pd.read_parquet(env["data"] / "out.parquet")
    assert list(delivered.columns) == ["lopnr_in", "pseudonym", "lopnummer", "x"]
    assert delivered["pseudonym"].nunique() == 120 and delivered["lopnummer"].max() == 120
    assert _pseudonymise(capsys, env, env["data"] / "again.csv")[0] == 0
    again = pd.read_csv(env["data"] / "again.csv", dtype=str)
    assert again["pseudonym"].tolist() == delivered["pseudonym"].tolist()  # deliveries to one project join

    code, out, _ = _reidentify(capsys, env, env["data"] / "again.csv", env["data"] / "back.csv")
    assert code == 0, out
    back = pd.read_csv(env["data"] / "back.csv", dtype=str)
    assert back["personnummer"].tolist() == persons * 2
    entries = list(Ledger.open(env["ledger"]).entries("reidentify"))
    assert len(entries) == 1 and entries[0].actor == "keyholder"
    payload = entries[0].payload
    assert payload["values"] == 240 and payload["key_versions"] == [1] and payload["project"] == "PRJ-1"
    assert payload["input_sha256"] == hashlib.sha256((env["data"] / "again.csv").read_bytes()).hexdigest()
    assert payload["output_sha256"] == hashlib.sha256((env["data"] / "back.csv").read_bytes()).hexdigest()
    assert not any(p in json.dumps(payload) for p in persons)


def test_rotation_and_show(capsys, env) -> None:
    _init(capsys, env)
    assert _pseudonymise(capsys, env, env["data"] / "v1.csv")[0] == 0
    code, out, _ = _run(capsys, "keys", "rotate", "--key-store", env["keys"], "--project", "PRJ-1", "--json")
    assert code == 0 and json.loads(out)["versions"] == [1, 2]
    assert _pseudonymise(capsys, env, env["data"] / "v2.csv")[0] == 0
    v2 = pd.read_csv(env["data"] / "v2.csv", dtype=str)["pseudonym"]
    assert v2.str.startswith("P2-").all()
    assert not set(v2) & set(pd.read_csv(env["data"] / "v1.csv", dtype=str)["pseudonym"])
    code, out, _ = _run(capsys, "keys", "rotate", "--key-store", env["keys"], "--json")
    assert code == 0 and json.loads(out)["master_version"] == 2
    assert _pseudonymise(capsys, env, env["data"] / "v2b.csv")[0] == 0
    assert pd.read_csv(env["data"] / "v2b.csv", dtype=str)["pseudonym"].tolist() == v2.tolist()
    code, out, _ = _run(capsys, "keys", "show", "--key-store", env["keys"], "--json")
    info = json.loads(out)
    assert info["master_version"] == 2 and info["projects"]["PRJ-1"]["versions"] == [1, 2]
    code, out, _ = _run(capsys, "keys", "show", "--key-store", env["keys"])
    assert code == 0 and "project PRJ-1: current key version 2" in out
    # a mixed-version file re-identifies with every version kept
    mixed = pd.concat(
        [pd.read_csv(env["data"] / "v1.csv", dtype=str), pd.read_csv(env["data"] / "v2.csv", dtype=str)]
    )
    mixed.to_csv(env["data"] / "mixed.csv", index=False)
    assert _reidentify(capsys, env, env["data"] / "mixed.csv", env["data"] / "back.csv")[0] == 0


def test_secrets_appear_in_no_file_and_no_output(capsys, env, monkeypatch) -> None:
    outputs: list[str] = []

    def go(*argv: object) -> None:
        code, out, err = _run(capsys, *argv)
        outputs.extend([out, err])
        assert code == 0, err

    _init(capsys, env, cli=True)
    first = KeyStore.open(env["keys"], PASS)  # master key version 1, replaced below
    go(
        "pseudonymise",
        env["data"] / "in.csv",
        "--project",
        "PRJ-1",
        "--key-store",
        env["keys"],
        "--out",
        env["data"] / "p.csv",
    )
    go(
        "pseudonymise",
        env["data"] / "in.csv",
        "--project",
        "PRJ-2",
        "--key-store",
        env["keys"],
        "--out",
        env["data"] / "p2.parquet",
        "--json",
    )
    go("reidentify", env["data"] / "p.csv", "--project", "PRJ-1", "--key-store", env["keys"], "--out", env["data"] / "r.csv",
       "--reason", "audit", "--ledger", env["ledger"], "--actor", "keyholder", "--json")  # fmt: skip
    middle = KeyStore.open(env["keys"], PASS)  # holds PRJ-2's key, deleted below
    go("keys", "rotate", "--key-store", env["keys"], "--ledger", env["ledger"], "--actor", "keyholder")
    monkeypatch.setenv("LSSSDC_NEW_PASSPHRASE", NEW_PASS)
    go("keys", "rotate", "--key-store", env["keys"], "--new-passphrase")
    monkeypatch.setenv("LSSSDC_PASSPHRASE", NEW_PASS)
    go("keys", "show", "--key-store", env["keys"])
    go("keys", "show", "--key-store", env["keys"], "--json")
    go("keys", "delete-project", "--key-store", env["keys"], "--project", "PRJ-2", "--reason", "retention",
       "--ledger", env["ledger"], "--actor", "keyholder", "--yes")  # fmt: skip
    for argv in (("keys", "show", "--key-store", env["keys"]),):  # a failing command's output too
        monkeypatch.setenv("LSSSDC_PASSPHRASE", PASS)
        code, out, err = _run(capsys, *argv)
        outputs.extend([out, err])
        assert code == 2

    last = KeyStore.open(env["keys"], NEW_PASS)
    secrets: list[bytes] = []
    for store in (first, middle, last):
        secrets += [
            store._master,
            store._kek,
            store._unwrap(store._doc["root"], {"kind": "root"}),
            store.audit_index_key(),
        ]
        store.unlock("keyholder", ACTOR_SECRET)
        secrets.append(store.get_signing_key("keyholder").private_bytes_raw())
        for project, entry in store._doc["projects"].items():
            for v in entry["versions"]:
                ident = {"kind": "project", "project": project, "version": int(v)}
                secrets += [
                    store._unwrap(entry["versions"][v], ident),
                    store.pseudonym_key(project, int(v)).key,
                ]
    assert "PRJ-2" in middle.projects() and len(secrets) == 5 + (5 + 2 * 2) + (
        5 + 2
    )  # per store: 5 + 2 per project
    forms: list[bytes] = [PASS.encode(), NEW_PASS.encode(), PASS.encode("latin-1", "replace")]
    for s in secrets:
        assert len(s) == 32
        forms += [
            s,
            s.hex().encode(),
            s.hex().upper().encode(),
            base64.b64encode(s),
            base64.urlsafe_b64encode(s).rstrip(b"="),
        ]
        forms += [base64.b64encode(s)[:40]]  # a prefix survives line wrapping
    written = [p for p in env["tmp"].rglob("*") if p.is_file() and p != env["keys"]]
    assert {p.suffix for p in written} >= {".csv", ".parquet", ".sqlite"}
    for path in written:
        content = path.read_bytes()
        for form in forms:
            assert form not in content, f"key material or passphrase found in {path.name}"
    text = "\n".join(outputs).encode()
    for form in forms:
        assert form not in text
    assert "PRJ-2" in last.info()["deleted_projects"]


def test_wrong_passphrase_tampered_truncated_missing(capsys, env, monkeypatch) -> None:
    _init(capsys, env)
    assert _pseudonymise(capsys, env, env["data"] / "p.csv")[0] == 0
    raw = env["keys"].read_bytes()
    show = ("keys", "show", "--key-store", env["keys"])

    monkeypatch.setenv("LSSSDC_PASSPHRASE", "not the passphrase at all")
    code, out, err = _run(capsys, *show)
    assert code == 2 and "passphrase is wrong" in err and "not the passphrase" not in err
    monkeypatch.setenv("LSSSDC_PASSPHRASE", PASS)

    doc = json.loads(raw)
    ct = doc["projects"]["PRJ-1"]["versions"]["1"]["ciphertext"]
    env["keys"].write_bytes(raw.replace(ct.encode(), (("B" if ct[0] == "A" else "A") + ct[1:]).encode()))
    code, _, err = _run(capsys, *show)
    assert code == 2 and "tampered" in err

    env["keys"].write_bytes(raw[: len(raw) * 2 // 3])
    code, _, err = _run(capsys, *show)
    assert code == 2 and "truncated" in err

    env["keys"].write_bytes(b"")
    assert _run(capsys, *show)[0] == 2
    env["keys"].write_bytes(b"\x00\xff garbage\n}\n")
    code, _, err = _run(capsys, *show)
    assert code == 2 and "not valid JSON" in err

    doc["version"] = 9
    env["keys"].write_text(json.dumps(doc, sort_keys=True, indent=2) + "\n")
    code, _, err = _run(capsys, *show)
    assert code == 2 and "unknown key store version 9" in err

    env["keys"].unlink()
    code, _, err = _run(capsys, *show)
    assert code == 2 and "no key store" in err and "keys init" in err


def test_missing_keys(capsys, env, monkeypatch) -> None:
    _init(capsys, env)
    assert _pseudonymise(capsys, env, env["data"] / "p1.csv")[0] == 0
    code, _, err = _reidentify(capsys, env, env["data"] / "p1.csv", env["data"] / "r.csv", project="PRJ-9")
    assert code == 2 and "no key" in err
    assert _run(capsys, "keys", "rotate", "--key-store", env["keys"], "--project", "PRJ-1")[0] == 0
    assert _pseudonymise(capsys, env, env["data"] / "p2.csv")[0] == 0
    # another key store knows the project only at version 1: version 2 is missing, version 1 does not match
    other = dict(env, keys=env["tmp"] / "other-keys" / "k.json")
    _init(capsys, other)
    assert _pseudonymise(capsys, other, env["data"] / "o.csv")[0] == 0
    code, _, err = _reidentify(capsys, other, env["data"] / "p2.csv", env["data"] / "r.csv")
    assert code == 2 and "no key of project 'PRJ-1' at version 2" in err
    code, _, err = _reidentify(capsys, other, env["data"] / "p1.csv", env["data"] / "r.csv")
    assert code == 2 and "not made with project 'PRJ-1'" in err and "rows 1, 2, 3" in err
    # an actor without a signing key cannot re-identify; nothing is written or logged
    code, _, err = _reidentify(capsys, env, env["data"] / "p1.csv", env["data"] / "r.csv", actor="someone")
    assert code == 2 and "no signing key" in err
    assert not (env["data"] / "r.csv").exists()
    assert len(Ledger.open(env["ledger"])) == 0


def test_usage_and_input_errors(capsys, env, monkeypatch) -> None:
    code, _, err = _run(capsys, "keys", "init", "--key-store", env["keys"], "--passphrase", PASS)
    assert code == 2 and "usage" in err and PASS not in err
    monkeypatch.delenv("LSSSDC_PASSPHRASE")
    code, _, err = _run(capsys, "keys", "init", "--key-store", env["keys"])
    assert code == 2 and "LSSSDC_PASSPHRASE" in err
    monkeypatch.setenv("LSSSDC_PASSPHRASE", PASS)
    code, _, err = _run(
        capsys, "keys", "init", "--key-store", env["data"] / "k.json", "--data-dir", env["data"]
    )
    assert code == 2 and "never written next to data" in err
    _init(capsys, env, signer=None, cli=True)
    assert KeyStore.open(env["keys"], PASS).info()["kdf"]["algorithm"] == "argon2id"
    code, _, err = _run(capsys, "keys", "init", "--key-store", env["keys"])
    assert code == 2 and "refusing to overwrite" in err
    code, _, err = _pseudonymise(capsys, env, env["keys"].parent / "out.csv")
    assert code == 2 and "never written next to data" in err
    code, _, err = _run(capsys, "reidentify", env["data"] / "in.csv", "--project", "P", "--key-store", env["keys"],
                        "--out", env["data"] / "r.csv", "--reason", "x")  # fmt: skip
    assert code == 2 and "--ledger" in err
    bad = pd.DataFrame({"personnummer": ["191212121212", "191212121213", "19121212121"]})
    bad.to_csv(env["data"] / "bad.csv", index=False)
    code, _, err = _run(capsys, "pseudonymise", env["data"] / "bad.csv", "--project", "P", "--key-store", env["keys"],
                        "--out", env["data"] / "o.csv")  # fmt: skip
    assert code == 2 and "bad.csv" in err and "column 'personnummer'" in err and "rows 2, 3" in err
    assert "1912121212" not in err
    assert not (env["data"] / "o.csv").exists()
    code, _, err = _run(capsys, "pseudonymise", env["data"] / "in.csv", "--project", "P", "--key-store", env["keys"],
                        "--out", env["data"] / "o.csv", "--column", "nope")  # fmt: skip
    assert code == 2 and "nope" in err
    code, _, err = _run(capsys, "pseudonymise", env["data"] / "in.csv", "--project", "P", "--key-store", env["keys"],
                        "--out", env["data"] / "o.csv", "--reference-date", "2024-13-01")  # fmt: skip
    assert code == 2 and "YYYY-MM-DD" in err
    code, _, err = _run(capsys, "keys", "delete-project", "--key-store", env["keys"], "--project", "P", "--reason", "r",
                        "--ledger", env["ledger"], "--actor", "a")  # fmt: skip
    assert code == 2 and "--yes" in err


def test_ten_digit_numbers_need_a_reference_date(capsys, env) -> None:
    _init(capsys, env, signer=None)
    pd.DataFrame({"pnr": ["121212+1212", "19121212-1212"]}).to_csv(env["data"] / "ten.csv", index=False)
    args = (
        "pseudonymise",
        env["data"] / "ten.csv",
        "--column",
        "pnr",
        "--project",
        "P",
        "--key-store",
        env["keys"],
    )
    code, _, err = _run(capsys, *args, "--out", env["data"] / "o.csv")
    assert code == 2 and "row 1" in err
    assert _run(capsys, *args, "--out", env["data"] / "o.csv", "--reference-date", "2024-01-01")[0] == 0
    out = pd.read_csv(env["data"] / "o.csv", dtype=str)
    assert out["pseudonym"].nunique() == 1 and list(out.columns) == ["pseudonym"]
