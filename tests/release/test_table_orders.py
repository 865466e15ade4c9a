"""A table order goes through the same workflow: prepare (audit), approve, deliver, ledger."""

from pathlib import Path

import pandas as pd
import pytest

from lsssdc import policy as P
from lsssdc import release
from lsssdc.errors import DisclosureRefused
from lsssdc.register import synth
from lsssdc.release import pipeline
from lsssdc.shipped import folder as _shipped_folder

from .conftest import make_keystore, open_ledger

SHIPPED = _shipped_folder()

ROOT = Path(__file__).resolve().parents[2]
POLICY = SHIPPED / "public-tables.yaml"
ORDER = SHIPPED / "orders" / "kommun-tables-2023.yaml"


@pytest.fixture(scope="module")
def register() -> pd.DataFrame:
    return synth.synthesise(years=[2023], persons=8000, seed=11).register


def test_table_order_prepare_approve_deliver(tmp_path, register):
    store = make_keystore(tmp_path / "keys" / "store.json")
    book = open_ledger(tmp_path / "ledger" / "ledger.sqlite", store)
    pol, order = P.load_policy(POLICY), P.load_order(ORDER)
    cand = pipeline.prepare(
        pol,
        order,
        register,
        keystore=store,
        work_dir=tmp_path / "work",
        inputs=[],
        ledger=book,
        policy_path=POLICY,
        order_path=ORDER,
    ).candidate
    assert cand.verdict == "releasable"
    assert cand.manifest["kind"] == "tables"
    assert not (cand.path / "data.parquet").exists() and not (cand.path / "person_index.bin").exists()
    html = (cand.path / "report.html").read_text(encoding="utf-8")
    assert "attacker" in html and "persons-per-kommun-and-insats" in html
    with pytest.raises(DisclosureRefused):
        release.deliver(cand.path, tmp_path / "out", store, book, "ordering-service")
    release.approve(cand.path, "reviewer-a", store, book)
    done = release.deliver(cand.path, tmp_path / "out", store, book, "ordering-service")
    out = Path(done["package"])
    names = {p.name for p in out.iterdir()}
    assert {
        "persons-per-kommun-and-insats.csv",
        "audit.json",
        "README.md",
        "MANIFEST.sha256",
        "policy.yaml",
        "order.yaml",
    } <= names
    assert ".." in (out / "persons-per-kommun-and-insats.csv").read_text(encoding="utf-8-sig")
    kinds = [e.kind for e in book.entries()]
    assert kinds == ["custodians", "prepare", "approve", "deliver"]
    assert book.verify().ok
