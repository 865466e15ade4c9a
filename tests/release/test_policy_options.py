"""Policy options the release honours: delivery formats and running numbers (löpnummer)."""

import json
from pathlib import Path

import pandas as pd

from lsssdc import policy as P
from lsssdc import release
from lsssdc.release import pipeline

from .conftest import make_keystore, open_ledger, order_path, policy_path


def _variant(tmp: Path, **replace: str) -> Path:
    text = policy_path("research-standard").read_text(encoding="utf-8")
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    out = tmp / "research-standard.yaml"
    out.write_text(text, encoding="utf-8")
    return out


def _deliver(tmp_path: Path, small, policy_file: Path) -> Path:
    store = make_keystore(tmp_path / "keys" / "store.json")
    book = open_ledger(tmp_path / "ledger" / "l.sqlite", store)
    order_file = order_path("daglig-verksamhet-2015-2023")
    cand = pipeline.prepare(
        P.load_policy(policy_file),
        P.load_order(order_file),
        small.register,
        keystore=store,
        work_dir=tmp_path / "work",
        inputs=[],
        ledger=book,
        policy_path=policy_file,
        order_path=order_file,
    ).candidate
    assert cand.verdict == "releasable"
    release.approve(cand.path, "reviewer-a", store, book)
    return Path(release.deliver(cand.path, tmp_path / "out", store, book, "ordering-service")["package"])


def test_only_the_policys_formats_are_delivered(tmp_path, small):
    pol = _variant(tmp_path, **{"formats: [csv, parquet, stata, spss, sas]": "formats: [csv]"})
    out = _deliver(tmp_path, small, pol)
    names = {p.name for p in out.iterdir()}
    assert "data.csv" in names and "data.parquet" not in names and "data.dta" not in names
    assert not names & {"data.sav", "data.xpt", "data-labels-en.do", "data-labels-en.sps", "data-formats.sas"}
    resources = json.loads((out / "datapackage.json").read_text(encoding="utf-8"))["resources"]
    assert [r["path"] for r in resources] == ["data.csv"]
    manifest = (out / "MANIFEST.sha256").read_text(encoding="utf-8")
    assert "data.parquet" not in manifest and "data.csv" in manifest


def test_lopnummer_replaces_the_pseudonym(tmp_path, small):
    pol = _variant(tmp_path, **{"output: token": "output: lopnummer"})
    out = _deliver(tmp_path, small, pol)
    df = pd.read_parquet(out / "data.parquet")
    assert "lopnummer" in df.columns and "pseudonym" not in df.columns
    ranks = df["lopnummer"].astype("int64")
    assert ranks.min() == 1 and ranks.max() == ranks.nunique()
