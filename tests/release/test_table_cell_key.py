"""Table orders protected by the cell key method, through prepare, approve and deliver: the
same cell gets the same noise in every order, the audit runs with every earlier release, the
utility figures are reported, and exact and perturbed releases of one year are never mixed."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from lsssdc import release
from lsssdc.disclosure.tables import cellkey
from tests.release.conftest import make_keystore, open_ledger, order_path, policy_path, prepare_order

CELL_KEY = "public-tables-cell-key"


def _policy(tmp: Path) -> Path:
    doc = yaml.safe_load(policy_path("public-tables").read_text(encoding="utf-8"))
    doc["name"] = CELL_KEY
    doc["tables"]["protection"] = "cell_key"
    doc["tables"]["magnitudes"] = []
    path = tmp / f"{CELL_KEY}.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def _order(
    tmp: Path, order_id: str, tables: list[dict] | None = None, policy: str = CELL_KEY, years=(2023,)
) -> Path:
    doc = yaml.safe_load(order_path("kommun-tables-2023").read_text(encoding="utf-8"))
    doc.update(
        {"order_id": order_id, "project_id": f"p-{order_id.lower()}", "policy": policy, "years": list(years)}
    )
    if tables is not None:
        doc["tables"] = tables
    path = tmp / f"{order_id}.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


#: a fixed record-key secret: the noise (and so whether the audit passes) depends on the keys;
#: with this one both orders of the tests pass, so the tests do not depend on a random key store
SECRET = bytes(range(32))


@pytest.fixture
def area(tmp_path: Path, small) -> dict:
    store = make_keystore(tmp_path / "keys" / "k.json")
    derive = store.derive_key
    store.derive_key = lambda label, length=32: (
        SECRET if label == cellkey.KEY_LABEL else derive(label, length)
    )  # type: ignore[method-assign]
    book = open_ledger(tmp_path / "ledger.sqlite", store)
    yield {"root": tmp_path, "store": store, "ledger": book, "small": small, "policy": _policy(tmp_path)}
    book.close()


def _prepare(area: dict, order: Path, policy: Path | None = None):
    return prepare_order(
        area["small"], policy or area["policy"], order, area["store"], area["root"] / "work", area["ledger"]
    )


def _deliver(area: dict, order: Path, name: str) -> Path:
    c = _prepare(area, order)
    assert c.verdict == "releasable", json.loads((c.path / "report.json").read_text(encoding="utf-8"))[
        "verdict"
    ]
    release.approve(c.path, "reviewer-a", area["store"], area["ledger"])
    to = area["root"] / "out" / name
    release.deliver(c.path, to, area["store"], area["ledger"], "ordering-service")
    return to


def _csv(pkg: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(pkg / f"{name}.csv", dtype=str, keep_default_na=False, encoding="utf-8-sig")


def test_the_same_cell_gets_the_same_noise_in_two_orders(area) -> None:
    first = _deliver(area, _order(area["root"], "C-1"), "first")
    ks = [{"name": "kommun-sex", "dimensions": ["kommun", "sex", "insats"], "unit": "persons"}]
    second = _deliver(area, _order(area["root"], "C-2", ks), "second")
    a = _csv(first, "persons-per-kommun-and-insats")
    b = _csv(second, "kommun-sex")
    b = b[b["sex"] == "Totalt"]
    merged = a.merge(b, on=["kommun", "insats"], suffixes=("_a", "_b"))
    assert len(merged) == len(a)
    assert (merged["value_a"] == merged["value_b"]).all()
    assert ".." not in set(a["value"])
    # counts 1 and 2 are never shown; the values are not the truth everywhere
    assert not set(a["value"]) & {"1", "2"}
    desc = json.loads((first / "persons-per-kommun-and-insats.json").read_text(encoding="utf-8"))
    assert desc["protection"]["method"] == "cell_key"


def test_the_report_gives_the_error_per_cell(area) -> None:
    c = _prepare(area, _order(area["root"], "C-3"))
    report = json.loads((c.path / "report.json").read_text(encoding="utf-8"))
    assert c.verdict == "releasable"
    figures = report["cell_key"]
    assert [f["table"] for f in figures] == ["persons-per-kommun-and-insats", "persons-per-lan-sex-age"]
    for f in figures:
        assert 0 < f["mean_abs_error"] <= f["params"]["D"]
        assert f["max_abs_error"] <= f["params"]["D"]
    assert report["table_audit"]["passed"] is True


def test_exact_and_perturbed_releases_of_one_year_are_not_mixed(area) -> None:
    _deliver(area, _order(area["root"], "C-4"), "noisy")
    exact = _order(area["root"], "C-5", policy="public-tables")
    c = _prepare(area, exact, policy_path("public-tables"))
    assert c.verdict == "refused"
    assert "mixed_protection" in (c.path / "report.json").read_text(
        encoding="utf-8"
    ) or "released with cell_key" in (c.path / "report.json").read_text(encoding="utf-8")


def test_the_reviewer_report_shows_the_error_figures(area) -> None:
    c = _prepare(area, _order(area["root"], "C-6"))
    html = (c.path / "report.html").read_text(encoding="utf-8")
    assert "Mean absolute error per cell" in html and "Medelabsolutfel per cell" in html
    report = json.loads((c.path / "report.json").read_text(encoding="utf-8"))
    mae = report["cell_key"][0]["mean_abs_error"]
    assert f"{mae:.2f}" in html or f"{mae:.2f}".replace(".", ",") in html
