"""The reader of a delivered table package: nothing in it may give a hidden cell's value or
its bounds, and hidden cells must be indistinguishable (primary or secondary). The reader's
view is built here from the package bytes alone (csv and json from the standard library); the
truth to compare against is the reviewer's audit kept in the candidate."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest

from lsssdc import release
from lsssdc.errors import LsssdcError
from tests.release.conftest import order_path, policy_path, prepare_order

TABLES = ("public-tables", "kommun-tables-2023")


@pytest.fixture
def package(site) -> dict:
    cand = prepare_order(
        site["small"],
        policy_path(TABLES[0]),
        order_path(TABLES[1]),
        site["store"],
        site["root"] / "work",
        site["ledger"],
    )
    assert cand.verdict == "releasable"
    release.approve(cand.path, "reviewer-a", site["store"], site["ledger"])
    to = site["root"] / "out" / "tables"
    release.deliver(cand.path, to, site["store"], site["ledger"], "ordering-service")
    return {"cand": cand.path, "pkg": to}


def _truth(cand: Path) -> dict[tuple[str, int], dict]:
    full = json.loads((cand / "table-audit.json").read_text(encoding="utf-8"))
    return {(c["table"], int(c["cell"])): c for c in full["cells"]}


def test_no_hidden_value_or_bound_is_in_the_package(package) -> None:
    truth = _truth(package["cand"])
    hidden = {k: c for k, c in truth.items() if c["status"] != "published"}
    assert hidden, "the order hides no cell: the test would prove nothing"
    pkg = package["pkg"]
    names = sorted(p.name for p in pkg.iterdir())
    assert "table-audit.json" not in names
    for p in pkg.glob("*.json"):
        text = p.read_text(encoding="utf-8")
        for key in ("lower", "upper", "required_lower", "required_upper", "value", "reasons"):
            assert f'"{key}":' not in text, f"{p.name} holds '{key}'"
        assert "primary" not in text and "secondary" not in text, p.name
    tables = {t for t, _ in truth}
    for table in tables:
        rows = list(csv.DictReader(io.StringIO((pkg / f"{table}.csv").read_text(encoding="utf-8-sig"))))
        for t, cell in hidden:
            if t != table:
                continue
            assert rows[cell]["value"] == "..", f"{t} cell {cell} shows a value"
        notes = {rows[cell]["notes"] for (t, cell) in hidden if t == table}
        assert len(notes) == 1, f"{table}: hidden cells carry different notes: {notes}"
        text = (pkg / f"{table}.csv").read_text(encoding="utf-8-sig")
        assert not re.search(r"primär|sekundär|färre än", text)


def test_a_forged_hidden_value_is_stopped_before_writing(site, monkeypatch, tmp_path) -> None:
    """If anything upstream let a hidden value through, the last check refuses to write anything."""
    from lsssdc import policy as P
    from lsssdc.disclosure import table_output
    from lsssdc.release import table_orders

    real = table_output._format_values

    def leaky(table, status):
        out = real(table, status)
        out[status != 0] = "7"
        return out

    monkeypatch.setattr(table_output, "_format_values", leaky)
    pol, order = P.load_policy(policy_path(TABLES[0])), P.load_order(order_path(TABLES[1]))
    draft = tmp_path / "draft"
    with pytest.raises(LsssdcError) as info:
        table_orders.make_tables(pol, order, site["small"].register, draft)
    assert "hidden" in str(info.value)
    assert not draft.exists() or not any(draft.iterdir())
