"""Hostile register files: each is an input problem (exit 2) named by its file, found in bounded
memory and time, never an internal error, a traceback or a value from the file.

Every file is given both to `lsssdc validate FILE` and to `lsssdc prepare --register FILE`.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lsssdc import fileio
from lsssdc.cli import run
from lsssdc.register import files
from lsssdc.register import variables as V
from tests.register.test_rules import frame, person, row

PNR = "198005051234"  # shaped like a personnummer: it must never be shown
HEADER = ",".join(V.COLUMNS)
REG = frame([row(2010, person("1980-05-05", 123), kontaktperson=1)] * 3)


def good_csv(without: str | None = None) -> bytes:
    """The register as `write_register` writes it (header and three rows), or without a column."""
    text = files.register_to_text(REG).drop(columns=[without] if without else [])
    return text.to_csv(index=False, lineterminator="\n").encode("utf-8")


def good_parquet(path: Path) -> bytes:
    files.write_register(frame([row(2010, person("1980-05-05", 123), kontaktperson=1)] * 50), path)
    return path.read_bytes()


def noise(n: int) -> bytes:
    return random.Random(n).randbytes(n)


def commands(path: Path, tmp_path: Path) -> dict[str, list[str]]:
    return {
        "validate": ["validate", str(path)],
        "prepare": [
            "prepare",
            "--policy",
            "research-standard",
            "--order",
            "daglig-verksamhet-2015-2023",
            "--register",
            str(path),
            "--work",
            str(tmp_path / "work"),
            "--key-store",
            str(tmp_path / "keys.json"),
            "--ledger",
            str(tmp_path / "ledger.sqlite"),
        ],
    }


def refused(capsys, argv: list[str], path: Path) -> str:
    """Run the CLI: exit 2 and one short line on stderr that names the file, nothing else."""
    code = run(argv)
    out, err = capsys.readouterr()
    # plain progress lines ("lsssdc: <step> ...") come first when stderr is not a terminal
    err = "\n".join(ln for ln in err.splitlines() if not ln.endswith(" ...") and " done in " not in ln)
    assert code == 2, err
    assert "Traceback" not in out + err and "internal error" not in err, err
    assert str(path) in err, err
    assert len(err.strip().splitlines()) == 1 and len(err.replace(str(path), "")) < 600, err
    assert PNR not in out + err
    assert not re.search(r"\d{10}", err.replace(str(path), "")), err
    return err


# --------------------------------------------------------------------------------------------
# files shaped unlike a register table: each builder writes one into a folder and returns it


def long_line(d: Path) -> Path:
    """A short line of 8 MiB without a line break (the 256 MiB one is the slow test below)."""
    path = d / "lss.csv"
    path.write_bytes(b"1" * (8 << 20))
    return path


def long_field(d: Path) -> Path:
    path = d / "lss.csv"
    path.write_bytes((HEADER + "\n2010," + PNR * 900_000 + ",0114\n").encode("ascii"))
    return path


def million_columns(d: Path) -> Path:
    path = d / "lss.csv"
    path.write_bytes(",".join(f"c{i}" for i in range(2_000_000)).encode("ascii") + b"\n1\n")
    return path


def wide_header(d: Path) -> Path:
    """Just over MAX_COLUMNS, on a line well under MAX_LINE_BYTES."""
    path = d / "lss.csv"
    path.write_bytes((HEADER + "," + ",".join(f"x{i}" for i in range(1000)) + "\n").encode("ascii"))
    return path


def wide_parquet(d: Path) -> Path:
    path = d / "lss.parquet"
    pq.write_table(pa.table({f"c{i}": pa.array(["1"]) for i in range(1001)}), path)
    return path


def duplicate_column(d: Path) -> Path:
    path = d / "lss.csv"
    lines = good_csv().decode().splitlines()
    path.write_text(f"{lines[0]},kommun\n{lines[1]},0114\n", encoding="utf-8")
    return path


def duplicate_pnr_column(d: Path) -> Path:
    """Two columns named like a personnummer: the name is shown, scrubbed."""
    path = d / "lss.csv"
    lines = good_csv().decode().splitlines()
    path.write_text(f"{lines[0]},{PNR},{PNR}\n{lines[1]},1,2\n", encoding="utf-8")
    return path


def missing_column(d: Path) -> Path:
    path = d / "lss.csv"
    path.write_bytes(good_csv(without="personnummer"))
    return path


def header_only(d: Path) -> Path:
    path = d / "lss.csv"
    path.write_bytes((HEADER + "\n").encode("ascii"))
    return path


def ragged(d: Path) -> Path:
    path = d / "lss.csv"
    path.write_bytes(good_csv() + f"2010,{PNR}\n".encode("ascii"))
    return path


def unclosed_quote(d: Path) -> Path:
    path = d / "lss.csv"
    path.write_bytes(good_csv() + f'2010,"{PNR},0114\n'.encode("ascii") * 3)
    return path


def latin1(d: Path) -> Path:
    path = d / "lss.csv"
    path.write_bytes(good_csv() + f"2010,{PNR},Malmö\n".encode("latin-1"))
    return path


def utf16(d: Path) -> Path:
    """What Excel's 'Unicode text' gives."""
    path = d / "lss.csv"
    path.write_bytes(good_csv().decode().encode("utf-16"))
    return path


def cut_utf8(d: Path) -> Path:
    path = d / "lss.csv"
    path.write_bytes(good_csv() + "2010,Malmö".encode()[:-1])
    return path


def noise_csv(d: Path) -> Path:
    path = d / "lss.csv"
    path.write_bytes(noise(1 << 16))
    return path


def nul_csv(d: Path) -> Path:
    path = d / "lss.csv"
    path.write_bytes(b"\0" * 4096)
    return path


def nul_in_text_csv(d: Path) -> Path:
    path = d / "lss.csv"
    path.write_bytes(good_csv() + b"2010,\0\0\0\n")
    return path


def noise_parquet(d: Path) -> Path:
    path = d / "lss.parquet"
    path.write_bytes(noise(1 << 16))
    return path


def nul_parquet(d: Path) -> Path:
    path = d / "lss.parquet"
    path.write_bytes(b"\0" * 4096)
    return path


def noise_between_magic(d: Path) -> Path:
    """Parquet's magic bytes at both ends, noise in between."""
    path = d / "lss.parquet"
    path.write_bytes(b"PAR1" + noise(4096) + (4000).to_bytes(4, "little") + b"PAR1")
    return path


def truncated_parquet(d: Path) -> Path:
    path = d / "lss.parquet"
    data = good_parquet(path)
    path.write_bytes(data[: len(data) // 2])
    return path


def corrupt_footer(d: Path) -> Path:
    path = d / "lss.parquet"
    data = bytearray(good_parquet(path))
    data[-300:-8] = noise(292)
    path.write_bytes(bytes(data))
    return path


def huge_footer_length(d: Path) -> Path:
    """A footer that claims to be 2 GiB long."""
    path = d / "lss.parquet"
    data = bytearray(good_parquet(path))
    data[-8:-4] = (0x7FFF_FFFF).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    return path


def dictionary_bomb(d: Path) -> Path:
    """One value of 1 MB, 100,000 times: under 1 KiB on disk, about 100 GB in memory."""
    path = d / "lss.parquet"
    text = pa.DictionaryArray.from_arrays(pa.array([0] * 100_000, pa.int32()), pa.array(["1" * 1_000_000]))
    pq.write_table(pa.table(dict.fromkeys(V.COLUMNS, text)), path, compression="zstd")
    assert path.stat().st_size < 100_000
    return path


def dictionary_bomb_without_schema(d: Path) -> Path:
    """The same without an Arrow schema in the file, which would have kept the dictionary."""
    path = d / "lss.parquet"
    text = pa.DictionaryArray.from_arrays(pa.array([0] * 100_000, pa.int32()), pa.array(["1" * 1_000_000]))
    pq.write_table(pa.table(dict.fromkeys(V.COLUMNS, text)), path, compression="zstd", store_schema=False)
    return path


def text_parquet_as_csv(d: Path) -> Path:
    """A Parquet file with a .csv name."""
    path = d / "lss.csv"
    good_parquet(d / "real.parquet")
    path.write_bytes((d / "real.parquet").read_bytes())
    return path


def empty_csv(d: Path) -> Path:
    path = d / "lss.csv"
    path.write_bytes(b"")
    return path


def blank_csv(d: Path) -> Path:
    path = d / "lss.csv"
    path.write_bytes(b"\xef\xbb\xbf \r\n\n\t\n")
    return path


def empty_parquet(d: Path) -> Path:
    path = d / "lss.parquet"
    path.write_bytes(b"")
    return path


def folder(d: Path) -> Path:
    path = d / "lss.csv"
    path.mkdir()
    (path / "lss.csv").write_bytes(good_csv())
    return path


def fifo(d: Path) -> Path:
    path = d / "lss.csv"
    os.mkfifo(path)
    return path


def link_to_fifo(d: Path) -> Path:
    os.mkfifo(d / "pipe")
    path = d / "lss.csv"
    path.symlink_to(d / "pipe")
    return path


def link_to_dev_zero(d: Path) -> Path:
    path = d / "lss.csv"
    path.symlink_to("/dev/zero")
    return path


def link_outside_to_noise(d: Path) -> Path:
    outside = d.parent / f"{d.name}-outside"
    outside.mkdir()
    (outside / "x.csv").write_bytes(noise(4096))
    path = d / "lss.csv"
    path.symlink_to(outside / "x.csv")
    return path


def dangling_link(d: Path) -> Path:
    path = d / "lss.csv"
    path.symlink_to(d / "nowhere.csv")
    return path


def link_loop(d: Path) -> Path:
    path = d / "lss.csv"
    path.symlink_to(d / "lss.csv")
    return path


HOSTILE: dict[str, Callable[[Path], Path]] = {
    f.__name__: f
    for f in (
        long_line,
        long_field,
        million_columns,
        wide_header,
        wide_parquet,
        duplicate_column,
        duplicate_pnr_column,
        missing_column,
        header_only,
        ragged,
        unclosed_quote,
        latin1,
        utf16,
        cut_utf8,
        noise_csv,
        nul_csv,
        nul_in_text_csv,
        noise_parquet,
        nul_parquet,
        noise_between_magic,
        truncated_parquet,
        corrupt_footer,
        huge_footer_length,
        dictionary_bomb,
        dictionary_bomb_without_schema,
        text_parquet_as_csv,
        empty_csv,
        blank_csv,
        empty_parquet,
        folder,
        fifo,
        link_to_fifo,
        link_to_dev_zero,
        link_outside_to_noise,
        dangling_link,
        link_loop,
    )
}

#: What the one line on stderr says, so that each file is refused for the right reason.
SAYS = {
    "long_line": "longer than 1 MiB",
    "long_field": "longer than 1 MiB",
    "million_columns": "more than 1,000 columns",
    "wide_header": "more than 1,000 columns",
    "wide_parquet": "more than 1,000 columns",
    "duplicate_column": "column 'kommun': the column appears more than once",
    "duplicate_pnr_column": "column '<redacted>': the column appears more than once",
    "missing_column": "missing column(s): personnummer",
    "header_only": "no rows",
    "ragged": "lss.csv:5: the file is not a well-formed CSV table",
    "unclosed_quote": "not a well-formed CSV table",
    "latin1": "lss.csv:5: the file is not UTF-8 text",
    "utf16": "lss.csv:1: the file is not UTF-8 text",
    "cut_utf8": "lss.csv:5: the file is not UTF-8 text",
    "noise_csv": "not UTF-8 text",
    "nul_csv": "lss.csv:1: the file holds NUL bytes",
    "nul_in_text_csv": "lss.csv:5: the file holds NUL bytes",
    "noise_parquet": "not a readable Parquet file",
    "nul_parquet": "not a readable Parquet file",
    "noise_between_magic": "not a readable Parquet file",
    "truncated_parquet": "not a readable Parquet file",
    "corrupt_footer": "not a readable Parquet file",
    "huge_footer_length": "not a readable Parquet file",
    "dictionary_bomb": "unpacks to about",
    "dictionary_bomb_without_schema": "unpacks to about",
    "text_parquet_as_csv": "not UTF-8 text",
    "empty_csv": "the file is empty",
    "blank_csv": "the file is empty",
    "empty_parquet": "the file is empty",
    "folder": "is a folder, not a file",
    "fifo": "is a named pipe, not a file",
    "link_to_fifo": "is a named pipe, not a file",
    "link_to_dev_zero": "is a device, not a file",
    "link_outside_to_noise": "not UTF-8 text",
    "dangling_link": "no such file",
    "link_loop": "cannot be read",
}


@pytest.fixture
def deadline():
    """Fail, rather than hang, when reading a file blocks (a pipe waits for a writer)."""

    def expired(*_):
        raise TimeoutError("reading the file blocked")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


@pytest.mark.parametrize("command", ["validate", "prepare"])
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_register_file_is_an_input_problem(tmp_path, capsys, deadline, case, command) -> None:
    d = tmp_path / "in"
    d.mkdir()
    path = HOSTILE[case](d)
    argv = commands(path, tmp_path)[command]
    if case == "folder" and command == "validate":  # validate reads lss.csv from a folder
        argv = ["validate", str(d / "empty")]
        path = d / "empty"
        path.mkdir()
        says = "is a folder without lss.parquet or lss.csv"
    else:
        says = SAYS[case]
    err = refused(capsys, argv, path)
    assert says in err, err
    assert not (tmp_path / "work").exists() and not (tmp_path / "ledger.sqlite").exists()


def test_a_folder_given_to_validate_is_read_as_the_folder_it_is(tmp_path, capsys) -> None:
    """Sanity: a folder holding a register is validated (its lss.csv), not refused."""
    path = folder(tmp_path)
    assert run(["validate", str(path)]) in (0, 1)
    assert "internal error" not in capsys.readouterr().err


def test_a_link_to_a_register_outside_is_read(tmp_path, capsys) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "lss.csv").write_bytes(good_csv())
    (tmp_path / "in").mkdir()
    link = tmp_path / "in" / "lss.csv"
    link.symlink_to(outside / "lss.csv")
    assert run(["validate", str(link)]) in (0, 1)
    assert "internal error" not in capsys.readouterr().err


def test_a_lower_line_limit_is_used(tmp_path, capsys, monkeypatch) -> None:
    """The limit is one constant: a 64 KiB line under a 32 KiB limit is refused, naming it."""
    monkeypatch.setattr(fileio, "MAX_LINE_BYTES", 32 << 10)
    path = tmp_path / "lss.csv"
    path.write_bytes(good_csv() + b"2010," + b"7" * (64 << 10) + b"\n")
    err = refused(capsys, ["validate", str(path)], path)
    assert f"{path}:5: a line is longer than 32 KiB" in err


def test_a_parquet_file_that_claims_far_more_rows_than_its_size_is_refused_unread(
    tmp_path, capsys, monkeypatch
) -> None:
    """Two million missing values fit in a few KiB of Parquet, and take 18 MB in memory."""
    monkeypatch.setattr(fileio, "_PARQUET_FLOOR", 0)
    path = tmp_path / "lss.parquet"
    pq.write_table(pa.table({"personnummer": pa.nulls(2_000_000, pa.string())}), path)
    monkeypatch.setattr(fileio.pq.ParquetFile, "read", lambda *_a, **_k: pytest.fail("read"))
    err = refused(capsys, ["validate", str(path)], path)
    assert "says it holds about" in err


def test_the_bounded_reader_reads_what_people_write(tmp_path) -> None:
    """A BOM, CRLF line ends, a blank line and quoted values read as the register written."""
    text = good_csv().replace(b"\n", b"\r\n").replace(b"\r\n2010,", b'\r\n\r\n"2010",', 1)
    path = tmp_path / "lss.csv"
    path.write_bytes(b"\xef\xbb\xbf" + text)
    pd.testing.assert_frame_equal(files.read_register(path), REG)


SIZE = 256 << 20

# VmHWM, not ru_maxrss: that one starts from the parent's peak (pytest's) in a spawned process
PEAK = """
import json, re, sys
from lsssdc.cli import run
codes = [run(argv) for argv in json.loads(sys.argv[1])]
with open("/proc/self/status") as fh:
    peak = int(re.search(r"VmHWM:\\s+(\\d+) kB", fh.read()).group(1)) * 1024
print(json.dumps({"codes": codes, "peak": peak}))
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the peak from /proc")
def test_a_256_mib_line_is_refused_without_reading_it_whole(tmp_path) -> None:
    """The reported attack: 256 MiB without a line break took 3.5 GB and ended in an internal
    error. Both commands run in a fresh process, whose peak memory stays below the file's size."""
    path = tmp_path / "lss.csv"
    block = b"1" * (1 << 20)
    with path.open("wb") as fh:
        for _ in range(SIZE >> 20):
            fh.write(block)
    argvs = list(commands(path, tmp_path).values())
    done = subprocess.run(
        [sys.executable, "-c", PEAK, json.dumps(argvs)], capture_output=True, text=True, timeout=120
    )
    result = json.loads(done.stdout)
    assert result["codes"] == [2, 2], done.stderr
    lines = [ln for ln in done.stderr.strip().splitlines() if not ln.endswith(" ...")]  # not progress
    assert len(lines) == 2 and all(f"{path}:1: a line is longer than 1 MiB" in line for line in lines)
    assert result["peak"] < SIZE, f"peak memory {result['peak'] >> 20} MiB for a {SIZE >> 20} MiB file"
