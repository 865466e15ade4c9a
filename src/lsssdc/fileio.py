"""Reading and writing data files: CSV (UTF-8) and Parquet, strictly and atomically.

Reading never guesses silently: a file that is empty, not UTF-8, not Parquet, or lacks a
column is refused with the file, column and row named. Every column is read as text first and
converted by the caller, so that a leading zero in a kommun code or a personnummer survives.
Reading is bounded: anything but a regular file is refused before it is opened, and a file
shaped unlike a table (a line of 256 MiB, a million columns, a Parquet file that would unpack
to gigabytes) is refused before it is parsed, so memory stays within a small multiple of a CSV
file's size (and PARQUET_MAX_EXPANSION times a Parquet file's). Writing goes to a temporary
file in the same directory, then one rename.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from lsssdc.errors import InputDataError, Problem, scrub

FORMATS = ("csv", "parquet")

#: No line of a table is longer than this (a register row is well under 1 KiB). A longer line
#: is refused before anything is parsed, so that a file without line breaks is never read whole.
MAX_LINE_BYTES = 1 << 20
#: No table has more columns than this (the register has 22): a wider header is refused before
#: it is parsed, as each column costs far more memory than its bytes in the header.
MAX_COLUMNS = 1000
#: A Parquet file may take at most this many times its size in memory (256 MiB are always
#: allowed): a compressed register takes about 60 times (a cell takes 9 bytes in memory, a
#: repeated flag a fraction of a byte in the file); a few KiB that claim gigabytes are a bomb.
PARQUET_MAX_EXPANSION = 256
_PARQUET_FLOOR = 256 << 20
_CHUNK = 1 << 20  # bytes read at a time when checking a CSV file
_CELL_BYTES = 9  # a text cell in memory besides its characters: a 64-bit offset and a valid bit
_READ_ERRORS = (pa.ArrowException, OSError, ValueError, UnicodeDecodeError)
_KINDS = {
    stat.S_IFDIR: "a folder",
    stat.S_IFIFO: "a named pipe",
    stat.S_IFCHR: "a device",
    stat.S_IFBLK: "a device",
    stat.S_IFSOCK: "a socket",
}


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


def _size_text(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            value = n / (1 << shift)
            return f"{value:,.0f} {unit}" if value >= 10 or value.is_integer() else f"{value:.1f} {unit}"
    return f"{n} bytes"


def _shown(name: str) -> str:
    """A column name as it may be shown: it comes from the file, so it is cut and scrubbed."""
    return scrub(name if len(name) <= 60 else name[:60] + "...")


def _not_regular(path: Path, mode: int) -> InputDataError:
    kind = _KINDS.get(stat.S_IFMT(mode))
    message = f"is {kind}, not a file" if kind else "is not a regular file"
    return InputDataError(Problem("no_file", message, file=str(path)))


def _open(path: Path) -> BinaryIO:
    """Open a regular file for reading. A folder, a pipe or a device is refused before it is
    opened (opening a pipe waits for a writer, /dev/zero never ends); the open file is checked
    again, in case the path was swapped in between."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise _not_regular(path, st.st_mode)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except (FileNotFoundError, NotADirectoryError):
        raise InputDataError(Problem("no_file", "no such file", file=str(path))) from None
    except OSError as exc:
        raise InputDataError(
            Problem("unreadable", f"cannot be read ({exc.strerror or type(exc).__name__})", file=str(path))
        ) from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise _not_regular(path, st.st_mode)
    return os.fdopen(fd, "rb")


def _too_large(path: Path, message: str) -> InputDataError:
    return InputDataError(
        Problem("too_large", message, file=str(path), hint="check that this is the table meant")
    )


def _check_csv(fh: BinaryIO, path: Path) -> None:
    """Refuse, in one pass of bounded memory, what the parser must never see: no content, bytes
    that are not UTF-8 text, a header wider than MAX_COLUMNS, a line longer than MAX_LINE_BYTES."""
    lines = 0  # line feeds before this chunk: the line number of the chunk's first byte, less one
    run = 0  # bytes since the last line break
    carry = b""  # the start of a UTF-8 character cut by the chunk's end
    content = False
    header = 0  # 0 before the header, 1 inside it, 2 after it
    commas = 0
    first = True
    while chunk := fh.read(_CHUNK):
        if first:
            chunk, first = chunk.removeprefix(codecs.BOM_UTF8), False
        data = carry + chunk
        try:
            _, used = codecs.utf_8_decode(data, "strict", False)
        except UnicodeDecodeError as exc:
            raise _not_utf8(path, lines + data.count(b"\n", 0, exc.start) + 1) from None
        carry = data[used:]
        if (nul := chunk.find(b"\0")) >= 0:
            raise InputDataError(
                Problem(
                    "not_text",
                    "the file holds NUL bytes: it is binary, not CSV text",
                    file=str(path),
                    line=lines + chunk.count(b"\n", 0, nul) + 1,
                    hint="give the register as UTF-8 CSV or as Parquet",
                )
            )
        content = content or bool(chunk.strip())
        if header < 2:
            view = chunk if header else chunk.lstrip(b"\r\n")
            header = 1 if view else header
            ends = [i for i in (view.find(b"\n"), view.find(b"\r")) if i >= 0]
            commas += view.count(b",", 0, min(ends) if ends else len(view))
            header = 2 if ends else header
            if commas >= MAX_COLUMNS:
                raise InputDataError(
                    Problem(
                        "too_many_columns",
                        f"the header has more than {MAX_COLUMNS:,} columns: not a register table",
                        file=str(path),
                        line=1,
                    )
                )
        codes = np.frombuffer(chunk, np.uint8)
        breaks = np.flatnonzero((codes == 10) | (codes == 13))
        at = None
        if breaks.size:
            lengths = np.diff(breaks, prepend=-1) - 1
            lengths[0] += run
            over = np.flatnonzero(lengths > MAX_LINE_BYTES)
            at = int(breaks[over[0]]) if over.size else None
            run = len(chunk) - int(breaks[-1]) - 1
        else:
            run += len(chunk)
        if at is None and run > MAX_LINE_BYTES:
            at = len(chunk)
        if at is not None:
            raise InputDataError(
                Problem(
                    "line_too_long",
                    f"a line is longer than {_size_text(MAX_LINE_BYTES)}: not a register table "
                    "(a row is under 1 KiB)",
                    file=str(path),
                    line=lines + chunk.count(b"\n", 0, at) + 1,
                    hint="check that this is the table meant, and that its lines end with a line break",
                )
            )
        lines += chunk.count(b"\n")
    if carry:
        raise _not_utf8(path, lines + 1)
    if not content:
        raise InputDataError(Problem("empty_file", "the file is empty", file=str(path)))


def _not_utf8(path: Path, line: int) -> InputDataError:
    return InputDataError(
        Problem(
            "not_utf8",
            "the file is not UTF-8 text",
            file=str(path),
            line=line,
            hint="save it as UTF-8 (e.g. 'CSV UTF-8' in Excel)",
        )
    )


def _csv(fh: BinaryIO, path: Path) -> pd.DataFrame:
    _check_csv(fh, path)
    fh.seek(0)
    bad_rows: list[int] = []

    def invalid(row: pcsv.InvalidRow) -> str:  # its text is never kept: it may hold a personnummer
        if row.number is not None:
            bad_rows.append(row.number)
        return "error"

    try:  # the header is read as a row of text too, so every column is text without a first pass
        table = pcsv.read_csv(
            fh,
            read_options=pcsv.ReadOptions(
                block_size=2 * MAX_LINE_BYTES, use_threads=False, autogenerate_column_names=True
            ),
            parse_options=pcsv.ParseOptions(newlines_in_values=True, invalid_row_handler=invalid),
            convert_options=pcsv.ConvertOptions(
                column_types={f"f{i}": pa.large_string() for i in range(MAX_COLUMNS)},
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )
    except MemoryError:  # Arrow's too: it is an ArrowException as well
        raise
    except _READ_ERRORS:
        raise InputDataError(
            Problem(
                "bad_csv",
                "the file is not a well-formed CSV table (a row has more or fewer fields than the "
                "header, or a quote is not closed)",
                file=str(path),
                line=bad_rows[0] if bad_rows else None,
                hint="check the separator (comma) and quoting",
            )
        ) from None
    if table.num_rows == 0:
        raise InputDataError(Problem("empty_file", "the file has no header", file=str(path)))
    names = [col[0].as_py() or "" for col in table.columns]
    _refuse_duplicates(names, path)
    held = [table.slice(1).rename_columns(names)]
    del table
    return _text_frame(held, path)


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
                    column=_shown(name),
                )
            )
        seen.add(name)


def _text_frame(held: list[pa.Table], path: Path) -> pd.DataFrame:
    """The held table's columns as text. The caller hands the table over in a list, so that
    each column is freed once converted: memory never holds two copies of the table."""
    table = held.pop()
    pool = pa.default_memory_pool()
    pool.release_unused()  # what the parser needed on the way
    columns = {}
    n = table.num_rows
    for name in table.column_names:
        col, table = table.column(0), table.remove_column(0)
        try:  # text first: the caller converts, for CSV and Parquet alike
            text = pc.cast(col, pa.large_string()).combine_chunks()  # what pandas keeps
        except MemoryError:
            raise
        except pa.ArrowException:
            raise InputDataError(
                Problem(
                    "bad_type",
                    "the column has a type that cannot be read as text",
                    file=str(path),
                    column=_shown(name),
                )
            ) from None
        del col
        pool.release_unused()  # the allocator keeps what was freed unless asked
        columns[name] = pd.Series(pd.arrays.ArrowStringArray(text), copy=False)
    return pd.DataFrame(columns, index=pd.RangeIndex(n))


def _text_bytes(col: pa.ChunkedArray) -> int:
    """The characters a column holds once its dictionary, if any, is unpacked (0 for numbers:
    their text is bounded by the number of cells)."""
    total = 0
    for chunk in col.chunks:
        if pa.types.is_dictionary(chunk.type) and (
            pa.types.is_string(chunk.type.value_type) or pa.types.is_binary(chunk.type.value_type)
        ):
            total += pc.sum(pc.binary_length(chunk.dictionary).take(chunk.indices)).as_py() or 0
        elif pa.types.is_string(chunk.type) or pa.types.is_large_string(chunk.type):
            total += chunk.nbytes
    return total


def _parquet(fh: BinaryIO, path: Path, size: int) -> pd.DataFrame:
    budget = max(_PARQUET_FLOOR, PARQUET_MAX_EXPANSION * size)
    try:
        md = pq.ParquetFile(fh).metadata  # the footer only
        if md.num_columns > MAX_COLUMNS:
            raise InputDataError(
                Problem(
                    "too_many_columns",
                    f"the file has more than {MAX_COLUMNS:,} columns: not a register table",
                    file=str(path),
                )
            )
        declared = md.num_rows * md.num_columns * _CELL_BYTES
        declared += sum(md.row_group(i).total_byte_size for i in range(md.num_row_groups))
        if declared > budget:
            raise _too_large(
                path,
                f"the file says it holds about {_size_text(declared)}, more than "
                f"{PARQUET_MAX_EXPANSION} times its size: not a register table",
            )
        schema = md.schema.to_arrow_schema()
        _refuse_duplicates(schema.names, path)
        texts = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_binary(f.type)]
        fh.seek(0)
        with pq.ParquetFile(fh, read_dictionary=texts) as pf:  # text stays packed until its size
            table = pf.read()  # is known (one file, read as is: the dataset reader refuses
            # repeated column names with a misleading message)
        unpacked = table.num_rows * table.num_columns * _CELL_BYTES
        unpacked += sum(_text_bytes(c) for c in table.columns)
        if unpacked > budget:
            raise _too_large(
                path,
                f"the file unpacks to about {_size_text(unpacked)}, more than "
                f"{PARQUET_MAX_EXPANSION} times its size: not a register table",
            )
    except MemoryError:  # Arrow's too: it is an ArrowException as well
        raise
    except _READ_ERRORS:
        raise InputDataError(
            Problem(
                "not_parquet",
                "the file is not a readable Parquet file",
                file=str(path),
                hint="write it with a Parquet writer, or give a .csv file",
            )
        ) from None
    held = [table]
    del table
    return _text_frame(held, path)


def read_table(path: str | os.PathLike[str], required: tuple[str, ...] = ()) -> pd.DataFrame:
    """Read a CSV or Parquet file as text columns; refuse anything but a regular file, an empty
    one, one shaped unlike a table or missing columns, in memory bounded by the file's size."""
    p = Path(path)
    with _open(p) as fh:
        fmt = detect_format(p)
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            raise InputDataError(Problem("empty_file", "the file is empty", file=str(p)))
        try:
            df = _csv(fh, p) if fmt == "csv" else _parquet(fh, p, size)
        except MemoryError:
            raise _too_large(p, "the file does not fit in memory") from None
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
