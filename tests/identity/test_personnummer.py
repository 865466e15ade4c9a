"""Personnummer parsing, checked value by value against a slow reference written here.

The reference below shares no code with :mod:`lsssdc.identity.personnummer`: it is plain Python
over one value at a time, with :mod:`datetime` deciding which dates exist. The vectorised
parser must agree with it on validity, reason, normalised value, birth date, sex and
samordningsnummer for every input hypothesis can think of.
"""

from __future__ import annotations

import datetime as dt
import math
import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lsssdc import refdata
from lsssdc.identity import personnummer as P

DIGITS = "0123456789"
REF = dt.date(2024, 10, 1)

# --------------------------------------------------------------------------------------------
# the reference: one value at a time


def _luhn(nine: str) -> int:
    total = 0
    for i, ch in enumerate(nine):
        v = int(ch) * (2 if i % 2 == 0 else 1)
        total += v if v < 10 else v - 9
    return (10 - total % 10) % 10


def _ref_date(value: object) -> dt.date | None:
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is pd.NaT:
        return None
    if isinstance(value, str):
        return dt.date.fromisoformat(value)
    if isinstance(value, pd.Timestamp):
        return value.date()
    if isinstance(value, dt.datetime):
        return value.date()
    return value  # a date


def reference_parse(value: object, reference: object = None) -> dict[str, object]:
    """What a careful clerk would say about one value."""
    bad = {"valid": False, "personnummer": None, "birth_date": None, "sex": None, "samord": False}
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return {**bad, "reason": "missing"}
    if isinstance(value, int):  # bool too: str(True) is not a number's digits
        text = str(value)
    elif isinstance(value, str):
        text = value
    elif isinstance(value, bytes):
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            return {**bad, "reason": "format"}
    else:
        text = "not a string"
    text = text.strip()
    if text == "":
        return {**bad, "reason": "missing"}

    def digits(s: str) -> bool:
        return len(s) > 0 and all(c in DIGITS for c in s)

    sep = ""
    if len(text) == 12 and digits(text):
        century, rest = text[:2], text[2:]
    elif len(text) == 13 and digits(text[:8]) and text[8] in "-+" and digits(text[9:]):
        century, rest, sep = text[:2], text[2:8] + text[9:], text[8]
    elif len(text) == 10 and digits(text):
        century, rest = None, text
    elif len(text) == 11 and digits(text[:6]) and text[6] in "-+" and digits(text[7:]):
        century, rest, sep = None, text[:6] + text[7:], text[6]
    else:
        return {**bad, "reason": "format"}

    yy, mm, dd, nnn, check = int(rest[0:2]), int(rest[2:4]), int(rest[4:6]), int(rest[6:9]), int(rest[9])
    samord = dd > 60
    day = dd - 60 if samord else dd
    ref = _ref_date(reference)
    if century is not None:
        if century not in ("18", "19", "20"):
            return {**bad, "reason": "century"}
        year = int(century) * 100 + yy
    else:
        if ref is None:
            return {**bad, "reason": "century"}
        # the latest year ending in yy whose (month, day) is not after the reference date
        year = ref.year - (ref.year % 100) + yy
        if (year, mm, day) > (ref.year, ref.month, ref.day):
            year -= 100
        if sep == "+":
            year -= 100
    try:
        born = dt.date(year, mm, day)
    except ValueError:
        return {**bad, "reason": "date"}
    if nnn == 0:
        return {**bad, "reason": "birth_number"}
    if _luhn(rest[:9]) != check:
        return {**bad, "reason": "checksum"}
    if ref is not None and born > ref:
        return {**bad, "reason": "future"}
    return {
        "valid": True,
        "reason": None,
        "personnummer": f"{year:04d}{rest[2:]}",
        "birth_date": born,
        "sex": "1" if nnn % 2 == 1 else "2",
        "samord": samord,
    }


def assert_agrees(values: list[object], reference: object = None) -> pd.DataFrame:
    """Parse ``values`` in one vectorised call and compare every row with the reference."""
    out = P.parse(pd.Series(values, dtype=object), reference_date=reference)
    assert len(out) == len(values)
    refs = reference if isinstance(reference, list) else [reference] * len(values)
    for i, (v, r) in enumerate(zip(values, refs, strict=True)):
        want = reference_parse(v, r)
        got = out.iloc[i]
        ctx = f"row {i}: input {v!r}, reference {r!r}"
        assert bool(got["valid"]) == want["valid"], ctx
        reason = None if pd.isna(got["reason"]) else str(got["reason"])
        assert reason == want["reason"], ctx
        pnr = None if pd.isna(got["personnummer"]) else str(got["personnummer"])
        assert pnr == want["personnummer"], ctx
        born = None if pd.isna(got["birth_date"]) else got["birth_date"].date()
        assert born == want["birth_date"], ctx
        sex = None if pd.isna(got["sex"]) else str(got["sex"])
        assert sex == want["sex"], ctx
        assert bool(got["samordningsnummer"]) == want["samord"], ctx
    return out


# --------------------------------------------------------------------------------------------
# strategies


def _format(
    year: int, month: int, day: int, nnn: int, shape: str, ref: dt.date, check: int | None = None
) -> str:
    nine = f"{year % 100:02d}{month:02d}{day:02d}{nnn:03d}"
    c = _luhn(nine) if check is None else check
    ten = f"{nine}{c}"
    century = f"{year // 100:02d}"
    if shape == "12":
        return f"{century}{ten}"
    if shape == "12-":
        return f"{century}{ten[:6]}-{ten[6:]}"
    if shape == "12+":
        return f"{century}{ten[:6]}+{ten[6:]}"
    if shape == "10":
        return ten
    # 10 with a separator: '+' once the person has turned 100 on the reference date
    plus = (year + 100, month, day % 60 if day > 60 else day) <= (ref.year, ref.month, ref.day)
    return f"{ten[:6]}{'+' if plus else '-'}{ten[6:]}"


@st.composite
def valid_numbers(draw: st.DrawFn, ref: dt.date = REF) -> tuple[str, dt.date, bool]:
    """A valid number in one of the accepted shapes, with its birth date and samord flag."""
    shape = draw(st.sampled_from(["12", "12-", "12+", "10", "10sep"]))
    if shape == "10":  # without a separator the number says 'younger than 100'
        lo = dt.date(ref.year - 99, 12, 31)
    elif shape == "10sep":
        lo = dt.date(ref.year - 199, 12, 31)
    else:
        lo = dt.date(1800, 1, 1)
    born = draw(st.dates(min_value=lo, max_value=ref))
    nnn = draw(st.integers(1, 999))
    samord = draw(st.booleans())
    day = born.day + (60 if samord else 0)
    return _format(born.year, born.month, day, nnn, shape, ref), born, samord


garbage = st.one_of(
    st.text(max_size=16),
    st.text(alphabet=DIGITS + "-+ ", max_size=14),
    st.text(alphabet=DIGITS, min_size=9, max_size=13),
    st.from_regex(r"\A[0-9]{6,8}[-+/. _][0-9]{4}\Z"),
    st.binary(max_size=13),
)


# --------------------------------------------------------------------------------------------
# properties


@given(st.lists(valid_numbers(), min_size=1, max_size=40))
def test_valid_numbers_in_every_shape_agree_with_the_reference(items):
    values = [v for v, _, _ in items]
    out = assert_agrees(values, REF)
    assert out["valid"].all()
    for (_, born, samord), (_, row) in zip(items, out.iterrows(), strict=True):
        assert row["birth_date"].date() == born
        assert bool(row["samordningsnummer"]) == samord


@given(st.lists(st.one_of(valid_numbers(), garbage.map(lambda g: (g, None, None))), max_size=40))
def test_garbage_and_valid_mixed_agree_with_the_reference(items):
    assert_agrees([v for v, _, _ in items], REF)


@given(st.lists(garbage, max_size=40))
def test_garbage_without_reference_date_agrees(values):
    assert_agrees(values, None)


@given(valid_numbers(), st.integers(1, 9))
def test_a_mutated_check_digit_is_a_checksum_error(item, delta):
    value = item[0]
    mutated = value[:-1] + str((int(value[-1]) + delta) % 10)
    out = assert_agrees([mutated], REF)
    assert out["reason"].iloc[0] == "checksum"


@given(st.lists(st.tuples(valid_numbers(), st.sampled_from([" ", "\t", "\n", "  \t"])), max_size=20))
def test_whitespace_around_is_ignored(items):
    values = [f"{ws}{v}{ws[::-1]}" for (v, _, _), ws in items]
    out = assert_agrees(values, REF)
    assert out["valid"].all()


@given(
    st.lists(
        st.tuples(
            valid_numbers(ref=dt.date(2000, 6, 1)),
            st.sampled_from([dt.date(2000, 6, 1), None]),
        ),
        max_size=20,
    )
)
def test_reference_date_per_row_including_missing_ones(items):
    values = [v for (v, _, _), _ in items]
    refs = [r for _, r in items]
    assert_agrees(values, refs)


@given(st.integers(0, 10**13))
def test_integers_are_read_as_their_digits(number):
    assert_agrees([number], REF)


@given(
    st.dates(min_value=dt.date(1800, 1, 1), max_value=dt.date(2099, 12, 31)),
    st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2099, 12, 31)),
    st.integers(1, 999),
    st.sampled_from(["-", "+", ""]),
)
def test_century_of_ten_digit_forms_follows_the_reference_date(born, ref, nnn, sep):
    """Any 10-digit value, read against any reference date, gets the reference's century."""
    ten = _format(born.year, born.month, born.day, nnn, "10", ref)
    value = f"{ten[:6]}{sep}{ten[6:]}" if sep else ten
    out = assert_agrees([value], ref)
    if out["valid"].iloc[0]:
        b = out["birth_date"].iloc[0].date()
        assert b <= ref
        turned_100 = (b.year + 100, b.month, b.day) <= (ref.year, ref.month, ref.day)
        assert turned_100 == (sep == "+")
        assert (b.year + 200, b.month, b.day) > (ref.year, ref.month, ref.day)


# --------------------------------------------------------------------------------------------
# known cases and edges


@pytest.mark.parametrize(
    ("value", "reference", "valid", "reason", "normalised"),
    [
        ("640823-3234", REF, True, None, "196408233234"),
        ("6408233234", REF, True, None, "196408233234"),
        ("19640823-3234", None, True, None, "196408233234"),
        ("19640823-3230", None, False, "checksum", None),
        ("20000229-2399", None, True, None, "200002292399"),
        ("19000229-2397", None, False, "date", None),
        ("640823+3234", REF, True, None, "186408233234"),
        ("640823-3234", None, False, "century", None),
        ("21640823-3234", None, False, "century", None),
        ("20640823-3234", REF, False, "future", None),
    ],
)
def test_known_cases(value, reference, valid, reason, normalised):
    out = assert_agrees([value], reference)
    row = out.iloc[0]
    assert bool(row["valid"]) is valid
    assert (None if pd.isna(row["reason"]) else row["reason"]) == reason
    assert (None if pd.isna(row["personnummer"]) else row["personnummer"]) == normalised


def test_samordningsnummer_known_case():
    row = assert_agrees(["701063-2391"], REF).iloc[0]
    assert row["valid"] and row["samordningsnummer"]
    assert row["birth_date"] == pd.Timestamp("1970-10-03")
    assert row["sex"] == "1"
    assert row["personnummer"] == "197010632391"


def _with_check(year: int, month: int, day: int, nnn: int) -> str:
    return _format(year, month, day, nnn, "12", REF)


@pytest.mark.parametrize(
    ("year", "month", "day"),
    [
        (1985, 2, 30),
        (1985, 2, 29),
        (1900, 2, 29),
        (2100 - 1, 2, 29),
        (1985, 13, 1),
        (1985, 0, 10),
        (1985, 4, 31),
        (1985, 6, 0),
        (1985, 6, 60),  # samordningsnummer day 0
        (1985, 2, 89),  # samordningsnummer 29 Feb in a non-leap year
        (1985, 6, 32),
    ],
)
def test_impossible_dates(year, month, day):
    value = _with_check(year, month, day, 123)
    out = assert_agrees([value, value[2:]], [dt.date(2099, 12, 31), dt.date(1999, 12, 31)])
    assert (out["reason"] == "date").all()


def test_leap_days_that_exist():
    out = assert_agrees(
        [_with_check(2000, 2, 29, 239), _with_check(1904, 2, 29, 1), _with_check(1904, 2, 89, 1)]
    )
    assert out["valid"].all()


def test_birth_number_000():
    out = assert_agrees([_with_check(1985, 6, 15, 0), _with_check(1985, 6, 15, 0)[2:]], [None, REF])
    assert (out["reason"] == "birth_number").all()


@pytest.mark.parametrize("nothing", [None, float("nan"), np.nan, "", "   ", "\t\n"])
def test_missing_values(nothing):
    out = assert_agrees([nothing], REF)
    assert out["reason"].iloc[0] == "missing"


def test_integer_column_and_float_column():
    ints = P.parse(pd.Series([196408233234, 6408233234, 101011234], dtype="int64"), reference_date=REF)
    assert ints["valid"].tolist() == [True, True, False]
    assert ints["reason"].iloc[2] == "format"  # a leading zero lost in an integer column
    floats = P.parse(pd.Series([196408233234.0, np.nan]))
    assert floats["reason"].tolist() == ["format", "missing"]  # floats cannot hold one faithfully


def test_index_is_kept_and_empty_input_works():
    s = pd.Series(["196408233234", "x"], index=[10, 20])
    assert P.parse(s).index.tolist() == [10, 20]
    empty = P.parse(pd.Series([], dtype="string"))
    assert len(empty) == 0 and list(empty.columns) == [
        "personnummer",
        "valid",
        "reason",
        "birth_date",
        "sex",
        "samordningsnummer",
    ]


def test_sex_follows_the_second_to_last_digit():
    men = [_with_check(1990, 1, 1, n) for n in (1, 3, 5, 7, 9, 11, 999)]
    women = [_with_check(1990, 1, 1, n) for n in (2, 4, 6, 8, 10, 998)]
    out = assert_agrees(men + women)
    assert out["sex"].tolist() == ["1"] * len(men) + ["2"] * len(women)


def test_all_official_test_numbers_are_valid():
    sample = refdata.test_personnummer()
    assert len(sample) == 1000
    out = P.parse(sample)
    assert out["valid"].all()
    assert (out["personnummer"] == sample.to_numpy()).all()


def test_normalise_and_is_valid():
    s = pd.Series(["640823-3234", "19640823-3230"])
    assert P.normalise(s, REF).tolist()[0] == "196408233234"
    assert pd.isna(P.normalise(s, REF).iloc[1])
    assert P.is_valid(s, REF).tolist() == [True, False]


def test_age_at():
    born = pd.Series(pd.to_datetime(["2000-10-01", "2000-10-02", "1964-08-23"]))
    assert P.age_at(born, dt.date(2024, 10, 1)).tolist() == [24, 23, 60]
    per_row = P.age_at(born, pd.Series(pd.to_datetime(["2001-10-01", "2001-10-01", "1965-08-22"])))
    assert per_row.tolist() == [1, 0, 0]


def test_reason_summary_counts_reasons():
    out = P.parse(["19640823-3230", "x", None, "196408233234"])
    assert P.reason_summary(out) == {"checksum": 1, "format": 1, "missing": 1}


# --------------------------------------------------------------------------------------------
# nothing raises, nothing is echoed

_odd_objects = st.one_of(
    st.none(),
    st.floats(allow_nan=True),
    st.integers(-(10**15), 10**15),
    st.text(max_size=30),
    st.booleans(),
    st.binary(max_size=13),
    st.dates(),
)


@given(st.lists(_odd_objects, max_size=30))
def test_no_input_raises_or_is_echoed(values):
    out = P.parse(pd.Series(values, dtype=object), reference_date=REF)
    assert len(out) == len(values)
    invalid = ~out["valid"]
    assert out.loc[invalid, "personnummer"].isna().all()
    assert out.loc[invalid, "birth_date"].isna().all()
    assert out.loc[invalid, "sex"].isna().all()
    for reason in out.loc[invalid, "reason"]:
        text = P.REASON_TEXT[str(reason)]
        assert not re.search(r"\d", text), "a reason text must carry no digit at all"
        assert not re.search(r"\d", str(reason))


def test_reason_texts_cover_every_reason_and_hold_no_digits():
    assert set(P.REASON_TEXT) == set(P.REASONS)
    for text in P.REASON_TEXT.values():
        assert not re.search(r"\d", text)


def test_reference_date_of_wrong_length_is_refused():
    with pytest.raises(ValueError, match="one date per value"):
        P.parse(["196408233234", "x"], reference_date=[REF])
