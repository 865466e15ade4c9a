"""Table orders measured with what readers already hold: the table packages delivered for the
same years, kept consistent, and the microdata extracts of those years."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from lsssdc import release
from lsssdc.errors import DisclosureRefused
from lsssdc.release import table_history
from tests.release.conftest import make_keystore, open_ledger, order_path, policy_path, prepare_order

POLICY = "public-tables"


def _order(tmp: Path, order_id: str, tables: list[dict], years=(2023,)) -> Path:
    doc = yaml.safe_load(order_path("kommun-tables-2023").read_text(encoding="utf-8"))
    doc.update(
        {"order_id": order_id, "project_id": f"p-{order_id.lower()}", "tables": tables, "years": list(years)}
    )
    path = tmp / f"{order_id}.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture
def area(tmp_path: Path, small) -> dict:
    store = make_keystore(tmp_path / "keys" / "k.json")
    book = open_ledger(tmp_path / "ledger.sqlite", store)
    yield {"root": tmp_path, "store": store, "ledger": book, "small": small, "work": tmp_path / "work"}
    book.close()


def _deliver(area: dict, order: Path, name: str):
    c = prepare_order(area["small"], policy_path(POLICY), order, area["store"], area["work"], area["ledger"])
    assert c.verdict == "releasable", json.loads((c.path / "report.json").read_text())["verdict"]
    release.approve(c.path, "reviewer-a", area["store"], area["ledger"])
    release.deliver(c.path, area["root"] / "out" / name, area["store"], area["ledger"], "ordering-service")
    return c


def _csv(c, name: str) -> pd.DataFrame:
    return pd.read_csv(
        c.path / "tables" / f"{name}.csv", dtype=str, keep_default_na=False, encoding="utf-8-sig"
    )


@pytest.mark.slow  # the adversarial reader checks the same pair by default
def test_a_second_order_keeps_what_the_first_published_and_hid(area) -> None:
    first = _deliver(area, order_path("kommun-tables-2023"), "first")
    second_order = _order(
        area["root"],
        "B2026-0100",
        [{"name": "kommun-sex", "dimensions": ["kommun", "sex", "insats"], "unit": "persons"}],
    )
    second = _deliver(area, second_order, "second")
    report = json.loads((second.path / "report.json").read_text(encoding="utf-8"))
    assert [t["order_id"] for t in report["table_history"]["tables"]] == [first.order_id]
    a = _csv(first, "persons-per-kommun-and-insats")
    b = _csv(second, "kommun-sex")
    b = b[b["sex"] == "Totalt"]
    merged = a.merge(b, on=["kommun", "insats"], suffixes=("_a", "_b"))
    assert len(merged) == len(a)
    # one cell, one status and one value in both releases
    assert ((merged["value_a"] == "..") == (merged["value_b"] == "..")).all()
    assert (merged["value_a"] == merged["value_b"]).all()


def test_the_same_order_again_is_the_same_tables(area) -> None:
    first = _deliver(area, order_path("kommun-tables-2023"), "first")
    again = _order(
        area["root"],
        "B2026-0101",
        yaml.safe_load(order_path("kommun-tables-2023").read_text(encoding="utf-8"))["tables"],
    )
    second = _deliver(area, again, "second")
    for name in ("persons-per-kommun-and-insats", "persons-per-lan-sex-age"):
        assert _csv(first, name).equals(_csv(second, name))
    # the first release's witnesses were kept for the reviewer and the next release, not delivered
    assert table_history.WITNESSES in first.manifest["files"]
    delivered = [p.name for p in (area["root"] / "out").rglob("*") if p.is_file()]
    assert delivered and not [n for n in delivered if "witness" in n or n == "table-audit.json"]
    report = json.loads((second.path / "report.json").read_text(encoding="utf-8"))
    assert report["table_history"]["witnesses_adopted"] > 0


def test_a_changed_earlier_delivery_refuses(area) -> None:
    first = _deliver(area, order_path("kommun-tables-2023"), "first")
    path = first.path / "tables" / "persons-per-kommun-and-insats.csv"
    path.chmod(0o644)
    path.write_bytes(path.read_bytes().replace(b",..,", b",1,", 1))
    second_order = _order(
        area["root"],
        "B2026-0102",
        [{"name": "kommun-sex", "dimensions": ["kommun", "sex", "insats"], "unit": "persons"}],
    )
    c = prepare_order(
        area["small"], policy_path(POLICY), second_order, area["store"], area["work"], area["ledger"]
    )
    assert c.verdict == "refused"
    text = json.dumps(json.loads((c.path / "report.json").read_text(encoding="utf-8"))["verdict"])
    assert "changed after it was sealed" in text


def test_extract_cells_count_as_known() -> None:
    from lsssdc.disclosure.tables import build_table
    from lsssdc.register.synth import synthesise

    reg = synthesise(years=[2023], persons=3000, seed=2).register
    t = build_table(reg, ["kommun", "sex", "insats"], "persons")
    data = pd.DataFrame({"year": [2023], "lan": ["01"], "sex": ["1"], "korttidstillsyn": [1]})
    known = table_history.derivable(t, data, {"2023"})
    kommun = t.cells["kommun"].astype(str).to_numpy()
    assert not known[np.char.str_len(kommun.astype(str)) == 4].any()  # no kommun in the extract
    assert known[(kommun == "00") & (t.cells["insats"].astype(str).to_numpy() == "korttidstillsyn")].all()
    assert not table_history.derivable(t, data, {"2022"}).any()


def test_history_refusal_names_the_release(area) -> None:
    _deliver(area, order_path("kommun-tables-2023"), "first")
    from lsssdc.disclosure.tables import FrequencyRule, Rules
    from lsssdc.release import table_orders
    from lsssdc.release.plan import make_plan

    second_order = _order(
        area["root"],
        "B2026-0103",
        [{"name": "kommun-sex", "dimensions": ["kommun", "sex", "insats"], "unit": "persons"}],
    )
    # a stricter rule now: cells the first release published are sensitive under it
    plan = replace(
        make_plan(*_load(second_order)), table_rules=Rules(FrequencyRule(threshold=10, zero_is_safe=True))
    )
    with pytest.raises(DisclosureRefused) as err:
        table_orders.protect_tables(
            plan, area["small"].register, ledger=area["ledger"], work_dir=area["work"]
        )
    assert err.value.problems[0].code == "history_exposes"


def _load(order: Path):
    from lsssdc import policy as P

    return P.load_policy(policy_path(POLICY)), P.load_order(order)


def test_a_series_stays_consistent_when_a_year_is_added(area) -> None:
    tables = [{"name": "kommun-insats", "dimensions": ["kommun", "insats"], "unit": "persons"}]
    first = _deliver(area, _order(area["root"], "B2026-0104", tables, years=(2022,)), "y2022")
    both = _deliver(area, _order(area["root"], "B2026-0105", tables, years=(2022, 2023)), "y2022-2023")
    report = json.loads((both.path / "report.json").read_text(encoding="utf-8"))
    assert [t["order_id"] for t in report["table_history"]["tables"]] == [first.order_id]
    a = _csv(first, "kommun-insats")
    b = _csv(both, "kommun-insats")
    b22 = b[b["year"] == "2022"].drop(columns=["year", "year_text"]).reset_index(drop=True)
    assert len(b22) == len(a)
    assert (b22["value"].to_numpy() == a["value"].to_numpy()).all()
    assert set(b["year"]) >= {"2022", "2023"}


def test_a_table_that_would_fill_an_extracts_blanks_is_refused() -> None:
    from lsssdc.disclosure.tables import build_table
    from lsssdc.register.synth import synthesise

    reg = synthesise(years=[2023], persons=3000, seed=2).register
    reg = reg.assign(personkrets=reg["personkrets"].astype(str))
    t = build_table(reg, ["lan", "personkrets", "insats"], "persons", name="t")
    blanked = pd.DataFrame(
        {
            "year": [2023, 2023],
            "lan": ["01", "01"],
            "personkrets": ["1", ".."],
            "korttidstillsyn": [1, 1],
            "suppressed": ["", "personkrets"],
        }
    )
    ex = table_history.Extract("X-1", "sha256:0", 7, blanked)
    assert table_history.refill(t, ex) == ["personkrets"]
    clean = blanked.assign(personkrets=["1", "2"], suppressed=["", ""])
    assert table_history.refill(t, table_history.Extract("X-2", "sha256:0", 8, clean)) == []
    other_year = blanked.assign(year=[2021, 2021])
    assert table_history.refill(t, table_history.Extract("X-3", "sha256:0", 9, other_year)) == []


def _extract_order(tmp: Path, order_id: str, variables: list[str]) -> Path:
    doc = yaml.safe_load(order_path("daglig-verksamhet-2015-2023").read_text(encoding="utf-8"))
    doc.update({"order_id": order_id, "project_id": f"p-{order_id.lower()}", "variables": variables})
    path = tmp / f"{order_id}.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def test_an_extract_after_tables_of_its_years_is_measured_with_them(area) -> None:
    first = _deliver(area, order_path("kommun-tables-2023"), "first")
    policy = policy_path("research-standard")
    # counts the tables show at no finer detail than they do: delivered, with the check named
    plain = _extract_order(area["root"], "B2026-0701", ["year", "personkrets", "daglig_verksamhet"])
    c = prepare_order(area["small"], policy, plain, area["store"], area["work"], area["ledger"])
    report = json.loads((c.path / "report.json").read_text(encoding="utf-8"))
    assert c.verdict == "releasable", report["verdict"]
    assert [t["order_id"] for t in report["tables_held"]["tables"]] == [first.order_id]
    assert [x for x in report["verdict"]["checks"] if x["name"] == "published_tables"][0]["ok"]
    # sex and age bands, blanked for some persons, where the tables publish them: refused
    detailed = _extract_order(
        area["root"], "B2026-0702", ["year", "sex", "age", "personkrets", "daglig_verksamhet"]
    )
    c = prepare_order(area["small"], policy, detailed, area["store"], area["work"], area["ledger"])
    report = json.loads((c.path / "report.json").read_text(encoding="utf-8"))
    assert c.verdict == "refused"  # the daglig verksamhet cells by län, sex and age count them all
    assert "persons-per-lan-sex-age" in json.dumps(report["verdict"]) and "blank" in json.dumps(
        report["verdict"]
    )
    # the same variables where the tables count other persons too (no insats): nothing to refill
    lan_sex = _table_without_insats(area["small"].register)
    dv_only = table_history.Extract("X", "", 0, _blank_sex(), {"insatser": ["daglig_verksamhet"]})
    assert table_history.refill(lan_sex, dv_only) == []
    everybody = table_history.Extract("X", "", 0, _blank_sex(), {"insatser": []})
    assert table_history.refill(lan_sex, everybody) == ["sex"]


def _table_without_insats(register: pd.DataFrame):
    from lsssdc.disclosure.tables import build_table

    return build_table(register[register["year"] == 2023], ["lan", "sex"], "persons", name="lan-sex")


def _blank_sex() -> pd.DataFrame:
    return pd.DataFrame(
        {"year": [2023, 2023], "lan": ["01", "01"], "sex": ["..", "1"], "suppressed": ["sex", ""]}
    )


def test_an_unreadable_policy_of_earlier_tables_refuses_the_extract(area, monkeypatch) -> None:
    from lsssdc import policy as P
    from lsssdc.release import table_orders

    first = _deliver(area, order_path("kommun-tables-2023"), "first")
    real = table_history.earlier

    def with_old_policy(*args, **kwargs):
        past = real(*args, **kwargs)
        for e in past.tables:
            e.policy = {"policy_version": 0, "name": "an old format"}
        return past

    monkeypatch.setattr(table_history, "earlier", with_old_policy)
    order = P.load_order(
        _extract_order(area["root"], "B2026-0703", ["year", "personkrets", "daglig_verksamhet"])
    )
    data = pd.DataFrame({"year": [2023], "personkrets": ["1"], "daglig_verksamhet": [1]})
    with pytest.raises(DisclosureRefused) as err:
        table_orders.check_extract(
            order, data, area["small"].register, ledger=area["ledger"], work_dir=area["work"]
        )
    assert err.value.problems[0].code == "history_changed" and first.order_id


def test_earlier_witnesses_are_placed_by_name_and_a_torn_or_stray_one_is_dropped() -> None:
    """A witness file read back from an earlier release is a hint: each witness is placed among
    the tables by name, and one that names a table not there, a cell outside its table, or two
    different targets on its rows is dropped whole."""

    def rows(
        w: int, target: str, tcell: int, entries: list[tuple[str, int]], direction: int = 1
    ) -> list[dict]:
        return [
            {
                "witness": w,
                "target_table": target,
                "target_cell": tcell,
                "direction": direction,
                "table": t,
                "cell": c,
                "y": 1.0,
            }
            for t, c in entries
        ]

    good = rows(0, "A/t", 2, [("A/t", 2), ("A/t", 0)])
    stray = rows(1, "A/t", 1, [("A/t", 1), ("Z/none", 0)])
    outside = rows(2, "A/t", 1, [("A/t", 1), ("A/t", 9)])
    torn = rows(3, "A/t", 1, [("A/t", 1)]) + rows(3, "B/u", 0, [("B/u", 0)])
    second = rows(0, "B/u", 1, [("B/u", 1), ("A/t", 3)], direction=-1)
    frames = [pd.DataFrame(good + stray + outside + torn), pd.DataFrame(second)]
    past = table_history.TableHistory(
        tables=[
            table_history.EarlierTables(f"X-{i}", "sha256:0", i, [], [], witnesses=f)
            for i, f in enumerate(frames)
        ]
    )
    placed = table_history.witnesses_for(past, ["B/u", "A/t"], [2, 4])
    assert placed is not None
    assert placed["target_table"].tolist() == [1, 0] and placed["target_cell"].tolist() == [2, 1]
    assert placed["direction"].tolist() == [1, -1]
    assert placed["witness"].tolist() == [0, 0, 1, 1]
    assert placed["table"].tolist() == [1, 1, 0, 1] and placed["cell"].tolist() == [2, 0, 1, 3]
    # a table named twice is ambiguous: nothing touching it is placed
    assert table_history.witnesses_for(past, ["A/t", "A/t", "B/u"], [4, 4, 2]) is None
