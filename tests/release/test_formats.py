"""A package every tool opens: each delivered format read back by pandas, pyreadstat and R
(haven, when ``Rscript`` is on the PATH) with the same values and labels; the Frictionless
validator on a delivery of more than 50,000 rows; and no clock in any file."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pyreadstat
import pytest

from lsssdc import release
from lsssdc.errors import LsssdcError
from lsssdc.register import variables as V
from lsssdc.release import codebook
from lsssdc.release import formats as F
from tests.readme import README
from tests.release.conftest import (
    leaks_in_files,
    make_keystore,
    open_ledger,
    personnummer_tails,
    prepare_order,
    relaxed_deaths_policy,
)

ORDER = """\
order_version: 1
order_id: B2026-0050
diarienummer: "Dnr 9.6-5000/2026"
project_id: lss-formats
ethics_approval: "Dnr 2025-00000-01"
recipient:
  name: Forskare (exempel)
  organisation: Ett forskningsinstitut (exempel)
purpose: Every delivered format read back.
policy: research-with-deaths
years: [2020, 2021, 2022, 2023]
variables: [year, sex, age, lan, personkrets, bostad_vuxna, daglig_verksamhet]
linkages:
  - register: deaths
    variables: [death_date]
"""
DATA = ("data.csv", "data.parquet", "data.dta", "data.sav", "data.xpt")
SV_SUPPRESSED, EN_SUPPRESSED = codebook.MISSING[codebook.SUPPRESSED]


@pytest.fixture(scope="module")
def fifty(tmp_path_factory: pytest.TempPathFactory, small) -> dict:
    """Four years of the small register with län and the year of death: about 58,000 rows,
    delivered in every format (the shipped research-with-deaths, ceiling raised: the formats,
    not the gate, are under test)."""
    root = tmp_path_factory.mktemp("formats")
    store = make_keystore(root / "keys" / "k.json")
    pol = relaxed_deaths_policy(root / "policies", share=0.9)
    assert "formats: [csv, parquet, stata, spss, sas]" in pol.read_text(encoding="utf-8")
    order = root / "order.yaml"
    order.write_text(ORDER, encoding="utf-8")
    with open_ledger(root / "audit" / "ledger.sqlite", store) as book:
        cand = prepare_order(small, pol, order, store, root / "work", book)
        assert cand.verdict == "releasable"
        release.approve(cand.path, "reviewer-a", store, book)
        done = release.deliver(cand.path, root / "delivery" / "pkg", store, book, "ordering-service")
    pkg = Path(done["package"])
    data = pd.read_parquet(pkg / "data.parquet")
    meta = json.loads((cand.path / "metadata.json").read_text(encoding="utf-8"))
    return {"package": pkg, "data": data, "meta": meta, "small": small}


def _suppressible(fifty: dict) -> tuple[str, ...]:
    return F.suppressible(fifty["data"], fifty["meta"]["suppressed_share"])


# --------------------------------------------------------------------------------------------
# the Frictionless validator


def test_frictionless_validates_a_50000_row_delivery(fifty) -> None:
    """``frictionless validate`` on the whole package: CSV and Parquet read against the Table
    Schema (types, the codebook's codes as an enum, both missing-value codes), every other file
    against its byte count and hash."""
    frictionless = pytest.importorskip("frictionless", reason="the frictionless validator is not installed")
    assert len(fifty["data"]) >= 50_000
    started = time.perf_counter()
    report = frictionless.validate(str(fifty["package"] / "datapackage.json"))
    seconds = time.perf_counter() - started
    assert report.valid, report.flatten(["resourceName", "rowNumber", "fieldName", "type", "note"])[:10]
    rows = {t.name: t.stats.get("rows") for t in report.tasks}
    assert rows["data-csv"] == rows["data-parquet"] == len(fifty["data"])
    assert {t.name for t in report.tasks} == {
        "data-csv",
        "data-parquet",
        "data-dta",
        "data-labels-en-do",
        "data-sav",
        "data-labels-en-sps",
        "data-xpt",
        "data-formats-sas",
    }
    print(f"frictionless validate: {len(fifty['data']):,} rows in {seconds:.1f} s")


def test_the_validator_finds_a_code_outside_the_codebook_and_a_changed_file(fifty, tmp_path) -> None:
    """The validation above can fail: a personkrets code the codebook does not know, a year of
    death that is no year, and a changed Stata file are each reported."""
    frictionless = pytest.importorskip("frictionless", reason="the frictionless validator is not installed")
    pkg = fifty["package"]
    dp = json.loads((pkg / "datapackage.json").read_text(encoding="utf-8"))
    csv = next(r for r in dp["resources"] if r["path"] == "data.csv")
    dta = next(r for r in dp["resources"] if r["path"] == "data.dta")
    head = (pkg / "data.csv").read_text(encoding="utf-8").splitlines()[:20]
    cols = head[0].split(",")
    bad = head[1].split(",")
    bad[cols.index("personkrets")], bad[cols.index("death_year")] = "9", "20x1"
    (tmp_path / "data.csv").write_text(
        "\n".join([head[0], ",".join(bad), *head[2:]]) + "\n", encoding="utf-8"
    )
    shutil.copyfile(pkg / "data.dta", tmp_path / "data.dta")
    with open(tmp_path / "data.dta", "r+b") as fh:
        fh.seek(-1, os.SEEK_END)
        last = fh.read(1)
        fh.seek(-1, os.SEEK_END)
        fh.write(bytes([last[0] ^ 1]))
    csv = {k: v for k, v in csv.items() if k not in ("bytes", "hash")}
    (tmp_path / "datapackage.json").write_text(json.dumps({**dp, "resources": [csv, dta]}), encoding="utf-8")
    report = frictionless.validate(str(tmp_path / "datapackage.json"))
    found = {(e[0], e[1]) for e in report.flatten(["fieldName", "type"])}
    assert ("personkrets", "constraint-error") in found
    assert ("death_year", "type-error") in found
    assert (None, "hash-count") in found


def test_the_table_schema_keeps_codes_as_text_and_declares_missing_values(fifty) -> None:
    dp = json.loads((fifty["package"] / "datapackage.json").read_text(encoding="utf-8"))
    schemas = [r["schema"] for r in dp["resources"] if "schema" in r]
    assert [r["format"] for r in dp["resources"] if "schema" in r] == ["csv", "parquet"]
    schema = schemas[0]
    assert schemas[1] == schema
    assert schema["missingValues"] == [
        {"value": "", "label": "No value"},
        {"value": "..", "label": EN_SUPPRESSED},
    ]
    fields = {f["name"]: f for f in schema["fields"]}
    assert list(fields) == list(fifty["data"].columns)
    for name in ("sex", "personkrets", "lan", "age_band"):
        assert fields[name]["type"] == "string", name
    assert fields["personkrets"]["constraints"]["enum"] == list(V.BY_NAME["personkrets"].values)
    assert fields["bostad_vuxna"]["type"] == "integer"
    assert fields["bostad_vuxna"]["constraints"]["enum"] == [0, 1]
    assert fields["death_year"]["type"] == "year" and fields["death_year"]["title"] == "Year of death"


def test_the_year_of_death_is_called_death_year(fifty) -> None:
    """The column holds a year, and says so; codebook and README name it."""
    pkg, data = fifty["package"], fifty["data"]
    assert "death_year" in data.columns and "death_date" not in data.columns
    shown = data["death_year"].dropna()
    assert shown[shown != ".."].str.fullmatch(r"\d{4}").all()
    assert "## `death_year`" in (pkg / "codebook.md").read_text(encoding="utf-8")
    assert "- `death_year`: date of death given to the year" in (pkg / "README.md").read_text(
        encoding="utf-8"
    )


# --------------------------------------------------------------------------------------------
# what each format should read back as


def _cell(x: object) -> str | None:
    """A value as text: numbers without a trailing .0, a missing number None."""
    if isinstance(x, str):
        return x
    if x is None or pd.isna(x):
        return None
    f = float(x)  # type: ignore[arg-type]
    return str(int(f)) if f.is_integer() else repr(f)


def _text(s: pd.Series) -> list[str | None]:
    if pd.api.types.is_numeric_dtype(s):
        return [_cell(x) for x in s.tolist()]
    return ["" if pd.isna(x) else str(x) for x in s.tolist()]


def _as_text(frame: pd.DataFrame) -> dict[str, list[str | None]]:
    """What a reader gave, as text (readers give numbers with missing values as objects too)."""
    return {c: [_cell(x) for x in frame[c].tolist()] for c in frame.columns}


def _expected(data: pd.DataFrame, fmt: str) -> dict[str, list[str | None]]:
    """What a reader of ``fmt`` should see: the delivered data; in Stata the codes of labelled
    variables are numbers, a suppressed code (..) missing."""
    out = {}
    for col in data.columns:
        s = data[col]
        if fmt == "data.csv":
            out[col] = ["" if pd.isna(x) else str(x) for x in s]
            continue
        if fmt == "data.dta" and codebook.describe(col)["values"] and not pd.api.types.is_numeric_dtype(s):
            s = pd.to_numeric(s.astype("string"), errors="coerce")
        out[col] = _text(s)
    return out


def _labels_sv(data: pd.DataFrame, fmt: str, suppressible: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """Value labels (code as text -> Swedish label) a reader of ``fmt`` should see."""
    out = {}
    for col in data.columns:
        values = codebook.describe(col)["values"]
        labels = {k: v["sv"] for k, v in values.items()}
        if fmt == "data.sav" and col in suppressible:
            labels[".."] = SV_SUPPRESSED
        if labels and fmt in ("data.dta", "data.sav"):
            out[col] = labels
    return out


def _var_labels_sv(data: pd.DataFrame) -> dict[str, str]:
    return {c: codebook.describe(c)["label_sv"] for c in data.columns}


# --------------------------------------------------------------------------------------------
# pandas and pyreadstat read every format back


def test_csv_reads_back_as_the_data(fifty) -> None:
    data = fifty["data"]
    csv = pd.read_csv(fifty["package"] / "data.csv", dtype=str, keep_default_na=False)
    assert {c: csv[c].tolist() for c in csv.columns} == _expected(data, "data.csv")
    assert "01" in set(csv["lan"]) and csv["lan"].str.fullmatch(r"\d\d|\.\.").all()


def test_parquet_reads_back_with_labels_in_both_languages(fifty) -> None:
    pkg, data = fifty["package"], fifty["data"]
    pd.testing.assert_frame_equal(pd.read_parquet(pkg / "data.parquet"), data)
    schema = pq.read_schema(pkg / "data.parquet")
    assert json.loads(schema.metadata[b"lsssdc"])["order_id"] == "B2026-0050"
    suppressible = _suppressible(fifty)
    assert set(suppressible) >= {"sex", "age_band", "lan", "personkrets", "death_year"}
    for field in schema:
        meta = {k.decode(): v.decode() for k, v in field.metadata.items()}
        d = codebook.describe(field.name)
        assert meta["label_sv"] == d["label_sv"] and meta["label_en"] == d["label_en"]
        assert json.loads(meta.get("values", "{}")) == d["values"], field.name
        missing = {"..": {"sv": SV_SUPPRESSED, "en": EN_SUPPRESSED}} if field.name in suppressible else {}
        assert json.loads(meta.get("missing_values", "{}")) == missing, field.name
    sex = json.loads(schema.field("sex").metadata[b"values"])
    assert sex == {"1": {"sv": "Man", "en": "Man"}, "2": {"sv": "Kvinna", "en": "Woman"}}
    assert pa.types.is_large_string(schema.field("lan").type)  # text, "01" keeps its zero


def test_stata_reads_back_in_pandas_and_pyreadstat(fifty) -> None:
    path, data = fifty["package"] / "data.dta", fifty["data"]
    expected = _expected(data, "data.dta")
    with pd.read_stata(path, iterator=True) as reader:
        var_labels, value_labels = reader.variable_labels(), reader.value_labels()
    frame = pd.read_stata(path, convert_categoricals=False)
    assert _as_text(frame) == expected
    assert var_labels == _var_labels_sv(data)
    want = _labels_sv(data, "data.dta", ())
    assert {c: {str(k): v for k, v in labels.items()} for c, labels in value_labels.items()} == want
    frame, meta = pyreadstat.read_dta(str(path))
    assert _as_text(frame) == expected
    assert meta.column_names_to_labels == _var_labels_sv(data)
    got = {c: {str(int(k)): v for k, v in labels.items()} for c, labels in meta.variable_value_labels.items()}
    assert got == want
    assert "01" in set(frame["lan"])  # a code without value labels stays text


def test_spss_reads_back_in_pandas_and_pyreadstat(fifty) -> None:
    path, data = fifty["package"] / "data.sav", fifty["data"]
    suppressible = _suppressible(fifty)
    expected = _expected(data, "data.sav")
    frame, meta = pyreadstat.read_sav(str(path), user_missing=True)
    assert _as_text(frame) == expected
    assert meta.column_names_to_labels == _var_labels_sv(data)
    got = {
        c: {k if isinstance(k, str) else str(int(k)): v for k, v in labels.items()}
        for c, labels in meta.variable_value_labels.items()
    }
    assert got == _labels_sv(data, "data.sav", suppressible)
    assert meta.missing_ranges == {c: [{"lo": "..", "hi": ".."}] for c in suppressible}
    assert meta.file_label == "LSS B2026-0050"
    # pandas (through pyreadstat): ".." is user-missing, so it reads as missing there
    plain = pd.read_spss(path, convert_categoricals=False)
    assert plain["lan"].isna().sum() == (data["lan"] == "..").sum() > 0
    assert "01" in set(plain["lan"])


def test_sas_reads_back_in_pyreadstat(fifty) -> None:
    """pandas' own reader knows only version 5 transport files (names of at most 8 characters);
    pyreadstat reads version 8."""
    path, data = fifty["package"] / "data.xpt", fifty["data"]
    frame, meta = pyreadstat.read_xport(str(path))
    assert _as_text(frame) == _expected(data, "data.xpt")
    assert meta.column_names_to_labels == _var_labels_sv(data)
    assert meta.table_name == "DATA"


# --------------------------------------------------------------------------------------------
# the label scripts: the other language, the same codes


def _do_labels(text: str) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    var = dict(re.findall(r'^label variable (\w+) `"(.*)"\'$', text, re.M))
    values = {}
    for name, pairs in re.findall(r"^label define (\w+)_en (.*), replace$", text, re.M):
        values[name] = dict(re.findall(r'(\d+) `"(.*?)"\'', pairs))
    return var, values


def test_the_do_file_adds_english_labels_for_every_labelled_variable(fifty) -> None:
    pkg, data = fifty["package"], fifty["data"]
    text = (pkg / "data-labels-en.do").read_text(encoding="utf-8")
    var, values = _do_labels(text)
    assert var == {c: codebook.describe(c)["label_en"] for c in data.columns}
    with pd.read_stata(pkg / "data.dta", iterator=True) as reader:
        swedish = reader.value_labels()
    assert set(values) == set(swedish)  # every labelled variable, no other
    for col, labels in values.items():
        assert labels == {k: v["en"] for k, v in codebook.describe(col)["values"].items()}, col
        assert re.search(rf"^label values {col} {col}_en$", text, re.M)
    assert "label language sv, rename" in text and "label language en, new" in text


def test_the_spss_syntax_relabels_in_english(fifty) -> None:
    text = (fifty["package"] / "data-labels-en.sps").read_text(encoding="utf-8")
    assert "  /death_year 'Year of death'" in text
    assert f"  sex '1' 'Man' '2' 'Woman' '..' '{EN_SUPPRESSED}'" in text
    assert "  /bostad_vuxna 0 'not given' 1 'given'" in text
    assert text.count("VALUE LABELS") == 1 and text.rstrip().endswith("FILE LABEL 'LSS B2026-0050'.")


def test_the_sas_program_defines_formats_in_both_languages(fifty) -> None:
    text = (fifty["package"] / "data-formats.sas").read_text(encoding="utf-8")
    blocks = dict(re.findall(r"^  value (\S+)\n((?:    .*\n)+)", text, re.M))
    for lang in ("sv", "en"):
        for col in ("sex", "personkrets"):
            labels = dict(re.findall(r"^    '(.*?)' = '(.*)';?$", blocks[f"${col}_{lang}"], re.M))
            want = {k: v[lang] for k, v in codebook.describe(col)["values"].items()}
            assert labels == {**want, "..": codebook.MISSING[".."][0 if lang == "sv" else 1]}
        flags = dict(re.findall(r"^    (\d+) = '(.*)';?$", blocks[f"bostad_vuxna_{lang}"], re.M))
        assert flags == {k: v[lang] for k, v in codebook.describe("bostad_vuxna")["values"].items()}
    assert "format sex $sex_en. " in text and "format sex $sex_sv. " in text
    assert "      death_year = 'Dödsår'" in text and "%mend lss_labels;" in text


# --------------------------------------------------------------------------------------------
# no clock, no personnummer


def test_spss_and_sas_headers_carry_the_delivery_stamp_not_the_clock(fifty) -> None:
    """ReadStat writes the wall-clock time; the package writes the measurement date of the last
    year instead (as in the Stata file), so the same candidate gives the same bytes."""
    pkg = fifty["package"]
    sav = (pkg / "data.sav").read_bytes()[92:109]
    assert sav == b"01 Oct 2300:00:00"
    xpt = (pkg / "data.xpt").read_bytes()
    assert [xpt[at : at + 16] for at in F._XPT_STAMPS] == [b"01OCT23:00:00:00"] * 4
    _, meta = pyreadstat.read_sav(str(pkg / "data.sav"), metadataonly=True)
    assert meta.creation_time == dt.datetime(2023, 10, 1)


def test_a_changed_header_layout_stops_the_delivery(tmp_path) -> None:
    """The stamp is written only where the format puts it: an unexpected header is refused."""
    df = pd.DataFrame({"sex": ["1", "2"], "year": pd.array([2020, 2021], dtype="Int16")})
    ctx = F.Context("B1", "sha256:0", dt.datetime(2021, 10, 1), ("sex",))
    F.write_spss(df, tmp_path, ctx)
    F.write_sas(df, tmp_path, ctx)
    for path, stamp in ((tmp_path / "data.sav", F.stamp_sav), (tmp_path / "data.xpt", F.stamp_xport)):
        raw = bytearray(path.read_bytes())
        raw[100:104] = b"XXXX"
        path.write_bytes(bytes(raw))
        with pytest.raises(LsssdcError) as info:
            stamp(path, ctx.stamp)
        assert info.value.problems[0].code == "format_layout"


def test_the_personnummer_scanner_reads_spss_and_sas_files(tmp_path) -> None:
    """The byte scan of every delivered file can find a personnummer in the new formats (written
    here past the package's screen, which refuses such a value before any file)."""
    pnr = "199001011239"
    df = pd.DataFrame({"note": ["a", f"x{pnr}y", "b"]})
    ctx = F.Context("B1", "sha256:0", dt.datetime(2021, 10, 1))
    written = [tmp_path / o.path for o in F.write_spss(df, tmp_path, ctx) + F.write_sas(df, tmp_path, ctx)]
    found = leaks_in_files(written, personnummer_tails([pnr]))
    assert set(found) == {str(tmp_path / "data.sav"), str(tmp_path / "data.xpt")}


def test_no_personnummer_in_the_delivered_files(fifty) -> None:
    small = fifty["small"]
    tails = personnummer_tails(
        pd.concat([small.register["personnummer"], small.deaths["personnummer"]]).unique()
    )
    files = sorted(fifty["package"].iterdir())
    assert {p.name for p in files} >= set(DATA)
    assert leaks_in_files(files, tails) == {}


def test_codes_with_a_leading_zero_get_no_stata_value_labels() -> None:
    """Stata labels numbers only: a code set with a leading zero would lose it there, so it stays text."""
    assert F._numeric_codes({"1": "a", "2": "b"}) and not F._numeric_codes({"01": "a", "2": "b"})
    assert not F._numeric_codes({}) and not F._numeric_codes({"1R": "a"})


# --------------------------------------------------------------------------------------------
# R


def _rscript() -> str:
    path = shutil.which("Rscript")
    if path is None:
        pytest.skip("R is not installed (Debian: r-base-core r-cran-haven r-cran-jsonlite)")
    probe = subprocess.run([path, "-e", "library(haven); library(jsonlite)"], capture_output=True)
    if probe.returncode:
        pytest.skip("R has no haven or jsonlite (Debian: r-cran-haven r-cran-jsonlite)")
    return path


_R_ENV = {**os.environ, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}


@pytest.mark.slow
def test_r_reads_every_format_back_with_the_same_values_and_labels(fifty, tmp_path) -> None:
    rscript = _rscript()
    out = tmp_path / "seen.json"
    script = Path(__file__).with_name("read_back.R")
    subprocess.run([rscript, str(script), str(fifty["package"]), str(out)], check=True, env=_R_ENV)
    seen = json.loads(out.read_text(encoding="utf-8"))
    data, suppressible = fifty["data"], _suppressible(fifty)
    assert sorted(seen) == sorted(n for n in DATA if n != "data.parquet")  # no arrow package in Debian
    for fmt, cols in seen.items():
        expected = _expected(data, fmt)
        assert list(cols) == list(data.columns), fmt
        for col, got in cols.items():
            assert got["values"] == expected[col], (fmt, col)
            if fmt == "data.csv":
                continue
            assert got["label"] == codebook.describe(col)["label_sv"], (fmt, col)
            assert (got["labels"] or {}) == _labels_sv(data, fmt, suppressible).get(col, {}), (fmt, col)
            user_missing = ".." if fmt == "data.sav" and col in suppressible else []
            assert got["na_values"] == user_missing, (fmt, col)


@pytest.mark.slow
def test_the_readme_r_snippet_loads_the_data_with_labels(fifty, tmp_path) -> None:
    """README.md's R block, verbatim, on a delivery laid out as in the tour (out/B2026-0023)."""
    rscript = _rscript()
    text = README.read_text(encoding="utf-8")
    block = re.search(r"## Reading a delivery\n.*?```r\n(.*?)```", text, re.S)
    assert block, "README.md has no R block under '## Reading a delivery'"
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "B2026-0023").symlink_to(fifty["package"], target_is_directory=True)
    check = block.group(1) + (
        'stopifnot(attr(d$sex, "label") == "Kön", is.factor(d$personkrets),\n'
        '          "Kvinna" %in% levels(as_factor(d$sex)), "01" %in% s$lan)\n'
        'cat("ok\\n")\n'
    )
    (tmp_path / "snippet.R").write_text(check, encoding="utf-8")
    done = subprocess.run(
        [rscript, "snippet.R"], cwd=tmp_path, env=_R_ENV, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr


def test_the_readme_stata_snippet_uses_the_delivered_do_file(fifty) -> None:
    """No Stata here: the README's Stata block names files the package has and the commands the
    do-file expects."""
    text = README.read_text(encoding="utf-8")
    block = re.search(r"## Reading a delivery\n.*?```stata\n(.*?)```", text, re.S)
    assert block, "README.md has no Stata block under '## Reading a delivery'"
    for name in re.findall(r"out/B2026-0023/([\w.-]+)", block.group(1)):
        assert (fifty["package"] / name).is_file() or name == "data-labels-en.do", name
    assert "label language en" in block.group(1) and "label language sv" in block.group(1)


def test_every_label_fits_its_format() -> None:
    """No macro character (` or $) in a label the do-file writes (it escapes them, but Stata
    users should not meet them)."""
    for v in V.CATALOGUE:
        for text in (v.label_sv, v.label_en, *(x for pair in v.values.values() for x in pair)):
            assert "`" not in text and "$" not in text, v.name
