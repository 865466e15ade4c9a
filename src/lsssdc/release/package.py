"""Delivery packages: the approved candidate, documented, written atomically.

A package is built in a temporary directory next to the target and renamed into place in one
step, so a failure half-way leaves no package. Every file is written deterministically (a fixed
time stamp in Stata, SPSS and SAS headers, sorted JSON, no wall-clock time in any file), so the
same candidate gives a byte-identical package. The data formats are written by
:mod:`lsssdc.release.formats`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

from lsssdc.errors import (
    _INVISIBLE,
    PNR_PATTERN,
    DisclosureRefused,
    InputDataError,
    Problem,
    has_personnummer_shape,
    scrub,
)
from lsssdc.register import variables as V
from lsssdc.release import codebook
from lsssdc.release import formats as F
from lsssdc.release.candidate import Candidate, restrict, sha256_file
from lsssdc.release.formats import write_csv as _write_csv
from lsssdc.release.formats import write_parquet as _write_parquet
from lsssdc.release.formats import write_sas as _write_sas
from lsssdc.release.formats import write_spss as _write_spss
from lsssdc.release.formats import write_stata as _write_stata
from lsssdc.release.report import SUMMARY_FILE

DATA = "data"
#: The candidate files a package is made from.
#: the short report for the researcher, written and sealed with every releasable microdata candidate
DATA_REPORT = SUMMARY_FILE
SOURCES = ("data.parquet", "metadata.json", "policy.yaml", "order.yaml", DATA_REPORT)


#: What each delivered file holds, for the package's README.
_FILE_NOTES = {
    "data.csv": "CSV, UTF-8, comma-separated; codes as text (`01`), `..` a suppressed value, empty no value",
    "data.parquet": "Parquet; each field's metadata holds its labels, value labels (`values`) and "
    "missing-value codes in Swedish and English",
    "data.dta": "Stata 14+ (format 118) with Swedish variable and value labels",
    "data-labels-en.do": "adds English as a second Stata label language: `do data-labels-en.do` "
    "after `use data.dta` (`label language sv` switches back)",
    "data.sav": "SPSS with Swedish variable and value labels; codes as text, `..` user-missing",
    "data-labels-en.sps": "switches the SPSS labels to English (`INSERT FILE='data-labels-en.sps'`)",
    "data.xpt": "SAS transport file (version 8) with Swedish variable labels",
    "data-formats.sas": "SAS formats (value labels) in Swedish and English and the macro "
    "`%lss_labels(lang=sv|en)` that attaches them",
}


def _readme(meta: dict[str, Any], columns: list[str], outputs: list[F.Output]) -> str:
    years = meta.get("years", [])
    dates = ", ".join(f"{y}: {V.measurement_date(y).isoformat()}" for y in years)
    breaks = [
        f"- `{v.name}`: {v.note_en}"
        for v in V.CATALOGUE
        if v.name in columns and (v.gap or v.first_year > V.FIRST_YEAR or v.last_year < V.LAST_YEAR)
    ]
    rec = [f"- `{r.get('variable')}`: {r.get('description', '')}" for r in meta.get("recodings", [])]
    sup = meta.get("suppressed_share", {}) or {}
    sup_lines = [
        f"- `{k}`: {v:.2%} of values suppressed (`..`; the year: empty; the column `suppressed` names them)"
        for k, v in sorted(sup.items())
        if v
    ]
    links = [
        f"- {link['register']}: {', '.join(link['variables'])}"
        for link in meta.get("linkage", {}).get("registers", [])
    ]
    parts = [
        f"# Delivery {meta.get('order_id', '')}",
        "",
        f"Project: {meta.get('project_id', '')}. Diarienummer: {meta.get('diarienummer', '')}.",
        "",
        "## Source",
        "Socialstyrelsen's register of insatser under LSS (lagen (1993:387) om stöd och service till vissa "
        "funktionshindrade): one row per person, reporting kommun and year, for insatser that were decided, "
        "implemented and ongoing on the measurement date. Persons with only assistansersättning from "
        "Försäkringskassan, and the insats råd och stöd, are not in the register.",
        "",
        f"Measurement dates: {dates}.",
        "",
        "## Historical breaks",
        "- Measurement date 1 June 1999-2000, 1 September 2001-2002, 1 October from 2003.",
        *(breaks or ["- None of the delivered variables has a break in the delivered years."]),
        "",
        "## Pseudonyms",
        "Persons appear as a pseudonym made with a secret key held by the agency and specific to this "
        "project: the same person has the same pseudonym in every delivery to this project, and a different "
        "one in any other project. It cannot be reversed without the key. Personnummer are never delivered.",
        "",
        "## What was coarsened or suppressed",
        *(rec or ["- Nothing was coarsened."]),
        *(sup_lines or ["- No values were suppressed."]),
        "",
        "## Linked registers",
        *(links or ["- None."]),
        "",
        "## Files",
        "The same data in each format the policy delivers, with the same values and labels:",
        *[f"- `{o.path}`: {_FILE_NOTES.get(o.path, o.format)}." for o in outputs],
        "- `codebook.md` (Swedish and English) and `datapackage.json` (machine-readable).",
        f"- `{DATA_REPORT}`: what was released and how it was protected (Swedish and English), for the "
        "researcher; the reviewer's risk figures stay with the agency.",
        "- `policy.yaml`, `order.yaml`: the rules and the request this delivery was made under.",
        "- `MANIFEST.sha256`: SHA-256 of every file; check with `sha256sum -c MANIFEST.sha256`.",
        "",
    ]
    return "\n".join(parts)


#: column names that are direct identifiers whatever a policy calls them
_IDENTIFIER_COLUMNS = {"personnummer", "pnr", "personnr", "samordningsnummer", "lopnr_pnr"}


def screen(df: pd.DataFrame, identifiers: list[str], where: str, columns: list[str] | None = None) -> None:
    """The last check before bytes leave: no identifier column, no personnummer-shaped name or
    value, only plain column types, and (given ``columns``) exactly the columns the signed
    prepare entry lists.

    Runs on exactly the frame about to be written, whatever the gate or the manifest said, so
    a candidate changed after its verdict cannot carry an identifier out.
    """
    names = {i.strip().lower() for i in identifiers} | _IDENTIFIER_COLUMNS
    problems = []
    if columns and [str(c) for c in df.columns] != list(columns):
        problems.append(
            Problem(
                "columns_changed",
                "the columns differ from those the prepare entry lists; nothing was written",
                file=where,
            )
        )
    for col in df.columns:
        name = str(col)
        if name.strip().lower() in names or has_personnummer_shape(name):
            problems.append(
                Problem(
                    "identifier_column", "a column is a direct identifier; nothing was written", file=where
                )
            )
            continue
        s = df[col]
        if pd.api.types.is_bool_dtype(s.dtype) or pd.api.types.is_datetime64_any_dtype(s.dtype):
            hit = False
        elif pd.api.types.is_integer_dtype(s.dtype) or pd.api.types.is_float_dtype(s.dtype):
            hit = bool((s.abs() >= 1_000_000_000).any())
        elif pd.api.types.is_timedelta64_dtype(s.dtype) or pd.api.types.is_complex_dtype(s.dtype):
            hit = True  # never delivered: a number can hide in it
        else:
            text = s.astype("string").str.translate(_INVISIBLE)
            hit = bool(text.str.contains(PNR_PATTERN, regex=True, na=False).any())
        if hit:
            problems.append(
                Problem(
                    "identifier_value",
                    "a value is shaped like a personnummer; nothing was written",
                    file=where,
                    column=scrub(name),
                )
            )
    if problems:
        raise DisclosureRefused(problems)


#: called with the finished temporary package and its manifest, just before the rename: the
#: delivery's ledger entry is written there, so no package is ever visible without its entry
BeforePublish = Callable[[Path, dict[str, str]], None]


class _Microdata(NamedTuple):
    """A microdata candidate read once and checked: its sealed source files, its metadata, the
    screened frame and its columns, and the context the data formats are written with."""

    sources: dict[str, bytes]
    meta: dict[str, Any]
    df: pd.DataFrame
    columns: list[str]
    ctx: F.Context


def _check_target(target: Path) -> None:
    """A delivery never overwrites or merges into an existing directory."""
    if target.exists():
        raise InputDataError(
            Problem(
                "target_exists",
                "the delivery directory already exists",
                file=str(target),
                hint="deliver to a new directory",
            )
        )
    target.parent.mkdir(parents=True, exist_ok=True)


def _read_microdata(
    candidate: Candidate, identifiers: list[str] | None, columns: list[str] | None
) -> _Microdata:
    """Read every source file once, as sealed, and screen the frame before anything is written:
    what is delivered is exactly what was approved, even if a file is swapped after approval."""
    sources = {name: _sealed_bytes(candidate, name) for name in SOURCES}
    meta = json.loads(sources["metadata.json"].decode("utf-8"))
    df = pd.read_parquet(io.BytesIO(sources["data.parquet"]))
    screen(df, identifiers or ["personnummer"], str(candidate.path / "data.parquet"), columns)
    columns = list(df.columns)
    last_year = max(meta.get("years") or [V.FIRST_YEAR])
    stamp = dt.datetime.combine(V.measurement_date(last_year), dt.time())
    ctx = F.Context(
        order_id=str(meta.get("order_id", "")),
        content_hash=candidate.content_hash,
        stamp=stamp,
        suppressible=F.suppressible(df, (meta.get("suppressed_share") or {}).keys()),
    )
    return _Microdata(sources, meta, df, columns, ctx)


def _write_data(data: _Microdata, tmp: Path) -> list[F.Output]:
    """The data in each format the policy delivers, in the fixed order of formats."""
    formats = data.meta.get("formats") or ["csv", "parquet", "stata"]
    # looked up here, so that a test can make one of them fail
    writers = {
        "csv": _write_csv,
        "parquet": _write_parquet,
        "stata": _write_stata,
        "spss": _write_spss,
        "sas": _write_sas,
    }
    outputs: list[F.Output] = []
    for fmt in F.FORMATS:
        if fmt in formats:
            outputs += writers[fmt](data.df, tmp, data.ctx)
    return outputs


def _write_documents(data: _Microdata, tmp: Path, outputs: list[F.Output]) -> None:
    """The codebook and README, and the sealed policy, order and report as they were approved."""
    sources, meta, columns = data.sources, data.meta, data.columns
    (tmp / "codebook.md").write_text(codebook.codebook_markdown(columns, meta), encoding="utf-8")
    (tmp / "README.md").write_text(_readme(meta, columns, outputs), encoding="utf-8")
    (tmp / "policy.yaml").write_bytes(sources["policy.yaml"])
    (tmp / "order.yaml").write_bytes(sources["order.yaml"])
    (tmp / DATA_REPORT).write_bytes(sources[DATA_REPORT])


def _column_types(df: pd.DataFrame, columns: list[str]) -> dict[str, str]:
    """Each column's Table Schema type."""
    return {
        c: (
            "integer"
            if pd.api.types.is_integer_dtype(df[c])
            else "number"
            if pd.api.types.is_float_dtype(df[c])
            else "date"
            if pd.api.types.is_datetime64_any_dtype(df[c])
            else "string"
        )
        for c in columns
    }


def _resources(outputs: list[F.Output], tmp: Path, schema: Any) -> list[dict[str, Any]]:
    """The datapackage resource of each written data file (with ``None`` for fields left out)."""
    resources = []
    for out in outputs:
        # a Parquet file is read by its own reader, not as a byte stream, so validators
        # cannot check a byte count or hash there; MANIFEST.sha256 holds every file's hash.
        # Stata, SPSS and SAS files and the label scripts are files to a validator (their
        # byte count and hash are checked); their labels are in the files themselves.
        streamed = out.format != "parquet"
        resources.append(
            {
                "name": out.path.replace(".", "-").lower(),
                "type": None if out.table else "file",
                "path": out.path,
                "format": out.format,
                "mediatype": out.mediatype,
                "encoding": "utf-8" if out.text else None,
                "bytes": (tmp / out.path).stat().st_size if streamed else None,
                "hash": "sha256:" + sha256_file(tmp / out.path) if streamed else None,
                "schema": schema if out.table else None,
            }
        )
    return resources


def _write_datapackage(candidate: Candidate, data: _Microdata, tmp: Path, outputs: list[F.Output]) -> None:
    """``datapackage.json``: the machine-readable description of the written files."""
    meta = data.meta
    dtypes = _column_types(data.df, data.columns)
    schema = codebook.table_schema(data.columns, dtypes)
    resources = _resources(outputs, tmp, schema)
    package = {
        "$schema": "https://datapackage.org/profiles/2.0/datapackage.json",
        "name": meta.get("order_id", "delivery").lower(),
        "title": f"LSS register extract {meta.get('order_id', '')}",
        "description": "Pseudonymised extract from Socialstyrelsen's LSS register.",
        "version": "1.0.0",
        "resources": [{k: v for k, v in r.items() if v is not None} for r in resources],
        "lsssdc": {
            "content_hash": candidate.content_hash,
            "order_id": meta.get("order_id"),
            "project_id": meta.get("project_id"),
        },
    }
    (tmp / "datapackage.json").write_text(
        json.dumps(package, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )


def build_package(
    candidate: Candidate,
    target: Path,
    identifiers: list[str] | None = None,
    before_publish: BeforePublish | None = None,
    columns: list[str] | None = None,
) -> dict[str, str]:
    """Write the package for ``candidate`` to ``target`` atomically; return file -> sha256."""
    target = Path(target)
    _check_target(target)
    # read every source file once and check it against the sealed manifest: what is delivered is
    # exactly what was approved, even if a file is swapped after the approval was checked
    if candidate.manifest.get("kind") == "tables":
        return _build_table_package(candidate, target, before_publish)
    data = _read_microdata(candidate, identifiers, columns)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent))
    try:
        outputs = _write_data(data, tmp)
        _write_documents(data, tmp, outputs)
        _write_datapackage(candidate, data, tmp, outputs)
        return _publish(tmp, target, before_publish)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _table_readme(meta: dict[str, Any], names: list[str]) -> str:
    lines = [
        f"# Tables {meta.get('order_id', '')}",
        "",
        f"Project: {meta.get('project_id', '')}. Diarienummer: {meta.get('diarienummer', '')}.",
        "",
        "Counts from Socialstyrelsen's register of insatser under LSS on the measurement date of each "
        "year. A hidden cell is shown as `..`: either it is small (primary suppression) or it had to be "
        "hidden too so that no small cell can be worked out from the totals (secondary suppression). "
        "A persons total over insatser or kommuner can be smaller than the sum of its cells, since one "
        "person can have several insatser and be served by two kommuner. Every table was checked by an "
        "attacker's linear programmes before release (`audit.json`).",
        "",
        "## Files",
        *[f"- `{n}`" for n in names],
        "- `policy.yaml`, `order.yaml`: the rules and the request.",
        "- `MANIFEST.sha256`: SHA-256 of every file.",
        "",
    ]
    return "\n".join(lines)


def _build_table_package(
    candidate: Candidate, target: Path, before_publish: BeforePublish | None
) -> dict[str, str]:
    """A table delivery: the audited tables as sealed, the policy and order, a README, a manifest."""
    listed = sorted(n for n in (candidate.manifest.get("files") or {}) if n.startswith("tables/"))
    if not listed:
        raise InputDataError(
            Problem("bad_candidate", "the candidate has no tables to deliver", file=str(candidate.path))
        )
    sources = {
        name: _sealed_bytes(candidate, name)
        for name in (*listed, "metadata.json", "policy.yaml", "order.yaml")
    }
    meta = json.loads(sources["metadata.json"].decode("utf-8"))
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent))
    try:
        names = []
        for name in listed:
            out = Path(name).name
            (tmp / out).write_bytes(sources[name])
            names.append(out)
        (tmp / "policy.yaml").write_bytes(sources["policy.yaml"])
        (tmp / "order.yaml").write_bytes(sources["order.yaml"])
        (tmp / "README.md").write_text(_table_readme(meta, names), encoding="utf-8")
        return _publish(tmp, target, before_publish)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _publish(tmp: Path, target: Path, before_publish: BeforePublish | None = None) -> dict[str, str]:
    """Write the SHA-256 manifest, record it (``before_publish``), make every file durable, and
    rename the package into place."""
    files = {p.name: sha256_file(p) for p in sorted(tmp.iterdir())}
    (tmp / "MANIFEST.sha256").write_text(
        "".join(f"{h}  {n}\n" for n, h in sorted(files.items())), encoding="utf-8"
    )
    files["MANIFEST.sha256"] = sha256_file(tmp / "MANIFEST.sha256")
    if before_publish is not None:
        before_publish(tmp, dict(files))
    restrict(tmp)
    for p in tmp.iterdir():
        with open(p, "rb") as fh:
            os.fsync(fh.fileno())
    os.rename(tmp, target)
    _fsync_dir(target.parent)
    return files


def _sealed_bytes(candidate: Candidate, name: str) -> bytes:
    """A candidate file's bytes, refused unless they are the bytes its manifest sealed."""
    listed = (candidate.manifest.get("files") or {}).get(name)
    path = candidate.path / name
    if listed is None or not path.is_file():
        raise InputDataError(
            Problem(
                "bad_candidate",
                f"the candidate has no {name} to deliver",
                file=str(path),
                hint="prepare the candidate again (with its policy and order files)",
            )
        )
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != listed:
        raise DisclosureRefused(
            Problem(
                "candidate_changed",
                f"{name} changed after the candidate was sealed",
                file=str(path),
                hint="prepare it again; a reviewer decides on exactly these bytes",
            )
        )
    return data


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (POSIX); harmless where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def manifest_hash(files: dict[str, str]) -> str:
    return "sha256:" + hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
