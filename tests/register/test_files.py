"""Register files in and out: bad input is refused with file, column and rows (never a value),
good files round-trip exactly, and writing is atomic and deterministic."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lsssdc import fileio
from lsssdc.errors import InputDataError
from lsssdc.register import files, synth
from lsssdc.register import variables as V
from tests.register.test_rules import as_text, frame, person, row, with_bad_check_digit

A = person("1980-05-05", 123)
B = person("1975-03-03", 242)
KP = {"kontaktperson": 1}


def write_csv(path: Path, rows: list[dict]) -> Path:
    as_text(frame(rows)).to_csv(path, index=False)
    return path


def refused(fn, *args) -> InputDataError:
    with pytest.raises(InputDataError) as info:
        fn(*args)
    err = info.value
    assert err.exit_code == 2
    return err


def only_problem(err: InputDataError):
    assert len(err.problems) == 1, [p.render() for p in err.problems]
    return err.problems[0]


def assert_no_values(err: InputDataError, values: list[str]) -> None:
    text = str(err) + json.dumps(err.to_dict()) + "".join(p.render() for p in err.problems)
    for v in values:
        if len(v) < 6:
            continue
        assert v not in text
        digits = "".join(c for c in v if c.isdigit())
        if len(digits) >= 10:
            assert digits[-10:] not in text


# --------------------------------------------------------------------------------------------
# good files


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_hand_made_register_round_trips(tmp_path, suffix):
    reg = frame(
        [
            row(2003, A, personkrets="4", boende_vuxna=1, boendekommun="0114"),
            row(2005, B, "1917", personkrets=None, **KP),
            row(2007, A, "0331", personlig_assistans=1, hours_personlig_assistans=100.5),
            row(2003, A[2:8] + "-" + A[8:], "0330", **KP),
        ]
    )
    path = files.write_register(reg, tmp_path / f"lss{suffix}")
    pd.testing.assert_frame_equal(files.read_register(path), reg)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_synthetic_register_round_trips(tmp_path, fmt):
    result = synth.synthesise(range(2005, 2009), persons=300, seed=1)
    paths = files.write_registers({"lss": result.register, "deaths": result.deaths}, tmp_path, fmt)
    assert paths["lss"].name == f"lss.{fmt}"
    pd.testing.assert_frame_equal(files.read_register(paths["lss"]), result.register)
    deaths = files.read_deaths(paths["deaths"])
    assert deaths["personnummer"].tolist() == result.deaths["personnummer"].tolist()
    assert (deaths["death_date"].to_numpy() == result.deaths["death_date"].to_numpy()).all()


def test_csv_keeps_leading_zeros_and_reads_a_bom(tmp_path):
    path = tmp_path / "lss.csv"
    text = as_text(frame([row(2010, A, "0114", **KP)])).to_csv(index=False)
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    reg = files.read_register(path)
    assert reg["kommun"].tolist() == ["0114"]


def test_whitespace_around_values_is_ignored(tmp_path):
    raw = as_text(frame([row(2010, A, **KP)]))
    raw["personnummer"] = "  " + raw["personnummer"] + " "
    raw["kommun"] = " 0180"
    reg = files.coerce_register(raw)
    assert reg["kommun"].tolist() == ["0180"] and reg["personnummer"].tolist() == [A]


def test_extra_columns_are_ignored_and_zero_flags_outside_their_years_are_dropped():
    raw = as_text(frame([row(2010, A, **KP)]))
    raw["note"] = "x"
    raw["boende_vuxna"] = "0"
    reg = files.coerce_register(raw)
    assert list(reg.columns) == list(V.COLUMNS)
    assert reg["boende_vuxna"].isna().all()


# --------------------------------------------------------------------------------------------
# bad content: exit code 2, file/column/rows named, no value shown


def test_broken_personnummer_shape_names_column_and_rows(tmp_path):
    bad = ["19640823323", "abc", "19640823/3234"]
    rows = [row(2010, A, **KP)] + [row(2010, b, **KP) for b in bad] + [row(2010, None, **KP)]
    path = write_csv(tmp_path / "lss.csv", rows)
    err = refused(files.read_register, path)
    p = only_problem(err)
    assert (p.code, p.file, p.column, p.rows) == ("bad_personnummer", str(path), "personnummer", (2, 3, 4, 5))
    assert "rows 2, 3, 4, 5" in p.render() and str(path) in p.render()
    assert_no_values(err, bad)


def test_wrong_check_digit_is_a_rule_error_not_unusable_input():
    reg = files.coerce_register(as_text(frame([row(2010, with_bad_check_digit(A), **KP)])))
    assert len(reg) == 1


@pytest.mark.parametrize(
    ("year", "code", "ok"),
    [
        (2010, "9999", False),
        (2010, "180", False),
        (2010, "01800", False),
        (2002, "0330", False),  # Knivsta from 2003
        (2003, "0330", True),
        (2006, "1917", True),  # Heby in Västmanland to 2006
        (2007, "1917", False),
        (2006, "0331", False),
        (2007, "0331", True),
    ],
)
def test_kommun_code_must_exist_in_the_year(year, code, ok):
    raw = as_text(frame([row(year, A, **KP), row(year, B, kommun=code, **KP)]))
    if ok:
        assert files.coerce_register(raw)["kommun"].tolist() == ["0180", code]
        return
    err = refused(files.coerce_register, raw, "lss.csv")
    codes = {(p.code, p.column, p.rows) for p in err.problems}
    assert codes == {("unknown_kommun", "kommun", (2,)), ("unknown_kommun", "beslutande_kommun", (2,))}
    assert all(p.file == "lss.csv" for p in err.problems)


def test_unknown_boendekommun_and_boendekommun_in_a_gap_year():
    raw = as_text(
        frame(
            [
                row(2010, A, boendekommun="9999", bostad_vuxna=1),
                row(2005, B, personkrets=None, boendekommun="0180", bostad_vuxna=1),
            ]
        )
    )
    err = refused(files.coerce_register, raw)
    got = {(p.code, p.column, p.rows) for p in err.problems}
    assert got == {("unknown_kommun", "boendekommun", (1,)), ("not_collected", "boendekommun", (2,))}


@pytest.mark.parametrize(
    ("year", "value", "problem"),
    [
        (1999, "4", None),
        (2003, "4", None),
        (2003, "5", "bad_value"),
        (2003, "0", "bad_value"),
        (2004, "4", "not_collected"),
        (2004, "1", "not_collected"),
        (2006, "3", "not_collected"),
        (2007, "4", "bad_value"),
        (2007, "3", None),
    ],
)
def test_personkrets_values_by_year(year, value, problem):
    raw = as_text(frame([row(year, A, personkrets=value, **KP)]))
    if problem is None:
        assert files.coerce_register(raw)["personkrets"].tolist() == [value]
        return
    p = only_problem(refused(files.coerce_register, raw))
    assert (p.code, p.column, p.rows) == (problem, "personkrets", (1,))


@pytest.mark.parametrize(
    ("year", "column", "ok"),
    [
        (2003, "boende_vuxna", True),
        (2004, "boende_vuxna", False),
        (2003, "bostad_vuxna", False),
        (2004, "bostad_vuxna", True),
        (2003, "annan_bostad_vuxna", False),
        (2004, "annan_bostad_vuxna", True),
    ],
)
def test_adult_housing_flags_by_year(year, column, ok):
    raw = as_text(frame([row(year, A, personkrets=None if year == 2004 else "1")]))
    raw[column] = "1"
    if ok:
        assert files.coerce_register(raw)[column].tolist() == [1]
        return
    p = only_problem(refused(files.coerce_register, raw))
    assert (p.code, p.column) == ("not_collected", column)


@pytest.mark.parametrize("amount", list(V.AMOUNTS))
def test_hours_and_days_only_from_2007(amount):
    insats = V.AMOUNTS[amount]
    ok = files.coerce_register(as_text(frame([row(2007, A, **{insats: 1, amount: 10})])))
    assert ok[amount].tolist() == [10.0]
    p = only_problem(
        refused(
            files.coerce_register, as_text(frame([row(2006, A, personkrets=None, **{insats: 1, amount: 10})]))
        )
    )
    assert (p.code, p.column, p.rows) == ("not_collected", amount, (1,))


@pytest.mark.parametrize("value", ["abc", "-1", "1,5"])
def test_amount_must_be_a_number_of_zero_or_more(value):
    raw = as_text(frame([row(2010, A, personlig_assistans=1)]))
    raw["hours_personlig_assistans"] = value
    p = only_problem(refused(files.coerce_register, raw))
    assert (p.code, p.column) == ("bad_value", "hours_personlig_assistans")


@pytest.mark.parametrize("value", ["2", "yes", "1.0", "-1"])
def test_flags_must_be_0_1_or_empty(value):
    raw = as_text(frame([row(2010, A, **KP)]))
    raw["ledsagarservice"] = value
    p = only_problem(refused(files.coerce_register, raw))
    assert (p.code, p.column, p.rows) == ("bad_value", "ledsagarservice", (1,))


@pytest.mark.parametrize("value", ["abc", "1998", "2026", "2010.5", None])
def test_year_must_be_a_register_year(value):
    raw = as_text(frame([row(2010, A, **KP), row(2010, B, **KP)]))
    raw.loc[1, "year"] = value
    p = only_problem(refused(files.coerce_register, raw, "x.csv"))
    assert (p.code, p.column, p.rows) == ("bad_year", "year", (2,))


def test_missing_column_is_named(tmp_path):
    path = tmp_path / "lss.csv"
    as_text(frame([row(2010, A, **KP)])).drop(columns=["personkrets", "daglig_verksamhet"]).to_csv(
        path, index=False
    )
    p = only_problem(refused(files.read_register, path))
    assert p.code == "missing_column" and p.file == str(path)
    assert "personkrets" in p.message and "daglig_verksamhet" in p.message


def test_every_problem_is_reported_at_once():
    raw = as_text(
        frame([row(2010, A, **KP), row(2010, "x", "9999", **KP), row(2005, B, personkrets="1", **KP)])
    )
    raw.loc[0, "ledsagarservice"] = "7"
    err = refused(files.coerce_register, raw)
    codes = sorted((p.code, p.column) for p in err.problems)
    assert codes == [
        ("bad_personnummer", "personnummer"),
        ("bad_value", "ledsagarservice"),
        ("not_collected", "personkrets"),
        ("unknown_kommun", "beslutande_kommun"),
        ("unknown_kommun", "kommun"),
    ]


def test_many_bad_rows_show_the_first_and_the_count():
    rows = [row(2010, "bad", **KP) for _ in range(35)]
    p = only_problem(refused(files.coerce_register, as_text(frame(rows))))
    assert p.row_count == 35 and len(p.rows) == 20
    assert "and 25 more" in p.render()


# --------------------------------------------------------------------------------------------
# bad files


def test_empty_file(tmp_path):
    for content in (b"", b"  \n\n"):
        path = tmp_path / "lss.csv"
        path.write_bytes(content)
        p = only_problem(refused(files.read_register, path))
        assert p.code == "empty_file" and p.file == str(path)


def test_header_only_file(tmp_path):
    path = tmp_path / "lss.csv"
    path.write_text(",".join(V.COLUMNS) + "\n", encoding="utf-8")
    p = only_problem(refused(files.read_register, path))
    assert p.code == "empty_file" and "no rows" in p.message


def test_header_only_parquet(tmp_path):
    path = tmp_path / "lss.parquet"
    pq.write_table(pa.table({c: pa.array([], pa.string()) for c in V.COLUMNS}), path)
    assert only_problem(refused(files.read_register, path)).code == "empty_file"


def test_file_that_is_not_utf8_names_the_line(tmp_path):
    path = tmp_path / "lss.csv"
    text = as_text(frame([row(2010, A, **KP), row(2010, B, **KP)])).to_csv(index=False)
    path.write_bytes(text.encode("utf-8") + "2010,Malmö\n".encode("latin-1"))
    p = only_problem(refused(files.read_register, path))
    assert (p.code, p.file, p.line) == ("not_utf8", str(path), 4)


def test_parquet_file_that_is_not_parquet(tmp_path):
    path = tmp_path / "lss.parquet"
    path.write_text(as_text(frame([row(2010, A, **KP)])).to_csv(index=False), encoding="utf-8")
    err = refused(files.read_register, path)
    p = only_problem(err)
    assert (p.code, p.file) == ("not_parquet", str(path))
    assert_no_values(err, [A])


def test_truncated_parquet(tmp_path):
    path = tmp_path / "lss.parquet"
    files.write_register(frame([row(2010, A, **KP)]), path)
    path.write_bytes(path.read_bytes()[:-20])
    assert only_problem(refused(files.read_register, path)).code == "not_parquet"


def test_missing_file_and_directory_and_unknown_type(tmp_path):
    assert only_problem(refused(files.read_register, tmp_path / "none.csv")).code == "no_file"
    assert only_problem(refused(files.read_register, tmp_path)).code == "no_file"
    (tmp_path / "lss.xlsx").write_bytes(b"PK")
    assert only_problem(refused(files.read_register, tmp_path / "lss.xlsx")).code == "unknown_format"


def test_ragged_csv_names_the_line(tmp_path):
    path = tmp_path / "lss.csv"
    text = as_text(frame([row(2010, A, **KP), row(2010, B, **KP)])).to_csv(index=False)
    lines = text.splitlines()
    lines[2] += ",extra"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    err = refused(files.read_register, path)
    p = only_problem(err)
    assert (p.code, p.line) == ("bad_csv", 3)
    assert_no_values(err, [A, B])


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_duplicate_column_is_refused(tmp_path, suffix):
    path = tmp_path / f"lss{suffix}"
    text = as_text(frame([row(2010, A, **KP)]))
    if suffix == ".csv":
        csv = text.to_csv(index=False).splitlines()
        path.write_text(csv[0] + ",kommun\n" + csv[1] + ",0114\n", encoding="utf-8")
    else:
        table = pa.Table.from_pandas(text, preserve_index=False)
        table = table.append_column("kommun", pa.array(["0114"]))
        pq.write_table(table, path)
    p = only_problem(refused(files.read_register, path))
    assert (p.code, p.column) == ("duplicate_column", "kommun")


def test_parquet_column_that_cannot_be_text(tmp_path):
    path = tmp_path / "lss.parquet"
    table = pa.Table.from_pandas(as_text(frame([row(2010, A, **KP)])), preserve_index=False)
    idx = table.column_names.index("kommun")
    table = table.set_column(idx, "kommun", pa.array([[1, 2]]))
    pq.write_table(table, path)
    p = only_problem(refused(files.read_register, path))
    assert (p.code, p.column) == ("bad_type", "kommun")


def test_parquet_with_numbers_is_read_as_text(tmp_path):
    path = tmp_path / "lss.parquet"
    df = as_text(frame([row(2010, A, **KP)]))
    table = pa.Table.from_pandas(df, preserve_index=False)
    table = table.set_column(0, "year", pa.array([2010], pa.int32()))
    table = table.set_column(1, "personnummer", pa.array([int(A)], pa.int64()))
    pq.write_table(table, path)
    reg = files.read_register(path)
    assert reg["personnummer"].tolist() == [A] and reg["year"].tolist() == [2010]


# --------------------------------------------------------------------------------------------
# death register files


def test_read_deaths(tmp_path):
    path = tmp_path / "deaths.csv"
    pd.DataFrame({"personnummer": [A, B], "death_date": ["2010-01-02", "2011-12-31"]}).to_csv(
        path, index=False
    )
    d = files.read_deaths(path)
    assert d["personnummer"].tolist() == [A, B]
    assert d["death_date"].tolist() == [pd.Timestamp("2010-01-02"), pd.Timestamp("2011-12-31")]


def test_bad_death_register(tmp_path):
    path = tmp_path / "deaths.csv"
    bad_pnr = [A[2:], with_bad_check_digit(B), "x"]
    pd.DataFrame(
        {
            "personnummer": [A, *bad_pnr],
            "death_date": ["2010-01-02", "2010-13-01", "2011-01-01", "2011-01-01"],
        }
    ).to_csv(path, index=False)
    err = refused(files.read_deaths, path)
    got = {(p.code, p.column, p.rows) for p in err.problems}
    assert got == {("bad_personnummer", "personnummer", (2, 3, 4)), ("bad_date", "death_date", (2,))}
    assert_no_values(err, [A, *bad_pnr])


def test_death_register_without_its_columns(tmp_path):
    path = tmp_path / "deaths.csv"
    pd.DataFrame({"pnr": [A], "date": ["2010-01-01"]}).to_csv(path, index=False)
    p = only_problem(refused(files.read_deaths, path))
    assert p.code == "missing_column" and "personnummer" in p.message and "death_date" in p.message


# --------------------------------------------------------------------------------------------
# writing: atomic and deterministic


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_failed_write_leaves_no_partial_file(tmp_path, monkeypatch, suffix):
    reg = frame([row(2010, A, **KP)])

    def broken_parquet(table, where, **kwargs):
        Path(where).write_bytes(b"PAR1 half a file")
        raise OSError("disk full")

    def broken_csv(self, where, **kwargs):
        Path(where).write_text("year,perso", encoding="utf-8")
        raise OSError("disk full")

    monkeypatch.setattr(fileio.pq, "write_table", broken_parquet)
    monkeypatch.setattr(pd.DataFrame, "to_csv", broken_csv)
    target = tmp_path / f"lss{suffix}"
    with pytest.raises(OSError, match="disk full"):
        files.write_register(reg, target)
    assert _leftovers(tmp_path) == []
    # an existing file survives a failed overwrite untouched
    monkeypatch.undo()
    files.write_register(reg, target)
    before = target.read_bytes()
    monkeypatch.setattr(fileio.pq, "write_table", broken_parquet)
    monkeypatch.setattr(pd.DataFrame, "to_csv", broken_csv)
    with pytest.raises(OSError):
        files.write_register(frame([row(2011, B, **KP)]), target)
    assert target.read_bytes() == before
    assert _leftovers(tmp_path) == [target.name]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_writing_is_deterministic(tmp_path, fmt):
    result = synth.synthesise(range(2019, 2021), persons=300, seed=2)
    a = files.write_registers({"lss": result.register, "deaths": result.deaths}, tmp_path / "a", fmt)
    b = files.write_registers({"lss": result.register, "deaths": result.deaths}, tmp_path / "b", fmt)
    for name in a:
        assert a[name].read_bytes() == b[name].read_bytes()


def test_unknown_output_format(tmp_path):
    err = refused(files.write_registers, {"lss": frame([row(2010, A, **KP)])}, tmp_path, "xlsx")
    assert err.problems[0].code == "bad_format"
