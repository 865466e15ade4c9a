"""Reading and writing data files: CSV (UTF-8) and Parquet, strictly and atomically.

Reading never guesses silently: a file that is empty, not UTF-8, not Parquet, or lacks a
column is refused with the file, column and row named. Every column is read as text first and
converted by the caller, so that a leading zero in a kommun code or a personnummer survives.
Writing goes to a temporary file in the same directory, then one rename.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lsssdc.errors import InputDataError, Problem

FORMATS = ("csv", "parquet")


def detect_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix in (".csv", ".txt"):
        return "csv"
    raise InputDataError(
        Problem(
            "unknown_format",
            f"unknown file type '{suffix}'",
            file=str(path),
            hint="use a .csv (UTF-8, comma-separated) or .parquet file",
        )
    )


def _csv(path: Path) -> pd.DataFrame:
    raw = path.read_bytes()
    if not raw.strip():
        raise InputDataError(Problem("empty_file", "the file is empty", file=str(path)))
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputDataError(
            Problem(
                "not_utf8",
                "the file is not UTF-8 text",
                file=str(path),
                line=line,
                hint="save it as UTF-8 (e.g. 'CSV UTF-8' in Excel)",
            )
        ) from None
    try:
        df = pd.read_csv(
            io.StringIO(text), dtype=str, keep_default_na=False, na_values=[""], skipinitialspace=False
        )
        df = df.astype("string[pyarrow]")  # the same text columns as from Parquet
    except pd.errors.ParserError as exc:
        msg = str(exc)
        line = None
        if "line" in msg:
            with contextlib.suppress(ValueError, IndexError):
                line = int(msg.split("line")[1].split(",")[0].strip())
        raise InputDataError(
            Problem(
                "bad_csv",
                "the file is not a well-formed CSV table (a row has too many fields, or a quote is not closed)",
                file=str(path),
                line=line,
                hint="check the separator (comma) and quoting",
            )
        ) from None
    except pd.errors.EmptyDataError:
        raise InputDataError(Problem("empty_file", "the file has no header", file=str(path))) from None
    # pandas renames a repeated header ('a', 'a.1'): read the header itself to refuse that
    header = next(csv.reader(io.StringIO(text)), [])
    _refuse_duplicates(header, path)
    return df


def _refuse_duplicates(names: list[str], path: Path) -> None:
    seen: set[str] = set()
    for name in (str(n).strip() for n in names):
        if name in seen:
            raise InputDataError(
                Problem(
                    "duplicate_column",
                    "the column appears more than once in the header",
                    file=str(path),
                    line=1,
                    column=name,
                )
            )
        seen.add(name)


def _parquet(path: Path) -> pd.DataFrame:
    try:
        with pq.ParquetFile(path) as pf:  # one file, read as is (the dataset reader refuses
            table = pf.read()  # repeated column names with a misleading message)
    except (pa.ArrowInvalid, pa.ArrowException, OSError):
        raise InputDataError(
            Problem(
                "not_parquet",
                "the file is not a readable Parquet file",
                file=str(path),
                hint="write it with a Parquet writer, or give a .csv file",
            )
        ) from None
    _refuse_duplicates(table.column_names, path)
    columns = {}
    for name, col in zip(table.column_names, table.columns, strict=True):
        try:  # text first: the caller converts, exactly as for CSV
            text = pc.cast(col, pa.large_string()).combine_chunks()  # what pandas keeps
            columns[name] = pd.Series(pd.arrays.ArrowStringArray(text), copy=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise InputDataError(
                Problem(
                    "bad_type",
                    "the column has a type that cannot be read as text",
                    file=str(path),
                    column=name,
                )
            ) from None
    return pd.DataFrame(columns, index=pd.RangeIndex(table.num_rows))


def read_table(path: str | os.PathLike[str], required: tuple[str, ...] = ()) -> pd.DataFrame:
    """Read a CSV or Parquet file as text columns; refuse a missing file, an empty one or missing columns."""
    p = Path(path)
    if not p.is_file():
        raise InputDataError(Problem("no_file", "no such file", file=str(p)))
    fmt = detect_format(p)
    df = _csv(p) if fmt == "csv" else _parquet(p)
    df.columns = [str(c).strip() for c in df.columns]
    _refuse_duplicates(list(df.columns), p)
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise InputDataError(
            Problem(
                "missing_column",
                f"missing column(s): {', '.join(missing)}",
                file=str(p),
                hint=f"the file must have the columns {', '.join(required)}",
            )
        )
    if len(df) == 0:
        raise InputDataError(Problem("empty_file", "the file has a header but no rows", file=str(p)))
    return df


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; rename it over ``target`` only on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_table(df: pd.DataFrame, path: str | os.PathLike[str], fmt: str | None = None) -> Path:
    """Write a frame as CSV (UTF-8) or Parquet, atomically and deterministically."""
    p = Path(path)
    fmt = fmt or detect_format(p)
    with atomic_path(p) as tmp:
        if fmt == "csv":
            df.to_csv(tmp, index=False, lineterminator="\n")
        else:
            table = pa.Table.from_pandas(df, preserve_index=False)
            table = table.replace_schema_metadata(None)  # pandas metadata holds no dates, but keep it stable
            pq.write_table(table, tmp, compression="zstd")
    return p
