"""Which deliveries held a person: keyed tags per delivery, and no personnummer in the ledger file."""

from __future__ import annotations

import hashlib
import re
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lsssdc.errors import InputDataError, KeyStoreError, LedgerIntegrityError
from lsssdc.ledger import person_index as pindex
from lsssdc.ledger.chain import Ledger
from lsssdc.register import synth

KEY = hashlib.sha256(b"audit index key for tests").digest()
OTHER_KEY = hashlib.sha256(b"another audit index key").digest()
SIGNER = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"deliverer").digest())


@pytest.fixture(scope="module")
def persons() -> pd.Series:
    return synth.synthesise([2022, 2023], persons=3000, seed=7).register["personnummer"]


@pytest.fixture
def delivered(tmp_path: Path, persons: pd.Series) -> tuple[Ledger, dict[str, pd.Series]]:
    unique = pd.Series(persons.unique())
    parts = {"D-1": unique.iloc[:1500], "D-2": unique.iloc[1000:2500], "D-3": unique.iloc[2400:]}
    ledger = Ledger.open(tmp_path / "ledger.sqlite", signer=SIGNER)
    for name, part in parts.items():
        ledger.append("deliver", "operator", {"delivery": name}, persons=pindex.build(part, KEY))
    return ledger, parts


def test_deliveries_with_finds_exactly_the_deliveries_of_a_person(delivered) -> None:
    ledger, parts = delivered
    rng = np.random.default_rng(0)
    everyone = pd.concat(parts.values()).unique()
    for p in rng.choice(everyone, 40, replace=False):
        expected = [name for name, part in parts.items() if p in set(part)]
        got = [e.payload["delivery"] for e in ledger.deliveries_with(str(p), KEY)]
        assert got == expected
    # a valid personnummer that was never delivered
    absent = synth.synthesise([2023], persons=50, seed=99).register["personnummer"]
    absent = [p for p in absent if p not in set(everyone)]
    assert ledger.deliveries_with(absent[0], KEY) == []
    assert ledger.verify().ok


def test_other_written_forms_of_the_same_person_match(delivered) -> None:
    ledger, parts = delivered
    p = str(parts["D-1"].iloc[0])
    dashed = f"{p[:8]}-{p[8:]}"
    short = f"{p[2:8]}-{p[8:]}" if int(p[:4]) > 1925 else f"{p[2:8]}+{p[8:]}"
    assert [e.payload["delivery"] for e in ledger.deliveries_with(dashed, KEY)] == ["D-1"]
    found = ledger.deliveries_with(short, KEY, reference_date="2024-12-31")
    assert [e.payload["delivery"] for e in found] == ["D-1"]


def test_entry_payload_carries_the_index_summary(delivered) -> None:
    ledger, parts = delivered
    entry = ledger.entry(1)
    summary = entry.payload["person_index"]
    assert summary["persons"] == parts["D-1"].nunique()
    assert summary["tag_bytes"] == 8 and summary["key_id"] == pindex.key_id(KEY)


def test_wrong_index_key_is_an_error_not_an_empty_answer(delivered) -> None:
    ledger, parts = delivered
    with pytest.raises(KeyStoreError):
        ledger.deliveries_with(str(parts["D-1"].iloc[0]), OTHER_KEY)
    with pytest.raises(KeyStoreError):
        pindex.build(parts["D-1"], b"short")


def test_tags_are_sorted_unique_keyed_and_deterministic(persons: pd.Series) -> None:
    a = pindex.tags(persons, KEY)
    assert a.size == persons.nunique() and np.all(a[1:] > a[:-1])
    assert np.array_equal(a, pindex.tags(persons.sample(frac=1, random_state=1), KEY))
    b = pindex.tags(persons, OTHER_KEY)
    assert np.intersect1d(a, b).size == 0
    built = pindex.build(persons, KEY)
    assert len(built.tags) == 8 * built.persons
    assert built.contains(pindex.person_tag(str(persons.iloc[5]), KEY))


def test_invalid_values_are_refused_without_echo(persons: pd.Series) -> None:
    bad = persons.iloc[:10].tolist()
    broken = bad[3][:-1] + str((int(bad[3][-1]) + 1) % 10)  # wrong check digit
    bad[3] = broken
    with pytest.raises(InputDataError) as info:
        pindex.build(bad, KEY)
    assert broken not in str(info.value) and "row 4" in str(info.value)


def test_changed_index_blob_is_detected(tmp_path: Path, delivered) -> None:
    ledger, parts = delivered
    path = tmp_path / "ledger.sqlite"
    db = sqlite3.connect(path)
    db.execute("DROP TRIGGER person_index_no_update")
    forged = np.sort(
        np.append(
            np.frombuffer(db.execute("SELECT tags FROM person_index WHERE seq = 2").fetchone()[0], ">u8"),
            np.uint64(5),
        )
    )
    db.execute(
        "UPDATE person_index SET tags = ?, persons = persons + 1 WHERE seq = 2",
        (forged.astype(">u8").tobytes(),),
    )
    db.commit()
    db.close()
    report = Ledger.open(path, create=False).verify()
    assert report.first_divergent == 2 and {p.code for p in report.problems} == {"ledger_person_index"}
    with pytest.raises(LedgerIntegrityError):
        ledger.deliveries_with(str(parts["D-2"].iloc[0]), KEY)


def test_no_personnummer_anywhere_in_the_ledger_files(tmp_path: Path, delivered) -> None:
    ledger, parts = delivered
    ledger.checkpoint().write(tmp_path / "checkpoint.json")
    ledger.close()
    blobs = b"".join(p.read_bytes() for p in sorted(tmp_path.iterdir()) if p.is_file())
    assert len(blobs) > 10_000
    digits = set(re.findall(rb"\d{10,}", blobs))
    runs = {m[i : i + n] for m in digits for n in (10, 12) for i in range(len(m) - n + 1)}
    everyone = pd.concat(parts.values()).unique()
    forms = {p.encode() for p in everyone} | {p[2:].encode() for p in everyone}
    assert not (forms & runs)
    dashed = {f"{p[:8]}-{p[8:]}".encode() for p in everyone[:500]} | {
        f"{p[2:8]}-{p[8:]}".encode() for p in everyone[:500]
    }
    assert not any(d in blobs for d in dashed)


def test_deleted_index_blob_is_detected(tmp_path: Path, delivered) -> None:
    path = tmp_path / "ledger.sqlite"
    db = sqlite3.connect(path)
    db.execute("DROP TRIGGER person_index_no_delete")
    db.execute("DELETE FROM person_index WHERE seq = 3")
    db.commit()
    db.close()
    report = Ledger.open(path, create=False).verify()
    assert report.first_divergent == 3 and {p.code for p in report.problems} == {"ledger_person_index"}
