"""The insider with write access to the work area: names as paths, forged candidates, deleted
decisions, one person in two roles, a foreign ledger. Every attack must be refused or detected,
and nothing it targets may change."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
import yaml

from lsssdc import release
from lsssdc.errors import LsssdcError
from lsssdc.release.candidate import APPROVAL, MANIFEST, REJECTION
from tests.release.conftest import (
    CUSTODIAN,
    DAGLIG,
    MORTALITY,
    copy_ledger,
    make_keystore,
    open_ledger,
    order_path,
    policy_path,
    prepare_order,
)

SIGNERS = ("ordering-service", "reviewer-a", "reviewer-b")


def _tree(root: Path) -> dict[str, str]:
    """Every file under root with its SHA-256: what an attack must not have changed."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _ledger_kinds(path: Path) -> list[str]:
    """The entry kinds, read straight from the SQLite file (not through the ledger code)."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = {r[0] for r in con.execute("select name from sqlite_master where type='table'")}
        table = "entries" if "entries" in tables else sorted(tables)[0]
        cols = [r[1] for r in con.execute(f"pragma table_info({table})")]
        rows = con.execute(f"select * from {table} order by 1").fetchall()
    finally:
        con.close()
    return [dict(zip(cols, r, strict=True))["kind"] for r in rows]


def _twelve_digit_values(folder: Path) -> int:
    """How many 10- or 12-digit personnummer shapes any delivered file holds (bytes scan)."""
    pattern = re.compile(rb"(?<![0-9])(?:[0-9]{6}|[0-9]{8})[-+]?[0-9]{4}(?![0-9])")
    hits = 0
    for p in folder.rglob("*"):
        if p.is_file() and p.suffix in (".csv", ".json", ".md", ".yaml"):
            hits += len(pattern.findall(p.read_bytes()))
    return hits


def _hostile_order(tmp_path: Path, **changes) -> Path:
    data = yaml.safe_load(order_path(DAGLIG[1]).read_text(encoding="utf-8"))
    data.update(changes)
    path = tmp_path / "hostile-order.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "order_id",
    [
        "../keys",
        "../ledger",
        ".",
        "..",
        "",
        "/tmp/lsssdc-abs",
        "a/b",
        ".hidden",
        "x\\y",
        "a\nb",
        "ok/../../keys",
    ],
)
def test_an_order_id_never_becomes_a_path(site, order_id: str) -> None:
    root = site["root"]
    before = {d: _tree(root / d) for d in ("keys", "ledger", "work")}
    hostile = _hostile_order(root, order_id=order_id)
    with pytest.raises(LsssdcError) as info:
        prepare_order(
            site["small"], policy_path(DAGLIG[0]), hostile, site["store"], root / "work", site["ledger"]
        )
    assert info.value.exit_code == 2
    assert "order_id" in str(info.value)
    for d, files in before.items():
        assert _tree(root / d) == files, f"{d} changed"
    assert not Path("/tmp/lsssdc-abs").exists()


def test_a_table_name_never_becomes_a_path(site) -> None:
    from lsssdc import policy as P

    data = yaml.safe_load(order_path("kommun-tables-2023").read_text(encoding="utf-8"))
    data["tables"][0]["name"] = "../keys/ks"
    path = site["root"] / "t.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(LsssdcError) as info:
        P.load_order(path)
    assert info.value.exit_code == 2 and "name" in str(info.value)


def test_a_symlinked_order_folder_out_of_the_work_area_is_refused(site) -> None:
    root = site["root"]
    outside = root / "outside"
    outside.mkdir()
    (root / "work" / "B2026-0099").symlink_to(outside, target_is_directory=True)
    hostile = _hostile_order(root, order_id="B2026-0099")
    with pytest.raises(LsssdcError):
        prepare_order(
            site["small"], policy_path(DAGLIG[0]), hostile, site["store"], root / "work", site["ledger"]
        )
    assert not any(outside.iterdir())


def test_a_new_prepare_never_touches_an_earlier_attempt(site) -> None:
    first = site["cand"]
    release.approve(first, "reviewer-a", site["store"], site["ledger"])
    before = _tree(first)
    again = prepare_order(
        site["small"],
        policy_path(DAGLIG[0]),
        order_path(DAGLIG[1]),
        site["store"],
        site["root"] / "work",
        site["ledger"],
    )
    assert again.path != first and _tree(first) == before


def _reseal(path: Path) -> None:
    """A careful forger's reseal: recompute every file hash and the content hash's inputs."""
    from lsssdc.release.candidate import content_hash

    manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    files = {rel: hashlib.sha256((path / rel).read_bytes()).hexdigest() for rel in manifest["files"]}
    meta = {k: v for k, v in manifest.items() if k not in ("files", "content_hash")}
    manifest["files"] = files
    manifest["content_hash"] = content_hash(files, meta)
    (path / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")


def _deliver_refused(site, cand: Path, to_name: str = "pkg") -> None:
    to = site["root"] / "out" / to_name
    kinds = _ledger_kinds(site["root"] / "ledger" / "ledger.sqlite")
    with pytest.raises(LsssdcError) as info:
        release.deliver(cand, to, site["store"], site["ledger"], "ordering-service")
    assert info.value.exit_code in (1, 2)
    assert not to.exists()
    assert _ledger_kinds(site["root"] / "ledger" / "ledger.sqlite") == kinds


def test_a_personnummer_column_added_and_resealed_is_never_delivered(site) -> None:
    cand = site["cand"]
    release.approve(cand, "reviewer-a", site["store"], site["ledger"])
    df = pd.read_parquet(cand / "data.parquet")
    pnr = site["small"].register["personnummer"].astype(str).iloc[: len(df)].to_numpy()
    df["personnummer"] = pnr[: len(df)] if len(pnr) >= len(df) else "199001011234"
    df.to_parquet(cand / "data.parquet", index=False)
    _reseal(cand)
    _deliver_refused(site, cand)
    with pytest.raises(LsssdcError):
        release.approve(cand, "reviewer-b", site["store"], site["ledger"])
    out = site["root"] / "out"
    assert not out.exists() or _twelve_digit_values(out) == 0


def test_a_flipped_verdict_is_neither_approved_nor_delivered(site, small) -> None:
    refused = prepare_order(
        small,
        policy_path(MORTALITY[0]),
        order_path(MORTALITY[1]),
        site["store"],
        site["root"] / "work",
        site["ledger"],
    )
    assert refused.verdict == "refused"
    manifest = json.loads((refused.path / MANIFEST).read_text(encoding="utf-8"))
    manifest["verdict"] = "releasable"
    (refused.path / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    shutil.copyfile(site["cand"] / "data.parquet", refused.path / "data.parquet")
    report = json.loads((refused.path / "report.json").read_text(encoding="utf-8"))
    report["verdict"]["decision"] = "releasable"
    (refused.path / "report.json").write_text(json.dumps(report), encoding="utf-8")
    manifest["files"]["data.parquet"] = ""
    (refused.path / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    _reseal(refused.path)
    with pytest.raises(LsssdcError):
        release.approve(refused.path, "reviewer-a", site["store"], site["ledger"])
    _deliver_refused(site, refused.path)


def test_a_deleted_rejection_does_not_free_the_candidate(site) -> None:
    cand = site["cand"]
    release.approve(cand, "reviewer-a", site["store"], site["ledger"])
    release.reject(cand, "reviewer-b", "purpose too broad", site["store"], site["ledger"])
    (cand / REJECTION).unlink()
    _deliver_refused(site, cand)


def test_a_rejection_is_final_for_its_content_even_when_prepared_again(site) -> None:
    release.reject(site["cand"], "reviewer-a", "no", site["store"], site["ledger"])
    again = prepare_order(
        site["small"],
        policy_path(DAGLIG[0]),
        order_path(DAGLIG[1]),
        site["store"],
        site["root"] / "work",
        site["ledger"],
    )
    with pytest.raises(LsssdcError) as info:
        release.approve(again.path, "reviewer-b", site["store"], site["ledger"])
    assert "reject" in str(info.value)
    _deliver_refused(site, again.path)


def test_the_preparer_cannot_approve_their_own_candidate(site) -> None:
    from lsssdc import policy as P
    from lsssdc.release import pipeline

    # an actor with both roles prepares, then tries to approve what they prepared
    own = pipeline.prepare(
        P.load_policy(policy_path(DAGLIG[0])),
        P.load_order(order_path(DAGLIG[1])),
        site["small"].register,
        keystore=site["store"],
        work_dir=site["root"] / "work",
        inputs=[],
        ledger=site["ledger"],
        actor="preparer-reviewer",
    ).candidate
    with pytest.raises(LsssdcError) as info:
        release.approve(own.path, "preparer-reviewer", site["store"], site["ledger"])
    assert "four eyes" in str(info.value)
    _deliver_refused(site, own.path)
    # and an actor without the reviewer role cannot approve at all
    with pytest.raises(LsssdcError) as info:
        release.approve(site["cand"], "ordering-service", site["store"], site["ledger"])
    assert "role" in str(info.value)


def test_one_passphrase_does_not_sign_as_every_actor(site) -> None:
    from lsssdc.identity.keystore import KeyStore
    from tests.release.conftest import PASSPHRASE

    store = KeyStore.open(site["store"].path, PASSPHRASE)  # the store's passphrase, no actor secret
    with pytest.raises(LsssdcError):
        release.approve(site["cand"], "reviewer-a", store, site["ledger"])
    with pytest.raises(LsssdcError):
        store.unlock("reviewer-a", PASSPHRASE)


def test_an_approval_replayed_from_another_candidate_does_not_count(site) -> None:
    release.approve(site["cand"], "reviewer-a", site["store"], site["ledger"])
    other = prepare_order(
        site["small"],
        policy_path(DAGLIG[0]),
        order_path(DAGLIG[1]),
        site["store"],
        site["root"] / "w2",
        site["ledger"],
    )
    shutil.copyfile(site["cand"] / APPROVAL, other.path / APPROVAL)
    if (
        other.content_hash
        != json.loads((site["cand"] / MANIFEST).read_text(encoding="utf-8"))["content_hash"]
    ):
        _deliver_refused(site, other.path)


@pytest.mark.parametrize("which", ["empty", "foreign"])
def test_deliver_against_an_empty_or_foreign_ledger_is_refused(site, which: str) -> None:
    release.approve(site["cand"], "reviewer-a", site["store"], site["ledger"])
    root = site["root"]
    other_store = make_keystore(root / "k2" / "k.json", SIGNERS) if which == "foreign" else site["store"]
    with open_ledger(root / "l2" / "ledger.sqlite", other_store) as other:
        if which == "foreign":  # a ledger that approves the same bytes with keys of its own
            other.append(
                "prepare",
                "ordering-service",
                {"content_hash": "x"},
                signer=other_store.get_signing_key("ordering-service"),
            )
        with pytest.raises(LsssdcError):
            release.deliver(site["cand"], root / "out" / "pkg", site["store"], other, "ordering-service")
    assert not (root / "out" / "pkg").exists()


def test_a_symlinked_key_store_is_refused_not_forked(site, tmp_path) -> None:
    from lsssdc.identity.keystore import KeyStore
    from tests.release.conftest import PASSPHRASE

    real = site["store"].path
    link = tmp_path / "link-keys" / "k.json"
    link.parent.mkdir()
    link.symlink_to(real)
    before = hashlib.sha256(real.read_bytes()).hexdigest()
    with pytest.raises(LsssdcError) as info:
        KeyStore.open(link, PASSPHRASE).add_project("new-project")
    assert info.value.exit_code == 2 and "symbolic link" in str(info.value)
    assert link.is_symlink() and hashlib.sha256(real.read_bytes()).hexdigest() == before


def test_a_key_store_is_never_written_next_to_data(site) -> None:
    store = site["store"]
    (store.path.parent / "extract.csv").write_text("a\n1\n", encoding="utf-8")
    before = store.path.read_bytes()
    with pytest.raises(LsssdcError):
        store.add_project("another-project")
    assert store.path.read_bytes() == before


@pytest.mark.parametrize("field", ["purpose", "diarienummer"])
def test_a_personnummer_typed_into_free_text_is_refused(site, field: str) -> None:
    from lsssdc import policy as P

    path = _hostile_order(site["root"], **{field: "Gäller 19121212-1212 och andra"})
    with pytest.raises(LsssdcError) as info:
        P.load_order(path)
    assert info.value.exit_code == 2 and field in str(info.value)
    assert "1212" not in str(info.value)
    with pytest.raises(LsssdcError):
        release.reject(site["cand"], "reviewer-a", "see 191212121212", site["store"], site["ledger"])
    assert not (site["cand"] / REJECTION).exists()


def test_work_area_files_are_private(site) -> None:
    import stat

    for p in [site["cand"], *site["cand"].rglob("*")]:
        mode = stat.S_IMODE(p.stat().st_mode)
        assert mode & 0o077 == 0, f"{p} is {oct(mode)}"


def test_an_approval_by_an_actor_without_the_reviewer_role_does_not_count(site) -> None:
    """A custodian signs an approve entry through the library (not the CLI): deliver ignores it."""
    c = json.loads((site["cand"] / MANIFEST).read_text(encoding="utf-8"))
    site["store"].add_signer("keyholder", "a custodian's own secret", ("custodian",), by=CUSTODIAN)
    key = site["store"].get_signing_key("keyholder")
    site["ledger"].close()
    site["ledger"] = open_ledger(site["root"] / "ledger" / "ledger.sqlite", site["store"])  # knows keyholder
    site["ledger"].append(
        "approve", "keyholder", {"order_id": c["order_id"], "content_hash": c["content_hash"]}, signer=key
    )
    assert site["ledger"].verify().ok  # a well-signed entry: only its actor's role makes it not count
    _deliver_refused(site, site["cand"])


def test_a_rejection_is_of_the_bytes_on_disk(site) -> None:
    cand = site["cand"]
    manifest = json.loads((cand / MANIFEST).read_text(encoding="utf-8"))
    real = manifest["content_hash"]
    manifest["content_hash"] = "sha256:" + "0" * 64  # reject something else, then restore
    (cand / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(LsssdcError):
        release.reject(cand, "reviewer-b", "purpose too broad", site["store"], site["ledger"])
    assert real != manifest["content_hash"]


@pytest.mark.parametrize(
    "value", ["19121212 1212", "19121212\u20131212", "1912 1212 1212", "191212-1212", "19121212\u200b1212"]
)
def test_the_last_screen_finds_personnummer_as_people_write_them(value: str) -> None:
    from lsssdc.release.package import screen

    with pytest.raises(LsssdcError):
        screen(pd.DataFrame({"note": ["x", value]}), ["personnummer"], "data")
    with pytest.raises(LsssdcError):
        screen(pd.DataFrame({value: [1, 2]}), ["personnummer"], "data")


@pytest.mark.parametrize("name", ["Personnummer ", " PNR", "samordningsnummer"])
def test_the_last_screen_finds_identifier_columns_by_any_spelling(name: str) -> None:
    from lsssdc.release.package import screen

    with pytest.raises(LsssdcError):
        screen(pd.DataFrame({name: ["a"]}), ["personnummer"], "data")
    with pytest.raises(LsssdcError):
        screen(pd.DataFrame({"t": pd.to_timedelta([1], unit="s")}), ["personnummer"], "data")


@pytest.mark.parametrize("text", ["Anna 19121212 1212", "se 19121212\u20131212", "1912\u200b1212-1212"])
def test_free_text_identifiers_in_any_spelling_are_refused(site, text: str) -> None:
    from lsssdc import policy as P

    data = yaml.safe_load(order_path(DAGLIG[1]).read_text(encoding="utf-8"))
    data["recipient"]["name"] = text
    path = site["root"] / "o.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(LsssdcError) as info:
        P.load_order(path)
    assert "recipient.name" in str(info.value) and "1212" not in str(info.value)
    with pytest.raises(LsssdcError):
        release.reject(site["cand"], "reviewer-a", text, site["store"], site["ledger"])


@pytest.mark.parametrize("name", ["ledger-head", "audit", "README", "datapackage", "t19121212_1212"])
def test_a_table_name_cannot_take_a_reserved_file_or_hold_an_identifier(site, name: str) -> None:
    from lsssdc import policy as P

    data = yaml.safe_load(order_path("kommun-tables-2023").read_text(encoding="utf-8"))
    data["tables"][0]["name"] = name
    path = site["root"] / "t.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(LsssdcError):
        P.load_order(path)


def test_a_hard_linked_key_store_is_refused(site, tmp_path) -> None:
    import os

    from lsssdc.identity.keystore import KeyStore
    from tests.release.conftest import PASSPHRASE

    other = tmp_path / "k2"
    other.mkdir()
    os.link(site["store"].path, other / "k.json")
    with pytest.raises(LsssdcError) as info:
        KeyStore.open(other / "k.json", PASSPHRASE)
    assert "hard link" in str(info.value)


def test_the_passphrase_alone_cannot_add_a_reviewer_once_a_custodian_exists(
    tmp_path, monkeypatch, capsys
) -> None:
    from lsssdc.cli import run
    from lsssdc.identity.keystore import KeyStore
    from tests.release.conftest import PASSPHRASE, fast_kdf

    keys = tmp_path / "keys" / "k.json"
    KeyStore.create(keys, PASSPHRASE, kdf=fast_kdf())
    monkeypatch.setenv("LSSSDC_PASSPHRASE", PASSPHRASE)
    add = ["keys", "add-signer", "--key-store", str(keys)]
    monkeypatch.setenv("LSSSDC_ACTOR_SECRET", "the custodian's own secret")
    assert run([*add, "--name", "key-custodian", "--role", "custodian"]) == 0
    monkeypatch.setenv("LSSSDC_ACTOR_SECRET", "mallory's sock puppet secret")
    assert run([*add, "--name", "reviewer-q", "--role", "reviewer"]) == 2  # no custodian
    monkeypatch.setenv("LSSSDC_CUSTODIAN_SECRET", "a guess at the custodian's secret")
    assert run([*add, "--name", "reviewer-q", "--role", "reviewer", "--by", "key-custodian"]) == 2
    monkeypatch.setenv("LSSSDC_CUSTODIAN_SECRET", "mallory's sock puppet secret")
    assert run([*add, "--name", "reviewer-q", "--role", "reviewer", "--by", "reviewer-q"]) == 2
    assert KeyStore.open(keys, PASSPHRASE).signers() == ["key-custodian"]
    monkeypatch.setenv("LSSSDC_CUSTODIAN_SECRET", "the custodian's own secret")
    assert run([*add, "--name", "reviewer-a", "--role", "reviewer", "--by", "key-custodian"]) == 0
    info = KeyStore.open(keys, PASSPHRASE).info()["signers"]
    assert info["reviewer-a"]["added_by"] == "key-custodian"


def test_a_rejection_of_the_order_is_shown_to_the_next_reviewer(site) -> None:
    release.reject(site["cand"], "reviewer-a", "purpose too broad", site["store"], site["ledger"])
    data = yaml.safe_load(order_path(DAGLIG[1]).read_text(encoding="utf-8"))
    data["variables"] = [v for v in data["variables"] if v != "personlig_assistans"] or data["variables"]
    path = site["root"] / "again.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    again = prepare_order(
        site["small"], policy_path(DAGLIG[0]), path, site["store"], site["root"] / "work", site["ledger"]
    )
    if again.verdict == "releasable":
        rec = release.approve(again.path, "reviewer-b", site["store"], site["ledger"])
        assert rec["earlier_rejections"][0]["reason"] == "purpose too broad"


def test_candidates_and_packages_are_never_written_in_the_key_stores_folder(site, monkeypatch) -> None:
    from lsssdc.cli import run
    from tests.release.conftest import PASSPHRASE

    monkeypatch.setenv("LSSSDC_PASSPHRASE", PASSPHRASE)
    release.approve(site["cand"], "reviewer-a", site["store"], site["ledger"])
    keys = site["store"].path
    ledger = str(site["root"] / "ledger" / "ledger.sqlite")
    code = run(
        [
            "deliver",
            str(site["cand"]),
            "--to",
            str(keys.parent / "pkg"),
            "--key-store",
            str(keys),
            "--ledger",
            ledger,
        ]
    )
    assert code == 2 and not (keys.parent / "pkg").exists()


@pytest.mark.parametrize("change", ["purpose", "order_id"])
def test_a_rejection_holds_for_the_same_data_under_another_order_text(site, change: str) -> None:
    """Rejected, then the order's purpose (or its id) edited and prepared again: the data is the
    same bytes, so the rejection still holds although the candidate's content hash is new."""
    release.reject(site["cand"], "reviewer-a", "not this data", site["store"], site["ledger"])
    edit = {"purpose": "Something else entirely."} if change == "purpose" else {"order_id": "B2026-0777"}
    again = prepare_order(
        site["small"],
        policy_path(DAGLIG[0]),
        _hostile_order(site["root"], **edit),
        site["store"],
        site["root"] / "work",
        site["ledger"],
    )
    assert again.verdict == "releasable"
    first = json.loads((site["cand"] / MANIFEST).read_text(encoding="utf-8"))
    assert again.content_hash != first["content_hash"]
    assert again.manifest["files"]["data.parquet"] == first["files"]["data.parquet"]
    with pytest.raises(LsssdcError) as info:
        release.approve(again.path, "reviewer-b", site["store"], site["ledger"])
    assert "rejected a candidate with exactly this data" in str(info.value)
    _deliver_refused(site, again.path)


def test_the_number_of_reviewers_comes_from_the_sealed_policy_not_the_preparers_word(site) -> None:
    """A preparer's tool writes "1 reviewer" into its signed entry while the policy asks for 2:
    one approval does not make the candidate deliverable."""
    from lsssdc import policy as P
    from lsssdc.release import pipeline
    from tests.release.conftest import frame_input

    text = policy_path(DAGLIG[0]).read_text(encoding="utf-8") + "\n"
    text = text.replace("delivery:\n", "delivery:\n  reviewers: 2\n", 1)
    strict = site["root"] / "strict" / "research-standard.yaml"
    strict.parent.mkdir()
    strict.write_text(text, encoding="utf-8")
    pol, order = P.load_policy(strict), P.load_order(order_path(DAGLIG[1]))
    assert pol.delivery.reviewers == 2
    object.__setattr__(pol.delivery, "reviewers", 1)  # what the preparer's tool claims
    cand = pipeline.prepare(
        pol,
        order,
        site["small"].register,
        keystore=site["store"],
        work_dir=site["root"] / "work",
        inputs=[frame_input("register", site["small"].register)],
        ledger=site["ledger"],
        actor="ordering-service",
        policy_path=strict,
        order_path=order_path(DAGLIG[1]),
    ).candidate
    assert cand.verdict == "releasable"
    release.approve(cand.path, "reviewer-a", site["store"], site["ledger"])
    _deliver_refused(site, cand.path)
    release.approve(cand.path, "reviewer-b", site["store"], site["ledger"])
    done = release.deliver(
        cand.path, site["root"] / "out" / "ok", site["store"], site["ledger"], "ordering-service"
    )
    assert Path(done["package"]).is_dir()


def test_a_delivery_against_a_shadow_copy_of_the_ledger_is_refused(site, tmp_path) -> None:
    """The insider copies the ledger after the approval, lets the real one move on, and delivers
    against the copy so that the real ledger never shows the delivery: the copy does not extend
    the head the real ledger exported since, so the delivery is refused."""
    heads = tmp_path / "heads"
    release.approve(site["cand"], "reviewer-a", site["store"], site["ledger"], heads)
    real = site["root"] / "ledger" / "ledger.sqlite"
    site["ledger"].close()
    shadow_path = copy_ledger(real, tmp_path / "shadow")
    with open_ledger(real, site["store"]) as book:  # the real ledger moves on, with its head exported
        release.approve(site["cand"], "reviewer-b", site["store"], book, heads)
    with open_ledger(shadow_path, site["store"]) as shadow:
        before = len(shadow)
        with pytest.raises(LsssdcError) as info:
            release.deliver(site["cand"], tmp_path / "pkg", site["store"], shadow, "ordering-service", heads)
        assert len(shadow) == before
    assert not (tmp_path / "pkg").exists()
    assert "checkpoint" in str(info.value) or "does not verify" in str(info.value)
    # against the real ledger the same delivery goes through
    with open_ledger(real, site["store"]) as book:
        done = release.deliver(site["cand"], tmp_path / "pkg", site["store"], book, "ordering-service", heads)
    assert Path(done["package"]).is_dir()
