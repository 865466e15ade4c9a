"""Writing protected tables: CSV with BOM, Excel workbook, JSON description, audit."""

from __future__ import annotations

import hashlib
import io
import json
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from lsssdc.disclosure.table_output import HIDDEN, table_frame, write_tables
from lsssdc.disclosure.tables import (
    FrequencyRule,
    PRule,
    Rules,
    build_table,
    kommun_tree,
    protect,
)
from lsssdc.disclosure.tables.attack import audit
from lsssdc.fileio import read_table
from lsssdc.register import variables as V

DV, KP, PA = "daglig_verksamhet", "kontaktperson", "personlig_assistans"
KOMMUNER = ["0114", "0115", "0117", "0180"]  # Upplands Väsby, Vallentuna, Österåker, Stockholm

NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}


def register() -> pd.DataFrame:
    groups = [
        ("0114", 1, (DV,)),
        ("0115", 6, (DV, KP)),
        ("0117", 2, (KP,)),
        ("0180", 9, (DV,)),
        ("0180", 4, (PA,)),
    ]
    recs = []
    for kommun, n, ins in groups:
        for i in range(n):
            rec = {
                "year": 2024,
                "personnummer": f"p{len(recs)}",
                "kommun": kommun,
                "sex": "12"[i % 2],
                "age": 40,
            }
            rec.update({name: int(name in ins) for name in V.INSATSER})
            rec["hours_personlig_assistans"] = 100.0 + 10 * i if PA in ins else np.nan
            recs.append(rec)
    return pd.DataFrame(recs)


def protected_tables():
    reg = register()
    h = {"kommun": kommun_tree(KOMMUNER)}
    t = build_table(reg, ["kommun", "insats"], "persons", h, insatser=[DV, KP, PA], name="personer")
    p = protect(t, Rules(FrequencyRule(3)))
    return p, audit(p)


def test_files_csv_with_bom_dots_and_notes(tmp_path: Path) -> None:
    p, rep = protected_tables()
    paths = write_tables(p, tmp_path, rep)
    assert sorted(x.name for x in paths) == ["audit.json", "personer.csv", "personer.json", "personer.xlsx"]
    raw = (tmp_path / "personer.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # Excel reads UTF-8 with a byte order mark
    assert "Österåker".encode() in raw and "Upplands Väsby".encode() in raw
    df = read_table(tmp_path / "personer.csv")
    assert list(df.columns) == ["kommun", "kommun_text", "insats", "insats_text", "value", "notes"]
    status = p.status[0]
    hidden = df["value"] == HIDDEN
    assert hidden.sum() == (status != 0).sum() > 0
    assert (hidden.to_numpy() == (status != 0)).all()
    # one note for every hidden cell: primary and secondary cells cannot be told apart
    assert (df.loc[status != 0, "notes"] == "Uppgift undertryckt av sekretesskäl").all()
    assert not df["notes"].str.contains("primär|sekundär|färre än").any()
    total = df[(df["kommun"] == "00") & (df["insats"] == "Totalt")].iloc[0]
    assert "räknas en gång" in total["notes"]  # a persons margin over insatser is not a sum
    assert not list(tmp_path.glob("*.part")) and not list(tmp_path.glob(".*"))


def test_xlsx_holds_the_same_rows(tmp_path: Path) -> None:
    p, rep = protected_tables()
    write_tables(p, tmp_path, rep)
    with zipfile.ZipFile(tmp_path / "personer.xlsx") as zf:
        assert zf.testzip() is None
        sheet = ET.fromstring(zf.read("xl/worksheets/sheet1.xml"))
    rows = sheet.findall(".//m:row", NS)
    frame = table_frame(p, 0)
    assert len(rows) == len(frame) + 1
    values = []
    for r in rows[1:]:
        c = [x for x in r.findall("m:c", NS) if x.get("r", "").startswith("E")][0]
        v = c.find("m:v", NS)
        values.append(v.text if v is not None else c.find(".//m:t", NS).text)
    assert values == frame["value"].tolist()
    first = "".join(t.text for t in rows[2].findall(".//m:t", NS))
    assert "Riket" in first


def test_json_description(tmp_path: Path) -> None:
    p, rep = protected_tables()
    write_tables(p, tmp_path, rep)
    desc = json.loads((tmp_path / "personer.json").read_text(encoding="utf-8"))
    assert desc["unit"] == "persons" and desc["threshold"] == 3
    assert [d["name"] for d in desc["dimensions"]] == ["kommun", "insats"]
    assert desc["cells"]["hidden"] == int((p.status[0] != 0).sum())
    assert "primary" not in json.dumps(desc) and "secondary" not in json.dumps(desc)
    assert desc["audit"]["passed"] is True
    assert desc["relations"]["union"] > 0 and "bounded" in desc["count_unit_note"]
    digest = hashlib.sha256((tmp_path / "personer.csv").read_bytes()).hexdigest()
    assert desc["files"]["personer.csv"] == "sha256:" + digest
    statement = json.loads((tmp_path / "audit.json").read_text(encoding="utf-8"))
    assert statement["passed"] is True and statement["tables"][0]["hidden_cells"] == desc["cells"]["hidden"]
    assert "cells" not in statement and "lower" not in json.dumps(statement)


def test_output_is_byte_identical_when_repeated(tmp_path: Path) -> None:
    p, rep = protected_tables()
    a = write_tables(p, tmp_path / "a", rep)
    p2, rep2 = protected_tables()
    b = write_tables(p2, tmp_path / "b", rep2)
    for x, y in zip(a, b, strict=True):
        assert x.read_bytes() == y.read_bytes(), x.name


def test_magnitude_values_and_no_audit(tmp_path: Path) -> None:
    reg = register()
    h = {"kommun": kommun_tree(KOMMUNER)}
    t = build_table(reg, ["kommun", "sex"], measure="hours_personlig_assistans", hierarchies=h, name="timmar")
    p = protect(t, Rules(FrequencyRule(3), p_rule=PRule(10)))
    paths = write_tables(p, tmp_path, xlsx=False)
    assert sorted(x.name for x in paths) == ["timmar.csv", "timmar.json"]
    df = pd.read_csv(io.BytesIO((tmp_path / "timmar.csv").read_bytes()), encoding="utf-8-sig", dtype=str)
    shown = df.loc[df["value"] != HIDDEN, "value"]
    assert shown.str.fullmatch(r"\d+\.\d").all()
    assert "audit" not in json.loads((tmp_path / "timmar.json").read_text())
