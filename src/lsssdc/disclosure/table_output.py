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

With an audit report, ``audit.json`` holds only the audit's statement (passed, the attacker's
model, counts); the attacker's full result, with an interval per hidden cell, is written for
the reviewer apart from the tables and never published. Every hidden cell has the same mark
and the same note: telling small cells from secondary ones would give their bound.
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

from lsssdc.disclosure.tables import (
    PUBLISHED,
    UNION,
    ProtectedTables,
    Table,
)
from lsssdc.disclosure.tables.attack import AuditReport
from lsssdc.errors import DisclosureRefused, Problem
from lsssdc.fileio import atomic_path

HIDDEN = ".."
#: the reviewer's full audit (intervals of hidden cells): kept in the candidate, never delivered
REVIEW_AUDIT = "table-audit.json"
#: What each mark means, in Swedish (the files) and English (the description).
LEGEND = {
    "..": ("Uppgift undertryckt av sekretesskäl", "Hidden for confidentiality"),
    "union": (
        "personer räknas en gång: totalen kan vara mindre än summan av delarna",
        "persons counted once: the total can be less than the sum of its parts",
    ),
}


def _notes(table: Table, status: np.ndarray) -> np.ndarray:
    """The notes column: one and the same note for every hidden cell (saying which cells are
    small would give their bound), and for a published persons margin that it is not a sum."""
    rel = table.relations
    union = np.zeros(table.size, bool)
    union[rel.parent[rel.kind == UNION]] = True
    out = np.full(table.size, "", dtype=object)
    out[status != PUBLISHED] = LEGEND[".."][0]
    out[union & (status == PUBLISHED)] = LEGEND["union"][0]
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
    cols: dict[str, Any] = {}
    for j, d in enumerate(t.dims):
        h = t.hierarchies[d]
        node = t.nodes[:, j]
        cols[d] = np.asarray(h.codes, dtype=object)[node]
        cols[f"{d}_text"] = np.asarray(h.labels, dtype=object)[node]
    cols["value"] = _format_values(t, status)
    cols["notes"] = _notes(t, status)
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
        for name, xml in parts.items():
            info = zipfile.ZipInfo(name, date_time=_XLSX_FIXED)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, xml.encode("utf-8"))
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
    desc["protection"] = protected.report.get("protection") or {"method": "suppression"}
    desc["rules"] = protected.rules.to_dict()
    desc["threshold"] = protected.rules.frequency.threshold
    desc["cells"] = {
        "hidden": int((status != PUBLISHED).sum()),
        "published": int((status == PUBLISHED).sum()),
    }
    desc["legend"] = {k: {"sv": LEGEND[k][0], "en": LEGEND[k][1]} for k in ("..", "union")}
    if audit is not None:
        desc["audit"] = {
            "passed": not [f for f in audit.failures if f["table"] == t.name],
            "attacker": audit.summary.get("attacker"),
        }
    return desc


def audit_statement(protected: ProtectedTables, audit: AuditReport) -> dict[str, Any]:
    """What may travel with published tables about their audit: that it passed, the attacker's
    model and counts. Never a hidden value, an interval, or which hidden cells are small."""
    return {
        "passed": bool(audit.passed),
        "attacker": audit.summary.get("attacker"),
        "tables": [
            {"name": t.name, "hidden_cells": int((np.asarray(st) != PUBLISHED).sum()), "cells": int(t.size)}
            for t, st in zip(protected.tables, protected.status, strict=True)
        ],
        "note": "the reviewer's full audit (the attacker's interval for every hidden cell) stays with "
        "the agency and is never published",
    }


def check_outgoing(protected: ProtectedTables, i: int, csv_data: bytes, desc: dict[str, Any]) -> None:
    """The last check before a table file is written: read the bytes back as a reader would and
    refuse if a hidden cell shows anything but the mark, or the description holds cell values."""
    t = protected.tables[i]
    status = np.asarray(protected.status[i])
    rows = list(csv.reader(io.StringIO(csv_data.decode("utf-8-sig"))))
    header, body = rows[0], rows[1:]
    col, notes = header.index("value"), header.index("notes")
    shown = np.array([r[col] for r in body], dtype=object)
    note = np.array([r[notes] for r in body], dtype=object)
    hidden = status != PUBLISHED
    if len(body) != t.size or (shown[hidden] != HIDDEN).any() or len(set(note[hidden])) > 1:
        raise DisclosureRefused(
            Problem(
                "hidden_value_outgoing",
                f"table '{t.name}': a hidden cell would be written; nothing was written",
            )
        )
    text = json.dumps(desc, default=_jsonable)
    if any(f'"{k}":' in text for k in ("lower", "upper", "value", "values", "bounds")):
        raise DisclosureRefused(
            Problem("hidden_value_outgoing", f"table '{t.name}': its description holds cell values")
        )


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
    review_dir: str | Path | None = None,
) -> list[Path]:
    """Write every table (CSV, Excel workbook, JSON description) and the audit statement; return
    the paths. The full audit goes to ``review_dir`` only (never next to the tables).

    The bytes depend only on the tables, their suppression and the audit: the same inputs give
    the same files.
    """
    out = Path(out_dir)
    outgoing: list[tuple[Path, bytes]] = []
    for i, t in enumerate(protected.tables):
        frame = table_frame(protected, i)
        csv_data = _csv_bytes(frame)
        outgoing.append((out / f"{t.name}.csv", csv_data))
        files = {f"{t.name}.csv": "sha256:" + hashlib.sha256(csv_data).hexdigest()}
        if xlsx:
            xl = _xlsx_bytes(frame, t.name, {"value"})
            outgoing.append((out / f"{t.name}.xlsx", xl))
            files[f"{t.name}.xlsx"] = "sha256:" + hashlib.sha256(xl).hexdigest()
        desc = describe(protected, i, audit)
        desc["files"] = files
        check_outgoing(protected, i, csv_data, desc)  # every table checked before any is written
        outgoing.append((out / f"{t.name}.json", _json_bytes(desc)))
    written = [_write(path, data) for path, data in outgoing]
    if audit is not None:
        written.append(_write(out / "audit.json", _json_bytes(audit_statement(protected, audit))))
        if review_dir is not None:  # the full audit, with intervals: for the reviewer only
            written.append(_write(Path(review_dir) / REVIEW_AUDIT, _json_bytes(audit.to_dict())))
    return written
