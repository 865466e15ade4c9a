"""The delivery package: every file the researcher gets, read back; byte-identical when made
again; and all or nothing when writing fails half-way."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from lsssdc import release
from lsssdc.errors import DisclosureRefused, InputDataError
from lsssdc.identity.keystore import KeyStore
from lsssdc.register import variables as V
from lsssdc.release import package
from lsssdc.release.candidate import DECISIONS
from tests.release.conftest import (
    DAGLIG,
    MORTALITY,
    Release,
    copy_candidate,
    copy_ledger,
    files_under,
    make_keystore,
    open_ledger,
    open_store,
    order_path,
    policy_path,
    prepare_order,
)

PACKAGE_FILES = [
    "MANIFEST.sha256",
    "README.md",
    "codebook.md",
    "data-formats.sas",
    "data-labels-en.do",
    "data-labels-en.sps",
    "data-report.html",
    "data.csv",
    "data.dta",
    "data.parquet",
    "data.sav",
    "data.xpt",
    "datapackage.json",
    "ledger-head.json",
    "order.yaml",
    "policy.yaml",
]
#: the ledger's signed head: a receipt of the ledger's state, outside the manifest and the data
HEAD = "ledger-head.json"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def linked(linked_release: Release) -> dict:
    """The linked order on the small register, prepared, approved and delivered once per session."""
    r = linked_release
    return {
        "root": r.root,
        "keys": r.keystore.path,
        "store": r.keystore,
        "policy": r.policy,
        "ledger": r.ledger,
        "candidate": r.candidate,
        "package": r.package,
        "files": r.result["files"],
    }


# --------------------------------------------------------------------------------------------
# what is in a package


def test_package_has_every_file(linked) -> None:
    assert sorted(p.name for p in linked["package"].iterdir()) == PACKAGE_FILES
    assert linked["files"] == {p.name: _sha(p) for p in linked["package"].iterdir() if p.name != HEAD}


def test_manifest_lists_every_other_file_and_every_line_matches(linked) -> None:
    pkg = linked["package"]
    lines = (pkg / "MANIFEST.sha256").read_text(encoding="utf-8").splitlines()
    listed = {}
    for line in lines:
        m = re.fullmatch(r"([0-9a-f]{64})  (\S+)", line)
        assert m, line
        listed[m.group(2)] = m.group(1)
    assert sorted(listed) == [n for n in PACKAGE_FILES if n not in ("MANIFEST.sha256", HEAD)]
    for name, digest in listed.items():
        assert _sha(pkg / name) == digest, name


def test_the_three_data_files_hold_the_same_data(linked) -> None:
    pkg = linked["package"]
    parquet = pd.read_parquet(pkg / "data.parquet")
    candidate = pd.read_parquet(linked["candidate"] / "data.parquet")
    pd.testing.assert_frame_equal(parquet, candidate)
    csv = pd.read_csv(pkg / "data.csv", dtype=str, keep_default_na=False)
    assert list(csv.columns) == list(parquet.columns)
    as_text = parquet.astype("string").fillna("")
    for col in csv.columns:
        assert csv[col].tolist() == as_text[col].tolist(), col
    stata = pd.read_stata(pkg / "data.dta", convert_categoricals=False)
    assert list(stata.columns) == list(parquet.columns) and len(stata) == len(parquet)
    assert stata["pseudonym"].tolist() == parquet["pseudonym"].tolist()
    codes = pd.to_numeric(parquet["personkrets"], errors="coerce")
    assert stata["personkrets"].isna().tolist() == codes.isna().tolist()
    assert stata["personkrets"].dropna().astype(int).tolist() == codes.dropna().astype(int).tolist()
    deaths = stata["death_year"].replace("", pd.NA)
    assert deaths.notna().sum() == parquet["death_year"].notna().sum() > 0


def test_stata_file_has_variable_and_value_labels(linked) -> None:
    with pd.read_stata(linked["package"] / "data.dta", iterator=True) as reader:
        var_labels = reader.variable_labels()
        value_labels = reader.value_labels()
        data_label = reader.data_label
    assert data_label == "LSS B2026-0023"
    assert var_labels["sex"] == V.BY_NAME["sex"].label_sv == "Kön"  # å, ä, ö survive
    assert var_labels["bostad_vuxna"] == V.BY_NAME["bostad_vuxna"].label_sv
    assert all(var_labels[c] for c in var_labels) and all(len(v) <= 80 for v in var_labels.values())
    assert value_labels["sex"] == {1: "Man", 2: "Kvinna"}
    assert set(value_labels["personkrets"]) >= {1, 2, 3}
    assert value_labels["daglig_verksamhet"][1] == V.BY_NAME["daglig_verksamhet"].values["1"][0]
    labelled = pd.read_stata(linked["package"] / "data.dta")
    assert set(labelled["sex"].dropna().unique()) == {"Man", "Kvinna"}


def test_datapackage_resources_match_their_files(linked) -> None:
    pkg = linked["package"]
    dp = json.loads((pkg / "datapackage.json").read_text(encoding="utf-8"))
    assert dp["name"] == "b2026-0023" and dp["lsssdc"]["order_id"] == "B2026-0023"
    assert (
        dp["lsssdc"]["content_hash"]
        == json.loads((linked["candidate"] / "candidate.json").read_text())["content_hash"]
    )
    paths = [r["path"] for r in dp["resources"]]
    not_resources = ("datapackage.json", "data-report.html")
    assert sorted(paths) == [n for n in PACKAGE_FILES if n.startswith("data") and n not in not_resources]
    columns = list(pd.read_parquet(pkg / "data.parquet").columns)
    for r in dp["resources"]:
        f = pkg / r["path"]
        if r["format"] != "parquet":  # a Parquet resource's hash and size are in MANIFEST.sha256
            assert r["bytes"] == f.stat().st_size
            assert r["hash"] == "sha256:" + _sha(f)
        if r["format"] not in ("csv", "parquet"):  # a file to a validator; labels in itself
            assert r["type"] == "file" and "schema" not in r
            continue
        fields = r["schema"]["fields"]
        assert [x["name"] for x in fields] == columns
        assert all(x["title"] for x in fields)
        sex = next(x for x in fields if x["name"] == "sex")
        assert {c["value"] for c in sex["categories"]} == {"1", "2"}


def test_codebook_and_readme_document_the_delivery(linked) -> None:
    pkg = linked["package"]
    codebook = (pkg / "codebook.md").read_text(encoding="utf-8")
    for col in pd.read_parquet(pkg / "data.parquet").columns:
        assert f"## `{col}`" in codebook, col
    assert "**Sv:** Kön" in codebook and "**En:** Sex" in codebook
    assert "Undertryckta värden / Suppressed values" in codebook
    readme = (pkg / "README.md").read_text(encoding="utf-8")
    assert "# Delivery B2026-0023" in readme
    assert "2010: 2010-10-01" in readme and "2023: 2023-10-01" in readme  # measurement dates
    assert "## Historical breaks" in readme and "personkrets" in readme
    assert "## Pseudonyms" in readme and "deaths: death_date" in readme
    assert "values suppressed" in readme


def test_policy_and_order_are_the_files_used(linked) -> None:
    pkg = linked["package"]
    assert (pkg / "policy.yaml").read_bytes() == linked["policy"].read_bytes()
    assert (pkg / "order.yaml").read_bytes() == order_path(MORTALITY[1]).read_bytes()


# --------------------------------------------------------------------------------------------
# byte-identical


def _prepare_and_deliver(result, keys_file: Path, pol: Path, order: Path, root: Path) -> tuple[Path, Path]:
    store = open_store(keys_file)
    with open_ledger(root / "audit" / "ledger.sqlite", store) as book:
        cand = prepare_order(result, pol, order, store, root / "work", book)
        release.approve(cand.path, "reviewer-a", store, book)
        done = release.deliver(cand.path, root / "delivery" / cand.path.name, store, book, "ordering-service")
    return cand.path, Path(done["package"])


def _same_bytes(a: Path, b: Path, skip: tuple[str, ...] = ()) -> None:
    fa = sorted(p.relative_to(a).as_posix() for p in files_under(a) if p.name not in skip)
    fb = sorted(p.relative_to(b).as_posix() for p in files_under(b) if p.name not in skip)
    assert fa == fb
    for rel in fa:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def test_same_inputs_keys_and_seed_give_byte_identical_packages(linked, small, tmp_path) -> None:
    """Prepared twice into two work areas with the same key store file, delivered twice."""
    cand2, pkg2 = _prepare_and_deliver(
        small, linked["keys"], linked["policy"], order_path(MORTALITY[1]), tmp_path
    )
    _same_bytes(linked["package"], pkg2, skip=(HEAD,))  # the head differs with each ledger
    _same_bytes(linked["candidate"], cand2, skip=DECISIONS)


def test_another_key_store_gives_other_bytes(daglig, small, tmp_path) -> None:
    """The comparison above can fail: with other keys the pseudonyms, and so the bytes, differ."""
    other = make_keystore(tmp_path / "keys" / "k.json")
    again = prepare_order(small, policy_path(DAGLIG[0]), order_path(DAGLIG[1]), other, tmp_path / "w", None)
    assert (again.path / "data.parquet").read_bytes() != (daglig["candidate"] / "data.parquet").read_bytes()
    assert (again.path / "policy.yaml").read_bytes() == (daglig["candidate"] / "policy.yaml").read_bytes()


@pytest.mark.slow
def test_shipped_mortality_order_is_byte_identical(mortality, big, tmp_path) -> None:
    """The same on the big register with the shipped policy (prepare + deliver, about 15 s)."""
    pol, order = policy_path(MORTALITY[0]), order_path(MORTALITY[1])
    cand2, pkg2 = _prepare_and_deliver(big, Path(mortality.keystore.path), pol, order, tmp_path)
    _same_bytes(mortality.package, pkg2, skip=(HEAD,))
    _same_bytes(mortality.candidate, cand2, skip=DECISIONS)


# --------------------------------------------------------------------------------------------
# all or nothing


@pytest.fixture(scope="module")
def daglig(tmp_path_factory: pytest.TempPathFactory, small) -> dict:
    """The (smaller) daglig-verksamhet order, prepared once for the failure tests to copy."""
    root = tmp_path_factory.mktemp("package-daglig")
    store = make_keystore(root / "keys" / "lsssdc-keys.json")
    with open_ledger(root / "audit" / "ledger.sqlite", store) as book:
        cand = prepare_order(small, policy_path(DAGLIG[0]), order_path(DAGLIG[1]), store, root / "work", book)
    assert cand.verdict == "releasable"
    return {"store": store, "candidate": cand.path, "ledger": root / "audit" / "ledger.sqlite"}


@pytest.fixture
def approved(daglig, tmp_path):
    """A fresh, approved copy of that candidate, a fresh ledger, and a delivery place."""
    store: KeyStore = daglig["store"]
    book = open_ledger(copy_ledger(daglig["ledger"], tmp_path / "audit"), store)
    cand = copy_candidate(daglig["candidate"], tmp_path / "work")
    release.approve(cand, "reviewer-a", store, book)
    yield {"store": store, "ledger": book, "candidate": cand, "to": tmp_path / "delivery" / "pkg"}
    book.close()


def _deliver(a: dict) -> dict:
    return release.deliver(a["candidate"], a["to"], a["store"], a["ledger"], "ordering-service")


def _nothing_left(a: dict, entries: tuple[str, ...] | list[str] = ("approve",)) -> None:
    assert not a["to"].exists()
    leftovers = list(a["to"].parent.iterdir()) if a["to"].parent.exists() else []
    assert leftovers == []  # no temporary directory either
    assert [e.kind for e in a["ledger"].entries()][2:] == list(entries)
    assert a["ledger"].verify().ok


@pytest.mark.parametrize("error", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_failure_while_writing_leaves_nothing(approved, monkeypatch, error) -> None:
    def broken(*args, **kwargs):
        raise error

    monkeypatch.setattr(package, "_write_stata", broken)
    with pytest.raises(type(error)):
        _deliver(approved)
    _nothing_left(approved)
    monkeypatch.undo()
    _deliver(approved)  # and it can be delivered afterwards
    assert [e.kind for e in approved["ledger"].entries()][2:] == ["approve", "deliver"]


def test_failure_of_the_rename_leaves_nothing(approved, monkeypatch) -> None:
    real = os.rename

    def rename(src, dst, *args, **kwargs):
        if str(src).endswith(".part"):
            raise OSError("rename failed")
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(OSError):
        _deliver(approved)
    # entry first: the delivery's entry is on the ledger, its package never appeared
    _nothing_left(approved, entries=["approve", "deliver"])


def test_a_ledger_failure_leaves_no_package(approved, monkeypatch) -> None:
    seen = {}

    def broken(kind, *args, **kwargs):
        seen["package_existed"] = approved["to"].is_dir()
        raise OSError("the ledger's disk is full")

    monkeypatch.setattr(approved["ledger"], "append", broken)
    with pytest.raises(OSError):
        _deliver(approved)
    monkeypatch.undo()
    assert seen == {"package_existed": False}  # the entry comes before the package appears
    _nothing_left(approved)


def test_an_existing_target_is_never_overwritten(approved) -> None:
    approved["to"].mkdir(parents=True)
    (approved["to"] / "keep.txt").write_text("theirs", encoding="utf-8")
    with pytest.raises(InputDataError) as info:
        _deliver(approved)
    assert info.value.problems[0].code == "target_exists"
    assert (approved["to"] / "keep.txt").read_text(encoding="utf-8") == "theirs"
    assert len(approved["ledger"]) == 3


def test_data_swapped_after_the_approval_check_is_not_delivered(approved, monkeypatch) -> None:
    """The package is made from the bytes that were checked, not from whatever is there later."""
    real = release.deliverable

    def verify_then_swap(candidate, *args):
        found = real(candidate, *args)
        data = candidate.path / "data.parquet"
        df = pd.read_parquet(data)
        df.to_parquet(data, index=False, compression="gzip")  # same data, other bytes
        return found

    monkeypatch.setattr(release, "deliverable", verify_then_swap)
    with pytest.raises(DisclosureRefused) as info:
        _deliver(approved)
    assert info.value.problems[0].code == "candidate_changed"
    _nothing_left(approved)


def test_a_candidate_without_its_policy_file_is_refused_cleanly(small, tmp_path) -> None:
    from lsssdc import policy as P
    from lsssdc.release import pipeline

    store = make_keystore(tmp_path / "keys" / "k.json")
    with open_ledger(tmp_path / "audit" / "l.sqlite", store) as book:
        cand = pipeline.prepare(  # prepared without a policy file to copy in
            P.load_policy(policy_path(DAGLIG[0])),
            P.load_order(order_path(DAGLIG[1])),
            small.register,
            keystore=store,
            work_dir=tmp_path / "w",
            inputs=[],
            ledger=book,
            actor="ordering-service",
        ).candidate
        assert not (cand.path / "policy.yaml").exists()
        release.approve(cand.path, "reviewer-a", store, book)
        with pytest.raises(InputDataError) as info:
            release.deliver(cand.path, tmp_path / "out" / "x", store, book, "ordering-service")
        assert info.value.problems[0].code == "bad_candidate"
        assert not (tmp_path / "out" / "x").exists() and [e.kind for e in book.entries()][-1] == "approve"


@pytest.mark.slow
def test_frictionless_validates_the_package(linked) -> None:
    """The package passes the Frictionless Data validator (CSV and Parquet resources)."""
    frictionless = pytest.importorskip("frictionless", reason="the frictionless validator is not installed")
    report = frictionless.validate(str(linked["package"] / "datapackage.json"))
    assert report.valid, report.flatten(["type", "note"])[:10]


def test_a_person_index_swapped_after_the_checks_is_not_recorded(approved, monkeypatch) -> None:
    """The persons recorded on the ledger are those of the sealed index, not of a swapped file."""
    real = release.deliverable

    def verify_then_swap(candidate, *args):
        found = real(candidate, *args)
        (candidate.path / "person_index.bin").write_bytes(b"\0" * 32)
        return found

    monkeypatch.setattr(release, "deliverable", verify_then_swap)
    with pytest.raises(DisclosureRefused) as info:
        _deliver(approved)
    assert info.value.problems[0].code == "candidate_changed"
    _nothing_left(approved)


@pytest.mark.parametrize("protection", ["suppression", "cell_key"])
def test_a_table_order_prepared_twice_gives_byte_identical_candidates_and_packages(
    small, tmp_path, monkeypatch, protection
) -> None:
    """The same for tables (suppression, the attacker's audit, the reviewer's full audit): the
    candidate's content hash is what a reviewer signs, so nothing run-dependent (such as how
    long the audit took) may be in it. The second run is on a clock a thousand times slower."""
    import time

    keys = tmp_path / "keys" / "k.json"
    make_keystore(keys)
    pol, order = policy_path("public-tables"), order_path("kommun-tables-2023")
    if protection == "cell_key":  # the shipped policy with perturbed counts instead
        doc = yaml.safe_load(pol.read_text(encoding="utf-8"))
        doc["tables"]["protection"], doc["tables"]["magnitudes"] = "cell_key", []
        pol = tmp_path / "public-tables-cell-key.yaml"
        pol.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
        order_doc = yaml.safe_load(order.read_text(encoding="utf-8"))
        order_doc["policy"] = doc["name"]
        order = tmp_path / "order.yaml"
        order.write_text(yaml.safe_dump(order_doc, allow_unicode=True), encoding="utf-8")

    def run(name: str) -> tuple[Path, Path | None]:
        # the cell key method's audit decides per key store: a refusal must repeat as exactly
        store = open_store(keys)
        with open_ledger(tmp_path / name / "ledger.sqlite", store) as book:
            cand = prepare_order(small, pol, order, store, tmp_path / name / "work", book)
            if cand.verdict != "releasable":
                return cand.path, None
            release.approve(cand.path, "reviewer-a", store, book)
            out = tmp_path / name / "delivery" / cand.path.name
            return cand.path, Path(
                release.deliver(cand.path, out, store, book, "ordering-service")["package"]
            )

    first = run("one")
    real = time.perf_counter
    monkeypatch.setattr(time, "perf_counter", lambda: real() * 1000.0)
    second = run("two")
    monkeypatch.undo()
    assert (first[0] / "report.json").is_file()
    _same_bytes(first[0], second[0], skip=DECISIONS)
    if protection == "suppression":
        assert first[1] is not None  # the shipped order is releasable with the shipped policy
    if first[1] is not None:
        assert second[1] is not None and (first[1] / "audit.json").is_file()
        _same_bytes(first[1], second[1], skip=(HEAD,))
