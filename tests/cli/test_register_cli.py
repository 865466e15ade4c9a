"""`lsssdc synth`, `lsssdc validate` and `lsssdc demo` through ``lsssdc.cli.run``: exit codes,
JSON reports, round trips, and bad input refused with file/column/row, no traceback and no
personnummer in the output."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from lsssdc import cli, fileio
from lsssdc.register import variables as V

YEARS = "2019-2022"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.run([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    """A small synthetic register written as CSV and Parquet by the CLI itself."""
    base = tmp_path_factory.mktemp("synth")
    for fmt in ("csv", "parquet"):
        code = cli.run(
            [
                "synth",
                "--years",
                YEARS,
                "--persons",
                "600",
                "--seed",
                "4",
                "--out",
                str(base / fmt),
                "--format",
                fmt,
            ]
        )
        assert code == 0
    return base


@pytest.fixture(scope="module")
def personnummer(synthetic) -> set[str]:
    """Every personnummer of the synthetic input (12 digits, and the 10 digits without century)."""
    reg = pd.read_csv(synthetic / "csv" / "lss.csv", dtype=str)
    deaths = pd.read_csv(synthetic / "csv" / "deaths.csv", dtype=str)
    numbers = set(reg["personnummer"]) | set(deaths["personnummer"])
    return numbers | {n[2:] for n in numbers}


def assert_no_personnummer(text: str, numbers: set[str]) -> None:
    for run_ in re.findall(r"\d{10,12}", text):
        assert run_ not in numbers
    for n in list(numbers)[:2000]:
        assert n not in text


def bad_copy(synthetic: Path, tmp_path: Path, edit) -> Path:
    """A copy of the synthetic CSV with ``edit(frame)`` applied (all columns text)."""
    df = pd.read_csv(synthetic / "csv" / "lss.csv", dtype=str, keep_default_na=False)
    df = edit(df)
    path = tmp_path / "bad.csv"
    df.to_csv(path, index=False)
    return path


# --------------------------------------------------------------------------------------------
# clean files, reports, round trips


def test_validate_clean_file_exits_0(capsys, synthetic):
    code, out, err = run(
        capsys, "validate", synthetic / "csv" / "lss.csv", "--deaths", synthetic / "csv" / "deaths.csv"
    )
    assert code == 0, err
    assert "accepted" in out and "0 errors" in out
    # not a terminal: plain progress lines on stderr: the step, how far it came, what it produced
    lines = err.splitlines()
    assert lines[0] == "lsssdc: validating the register ..." and len(lines) == 3
    assert lines[1] == "lsssdc: validating the register: 2,461 rows read; checking the register's rules"
    assert lines[2].startswith("lsssdc: validating the register: 2,461 rows, 0 errors, ") and lines[
        2
    ].endswith(" s")


def test_csv_and_parquet_give_identical_reports(capsys, synthetic):
    reports = {}
    for fmt in ("csv", "parquet"):
        code, out, _ = run(
            capsys,
            "validate",
            synthetic / fmt / f"lss.{fmt}",
            "--deaths",
            synthetic / fmt / f"deaths.{fmt}",
            "--json",
        )
        assert code == 0
        report = json.loads(out)
        assert report.pop("source").endswith(f"lss.{fmt}")
        reports[fmt] = report
    assert reports["csv"] == reports["parquet"]
    assert reports["csv"]["deaths_checked"] is True
    assert reports["csv"]["years"] == [2019, 2020, 2021, 2022]


def test_synth_json_summary(capsys, tmp_path):
    code, out, _ = run(
        capsys,
        "synth",
        "--years",
        "2020-2021",
        "--persons",
        "300",
        "--registers",
        "lss,deaths,population,assistans",
        "--population-size",
        "3000",
        "--out",
        tmp_path,
        "--json",
    )
    assert code == 0
    summary = json.loads(out)
    assert summary["synthetic"] is True
    assert set(summary["files"]) == {"lss", "deaths", "population", "assistans"}
    assert summary["rows"]["population"] == 3000
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "assistans.parquet",
        "deaths.parquet",
        "lss.parquet",
        "population.parquet",
    ]


INJECT = {"R01": 2, "R02": 3, "R05": 1, "R06": 2, "R09": 2, "R16": 1, "R20": 1, "R21": 2}


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_injected_errors_exit_1_and_json_counts_them(capsys, tmp_path, fmt):
    inject = ",".join(f"{k}={v}" for k, v in INJECT.items())
    code, out, _ = run(
        capsys,
        "synth",
        "--years",
        YEARS,
        "--persons",
        "600",
        "--seed",
        "4",
        "--out",
        tmp_path,
        "--format",
        fmt,
        "--inject",
        inject,
    )
    assert code == 0 and "injected violations" in out
    code, out, _ = run(
        capsys, "validate", tmp_path / f"lss.{fmt}", "--deaths", tmp_path / f"deaths.{fmt}", "--json"
    )
    assert code == 1
    report = json.loads(out)
    assert report["verdict"] == "rejected"
    totals: dict[str, int] = {}
    for f in report["findings"]:
        assert {"rule", "severity", "count", "rows", "unit", "row_count"} <= set(f)
        assert f["severity"] in ("error", "warning")
        assert all(isinstance(r, int) and r >= 1 for r in f["rows"])
        if f["severity"] == "error" or f["rule"] in ("R06", "R20"):
            totals[f["rule"]] = totals.get(f["rule"], 0) + f["count"]
    assert totals == INJECT
    # the readable table says the same
    code, out, _ = run(capsys, "validate", tmp_path / f"lss.{fmt}", "--deaths", tmp_path / f"deaths.{fmt}")
    assert code == 1 and "rejected" in out
    assert re.search(r"^R02\s+error\s+3\b", out, re.M)


def test_without_deaths_r02_is_not_checked(capsys, tmp_path):
    run(
        capsys,
        "synth",
        "--years",
        YEARS,
        "--persons",
        "600",
        "--seed",
        "4",
        "--out",
        tmp_path,
        "--inject",
        "R02=3",
    )
    code, out, _ = run(capsys, "validate", tmp_path / "lss.parquet")
    assert code == 0 and "R02 not checked" in out


def test_max_rows_limits_the_rows_listed(capsys, synthetic):
    code, out, _ = run(capsys, "validate", synthetic / "parquet" / "lss.parquet", "--json", "--max-rows", "2")
    assert code == 0
    findings = json.loads(out)["findings"]
    assert findings and all(len(f["rows"]) <= 2 for f in findings)
    assert any(f["row_count"] > 2 for f in findings)


def test_help_names_the_exit_codes(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "Exit codes" in out
    code, out, _ = run(capsys, "validate", "--help")
    assert code == 0 and "Example:" in out


# --------------------------------------------------------------------------------------------
# bad input: exit 2, file/column/row named, no traceback, no personnummer


def _refused(capsys, numbers, *argv) -> str:
    code, out, err = run(capsys, *argv)
    assert code == 2, (out, err)
    assert out == ""
    assert err.startswith("lsssdc: ")
    assert_no_personnummer(out + err, numbers)
    return err


def test_broken_personnummer_shape(capsys, synthetic, personnummer, tmp_path):
    def edit(df):
        df.loc[4, "personnummer"] = df.loc[4, "personnummer"][:-1]  # 11 digits
        df.loc[9, "personnummer"] = df.loc[9, "personnummer"][:8] + "/" + df.loc[9, "personnummer"][8:]
        return df

    path = bad_copy(synthetic, tmp_path, edit)
    err = _refused(capsys, personnummer, "validate", path)
    assert str(path) in err and "column 'personnummer'" in err and "rows 5, 10" in err


def test_wrong_check_digit_is_a_rule_error(capsys, synthetic, personnummer, tmp_path):
    def edit(df):
        p = df.loc[2, "personnummer"]
        df.loc[2, "personnummer"] = p[:-1] + str((int(p[-1]) + 1) % 10)
        return df

    path = bad_copy(synthetic, tmp_path, edit)
    code, out, err = run(capsys, "validate", path, "--json")
    assert code == 1
    report = json.loads(out)
    assert [(f["rule"], f["count"], f["rows"]) for f in report["findings"] if f["severity"] == "error"] == [
        ("R01", 1, [3])
    ]
    assert_no_personnummer(out + err, personnummer)


def test_unknown_kommun_code(capsys, synthetic, personnummer, tmp_path):
    def edit(df):
        df.loc[6, "kommun"] = "9999"
        return df

    err = _refused(capsys, personnummer, "validate", bad_copy(synthetic, tmp_path, edit))
    assert "column 'kommun'" in err and "row 7" in err and "unknown kommun" in err


def test_missing_column(capsys, synthetic, personnummer, tmp_path):
    err = _refused(
        capsys,
        personnummer,
        "validate",
        bad_copy(synthetic, tmp_path, lambda df: df.drop(columns=["kommun"])),
    )
    assert "bad.csv" in err and "kommun" in err and "missing" in err


def test_empty_and_header_only_files(capsys, personnummer, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    err = _refused(capsys, personnummer, "validate", empty)
    assert str(empty) in err and "empty" in err
    header = tmp_path / "header.csv"
    header.write_text(",".join(V.COLUMNS) + "\n", encoding="utf-8")
    err = _refused(capsys, personnummer, "validate", header)
    assert str(header) in err and "no rows" in err


def test_file_that_is_not_utf8(capsys, synthetic, personnummer, tmp_path):
    text = (synthetic / "csv" / "lss.csv").read_text(encoding="utf-8").splitlines()
    path = tmp_path / "latin1.csv"
    body = "\n".join(text[:5]).encode("utf-8") + "\n2020,Malmö".encode("latin-1")
    path.write_bytes(body)
    err = _refused(capsys, personnummer, "validate", path)
    assert f"{path}:6" in err and "not UTF-8" in err


def test_parquet_that_is_not_parquet(capsys, synthetic, personnummer, tmp_path):
    path = tmp_path / "lss.parquet"
    path.write_bytes((synthetic / "csv" / "lss.csv").read_bytes())
    err = _refused(capsys, personnummer, "validate", path)
    assert str(path) in err and "not a readable Parquet file" in err


def test_missing_file(capsys, personnummer, tmp_path):
    err = _refused(capsys, personnummer, "validate", tmp_path / "nothere.parquet")
    assert "nothere.parquet" in err and "no such file" in err


def test_bad_deaths_file(capsys, synthetic, personnummer, tmp_path):
    deaths = pd.read_csv(synthetic / "csv" / "deaths.csv", dtype=str)
    deaths.loc[1, "personnummer"] = deaths.loc[1, "personnummer"][2:]  # no century
    deaths.loc[2, "death_date"] = "31/12/2020"
    path = tmp_path / "deaths.csv"
    deaths.to_csv(path, index=False)
    err = _refused(capsys, personnummer, "validate", synthetic / "csv" / "lss.csv", "--deaths", path)
    assert f"{path}, column 'personnummer', row 2" in err
    assert f"{path}, column 'death_date', row 3" in err
    err = _refused(
        capsys, personnummer, "validate", synthetic / "csv" / "lss.csv", "--deaths", tmp_path / "none.csv"
    )
    assert "none.csv" in err


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["synth", "--years", "2020-2019"], "backwards"),
        (["synth", "--years", "abc"], "cannot read years"),
        (["synth", "--years", "1990-1999", "--persons", "10"], "years must lie within"),
        (["synth", "--years", "2019,2021", "--persons", "10"], "consecutive"),
        (["synth", "--registers", "lss,secret"], "unknown register"),
        (["synth", "--inject", "R1=5"], "cannot read"),
        (["synth", "--years", "2020", "--persons", "10", "--inject", "R99=1"], "unknown rule"),
        (["synth", "--years", "2020", "--persons", "10", "--format", "xlsx"], "unknown format"),
        (["validate"], "usage error"),
        (["nosuchcommand"], "usage error"),
    ],
)
def test_usage_errors_exit_2(capsys, tmp_path, argv, needle):
    code, out, err = run(capsys, *argv, *(["--out", tmp_path] if argv[0] == "synth" else []))
    assert code == 2
    assert needle in err


# --------------------------------------------------------------------------------------------
# atomic writing through the command line


def test_a_failed_write_leaves_no_file(capsys, tmp_path, monkeypatch):
    def broken(table, where, **kwargs):
        Path(where).write_bytes(b"PAR1 half")
        raise OSError("disk full")

    monkeypatch.setattr(fileio.pq, "write_table", broken)
    code, out, err = run(capsys, "synth", "--years", "2020", "--persons", "50", "--out", tmp_path / "out")
    assert code == 2 and "disk full" in err
    assert list((tmp_path / "out").iterdir()) == []
