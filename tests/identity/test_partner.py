"""Linkage by project key: key files for partner agencies, their pseudonymised extracts, the join."""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path

import pandas as pd
import pytest

from lsssdc import linkage as L
from lsssdc.errors import InputDataError, KeyStoreError, PolicyError
from lsssdc.fileio import write_table
from lsssdc.identity import partner as P
from lsssdc.identity import pseudonym as ps
from lsssdc.ledger.chain import Ledger
from lsssdc.policy import load_order, load_policy
from lsssdc.register import synth
from tests.conftest import ACTOR_SECRET

PROJECT = "lss-fk-2026"
KEY = "personnummer"


@pytest.fixture(scope="module")
def project_key() -> ps.PseudonymKey:
    return ps.PseudonymKey.derive(os.urandom(32), PROJECT, 1)


@pytest.fixture(scope="module")
def partner_key():
    return P.generate_private_key()


@pytest.fixture(scope="module")
def data() -> dict[str, pd.DataFrame]:
    result = synth.synthesise(years=range(2019, 2022), persons=3000, seed=606)
    return {
        "lss": result.register,
        "deaths": result.deaths,
        "assistans": synth.synthesise_assistans(result, seed=2),
    }


def test_the_partner_recovers_exactly_the_project_key(project_key, partner_key):
    export = P.export_key(project_key, "Forsakringskassan", partner_key.public_key())
    key = P.open_key_file(export.data, partner_key)
    assert key == project_key
    assert (
        export.data != P.export_key(project_key, "Forsakringskassan", partner_key.public_key()).data
    )  # fresh each time
    assert project_key.key not in export.data
    assert base64.b64encode(project_key.key) not in export.data
    assert "key=" not in repr(key)


def test_a_wrong_private_key_fails_cleanly(project_key, partner_key):
    export = P.export_key(project_key, "Forsakringskassan", partner_key.public_key())
    other = P.generate_private_key()
    with pytest.raises(KeyStoreError) as exc:
        P.open_key_file(export.data, other)
    assert exc.value.problems[0].code == "wrong_private_key"
    # with the fingerprint made to match, the key agreement itself fails
    doc = json.loads(export.data)
    doc["recipient_fingerprint"] = P.fingerprint(other)
    with pytest.raises(KeyStoreError) as exc:
        P.open_key_file(json.dumps(doc).encode(), other)
    assert exc.value.problems[0].code == "key_file_damaged"


def _flip(value: str) -> str:
    raw = bytearray(base64.b64decode(value))
    raw[len(raw) // 2] ^= 1
    return base64.b64encode(bytes(raw)).decode()


@pytest.mark.parametrize(
    "change",
    [
        {"ciphertext": _flip},
        {"nonce": _flip},
        {"ephemeral_public_key": _flip},
        {"project": lambda v: v + "x"},
        {"key_version": lambda v: v + 1},
        {"recipient": lambda v: v + " AB"},
        {"format_version": lambda v: 2},
        {"scheme": lambda v: "other"},
        {"extra": None},
    ],
    ids=lambda c: next(iter(c)),
)
def test_a_tampered_key_file_fails(project_key, partner_key, change):
    doc = json.loads(P.export_key(project_key, "Forsakringskassan", partner_key.public_key()).data)
    ((field, fn),) = change.items()
    doc[field] = fn(doc[field]) if fn else "x"
    with pytest.raises(KeyStoreError) as exc:
        P.open_key_file(json.dumps(doc).encode(), partner_key)
    assert project_key.key.hex() not in str(exc.value)


@pytest.mark.parametrize("data_bytes", [b"", b"not json", b"[]", b'{"format": "x"}'])
def test_not_a_key_file(partner_key, data_bytes):
    with pytest.raises(KeyStoreError):
        P.open_key_file(data_bytes, partner_key)


def test_private_key_pem_round_trip_with_passphrase(partner_key, tmp_path):
    pem = P.private_key_pem(partner_key, "a long passphrase")
    assert P.fingerprint(P.load_private_key(pem, "a long passphrase")) == P.fingerprint(partner_key)
    with pytest.raises(KeyStoreError):
        P.load_private_key(pem, "wrong passphrase!")
    with pytest.raises(KeyStoreError):
        P.load_private_key(pem)
    pub = P.load_public_key(P.public_key_pem(partner_key))
    assert P.fingerprint(pub) == P.fingerprint(partner_key)
    with pytest.raises(KeyStoreError, match="not an X25519"):
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        P.load_public_key(
            Ed25519PrivateKey.generate()
            .public_key()
            .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        )


def test_the_export_is_logged_without_the_key(project_key, partner_key, tmp_path):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    with Ledger.open(tmp_path / "ledger.sqlite", signer=Ed25519PrivateKey.generate()) as ledger:
        export = P.export_key(
            project_key, "Forsakringskassan", partner_key.public_key(), ledger=ledger, actor="key-holder"
        )
        (entry,) = list(ledger.entries("key_export"))
    assert entry.to_dict()["payload"] == {
        "project": PROJECT,
        "key_version": 1,
        "recipient": "Forsakringskassan",
        "recipient_fingerprint": P.fingerprint(partner_key),
        "format": "lsssdc-partner-key-v1",
    }
    body = json.dumps(entry.to_dict())
    assert project_key.key.hex() not in body and base64.b64encode(project_key.key).decode() not in body
    path = P.write_key_file(export, tmp_path / "keys" / "fk.key.json")
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    with pytest.raises(InputDataError, match="overwrite"):
        P.write_key_file(export, path)


# --------------------------------------------------------------------------------------------
# the join on the pseudonym gives the rows the join on personnummer gives


def _policy(tmp_path: Path):
    (tmp_path / "p.yaml").write_text(
        "policy_version: 1\nname: p\nallowed_variables: [year]\n"
        "linkage:\n  assistans:\n    variables: [year, hours_per_week]\n"
        "  deaths:\n    variables: [death_date]\n",
        encoding="utf-8",
    )
    (tmp_path / "o.yaml").write_text(
        "order_version: 1\norder_id: T\ndiarienummer: D\nproject_id: lss-fk-2026\n"
        "recipient: {name: A, organisation: B}\npurpose: t\npolicy: p\nyears: [2019]\n"
        "linkages:\n  - register: assistans\n    variables: [year, hours_per_week]\n"
        "  - register: deaths\n    variables: [death_date]\n",
        encoding="utf-8",
    )
    return load_policy(tmp_path / "p.yaml"), load_order(tmp_path / "o.yaml")


def test_linking_on_the_pseudonym_equals_linking_on_personnummer_first(
    tmp_path, data, project_key, partner_key
):
    lss = data["lss"]
    policy, order = _policy(tmp_path)
    # inside the agency: link on personnummer, then pseudonymise
    linked, _ = L.link(lss, {"assistans": data["assistans"], "deaths": data["deaths"]}, order, policy)
    first, _ = ps.pseudonymise_frame(linked, KEY, project_key)

    # the partner agencies: get the key file, pseudonymise their own extracts, send them back as files
    key_file = P.export_key(project_key, "Forsakringskassan", partner_key.public_key()).data
    their_key = P.open_key_file(key_file, partner_key)
    sent = {}
    for name in ("assistans", "deaths"):
        extract, report = P.pseudonymise_extract(data[name], their_key)
        assert KEY not in extract.columns and report.rows == len(data[name])
        sent[name] = write_table(extract, tmp_path / f"{name}.parquet")

    # lsssdc: pseudonymise its own extract, import the partners' files, join on the pseudonym
    own, _ = ps.pseudonymise_frame(lss, KEY, project_key)
    fk = P.import_extract(sent["assistans"], project_key)
    dors = P.import_extract(sent["deaths"], project_key)
    second, rec = L.link_on_pseudonym(own, fk, ["year", "hours_per_week"], name="assistans")
    second, rec_d = L.link_on_pseudonym(second, dors, ["death_date"], name="deaths")
    # files are read as text: give the columns their types back
    second["hours_per_week"] = pd.to_numeric(second["hours_per_week"]).astype("Int16")
    second["death_date"] = pd.to_datetime(second["death_date"])
    pd.testing.assert_frame_equal(second, first)
    assert rec.join_on == ["pseudonym", "year"] and rec.matched_persons > 0
    assert rec_d.matched_persons == len(data["deaths"])


def test_import_refuses_pseudonyms_of_another_project_or_key(tmp_path, data, project_key):
    other = ps.PseudonymKey.derive(os.urandom(32), "another-project", 1)
    extract, _ = P.pseudonymise_extract(data["deaths"], other)
    with pytest.raises((InputDataError, KeyStoreError)):
        P.import_extract(extract, project_key)
    extract, _ = P.pseudonymise_extract(data["deaths"], project_key)
    bad = extract.copy()
    bad.loc[3, "pseudonym"] = "not a pseudonym"
    with pytest.raises(InputDataError) as exc:
        P.import_extract(bad, project_key)
    assert exc.value.problems[0].rows == (4,)


def test_import_refuses_personnummer_in_a_partner_extract(data, project_key):
    extract, _ = P.pseudonymise_extract(data["deaths"], project_key)
    leaky = extract.assign(note="")
    pnr = str(data["deaths"][KEY].iloc[7])
    leaky.loc[7, "note"] = f"see {pnr[2:8]}-{pnr[8:]}"
    with pytest.raises(InputDataError) as exc:
        P.import_extract(leaky, project_key)
    p = exc.value.problems[0]
    assert p.column == "note" and p.rows == (8,)
    assert not re.search(pnr[2:8], str(exc.value))
    with pytest.raises(InputDataError, match="personnummer column"):
        P.import_extract(extract.assign(personnummer=data["deaths"][KEY]), project_key)


# --------------------------------------------------------------------------------------------
# policy: a register linked on the pseudonym


PSEUDONYM_POLICY = (
    "policy_version: 1\nname: p\nallowed_variables: [year]\n"
    "linkage:\n  assistans:\n    key: pseudonym\n    variables: [year, hours_per_week]\n"
    "  deaths:\n    variables: [death_date]\n"
)
PSEUDONYM_ORDER = (
    "order_version: 1\norder_id: T\ndiarienummer: D\nproject_id: lss-fk-2026\n"
    "recipient: {name: A, organisation: B}\npurpose: t\npolicy: p\nyears: [2019]\n"
    "linkages:\n  - register: assistans\n    variables: [year, hours_per_week]\n"
)


def test_link_pseudonymised_follows_the_policy_and_the_order(tmp_path, data, project_key):
    (tmp_path / "p.yaml").write_text(PSEUDONYM_POLICY, encoding="utf-8")
    (tmp_path / "o.yaml").write_text(PSEUDONYM_ORDER, encoding="utf-8")
    policy, order = load_policy(tmp_path / "p.yaml"), load_order(tmp_path / "o.yaml")
    own, _ = ps.pseudonymise_frame(data["lss"], KEY, project_key)
    fk, _ = P.pseudonymise_extract(data["assistans"], project_key)
    out, report = L.link_pseudonymised(own, {"assistans": fk}, order, policy)
    direct, _ = L.link_on_pseudonym(own, fk, ["year", "hours_per_week"], name="assistans")
    pd.testing.assert_frame_equal(out, direct)
    assert report.links[0].register == "assistans"
    dors, _ = P.pseudonymise_extract(data["deaths"], project_key)
    with pytest.raises(PolicyError, match="'deaths' was given, but the order does not ask"):
        L.link_pseudonymised(own, {"deaths": dors}, order, policy)
    # a register linked on the pseudonym is not linked on personnummer, and the other way round
    with pytest.raises(PolicyError, match="on the pseudonym, not on the personnummer"):
        L.link(data["lss"], {"assistans": data["assistans"]}, order, policy)


# --------------------------------------------------------------------------------------------
# the command line, both agencies


@pytest.fixture()
def agency(tmp_path, monkeypatch):
    """A key store with the project and a signer, and an existing ledger."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from lsssdc.identity.keystore import KdfParams, KeyStore

    monkeypatch.setenv("LSSSDC_PASSPHRASE", "correct horse battery staple")
    monkeypatch.delenv("LSSSDC_PARTNER_PASSPHRASE", raising=False)
    cheap = KdfParams("argon2id", os.urandom(16), iterations=1, lanes=1, memory_kib=8 * 1024)
    store = KeyStore.create(tmp_path / "keys" / "store.json", "correct horse battery staple", kdf=cheap)
    store.pseudonym_key(PROJECT, create=True)
    store.add_signer("key-holder", ACTOR_SECRET, ("custodian",))
    Ledger.open(tmp_path / "audit" / "ledger.sqlite", signer=Ed25519PrivateKey.generate()).close()
    (tmp_path / "data").mkdir()
    (tmp_path / "partner").mkdir()
    (tmp_path / "data" / "p.yaml").write_text(PSEUDONYM_POLICY, encoding="utf-8")
    (tmp_path / "data" / "o.yaml").write_text(PSEUDONYM_ORDER, encoding="utf-8")
    return {"root": tmp_path, "store": store}


def test_the_command_line_round_trip(agency, data, capsys):
    from lsssdc.cli import run

    t = agency["root"]
    ks, ledger = str(t / "keys" / "store.json"), str(t / "audit" / "ledger.sqlite")
    part = t / "partner"
    assert (
        run(["partner", "keygen", "--out", str(part / "x.pem"), "--public-out", str(part / "x.pub.pem")]) == 0
    )
    assert oct((part / "x.pem").stat().st_mode & 0o777) == "0o600"
    assert "fingerprint sha256:" in capsys.readouterr().out
    argv = [
        "partner",
        "export-key",
        "--key-store",
        ks,
        "--project",
        PROJECT,
        "--recipient",
        "Forsakringskassan",
    ]
    argv += ["--public-key", str(part / "x.pub.pem"), "--out", str(part / "k.json"), "--ledger", ledger]
    assert run([*argv, "--actor", "key-holder", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert set(shown) == {
        "project",
        "key_version",
        "recipient",
        "recipient_fingerprint",
        "format",
        "key_file",
    }
    assert shown["recipient_fingerprint"] == P.fingerprint(
        P.load_public_key((part / "x.pub.pem").read_bytes())
    )
    with Ledger.open(ledger, create=False) as book:
        assert [e.kind for e in book.entries()] == ["key_export"]

    data["assistans"].to_csv(part / "fk.csv", index=False)
    argv = ["partner", "pseudonymise", str(part / "fk.csv"), "--key-file", str(part / "k.json")]
    argv += ["--private-key", str(part / "x.pem"), "--out", str(part / "fk-pseud.parquet"), "--json"]
    assert run(argv) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == len(data["assistans"])

    own, _ = ps.pseudonymise_frame(data["lss"], KEY, agency["store"].pseudonym_key(PROJECT))
    write_table(own, t / "data" / "own.parquet")
    argv = ["partner", "import", str(part / "fk-pseud.parquet"), "--register", "assistans"]
    argv += ["--extract", str(t / "data" / "own.parquet"), "--policy", str(t / "data" / "p.yaml")]
    argv += [
        "--order",
        str(t / "data" / "o.yaml"),
        "--key-store",
        ks,
        "--out",
        str(t / "data" / "linked.parquet"),
    ]
    assert run([*argv, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["registers"][0]["matched_persons"] > 0
    linked = pd.read_parquet(t / "data" / "linked.parquet")
    assert len(linked) == len(data["lss"]) and "hours_per_week" in linked.columns


def test_the_command_line_refuses_a_wrong_private_key_with_exit_2(agency, data, capsys):
    from lsssdc.cli import run

    t, part = agency["root"], agency["root"] / "partner"
    ks, ledger = str(t / "keys" / "store.json"), str(t / "audit" / "ledger.sqlite")
    for name in ("right", "wrong"):
        assert (
            run(
                [
                    "partner",
                    "keygen",
                    "--out",
                    str(part / f"{name}.pem"),
                    "--public-out",
                    str(part / f"{name}.pub"),
                ]
            )
            == 0
        )
    argv = ["partner", "export-key", "--key-store", ks, "--project", PROJECT, "--recipient", "FK"]
    argv += ["--public-key", str(part / "right.pub"), "--out", str(part / "k.json"), "--ledger", ledger]
    assert run([*argv, "--actor", "key-holder"]) == 0
    data["deaths"].to_csv(part / "d.csv", index=False)
    capsys.readouterr()
    argv = ["partner", "pseudonymise", str(part / "d.csv"), "--key-file", str(part / "k.json")]
    argv += ["--private-key", str(part / "wrong.pem"), "--out", str(part / "d-pseud.parquet")]
    assert run(argv) == 2
    err = capsys.readouterr().err
    assert "another key" in err and not (part / "d-pseud.parquet").exists()
    # a changed key file: exit 2 too
    doc = json.loads((part / "k.json").read_text())
    doc["key_version"] = 2
    (part / "k.json").write_text(json.dumps(doc))
    argv[argv.index(str(part / "wrong.pem"))] = str(part / "right.pem")
    assert run(argv) == 2
    assert "does not authenticate" in capsys.readouterr().err


def test_export_needs_an_existing_ledger(agency, capsys):
    from lsssdc.cli import run

    t, part = agency["root"], agency["root"] / "partner"
    assert run(["partner", "keygen", "--out", str(part / "x.pem"), "--public-out", str(part / "x.pub")]) == 0
    argv = ["partner", "export-key", "--key-store", str(t / "keys" / "store.json"), "--project", PROJECT]
    argv += ["--recipient", "FK", "--public-key", str(part / "x.pub"), "--out", str(part / "k.json")]
    assert run([*argv, "--ledger", str(t / "nowhere.sqlite"), "--actor", "key-holder"]) == 2
    assert not (part / "k.json").exists()
