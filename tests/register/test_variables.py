"""The variable catalogue: names, labels, value sets, LSS paragraphs, years and measurement dates."""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pandas as pd
import pytest

from lsssdc.register import variables as V


@pytest.mark.parametrize(
    ("year", "date"),
    [
        (1999, dt.date(1999, 6, 1)),
        (2000, dt.date(2000, 6, 1)),
        (2001, dt.date(2001, 9, 1)),
        (2002, dt.date(2002, 9, 1)),
        (2003, dt.date(2003, 10, 1)),
        (2024, dt.date(2024, 10, 1)),
    ],
)
def test_measurement_date(year, date):
    assert V.measurement_date(year) == date


def test_no_individual_data_before_1999():
    with pytest.raises(ValueError, match="1999"):
        V.measurement_date(1998)


def test_measurement_dates_vectorised():
    years = pd.Series([2000, 2002, 2003, 2000], dtype="int16")
    got = V.measurement_dates(years)
    assert got.tolist() == [pd.Timestamp(d) for d in ("2000-06-01", "2002-09-01", "2003-10-01", "2000-06-01")]
    assert str(got.dtype) == "datetime64[ns]"


def test_names_are_stable_unique_snake_case_with_both_labels():
    names = [v.name for v in V.CATALOGUE + V.DERIVED]
    assert len(names) == len(set(names))
    for v in V.CATALOGUE + V.DERIVED:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", v.name), v.name
        assert v.label_sv and v.label_en
        assert v.kind in ("identifier", "code", "flag", "amount", "year", "derived")
    assert V.COLUMNS[:6] == (
        "year",
        "personnummer",
        "kommun",
        "beslutande_kommun",
        "boendekommun",
        "personkrets",
    )


def test_insatser_with_their_lss_paragraphs():
    paragraphs = {name: V.get(name).lss for name in V.INSATSER}
    assert paragraphs == {
        "personlig_assistans": "9 § 2",
        "ledsagarservice": "9 § 3",
        "kontaktperson": "9 § 4",
        "avlosarservice": "9 § 5",
        "korttidsvistelse": "9 § 6",
        "korttidstillsyn": "9 § 7",
        "familjehem": "9 § 8",
        "bostad_barn": "9 § 8",
        "boende_vuxna": "9 § 9",
        "bostad_vuxna": "9 § 9",
        "annan_bostad_vuxna": "9 § 9",
        "daglig_verksamhet": "9 § 10",
    }
    for name in V.INSATSER:
        assert set(V.get(name).values) == {"0", "1"}
    assert set(V.HOUSING) <= set(V.INSATSER)
    assert set(V.AMOUNTS.values()) <= set(V.INSATSER)


def test_personkrets_value_set():
    pk = V.get("personkrets")
    assert set(pk.values) == {"1", "2", "3", "4"}
    assert pk.lss == "1 §"


@pytest.mark.parametrize(
    ("name", "years_in", "years_out"),
    [
        ("personkrets", [1999, 2003, 2007, 2024], [2004, 2005, 2006]),
        ("boendekommun", [1999, 2003, 2007], [2004, 2006]),
        ("boende_vuxna", [1999, 2003], [2004, 2024]),
        ("bostad_vuxna", [2004, 2024], [1999, 2003]),
        ("annan_bostad_vuxna", [2004, 2024], [2003]),
        ("hours_personlig_assistans", [2007, 2024], [1999, 2006]),
        ("hours_ledsagarservice", [2007], [2006]),
        ("hours_avlosarservice", [2007], [2006]),
        ("days_korttidsvistelse", [2007], [2006]),
        ("daglig_verksamhet", [1999, 2004, 2024], [1998, 2026]),
    ],
)
def test_years_collected(name, years_in, years_out):
    v = V.get(name)
    for y in years_in:
        assert v.collected(y), (name, y)
        assert name in V.collected_in(y)
    for y in years_out:
        assert not v.collected(y), (name, y)
    years = np.array(years_in + years_out)
    assert v.collected_mask(years).tolist() == [v.collected(int(y)) for y in years]


def test_years_text():
    assert V.get("personkrets").years_text() == "1999-2003, 2007-2025"
    assert V.get("boende_vuxna").years_text() == "1999-2003"
    assert V.get("hours_personlig_assistans").years_text() == "2007-2025"


def test_collected_in_a_gap_year():
    cols = V.collected_in(2005)
    assert "personkrets" not in cols and "boendekommun" not in cols
    assert "boende_vuxna" not in cols and "bostad_vuxna" in cols
    assert not any(c.startswith(("hours_", "days_")) for c in cols)
    assert "hours_personlig_assistans" in V.collected_in(2007)


def test_catalogue_frame_describes_every_variable():
    df = V.catalogue_frame()
    assert len(df) == len(V.CATALOGUE) + len(V.DERIVED)
    assert df["name"].is_unique
    row = df.set_index("name").loc["personkrets"]
    assert row["years"] == "1999-2003, 2007-2025" and "4 = " in row["values"]
