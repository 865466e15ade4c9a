"""Pseudonyms: deterministic per project, unlinkable across projects, reversible for the key holder.

A slow reference written here (one value at a time: HKDF, AES of one block, letters) must agree
with the vectorised implementation, so that the documented scheme is the one implemented.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re

import numpy as np
import pandas as pd
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given
from hypothesis import strategies as st

from lsssdc.errors import InputDataError, KeyStoreError
from lsssdc.identity import pseudonym as ps
from lsssdc.identity.pseudonym import (
    PseudonymCollision,
    PseudonymKey,
    key_versions,
    lopnummer,
    pseudonymise,
    pseudonymise_frame,
    reidentify,
    repseudonymise,
)
from lsssdc.register.synth import make_personnummer

SECRET_A = bytes(range(32))
SECRET_B = bytes(range(1, 33))
KEY_A = PseudonymKey.derive(SECRET_A, "PRJ-A", 1)
KEY_B = PseudonymKey.derive(SECRET_B, "PRJ-B", 1)
SHAPE = re.compile(r"^P[1-9][0-9]*-[a-p]{32}$")


# --------------------------------------------------------------------------------------------
# a reference, one value at a time


def _luhn(nine: str) -> int:
    total = 0
    for i, ch in enumerate(nine):
        v = int(ch) * (2 if i % 2 == 0 else 1)
        total += v if v < 10 else v - 9
    return (10 - total % 10) % 10


def reference_pseudonym(twelve: str, secret: bytes, project: str, version: int) -> str:
    info = b"lsssdc pseudonym v1|" + project.encode() + b"|" + str(version).encode()
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)
    tag = version.to_bytes(2, "big") + hashlib.sha256(b"lsssdc project|" + project.encode()).digest()[:2]
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    block = enc.update(twelve.encode("ascii") + tag) + enc.finalize()
    letters = "".join("abcdefghijklmnop"[b >> 4] for b in block) + "".join(
        "abcdefghijklmnop"[b & 15] for b in block
    )
    return f"P{version}-{letters}"


@st.composite
def personnummer(draw: st.DrawFn) -> str:
    """A valid 12-digit personnummer or samordningsnummer."""
    born = draw(st.dates(dt.date(1900, 1, 1), dt.date(2023, 12, 31)))
    nnn = draw(st.integers(1, 999))
    day = born.day + (60 if draw(st.booleans()) else 0)
    nine = f"{born.year % 100:02d}{born.month:02d}{day:02d}{nnn:03d}"
    return f"{born.year // 100}{nine}{_luhn(nine)}"


def synthetic(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    birth = np.datetime64("1925-01-01") + rng.integers(0, 365 * 95, n).astype("timedelta64[D]")
    sex = np.where(rng.random(n) < 0.5, "1", "2")
    return make_personnummer(rng, birth, sex, rng.random(n) < 0.02)


# --------------------------------------------------------------------------------------------
# the scheme


@given(st.lists(personnummer(), min_size=1, max_size=30))
def test_vectorised_matches_the_reference(values: list[str]) -> None:
    got = pseudonymise(values, KEY_A).tolist()
    assert got == [reference_pseudonym(v, SECRET_A, "PRJ-A", 1) for v in values]


def test_known_answer_pins_the_scheme() -> None:
    # Computed once from the documented scheme; any change to it changes every pseudonym.
    assert (
        reference_pseudonym("191212121212", SECRET_A, "PRJ-A", 1) == pseudonymise(["191212121212"], KEY_A)[0]
    )
    assert pseudonymise(["191212121212"], KEY_A)[0] == "P1-giiblpmkejemecgbdmimilhhckfnjilk"


@given(personnummer(), st.sampled_from(["PRJ-A", "PRJ-B", "x", "2025.project_7"]))
def test_same_person_and_project_give_the_same_pseudonym(pnr: str, project: str) -> None:
    key = PseudonymKey.derive(SECRET_A, project, 1)
    forms = [pnr, f"{pnr[:8]}-{pnr[8:]}", f" {pnr} "]
    got = pseudonymise(forms, key)
    assert got.nunique() == 1
    assert pseudonymise([pnr], PseudonymKey.derive(SECRET_A, project, 1))[0] == got[0]


@given(personnummer())
def test_ten_digit_forms_use_the_reference_date(pnr: str) -> None:
    day = int(pnr[6:8])
    born = dt.date(int(pnr[:4]), int(pnr[4:6]), day - 60 if day > 60 else day)
    ten = pnr[2:8] + ("+" if born <= dt.date(1924, 1, 1) else "-") + pnr[8:]
    got = pseudonymise([ten], KEY_A, reference_date=dt.date(2024, 1, 1))
    assert got[0] == pseudonymise([pnr], KEY_A)[0]


@given(personnummer())
def test_no_pseudonym_contains_the_personnummers_digits(pnr: str) -> None:
    p = pseudonymise([pnr], KEY_A)[0]
    assert SHAPE.match(p)
    assert not any(pnr[i : i + 6] in p for i in range(len(pnr) - 5))
    assert not re.search(r"\d{2,}", p[3:])  # the body has no digit at all


@given(st.lists(personnummer(), min_size=1, max_size=40))
def test_reversal_round_trips(values: list[str]) -> None:
    back = reidentify(pseudonymise(values, KEY_A), KEY_A)
    assert back.tolist() == values


def test_100k_persons_two_projects_match_nobody() -> None:
    pnr = synthetic(100_000)
    a = pseudonymise(pnr, KEY_A)
    b = pseudonymise(pnr, KEY_B)
    assert a.nunique() == b.nunique() == len(set(pnr)) == 100_000
    assert not set(a) & set(b)
    merged = pd.DataFrame({"p": a}).merge(pd.DataFrame({"p": b}), on="p")
    assert len(merged) == 0
    # the same project joins itself, and a new key version of it joins nothing
    again = pseudonymise(pnr[::-1].copy(), KEY_A)
    assert len(pd.DataFrame({"p": a}).merge(pd.DataFrame({"p": again}), on="p")) == 100_000
    assert not set(a) & set(pseudonymise(pnr, PseudonymKey.derive(SECRET_A, "PRJ-A", 2)))
    assert a.str.fullmatch(SHAPE.pattern[1:-1]).all()
    assert not a.str.contains(r"\d{2,}", regex=True).any()
    assert reidentify(a, KEY_A).tolist() == list(pnr)


def test_wrong_project_key_fails_the_tag_check() -> None:
    p = pseudonymise(synthetic(50), KEY_A)
    for wrong in (
        KEY_B,
        PseudonymKey.derive(SECRET_B, "PRJ-A", 1),
        PseudonymKey.derive(SECRET_A, "PRJ-B", 1),
    ):
        with pytest.raises(InputDataError) as err:
            reidentify(p, {1: wrong})
        assert err.value.problems[0].code == "pseudonym_key_mismatch"
        assert err.value.problems[0].row_count == 50


def test_missing_key_version_is_a_key_store_error() -> None:
    p = pseudonymise(["191212121212"], PseudonymKey.derive(SECRET_A, "PRJ-A", 3))
    with pytest.raises(KeyStoreError) as err:
        reidentify(p, KEY_A)
    assert err.value.problems[0].code == "missing_key_version"


def test_invalid_values_name_rows_never_values() -> None:
    values = ["191212121212", "191212121213", None, "196408233234", "not a number"]
    with pytest.raises(InputDataError) as err:
        pseudonymise(pd.Series(values), KEY_A, column="pnr")
    problem = err.value.problems[0]
    assert problem.code == "invalid_personnummer"
    assert problem.column == "pnr"
    assert problem.rows == (2, 3, 5)
    assert "1912121212" not in str(err.value) and "not a number" not in str(err.value)


def test_chunks_give_the_same_result_and_row_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    values = list(synthetic(100, seed=3))
    whole = pseudonymise(values, KEY_A)
    monkeypatch.setattr(ps, "_CHUNK", 7)
    assert pseudonymise(values, KEY_A).tolist() == whole.tolist()
    refs = pd.Series([dt.date(2024, 1, 1)] * 100)
    assert pseudonymise(values, KEY_A, reference_date=refs).tolist() == whole.tolist()
    values[15] = values[15][:-1] + str((int(values[15][-1]) + 1) % 10)
    values[71] = ""
    with pytest.raises(InputDataError) as err:
        pseudonymise(values, KEY_A)
    assert err.value.problems[0].rows == (16, 72)


class _ConstantCipher:
    """Stands in for AES and maps every block to zeros: what a broken cipher would do."""

    def __init__(self, *args: object) -> None:
        pass

    def encryptor(self) -> _ConstantCipher:
        return self

    decryptor = encryptor

    def update(self, data: object) -> bytes:
        return bytes(memoryview(data).nbytes)

    def finalize(self) -> bytes:
        return b""


class _IdentityCipher(_ConstantCipher):
    """Leaves blocks as they are: useless as a cipher, but one-to-one, so not a collision."""

    def update(self, data: object) -> bytes:
        return memoryview(data).tobytes()


def test_a_collision_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ps, "Cipher", _ConstantCipher)
    for values in (["191212121212", "196408233234"], ["191212121212"]):
        with pytest.raises(PseudonymCollision) as err:
            pseudonymise(values, KEY_A)
        assert err.value.exit_code == 2
    monkeypatch.setattr(ps, "Cipher", _IdentityCipher)
    assert pseudonymise(["191212121212", "196408233234", "191212121212"], KEY_A).nunique() == 2


def test_a_wrongly_written_letter_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # rendering that loses information (here: the low half-bytes) must fail the read-back check
    monkeypatch.setattr(ps, "_letters", lambda w: (((w >> ps._FOUR) & ps._NIBBLES) + ps._LETTERS,) * 2)
    with pytest.raises(PseudonymCollision):
        pseudonymise(["191212121212"], KEY_A)


def test_index_and_duplicates_are_kept() -> None:
    s = pd.Series(["191212121212", "196408233234", "191212121212"], index=[10, 20, 30])
    p = pseudonymise(s, KEY_A)
    assert list(p.index) == [10, 20, 30]
    assert p[10] == p[30] != p[20]
    assert str(p.dtype) == "string"


def test_frame_replaces_the_column_in_place() -> None:
    df = pd.DataFrame(
        {"a": [1, 2, 3], "personnummer": ["191212121212", "196408233234", "191212121212"], "b": 1}
    )
    out, report = pseudonymise_frame(df, "personnummer", KEY_A, lopnummer_column="lopnummer")
    assert list(out.columns) == ["a", "pseudonym", "lopnummer", "b"]
    assert report.to_dict() == {
        "scheme": "lsssdc-pseudonym-v1",
        "project": "PRJ-A",
        "key_version": 1,
        "column": "personnummer",
        "rows": 3,
        "persons": 2,
    }
    kept, _ = pseudonymise_frame(df, "personnummer", KEY_A, keep_column=True)
    assert list(kept.columns) == ["a", "personnummer", "pseudonym", "b"]
    with pytest.raises(InputDataError):
        pseudonymise_frame(df, "nope", KEY_A)


def test_lopnummer_is_a_dense_rank_by_pseudonym() -> None:
    p = pd.Series(["P1-c", "P1-a", "P1-c", "P1-b", None])
    assert lopnummer(p).tolist() == [3, 1, 3, 2, pd.NA]
    real = pseudonymise(synthetic(1000), KEY_A)
    ranks = lopnummer(real)
    assert sorted(ranks) == list(range(1, 1001))
    assert (real.iloc[np.argsort(ranks.to_numpy())].is_monotonic_increasing) is True


def test_rotation_maps_old_pseudonyms_to_new() -> None:
    values = list(synthetic(200, seed=5))
    v1 = PseudonymKey.derive(SECRET_A, "PRJ-A", 1)
    v2 = PseudonymKey.derive(os.urandom(32), "PRJ-A", 2)
    old = pseudonymise(values, v1)
    new = pseudonymise(values, v2)
    assert repseudonymise(old, {1: v1}, v2).tolist() == new.tolist()
    mixed = pd.concat([old[:100], new[100:]], ignore_index=True)
    assert key_versions(mixed) == [1, 2]
    assert repseudonymise(mixed, [v1, v2], v2).tolist() == new.tolist()
    with pytest.raises(KeyStoreError):
        repseudonymise(old, {1: v1}, KEY_B)


def test_malformed_pseudonyms_are_refused_by_row() -> None:
    good = pseudonymise(["191212121212"], KEY_A)[0]
    with pytest.raises(InputDataError) as err:
        reidentify([good, good.upper(), None, good[:-1], "191212121212", good + "a"], KEY_A)
    assert err.value.problems[0].rows == (2, 3, 4, 5, 6)


def test_keys_do_not_show_their_bytes() -> None:
    assert SECRET_A.hex() not in repr(KEY_A) and "key=" not in repr(KEY_A)
    with pytest.raises(KeyStoreError):
        PseudonymKey("PRJ-A", 1, b"short")
    with pytest.raises(InputDataError):
        PseudonymKey.derive(SECRET_A, "bad|id", 1)
    with pytest.raises(KeyStoreError):
        PseudonymKey("PRJ-A", 0, SECRET_A)


def test_empty_column() -> None:
    assert pseudonymise([], KEY_A).tolist() == []
    assert reidentify(pd.Series([], dtype="string"), KEY_A).tolist() == []


SHAPE_FULL = re.compile(ps.PSEUDONYM_PATTERN[1:-1])


@st.composite
def near_pseudonyms(draw: st.DrawFn) -> str:
    """Valid pseudonyms and small mutations of them (the validator works byte-wise, not by regex)."""
    version = draw(st.integers(0, 120_000))
    body = draw(st.text(alphabet="abcdefghijklmnop", min_size=32, max_size=32))
    text = f"P{version}-{body}"
    if draw(st.booleans()):
        i = draw(st.integers(0, len(text) - 1))
        ch = draw(st.sampled_from(["`", "q", "A", "0", "9", "-", "P", "é", "\n", " ", "\x00", "/", ":"]))
        text = draw(
            st.sampled_from(
                [text[:i] + ch + text[i + 1 :], text[:i] + ch + text[i:], text[:i] + text[i + 1 :]]
            )
        )
    return text


@given(st.lists(near_pseudonyms(), min_size=1, max_size=20))
def test_validation_matches_the_documented_pattern(values: list[str]) -> None:
    expected_bad = tuple(i + 1 for i, v in enumerate(values) if not SHAPE_FULL.fullmatch(v))
    try:
        versions, _ = ps._decode(pd.Series(values), "p")
        bad: tuple[int, ...] = ()
        assert versions.tolist() == [int(v[1 : v.index("-")]) for v in values]
    except InputDataError as err:
        bad = err.problems[0].rows
    assert bad == expected_bad


def test_several_key_versions_and_widths_in_one_column() -> None:
    values = list(synthetic(30, seed=9))
    keys = {v: PseudonymKey.derive(SECRET_A, "PRJ-A", v) for v in (1, 10, 12345)}
    parts = [pseudonymise(values[i::3], keys[v]) for i, v in enumerate(keys)]
    mixed = pd.concat(parts, ignore_index=True)
    assert key_versions(mixed) == [1, 10, 12345]
    expected = values[0::3] + values[1::3] + values[2::3]
    assert reidentify(mixed, keys).tolist() == expected
    with pytest.raises(KeyStoreError):
        reidentify(mixed, {1: keys[1], 10: keys[10]})


def test_reversal_in_chunks_names_rows_across_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    values = list(synthetic(60, seed=4))
    v2 = PseudonymKey.derive(SECRET_A, "PRJ-A", 2)
    mixed = pd.concat([pseudonymise(values[:25], KEY_A), pseudonymise(values[25:], v2)], ignore_index=True)
    whole = reidentify(mixed, [KEY_A, v2]).tolist()
    monkeypatch.setattr(ps, "_CHUNK", 7)
    assert reidentify(mixed, [KEY_A, v2]).tolist() == whole == values
    assert repseudonymise(mixed, [KEY_A, v2], v2).tolist() == pseudonymise(values, v2).tolist()
    broken = mixed.copy()
    broken[[3, 40]] = ["P1-x", None]
    with pytest.raises(InputDataError) as err:
        reidentify(broken, [KEY_A, v2])
    assert err.value.problems[0].rows == (4, 41)
    foreign = mixed.copy()
    foreign[[9, 50]] = pseudonymise(values[:2], KEY_B).tolist()
    with pytest.raises(InputDataError) as err:
        reidentify(foreign, [KEY_A, v2])
    assert err.value.problems[0].code == "pseudonym_key_mismatch"
    assert err.value.problems[0].rows == (10, 51)
