"""One record of a prepare, many renderings: what the reviewer reads (report.json), what the
package describes (metadata.json), what the seal binds, what the ledger keeps and what the
command line prints must all say the same of one release, for a releasable extract, a refused
one and a table order."""

from __future__ import annotations

import json
import typing
from pathlib import Path

import pytest

from lsssdc import policy as P
from lsssdc.errors import PolicyError
from lsssdc.ledger import kinds
from lsssdc.ledger.chain import Ledger
from lsssdc.release import candidate as cand
from lsssdc.release import pipeline
from lsssdc.release.plan import make_plan
from lsssdc.release.release_report import ReleaseReport
from tests.release.conftest import frame_input, order_path, policy_path


def _prepare(small, keystore, ledger: Ledger, work: Path, policy: str, order: str) -> pipeline.Prepared:
    pol, ordr = P.load_policy(policy_path(policy)), P.load_order(order_path(order))
    return pipeline.prepare(
        pol,
        ordr,
        small.register,
        keystore=keystore,
        work_dir=work,
        inputs=[frame_input("register:lss-synthetic", small.register)],
        registers={"deaths": small.deaths} if ordr.linkages else {},
        ledger=ledger,
    )


def _renderings_agree(prepared: pipeline.Prepared, ledger: Ledger) -> dict:
    c, r = prepared.candidate, prepared.report
    on_disk = json.loads((c.path / "report.json").read_text(encoding="utf-8"))
    assert on_disk == json.loads(json.dumps(r.to_json(), default=str))
    assert json.loads((c.path / "metadata.json").read_text(encoding="utf-8")) == json.loads(
        json.dumps(r.metadata())
    )
    for key, value in r.seal_facts().items():
        assert c.manifest[key] == json.loads(json.dumps(value)), key
    entry = list(ledger.entries())[-1]
    assert entry.kind == ("prepare" if r.releasable else "refuse")
    payload = json.loads(json.dumps(r.ledger_payload(c.content_hash, cand.data_hash(c.manifest["files"]))))
    assert entry.payload == payload
    # the payload is the typed one the ledger's readers are checked against, key for key
    assert set(payload) == set(typing.get_type_hints(kinds.PreparePayload))
    summary = prepared.summary()
    assert summary["verdict"] == c.verdict == on_disk["verdict"]["decision"] == entry.payload["verdict"]
    assert summary["reasons"] == on_disk["verdict"]["reasons"] == entry.payload["reasons"]
    assert summary["content_hash"] == c.content_hash == entry.payload["content_hash"]
    return on_disk


@pytest.mark.parametrize(
    ("policy", "order", "decision"),
    [
        ("research-standard", "daglig-verksamhet-2015-2023", "releasable"),
        ("public-tables", "kommun-tables-2023", "releasable"),
    ],
)
def test_every_rendering_tells_the_same_release(
    small, keystore, ledger, tmp_path, policy, order, decision
) -> None:
    prepared = _prepare(small, keystore, ledger, tmp_path / "work", policy, order)
    on_disk = _renderings_agree(prepared, ledger)
    assert on_disk["verdict"]["decision"] == decision
    r = prepared.report
    if r.kind == "tables":
        assert on_disk["tables"] and "table_audit" in on_disk and on_disk["delivered_variables"] == []
        assert "selection" in on_disk and on_disk["selection"]["persons"] == 0
    else:
        assert on_disk["delivered_variables"] == r.delivered and r.delivered
        assert on_disk["selection"]["persons"] > 0 and on_disk["pseudonymisation"]["persons"] > 0
        assert r.metadata()["person_index"]["persons"] == on_disk["pseudonymisation"]["persons"]


def test_a_refusal_is_rendered_alike_and_delivers_nothing(small, keystore, ledger, tmp_path) -> None:
    # an order the policy does not allow: refused at the plan, recorded, nothing to deliver
    pol = P.load_policy(policy_path("public-tables"))
    ordr = P.load_order(order_path("daglig-verksamhet-2015-2023"))
    with pytest.raises(PolicyError):
        make_plan(pol, ordr)
    prepared = pipeline.prepare(
        pol,
        ordr,
        small.register,
        keystore=keystore,
        work_dir=tmp_path / "work",
        inputs=[frame_input("register:lss-synthetic", small.register)],
        ledger=ledger,
    )
    on_disk = _renderings_agree(prepared, ledger)
    assert on_disk["verdict"]["decision"] == "refused"
    assert [c["name"] for c in on_disk["verdict"]["checks"]] == ["input"]
    assert "error" in on_disk and on_disk["delivered_variables"] == []
    assert prepared.report.metadata()["person_index"] is None
    assert prepared.report.ledger_payload("x", "y")["columns"] == []
    assert not (prepared.candidate.path / "data.parquet").exists()


def test_the_plan_reads_the_policy_once_for_every_step() -> None:
    pol = P.load_policy(policy_path("research-standard"))
    ordr = P.load_order(order_path("daglig-verksamhet-2015-2023"))
    plan = make_plan(pol, ordr)
    assert plan.kind == "microdata" and list(plan.years) == sorted(set(ordr.years))
    assert plan.person == pol.pseudonymisation.column and not plan.lopnummer
    assert plan.history_columns == {*pol.sensitive, *pol.safe}
    running = pol.model_copy(
        update={"pseudonymisation": pol.pseudonymisation.model_copy(update={"output": "lopnummer"})}
    )
    assert make_plan(running, ordr).lopnummer
    tables = make_plan(
        P.load_policy(policy_path("public-tables")), P.load_order(order_path("kommun-tables-2023"))
    )
    assert tables.kind == "tables" and tables.table_rules.frequency.threshold > 0


def test_an_empty_report_is_refused_not_releasable() -> None:
    # nothing checked is never a yes, in every rendering
    pol = P.load_policy(policy_path("research-standard"))
    r = ReleaseReport(P.load_order(order_path("daglig-verksamhet-2015-2023")), pol, [])
    assert r.to_json()["verdict"]["decision"] == "refused" and not r.releasable
    assert r.ledger_payload("c", "d")["verdict"] == "refused"
    assert r.metadata()["person_index"] is None
