"""prepare -> approve -> deliver through the API: the whole flow, its ledger, and its promises.

The mortality order (linked with the death register) is prepared, approved and delivered once
per session: on the small register under a copy of research-with-deaths with a higher
suppression ceiling, and in the slow run also the shipped order and policy on a register large
enough to be releasable (see conftest).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lsssdc import release
from lsssdc.errors import DisclosureRefused
from lsssdc.release.candidate import load
from lsssdc.release.gate import Check, gate
from tests.release.conftest import (
    DAGLIG,
    MORTALITY,
    Release,
    files_under,
    leaks_in_files,
    open_ledger,
    order_path,
    personnummer_tails,
    policy_path,
    prepare_order,
    scan_bytes,
)

PACKAGE_FILES = {
    "data.csv",
    "data.parquet",
    "data.dta",
    "data-labels-en.do",
    "data.sav",
    "data-labels-en.sps",
    "data.xpt",
    "data-formats.sas",
    "codebook.md",
    "data-report.html",
    "datapackage.json",
    "README.md",
    "policy.yaml",
    "order.yaml",
    "MANIFEST.sha256",
    "ledger-head.json",
}


# --------------------------------------------------------------------------------------------
# end to end


def test_mortality_order_end_to_end(delivered: Release) -> None:
    """Order -> candidate -> approval -> package, with one ledger entry per step."""
    mortality = delivered
    assert {p.name for p in mortality.package.iterdir()} == PACKAGE_FILES
    assert mortality.kinds_after_prepare == ["custodians", "prepare"]
    with open_ledger(mortality.ledger, mortality.keystore) as book:
        entries = list(book.entries())
        assert [e.kind for e in entries] == ["custodians", "prepare", "approve", "deliver"]
        assert book.verify().ok
    cand = load(mortality.candidate)
    prep, appr, deliv = (e.payload for e in entries[1:])
    assert prep["verdict"] == "releasable" and prep["content_hash"] == cand.content_hash
    assert prep["order_id"] == "B2026-0023" and prep["policy"] == "research-with-deaths"
    assert prep["risk"]["after"]["k"] >= 5 and prep["risk"]["before"]["k"] < 5
    assert appr["content_hash"] == cand.content_hash and entries[2].actor == "reviewer-a"
    assert deliv["content_hash"] == cand.content_hash and deliv["approved_by"] == "reviewer-a"
    assert deliv["files"] == mortality.result["files"]
    assert deliv["person_index"]["persons"] > 0
    # the data delivered: pseudonyms instead of personnummer, the linked year of death
    df = pd.read_parquet(mortality.package / "data.parquet")
    assert "personnummer" not in df.columns
    assert df["pseudonym"].str.startswith("P").all()
    assert set(df.columns) >= {"year", "sex", "age_band", "personkrets", "death_year", "suppressed"}
    assert "death_date" not in df.columns  # the column says what it holds
    years_of_death = df["death_year"].dropna()
    years_of_death = years_of_death[years_of_death != ".."]
    assert len(years_of_death) and years_of_death.str.fullmatch(r"\d{4}").all()
    assert sorted(df["year"].dropna().unique().tolist()) == list(range(2010, 2024))


def test_the_gate_says_yes_only_when_every_check_holds() -> None:
    ok, bad = Check("k", True, "fine"), Check("l", False, "l is 1")
    assert gate([]).decision == "refused"
    assert gate([ok]).decision == "releasable"
    verdict = gate([ok, bad])
    assert verdict.decision == "refused" and verdict.reasons == ["l is 1"]


# --------------------------------------------------------------------------------------------
# the ledger


def test_every_step_adds_exactly_one_ledger_entry(tmp_path, small, keystore, ledger) -> None:
    work = tmp_path / "work"
    refused = prepare_order(
        small, policy_path(MORTALITY[0]), order_path(MORTALITY[1]), keystore, work, ledger
    )
    assert [e.kind for e in ledger.entries()] == ["custodians", "refuse"]
    # a refused candidate is written with its report (so the reviewer sees why), never its data
    assert refused.verdict == "refused"
    names = {p.name for p in refused.path.iterdir()}
    assert {"report.html", "report.json", "candidate.json"} <= names
    assert "data.parquet" not in names and "person_index.bin" not in names
    report = json.loads((refused.path / "report.json").read_text(encoding="utf-8"))
    assert report["verdict"]["decision"] == "refused" and report["verdict"]["reasons"]
    assert ledger.head().payload["reasons"] == report["verdict"]["reasons"]
    good = prepare_order(small, policy_path(DAGLIG[0]), order_path(DAGLIG[1]), keystore, work, ledger)
    assert good.verdict == "releasable"
    assert [e.kind for e in ledger.entries()] == ["custodians", "refuse", "prepare"]

    # refusals add nothing
    with pytest.raises(DisclosureRefused):
        release.approve(refused.path, "reviewer-a", keystore, ledger)
    with pytest.raises(DisclosureRefused):
        release.deliver(good.path, tmp_path / "out" / "never", keystore, ledger, "ordering-service")
    assert len(ledger) == 3

    release.approve(good.path, "reviewer-a", keystore, ledger)
    done = release.deliver(good.path, tmp_path / "out" / "dv", keystore, ledger, "ordering-service")
    assert [e.kind for e in ledger.entries()] == ["custodians", "refuse", "prepare", "approve", "deliver"]
    assert done["ledger_entry"] == 5

    release.reject(refused.path, "reviewer-a", "purpose too broad", keystore, ledger)
    assert [e.kind for e in ledger.entries()] == [
        "custodians",
        "refuse",
        "prepare",
        "approve",
        "deliver",
        "reject",
    ]
    assert ledger.verify().ok

    # which deliveries held this person: yes for a person delivered, no for one outside
    reg = small.register
    window = reg[reg["year"].between(2015, 2023)]
    inside = window.loc[window["daglig_verksamhet"] == 1, "personnummer"].unique()
    outside = sorted(set(reg["personnummer"].unique()) - set(window["personnummer"].unique()))
    assert len(inside) and outside
    key = keystore.audit_index_key()
    (hit,) = ledger.deliveries_with(str(inside[0]), key)
    assert hit.seq == 5 and hit.kind == "deliver"
    assert ledger.deliveries_with(str(outside[0]), key) == []
    assert hit.payload["person_index"]["persons"] == len(inside)


def test_a_prepare_whose_ledger_entry_fails_leaves_no_candidate(
    tmp_path, small, keystore, ledger, monkeypatch
) -> None:
    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ledger, "append", broken)
    with pytest.raises(OSError):
        prepare_order(
            small, policy_path(DAGLIG[0]), order_path(DAGLIG[1]), keystore, tmp_path / "work", ledger
        )
    order_dir = tmp_path / "work" / "B2026-0017"
    assert not order_dir.exists() or not any(order_dir.iterdir())


# --------------------------------------------------------------------------------------------
# no personnummer in anything produced


def test_the_scanner_finds_every_written_form(tmp_path) -> None:
    """The search below can fail: each form of a personnummer is found, in text and in Parquet."""
    pnr = "199001011239"
    tails = personnummer_tails([pnr, "200512249876"])
    forms = [pnr, "19900101-1239", "19900101+1239", "9001011239", "900101-1239", "900101+1239"]
    for form in forms:
        assert scan_bytes(f'{{"id": "x{form}y"}}'.encode(), tails) == 1, form
    assert scan_bytes(b"no persons here: 2010,2011, 123456789, 12345-6789", tails) == 0
    path = tmp_path / "x.parquet"
    pq.write_table(pa.table({"a": ["abc", "def", forms[4]] * 50}), path, compression="zstd")
    assert leaks_in_files([path], tails)


def test_no_personnummer_in_any_file_produced(delivered: Release) -> None:
    """Package, candidate work area (report.html and .json included) and ledger: none found."""
    mortality, big = delivered, delivered.register
    tails = personnummer_tails(pd.concat([big.register["personnummer"], big.deaths["personnummer"]]).unique())
    produced = files_under(mortality.package, mortality.work, mortality.ledger.parent)
    names = {p.name for p in produced}
    assert {
        "report.html",
        "report.json",
        "data.dta",
        "data.sav",
        "data.xpt",
        "ledger.sqlite",
        "person_index.bin",
    } <= names
    assert leaks_in_files(produced, tails) == {}
    # and the same search does find them in the input
    inputs = mortality.root / "inputs.parquet"
    big.register[["personnummer"]].head(1000).to_parquet(inputs)
    assert leaks_in_files([inputs], tails)


# --------------------------------------------------------------------------------------------
# the delivered data satisfies k: an independent, brute-force recount


def smallest_class(
    df: pd.DataFrame, qis: list[str], person: str, k: int, count: str = "persons"
) -> tuple[int, int]:
    """(smallest class, records in classes below k), brute force, sharing no code with lsssdc.

    Records are the distinct (person, quasi-identifier values). A record's class is every record
    compatible with it: two records are compatible when they agree on every quasi-identifier on
    which both have a value (an empty, suppressed value matches anything). ``count="persons"``
    counts the distinct persons in the class, ``count="records"`` its records. Each distinct
    combination of values is compared with every other one that shares its first
    quasi-identifier (the year) or has it empty; a combination held by k or more persons is in
    a class of at least k by itself and needs no comparison.
    """
    units = df[[person, *qis]].replace("", np.nan).drop_duplicates()
    codes = np.column_stack([pd.factorize(units[q], use_na_sentinel=True)[0] + 1 for q in qis])
    radix = codes.max(axis=0) + 1
    key = np.zeros(len(units), dtype=np.int64)
    for j in range(len(qis)):
        key = key * int(radix[j]) + codes[:, j]
    uniq, which = np.unique(key, return_inverse=True)
    combos = np.zeros((uniq.size, len(qis)), dtype=np.int64)
    rest = uniq.copy()
    for j in reversed(range(len(qis))):
        combos[:, j], rest = rest % radix[j], rest // radix[j]
    combos -= 1  # -1: empty
    held = np.bincount(which.ravel(), minlength=uniq.size)  # records = distinct persons per combination
    persons = pd.factorize(units[person])[0]
    by_combo = np.argsort(which.ravel(), kind="stable")
    bounds = np.searchsorted(which.ravel()[by_combo], np.arange(uniq.size + 1))
    smallest, below = (int(held.min()) if held.min() >= k else 10**12), 0
    small = np.flatnonzero(held < k)
    lead = combos[:, 0]
    for y in np.unique(lead[small]):
        rows = small[lead[small] == y]
        near = np.flatnonzero((lead == y) | (lead == -1) | (y == -1))
        a, b = combos[rows][:, None, :], combos[near][None, :, :]
        compatible = np.all((a == b) | (a == -1) | (b == -1), axis=2)  # rows x near
        for r, c in enumerate(rows):
            ids = near[compatible[r]]
            if count == "records":
                size = int(held[ids].sum())
            elif held[ids].max() >= k:
                size = int(held[ids].max())  # at least this many: enough to know it reaches k
            else:
                members = np.concatenate([persons[by_combo[bounds[i] : bounds[i + 1]]] for i in ids])
                size = int(np.unique(members).size)
            smallest = min(smallest, size)
            if size < k:
                below += int(held[c])
    return smallest, below


def test_brute_force_recount_knows_a_small_class() -> None:
    df = pd.DataFrame(
        {
            "p": ["a", "a", "b", "c", "d", "e"],
            "year": ["2020", "2021", "2020", "2020", "2020", "2020"],
            "sex": ["1", "1", "1", "", "2", "1"],
        }
    )
    # a/2021 is alone; in 2020 persons a, b, c (wildcard) and e share sex 1; d with c has 2
    assert smallest_class(df, ["year", "sex"], "p", 2) == (1, 1)
    assert smallest_class(df, ["year", "sex"], "p", 1)[1] == 0
    # the same person twice in a class counts once
    twice = pd.DataFrame({"p": ["a", "a", "b"], "year": ["2020"] * 3, "sex": ["1", "", "1"]})
    assert smallest_class(twice, ["year", "sex"], "p", 3) == (2, 3)
    assert smallest_class(twice, ["year", "sex"], "p", 3, count="records") == (3, 0)


QIS = ["year", "age_band", "sex", "personkrets", "death_year"]


def _delivered_data(mortality: Release) -> pd.DataFrame:
    """The delivered data as the researcher reads it, a suppressed value ("..", or an empty
    year) read as empty, i.e. matching anything (a blank year of death: no death)."""
    data = pd.read_csv(mortality.package / "data.csv", dtype=str, keep_default_na=False)
    data[QIS] = data[QIS].replace("..", "")
    # the policy's quasi-identifiers as delivered (age in bands), plus the year
    policy = (mortality.package / "policy.yaml").read_text(encoding="utf-8")
    assert "quasi_identifiers: [age, sex, kommun, personkrets, death_date," in policy
    assert (data[QIS] == "").to_numpy().any(), "the treatment suppressed nothing; the test would be empty"
    return data


def test_delivered_data_satisfies_k_on_distinct_persons(delivered: Release) -> None:
    smallest, below = smallest_class(_delivered_data(delivered), QIS, "pseudonym", 5, count="persons")
    assert below == 0 and smallest >= 5


def test_the_recount_finds_small_classes_in_a_sample(delivered: Release) -> None:
    """The check above can fail on this data: take most persons away and classes shrink."""
    data = _delivered_data(delivered)
    # persons shown in full (a record with blanks is compatible with many and keeps classes big)
    data = data[~data.groupby("pseudonym")["suppressed"].transform(lambda s: (s != "").any())]
    persons = data["pseudonym"].unique()
    keep = np.random.default_rng(0).choice(persons, size=len(persons) // 50, replace=False)
    smallest, below = smallest_class(data[data["pseudonym"].isin(keep)], QIS, "pseudonym", 5)
    assert smallest < 5 and below > 0


def test_report_claims_what_the_recount_finds(delivered: Release) -> None:
    mortality = delivered
    report = json.loads((mortality.candidate / "report.json").read_text(encoding="utf-8"))
    assert report["risk"]["after"]["k"] >= report["policy"]["thresholds"]["k"] == 5
    assert report["suppression"]["record_share"] <= report["policy"]["thresholds"]["max_suppressed_share"]
    data = pd.read_parquet(mortality.package / "data.parquet")
    for q, facts in report["suppression"]["per_variable"].items():
        shown = data[q].astype("string")
        suppressed = shown.isna() if q == "year" else (shown == "..").fillna(False)
        assert int(suppressed.sum()) == facts["count"], q
        assert int(data["suppressed"].str.contains(rf"\b{q}\b").sum()) == facts["count"], q


def test_candidate_path_is_the_order_id(delivered: Release) -> None:
    assert Path(delivered.candidate).parent.name == "B2026-0023"
