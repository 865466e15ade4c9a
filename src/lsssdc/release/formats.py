"""The delivered data in each format a policy names (``delivery.formats``), with its labels.

What each format writes (Swedish labels in the file where the format holds one language; both
languages wherever it holds more):

- ``csv``: ``data.csv``, UTF-8; codes as text (``01``), a suppressed value ``..``, no value
  empty. ``datapackage.json`` describes it (Table Schema: types, English value labels as
  ``categories``, both missing-value codes).
- ``parquet``: ``data.parquet``; each field's metadata holds ``label_sv``, ``label_en``,
  ``values`` (JSON: code -> ``{"sv", "en"}``) and ``missing_values`` (JSON, ``..``).
- ``stata``: ``data.dta`` (format 118) with Swedish variable and value labels, and
  ``data-labels-en.do``, which keeps them as label language ``sv`` and adds ``en``. pandas
  writes one label language; Stata keeps the others in characteristics no Python writer writes,
  so the second language comes as the commands Stata itself would run.
- ``spss``: ``data.sav`` with Swedish variable and value labels, codes as text, ``..``
  declared user-missing and labelled; ``data-labels-en.sps`` switches the labels to English.
- ``sas``: ``data.xpt`` (SAS transport, version 8, for names longer than 8 characters) with
  Swedish variable labels. A transport file holds no value labels, so ``data-formats.sas``
  defines them (PROC FORMAT, ``_sv`` and ``_en``) and a macro attaches one language.

Every file is deterministic. ReadStat (through pyreadstat) writes the wall-clock time into
SPSS and SAS headers; it is overwritten with the package's fixed time stamp at the offsets the
two formats define, after checking that the header is laid out as they define it: a writer
that changes its layout stops the delivery rather than deliver bytes that change with the clock.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lsssdc.errors import LsssdcError, Problem
from lsssdc.release import codebook
from lsssdc.release.codebook import MISSING, SUPPRESSED

#: Every format a policy may name, in the order the package lists them.
FORMATS = ("csv", "parquet", "stata", "spss", "sas")
#: Label of a suppressed value, (Swedish, English).
_SUPPRESSED_LABEL = MISSING[SUPPRESSED]
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


@dataclass(frozen=True)
class Output:
    """One file a format wrote, as the package lists it."""

    path: str
    format: str
    mediatype: str
    #: read by a Table Schema validator (CSV, Parquet): gets the schema in datapackage.json
    table: bool = False
    #: UTF-8 text
    text: bool = False


@dataclass(frozen=True)
class Context:
    """What every writer needs besides the data."""

    order_id: str
    content_hash: str
    #: the fixed time stamp written wherever a format wants one (never the clock)
    stamp: dt.datetime
    #: text columns that can hold the suppressed marker (the delivered quasi-identifiers)
    suppressible: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"LSS {self.order_id}"


def suppressible(df: pd.DataFrame, quasi_identifiers: Iterable[str]) -> tuple[str, ...]:
    """The text columns among the delivered quasi-identifiers: those that can hold ``..``."""
    qis = set(quasi_identifiers)
    return tuple(c for c in df.columns if c in qis and not pd.api.types.is_numeric_dtype(df[c]))


def _text(s: pd.Series) -> pd.Series:
    """A text column as plain strings, no value as empty (as in the CSV)."""
    return s.astype("string").fillna("").astype(object)


def _is_text(s: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(s) or pd.api.types.is_datetime64_any_dtype(s))


def _plain(df: pd.DataFrame) -> pd.DataFrame:
    """Text as plain strings, dates as ``YYYY-MM-DD``, numbers as they are (for ReadStat)."""
    out = {}
    for col in df.columns:
        s = df[col]
        if pd.api.types.is_datetime64_any_dtype(s):
            out[col] = s.dt.strftime("%Y-%m-%d").astype(object).where(s.notna(), "")
        elif _is_text(s):
            out[col] = _text(s)
        else:
            out[col] = s
    return pd.DataFrame(out, index=df.index)


def _value_labels(df: pd.DataFrame, col: str, lang: str, ctx: Context) -> dict[Any, str]:
    """Code -> label for one column in one language, typed as the column is; ``..`` included
    where the column can hold it."""
    values = codebook.describe(col)["values"]
    labels: dict[Any, str] = {}
    text = _is_text(df[col])
    for k, v in values.items():
        labels[k if text else int(k)] = v[lang]
    if text and col in ctx.suppressible:
        labels[SUPPRESSED] = _SUPPRESSED_LABEL[0 if lang == "sv" else 1]
    return labels


# --------------------------------------------------------------------------------------------
# CSV and Parquet


def write_csv(df: pd.DataFrame, folder: Path, ctx: Context) -> list[Output]:
    df.to_csv(folder / "data.csv", index=False, lineterminator="\n", date_format="%Y-%m-%d")
    return [Output("data.csv", "csv", "text/csv", table=True, text=True)]


def parquet_field_metadata(col: str, ctx: Context) -> dict[bytes, bytes]:
    """A Parquet field's metadata: labels, value labels and missing-value codes in both languages."""
    d = codebook.describe(col)
    meta = {b"label_sv": d["label_sv"].encode(), b"label_en": d["label_en"].encode()}
    if d["values"]:
        meta[b"values"] = json.dumps(d["values"], ensure_ascii=False).encode()
    if col in ctx.suppressible:
        sv, en = _SUPPRESSED_LABEL
        meta[b"missing_values"] = json.dumps({SUPPRESSED: {"sv": sv, "en": en}}, ensure_ascii=False).encode()
    return meta


def write_parquet(df: pd.DataFrame, folder: Path, ctx: Context) -> list[Output]:
    table = pa.Table.from_pandas(df, preserve_index=False)
    fields = [f.with_metadata(parquet_field_metadata(f.name, ctx)) for f in table.schema]
    # keep pandas' own metadata, so that nullable integers and strings read back as they were
    meta = {"order_id": ctx.order_id, "content_hash": ctx.content_hash}
    metadata = {**(table.schema.metadata or {}), b"lsssdc": json.dumps(meta, sort_keys=True).encode()}
    pq.write_table(
        table.cast(pa.schema(fields, metadata=metadata)), folder / "data.parquet", compression="zstd"
    )
    return [Output("data.parquet", "parquet", "application/vnd.apache.parquet", table=True)]


# --------------------------------------------------------------------------------------------
# Stata


def _numeric_codes(values: dict[str, Any]) -> bool:
    """Codes Stata can label: whole numbers that read back as the same text (no leading zero)."""
    return bool(values) and all(k.isdigit() and str(int(k)) == k for k in values)


def stata_frame(df: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, dict[int, str]], dict[str, str]]:
    """Stata needs numbers for value labels and names of at most 32 characters."""
    out = pd.DataFrame(index=df.index)
    value_labels: dict[str, dict[int, str]] = {}
    var_labels: dict[str, str] = {}
    for col in df.columns:
        d = codebook.describe(col)
        name = col[:32]
        s = df[col]
        numeric_codes = _numeric_codes(d["values"])
        if numeric_codes and not pd.api.types.is_numeric_dtype(s):
            # a suppressed code ("..") is missing (.) here; the column `suppressed` names it
            out[name] = pd.to_numeric(s.astype("string"), errors="coerce").astype("Int16")
        elif pd.api.types.is_datetime64_any_dtype(s):
            out[name] = s.dt.strftime("%Y-%m-%d").astype(object).where(s.notna(), "")
        elif pd.api.types.is_numeric_dtype(s):
            out[name] = s
        else:
            out[name] = _text(s)
        if numeric_codes:
            value_labels[name] = {int(k): v["sv"][:32000] for k, v in d["values"].items()}
        var_labels[name] = d["label_sv"][:80]
    return out, value_labels, var_labels


def _stata_quote(text: str) -> str:
    """A Stata compound-quoted string; ` and $ escaped so a do-file expands no macro."""
    return '`"' + text.replace("\\", "\\\\").replace("`", "\\`").replace("$", "\\$") + "\"'"


def stata_english_do(df: pd.DataFrame, ctx: Context) -> str:
    """The do-file that adds English as a second label language to ``data.dta``."""
    _, value_labels, _ = stata_frame(df.iloc[:0])
    lines = [
        f"* English labels for data.dta (delivery {ctx.order_id}), written by lsssdc.",
        '* data.dta carries Swedish labels; this keeps them as label language "sv" and adds "en":',
        "*     use data.dta, clear",
        "*     do data-labels-en.do",
        "*     label language sv    // back to Swedish",
        "* A suppressed code is missing (.) in data.dta; the column suppressed names it.",
        "version 14",
        "quietly label language",
        'if "`r(language)\'" == "default" label language sv, rename',
        "capture label language en, new",
        "if _rc label language en",
        f"label data {_stata_quote(ctx.label[:80])}",
    ]
    for col in df.columns:
        d = codebook.describe(col)
        name = col[:32]
        lines.append(f"label variable {name} {_stata_quote(d['label_en'][:80])}")
        if name in value_labels:
            set_name = f"{name[:29]}_en"
            pairs = " ".join(f"{int(k)} {_stata_quote(v['en'][:32000])}" for k, v in d["values"].items())
            lines += [f"label define {set_name} {pairs}, replace", f"label values {name} {set_name}"]
    return "\n".join(lines) + "\n"


def write_stata(df: pd.DataFrame, folder: Path, ctx: Context) -> list[Output]:
    frame, value_labels, var_labels = stata_frame(df)
    frame.to_stata(
        folder / "data.dta",
        write_index=False,
        version=118,
        time_stamp=ctx.stamp,
        data_label=ctx.label[:80],
        variable_labels=var_labels,
        value_labels=value_labels or None,  # type: ignore[arg-type]
    )
    (folder / "data-labels-en.do").write_text(stata_english_do(df, ctx), encoding="utf-8")
    return [
        Output("data.dta", "dta", "application/x-stata-dta"),
        Output("data-labels-en.do", "do", "text/plain", text=True),
    ]


# --------------------------------------------------------------------------------------------
# SPSS


def _spss_quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _spss_value(code: Any) -> str:
    return _spss_quote(code) if isinstance(code, str) else str(code)


def spss_labels(df: pd.DataFrame, ctx: Context, lang: str) -> dict[str, dict[Any, str]]:
    """Value labels per column in one language: codes of the codebook and ``..``."""
    out = {}
    for col in df.columns:
        labels = _value_labels(df, col, lang, ctx)
        if labels:
            out[col] = labels
    return out


def spss_english_syntax(df: pd.DataFrame, ctx: Context) -> str:
    """SPSS syntax that replaces the Swedish labels of ``data.sav`` with English ones."""
    lines = [
        f"* English labels for data.sav (delivery {ctx.order_id}), written by lsssdc.",
        "* data.sav carries Swedish labels. To switch to English, after GET FILE='data.sav'",
        "* run INSERT FILE='data-labels-en.sps'.",
        "* A suppressed value is '..' (user-missing) in text and system-missing in a number.",
        "VARIABLE LABELS",
    ]
    labels = [f"  {col} {_spss_quote(codebook.describe(col)['label_en'])}" for col in df.columns]
    lines += [("  /" + ln.lstrip()) if i else ln for i, ln in enumerate(labels)]
    lines[-1] += "."
    values = spss_labels(df, ctx, "en")
    if values:
        lines.append("VALUE LABELS")
        for i, (col, labels_) in enumerate(values.items()):
            pairs = " ".join(f"{_spss_value(k)} {_spss_quote(v)}" for k, v in labels_.items())
            lines.append(f"  {'/' if i else ''}{col} {pairs}")
        lines[-1] += "."
    lines.append(f"FILE LABEL {_spss_quote(ctx.label[:64])}.")
    return "\n".join(lines) + "\n"


def write_spss(df: pd.DataFrame, folder: Path, ctx: Context) -> list[Output]:
    import pyreadstat

    frame = _plain(df)
    coded = {c for c in df.columns if codebook.describe(c)["values"]}
    path = folder / "data.sav"
    pyreadstat.write_sav(
        frame,
        str(path),
        file_label=ctx.label[:64],
        column_labels={c: codebook.describe(c)["label_sv"] for c in df.columns},
        variable_value_labels=spss_labels(df, ctx, "sv") or None,
        missing_ranges={c: [SUPPRESSED] for c in ctx.suppressible if c in frame.columns} or None,
        variable_measure={c: "nominal" for c in df.columns if c in coded} or None,
    )
    stamp_sav(path, ctx.stamp)
    (folder / "data-labels-en.sps").write_text(spss_english_syntax(df, ctx), encoding="utf-8")
    return [
        Output("data.sav", "sav", "application/x-spss-sav"),
        Output("data-labels-en.sps", "sps", "text/plain", text=True),
    ]


# --------------------------------------------------------------------------------------------
# SAS


def _sas_quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def sas_format_names(columns: Iterable[str]) -> dict[str, str]:
    """Column -> the stem of its SAS format names (at most 28 characters, unique)."""
    out: dict[str, str] = {}
    for i, col in enumerate(columns):
        stem = col[:28]
        if stem in out.values():
            stem = f"{col[:22]}_f{i}"
        out[col] = stem
    return out


def sas_program(df: pd.DataFrame, ctx: Context) -> str:
    """PROC FORMAT for both languages and a macro that attaches one (a transport file has no
    value labels of its own)."""
    stems = sas_format_names(df.columns)
    formats: dict[str, dict[str, str]] = {"sv": {}, "en": {}}
    lines = [
        f"/* Formats (value labels) and variable labels for data.xpt (delivery {ctx.order_id}),",
        "   written by lsssdc. A SAS transport file holds no value labels: this file defines them",
        "   in Swedish (_sv) and English (_en), and the macro lss_labels attaches one language:",
        "     %xpt2loc(libref=work, memlist=data, filespec='data.xpt');",
        "     %include 'data-formats.sas';",
        "     %lss_labels(lang=sv);   (or lang=en)",
        "   A suppressed value is '..' in a text column and missing (.) in a number; the column",
        "   suppressed names it. The file is UTF-8. */",
        "proc format;",
    ]
    for col in df.columns:
        for lang in ("sv", "en"):
            labels = _value_labels(df, col, lang, ctx)
            if not labels:
                continue
            text = _is_text(df[col])
            name = f"{'$' if text else ''}{stems[col]}_{lang}"
            formats[lang][col] = name
            lines.append(f"  value {name}")
            lines += [f"    {_sas_quote(k) if text else k} = {_sas_quote(v)}" for k, v in labels.items()]
            lines[-1] += ";"
    lines += [
        "run;",
        "",
        "%macro lss_labels(lang=sv, lib=work, data=data);",
        "proc datasets library=&lib nolist;",
    ]
    lines.append("  modify &data;")
    for i, lang in enumerate(("en", "sv")):
        lines.append(f"  %if &lang = {lang} %then %do;" if i == 0 else "  %else %do;")
        lines.append("    label")
        key = f"label_{lang}"
        lines += [f"      {col} = {_sas_quote(codebook.describe(col)[key][:256])}" for col in df.columns]
        lines[-1] += ";"
        if formats[lang]:
            lines.append("    format " + " ".join(f"{c} {f}." for c, f in formats[lang].items()) + ";")
        lines.append("  %end;")
    lines += ["quit;", "%mend lss_labels;"]
    return "\n".join(lines) + "\n"


def write_sas(df: pd.DataFrame, folder: Path, ctx: Context) -> list[Output]:
    import pyreadstat

    path = folder / "data.xpt"
    pyreadstat.write_xport(
        _plain(df),
        str(path),
        file_label=ctx.label[:40],
        column_labels={c: codebook.describe(c)["label_sv"][:256] for c in df.columns},
        table_name="DATA",
        file_format_version=8,
    )
    stamp_xport(path, ctx.stamp)
    (folder / "data-formats.sas").write_text(sas_program(df, ctx), encoding="utf-8")
    return [
        Output("data.xpt", "xpt", "application/x-sas-xport"),
        Output("data-formats.sas", "sas", "text/plain", text=True),
    ]


# --------------------------------------------------------------------------------------------
# fixed time stamps in ReadStat's headers


def _layout_changed(path: Path, what: str) -> LsssdcError:
    return LsssdcError(
        Problem(
            "format_layout",
            f"the {what} header is not laid out as expected; its time stamp cannot be fixed",
            file=str(path),
            hint="the pyreadstat (ReadStat) writer changed: check lsssdc.release.formats",
        ),
        code="format_layout",
    )


_SAV_DATE = re.compile(rb"\d\d [A-Z][a-z]{2} \d\d\d\d:\d\d:\d\d")


def stamp_sav(path: Path, stamp: dt.datetime) -> None:
    """Overwrite the creation date and time of an SPSS system file (bytes 92-108 of its header:
    ``dd Mmm yy`` and ``hh:mm:ss``) with ``stamp``."""
    with open(path, "r+b") as fh:
        head = fh.read(176)
        if head[:4] != b"$FL2" or not _SAV_DATE.fullmatch(head[92:109]):
            raise _layout_changed(path, "SPSS")
        month = _MONTHS[stamp.month - 1].title()
        fh.seek(92)
        fh.write(f"{stamp:%d} {month} {stamp:%y}{stamp:%H:%M:%S}".encode("ascii"))


_XPT_DATE = re.compile(rb"\d\d[A-Z]{3}\d\d:\d\d:\d\d:\d\d")
_XPT_RECORDS = {
    0: b"HEADER RECORD*******LIBV8   HEADER RECORD!!!!!!!",
    80: b"SAS     SAS     SASLIB  ",
    240: b"HEADER RECORD*******MEMBV8  HEADER RECORD!!!!!!!",
    320: b"HEADER RECORD*******DSCPTV8 HEADER RECORD!!!!!!!",
    400: b"SAS     ",
}
#: created and modified of the library (records 2 and 3) and of the one member (its descriptor)
_XPT_STAMPS = (144, 160, 464, 480)


def stamp_xport(path: Path, stamp: dt.datetime) -> None:
    """Overwrite the four ``ddMMMyy:hh:mm:ss`` time stamps of a one-member SAS transport file
    (version 8; SAS technical note TS-140) with ``stamp``."""
    text = f"{stamp:%d}{_MONTHS[stamp.month - 1]}{stamp:%y}:{stamp:%H:%M:%S}".encode("ascii")
    with open(path, "r+b") as fh:
        head = fh.read(560)
        ok = all(head[at : at + len(marker)] == marker for at, marker in _XPT_RECORDS.items())
        if not ok or not all(_XPT_DATE.fullmatch(head[at : at + 16]) for at in _XPT_STAMPS):
            raise _layout_changed(path, "SAS transport")
        for at in _XPT_STAMPS:
            fh.seek(at)
            fh.write(text)
