"""Protected tables as files: CSV and Excel workbooks with ".." for a hidden cell, and JSON.

Per table three files are written, each atomically:

* ``<name>.csv``: UTF-8 with a byte order mark (so Excel shows å, ä, ö), comma separated, one
  row per cell including every margin, in hierarchy order: per dimension its code and label,
  then ``value`` (".." where the cell is hidden, the Swedish convention) and ``notes``
  explaining the mark. Persons margins that are not the sum of their cells say so;
* ``<name>.xlsx``: the same rows as an Excel workbook (written with the standard library: a
  zip of SpreadsheetML parts with fixed timestamps, so the bytes are reproducible), which also
  opens correctly where Excel expects semicolons in CSV files (Swedish settings);
* ``<name>.json``: the description: dimensions and their codes, unit, measure, population,
  rules, counts of primary and secondary suppressions, the relation model and the audit's
  summary for the table.

With an audit report, ``audit.json`` holds the attacker's full result for the reviewer.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
import pandas as pd

from lsssdc.disclosure.audit import AuditReport
from lsssdc.disclosure.tables import (
    PRIMARY,
    PUBLISHED,
    REASON_DOMINANCE,
    REASON_FREQUENCY,
    REASON_P,
    REASON_ZERO,
    SECONDARY,
    UNION,
    ProtectedTables,
    Table,
)
from lsssdc.tables_io import atomic_path

HIDDEN = ".."
#: What each mark means, in Swedish (the files) and English (the description).
LEGEND = {
    "..": ("Uppgift undertryckt av sekretesskäl", "Hidden for confidentiality"),
    "frequency": ("färre än {t} personer (primär undertryckning)", "fewer than {t} persons (primary)"),
    "zero": ("nollcell undertryckt (primär undertryckning)", "zero cell hidden (primary)"),
    "dominance": (
        "några få personer står för det mesta av summan (primär undertryckning)",
        "a few persons make up most of the sum (primary, dominance rule)",
    ),
    "p_percent": (
        "summan skulle röja en enskild persons värde för nära (primär undertryckning)",
        "the sum would reveal one person's value too closely (primary, p% rule)",
    ),
    "secondary": (
        "undertryckt för att skydda en annan cell (sekundär undertryckning)",
        "hidden to protect another cell (secondary)",
    ),
    "union": (
        "personer räknas en gång: totalen kan vara mindre än summan av delarna",
        "persons counted once: the total can be less than the sum of its parts",
    ),
}


def _notes(table: Table, status: np.ndarray, reason: np.ndarray, threshold: int) -> np.ndarray:
    """The notes column: why a cell is hidden, and whether a margin is not a sum."""
    n = table.size
    parts: list[np.ndarray] = []
    for bit, key in (
        (REASON_FREQUENCY, "frequency"),
        (REASON_ZERO, "zero"),
        (REASON_DOMINANCE, "dominance"),
        (REASON_P, "p_percent"),
    ):
        text = LEGEND[key][0].format(t=threshold)
        parts.append(np.where((status == PRIMARY) & ((reason & bit) > 0), text, ""))
    parts.append(np.where(status == SECONDARY, LEGEND["secondary"][0], ""))
    union = np.zeros(n, bool)
    rel = table.relations
    union[rel.parent[rel.kind == UNION]] = True
    parts.append(np.where(union & (status == PUBLISHED), LEGEND["union"][0], ""))
    out = np.full(n, "", dtype=object)
    for p in parts:
        out = np.where((out != "") & (p != ""), out + "; " + p, np.where(p != "", p, out))
    return out


def _format_values(table: Table, status: np.ndarray) -> np.ndarray:
    v = table.cells["value"].to_numpy()
    if table.measure is None:
        text = v.astype(np.int64).astype(str)
    else:
        text = np.char.mod("%.1f", np.round(v.astype(float), 1) + 0.0).astype(object)  # + 0.0: no "-0.0"
    return np.where(status == PUBLISHED, text, HIDDEN)


def table_frame(protected: ProtectedTables, i: int) -> pd.DataFrame:
    """The rows of table ``i`` as they are published: codes, labels, value or "..", notes."""
    t = protected.tables[i]
    status = np.asarray(protected.status[i])
    reason = np.asarray(protected.reason[i])
    cols: dict[str, Any] = {}
    for j, d in enumerate(t.dims):
        h = t.hierarchies[d]
        node = t.nodes[:, j]
        cols[d] = np.asarray(h.codes, dtype=object)[node]
        cols[f"{d}_text"] = np.asarray(h.labels, dtype=object)[node]
    cols["value"] = _format_values(t, status)
    cols["notes"] = _notes(t, status, reason, protected.rules.frequency.threshold)
    return pd.DataFrame(cols)


def _csv_bytes(frame: pd.DataFrame) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(frame.columns)
    writer.writerows(frame.itertuples(index=False, name=None))
    return buf.getvalue().encode("utf-8-sig")


def _col_name(k: int) -> str:
    name = ""
    k += 1
    while k:
        k, r = divmod(k - 1, 26)
        name = chr(65 + r) + name
    return name


_XLSX_FIXED = (1980, 1, 1, 0, 0, 0)


def _xml_text(col: pd.Series) -> pd.Series:
    return (
        col.str.replace("&", "&amp;", regex=False)
        .str.replace("<", "&lt;", regex=False)
        .str.replace(">", "&gt;", regex=False)
    )


def _xlsx_bytes(frame: pd.DataFrame, sheet: str, numeric: set[str]) -> bytes:
    """A minimal, reproducible Office Open XML workbook with one sheet (inline strings)."""
    n = len(frame)
    rownum = pd.Series(np.arange(2, n + 2).astype(str))
    row_xml = pd.Series([""] * n, dtype=object)
    for k, col in enumerate(frame.columns):
        text = frame[col].fillna("").astype(str).reset_index(drop=True)
        ref = _col_name(k) + rownum
        as_string = '<c r="' + ref + '" t="inlineStr"><is><t>' + _xml_text(text) + "</t></is></c>"
        if col in numeric:
            as_number = '<c r="' + ref + '"><v>' + text + "</v></c>"
            cell = as_number.where(~text.isin(["", HIDDEN]), as_string)
        else:
            cell = as_string
        row_xml = row_xml + cell.where(text != "", "")
    header = "".join(
        f'<c r="{_col_name(k)}1" t="inlineStr"><is><t>{escape(str(c))}</t></is></c>'
        for k, c in enumerate(frame.columns)
    )
    body = ('<row r="' + rownum + '">' + row_xml + "</row>").str.cat()
    sheet_xml = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        f'<sheetData><row r="1">{header}</row>{body}</sheetData></worksheet>'
    )
    parts = {
        "[Content_Types].xml": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/xl/workbook.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
            '<Override PartName="/xl/worksheets/sheet1.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
            "</Types>"
        ),
        "_rels/.rels": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" '
            'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
            'Target="xl/workbook.xml"/></Relationships>'
        ),
        "xl/workbook.xml": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
            'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
            f'<sheets><sheet name="{escape(sheet[:31])}" sheetId="1" r:id="rId1"/></sheets></workbook>'
        ),
        "xl/_rels/workbook.xml.rels": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" '
            'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" '
            'Target="worksheets/sheet1.xml"/></Relationships>'
        ),
        "xl/worksheets/sheet1.xml": sheet_xml,
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in parts.items():
            info = zipfile.ZipInfo(name, date_time=_XLSX_FIXED)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, text.encode("utf-8"))
    return buf.getvalue()


def describe(protected: ProtectedTables, i: int, audit: AuditReport | None = None) -> dict[str, Any]:
    """The JSON description of table ``i``."""
    t = protected.tables[i]
    status = np.asarray(protected.status[i])
    desc = t.describe()
    desc["dimensions"] = [
        {
            "name": d,
            "codes": list(t.hierarchies[d].codes),
            "labels": list(t.hierarchies[d].labels),
            "parents": [t.hierarchies[d].codes[p] if p >= 0 else None for p in t.hierarchies[d].parents],
        }
        for d in t.dims
    ]
    desc["count_unit_note"] = (
        "persons: a margin over insatser or kommuner counts each person once and is bounded "
        "(at least its largest cell, at most the sum of its cells); margins over sex and age "
        "band are sums"
        if t.unit == "persons"
        else "every margin is the sum of its cells"
    )
    desc["rules"] = protected.rules.to_dict()
    desc["threshold"] = protected.rules.frequency.threshold
    desc["suppressed"] = {
        "primary": int((status == PRIMARY).sum()),
        "secondary": int((status == SECONDARY).sum()),
        "published": int((status == PUBLISHED).sum()),
    }
    desc["legend"] = {k: {"sv": sv, "en": en} for k, (sv, en) in LEGEND.items()}
    if audit is not None:
        cells = audit.cells[audit.cells["table"] == t.name] if len(audit.cells) else audit.cells
        fails = [f for f in audit.failures if f["table"] == t.name]
        desc["audit"] = {
            "passed": not fails,
            "attacker": audit.summary.get("attacker"),
            "sensitive_cells": int(cells["sensitive"].sum()) if len(cells) else 0,
            "failed_cells": len(fails),
            "exact_intervals": int(cells["exact"].sum()) if len(cells) else 0,
        }
    return desc


def _write(path: Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True, default=_jsonable) + "\n").encode(
        "utf-8"
    )


def _jsonable(x: Any) -> Any:
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        return float(x) if np.isfinite(x) else None
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON: {type(x).__name__}")


def write_tables(
    protected: ProtectedTables,
    out_dir: str | Path,
    audit: AuditReport | None = None,
    *,
    xlsx: bool = True,
) -> list[Path]:
    """Write every table (CSV, Excel workbook, JSON description) and the audit; return the paths.

    The bytes depend only on the tables, their suppression and the audit: the same inputs give
    the same files.
    """
    out = Path(out_dir)
    written: list[Path] = []
    for i, t in enumerate(protected.tables):
        frame = table_frame(protected, i)
        csv_data = _csv_bytes(frame)
        written.append(_write(out / f"{t.name}.csv", csv_data))
        files = {f"{t.name}.csv": "sha256:" + hashlib.sha256(csv_data).hexdigest()}
        if xlsx:
            xl = _xlsx_bytes(frame, t.name, {"value"})
            written.append(_write(out / f"{t.name}.xlsx", xl))
            files[f"{t.name}.xlsx"] = "sha256:" + hashlib.sha256(xl).hexdigest()
        desc = describe(protected, i, audit)
        desc["files"] = files
        written.append(_write(out / f"{t.name}.json", _json_bytes(desc)))
    if audit is not None:
        written.append(_write(out / "audit.json", _json_bytes(audit.to_dict())))
    return written
