"""prepare: from an order and a policy to a sealed candidate with its reviewer report.

Every step is a function from a frame (plus the policy) to a frame and a small record; this
module calls them in the order of ARCHITECTURE.md, collects the records into the report, and
lets one gate decide. A candidate that fails the gate is still written (report only, no data)
so the reviewer sees why; every prepare, refused or not, appends one ledger entry.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pandas as pd

import lsssdc
from lsssdc import faults, linkage, shipped
from lsssdc.disclosure import table_output
from lsssdc.disclosure.tables import cellkey
from lsssdc.errors import DisclosureRefused, KeyStoreError, LedgerIntegrityError, LsssdcError
from lsssdc.identity import actors
from lsssdc.identity import pseudonym as pseudo
from lsssdc.ledger import kinds
from lsssdc.ledger import person_index as pindex
from lsssdc.policy import Order, Policy, check_order
from lsssdc.release import candidate as cand
from lsssdc.release import history, report_facts, table_history, table_orders
from lsssdc.release import report as rep
from lsssdc.release.coarsening import coarsen_extract
from lsssdc.release.extract import select
from lsssdc.release.gate import Check, gate
from lsssdc.release.person_control import control, membership_check, person_column


@dataclass
class Input:
    """A file that went into a release: name, SHA-256, rows (for the report and the ledger)."""

    name: str
    hash: str
    rows: int


def _plain(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


@dataclass
class _Branch:
    """What a branch of :func:`prepare` has produced so far: kept when a later step refuses, so
    the report shows what was measured up to the refusal."""

    report: dict[str, Any]
    checks: list[Check]
    data: pd.DataFrame | None = None
    person_idx: Any = None
    protected: Any = None
    table_report: Any = None
    kept: Any = None


def _tables_branch(
    out: _Branch,
    policy: Policy,
    order: Order,
    register: pd.DataFrame,
    keystore: Any,
    ledger: Any,
    work_dir: str | Path,
    say: Callable[[str], None],
) -> None:
    """A table order: build, protect and audit its tables with every earlier release."""
    report, checks = out.report, out.checks
    say(f"building, suppressing and auditing {len(order.tables)} table(s)")
    out.protected, out.table_report, tsum, out.kept = table_orders.protect_tables(
        policy,
        order,
        register,
        ledger=ledger,
        work_dir=work_dir,
        record_secret=keystore.derive_key(cellkey.KEY_LABEL) if table_orders.uses_cell_key(policy) else None,
    )
    report["tables"] = tsum["tables"]
    report["table_audit"] = tsum["audit"]
    report["table_history"] = tsum["history"]
    if "cell_key" in tsum:
        report["cell_key"] = tsum["cell_key"]
    audit_summary = tsum["audit"].get("summary", {})
    checks.append(
        Check(
            "table_audit",
            out.table_report.passed,
            "the attacker's linear programmes prove every hidden cell's interval wide enough"
            if out.table_report.passed
            else f"the attacker can narrow {audit_summary.get('failed', '?')} hidden cell(s) too much",
            audit_summary.get("failed"),
            0,
        )
    )
    checks.append(Check("identifiers", True, "tables hold counts only", 0, 0, []))


def _microdata_branch(
    out: _Branch,
    policy: Policy,
    order: Order,
    register: pd.DataFrame,
    keystore: Any,
    ledger: Any,
    work_dir: str | Path,
    registers: dict[str, pd.DataFrame] | None,
    changes: pd.DataFrame | None,
    population: pd.DataFrame | None,
    say: Callable[[str], None],
) -> None:
    """A research extract: select, link, pseudonymise, coarsen, protect against the intruder
    with the project's history, and check it with the tables delivered for its years."""
    report, checks = out.report, out.checks
    extract, selection = select(register, order)
    report["selection"] = selection.to_dict()
    say(f"selected {selection.persons:,} persons, {selection.rows:,} rows")
    if order.linkages:
        extract, link_report = linkage.link(extract, registers or {}, order, policy, changes)
        report["linkage"] = link_report.to_dict(threshold=policy.thresholds.table_frequency)
        say(f"linked with {', '.join(sorted(registers or {}))}")
    out.person_idx = pindex.build(extract["personnummer"], keystore.audit_index_key())
    key = keystore.pseudonym_key(order.project_id, create=True)
    person = person_column(policy)
    extract, pseudo_report = pseudo.pseudonymise_frame(extract, "personnummer", key, out_column=person)

    report["pseudonymisation"] = pseudo_report.to_dict()
    say("pseudonymised; coarsening")
    coarse, recodings = coarsen_extract(extract, policy)
    report["recodings"] = recodings
    past = (
        history.earlier(ledger, work_dir, order.project_id, person, {*policy.sensitive, *policy.safe})
        if policy.pseudonymisation.output != "lopnummer"
        else history.History()
    )
    report["history"] = past.to_dict() | {"ledger": ledger is not None}
    joined = (past.profiles, cast(pd.Series, past.persons)) if past.profiles is not None else None
    holds = (
        "this delivery and the project's earlier deliveries on the ledger ("
        + (", ".join(d["order_id"] for d in past.deliveries) or "none so far")
        + ")"
        if ledger is not None
        else "this delivery (no ledger was given, so earlier deliveries were not looked for)"
    )
    say(f"disclosure control on {len(coarse):,} rows ({len(past.deliveries)} earlier deliveries joined)")
    treated, risk_facts, risk_checks = control(coarse, policy, person, joined, holds)
    say(f"{len(treated):,} rows after treatment; writing the candidate")
    report["risk"] = risk_facts
    report["suppression"] = risk_facts.get("suppression") if "after" in risk_facts else None
    report["information_loss"] = report_facts.information_loss(
        coarse, treated, recodings, person, risk_facts.get("quasi_identifiers", [])
    )
    refused_by_treatment = any(not c.ok and c.name in report_facts.TREATMENT_CHECKS for c in risk_checks)
    age = policy.hierarchies.age
    # what would make it releasable: single changes, each measured again by this same gate
    report["risk"]["options"] = (
        report_facts.options(
            coarse,
            risk_facts,
            lambda variant: control(variant, policy, person, joined, holds, detail=False),
            age_bands=(age.cuts, age.open_top) if age is not None else None,
        )
        if refused_by_treatment
        else None
    )
    if policy.pseudonymisation.output == "lopnummer":
        # a running number per person, valid in this delivery only (ranks of the pseudonyms
        # of the persons delivered, so a withheld person leaves no gap)
        treated[person] = pseudo.lopnummer(treated[person]).to_numpy()
    checks += risk_checks
    member_facts, member_checks = membership_check(treated, policy, person, population)
    if member_facts is not None:
        report["risk"]["membership"] = member_facts
    checks += member_checks
    if ledger is not None:
        # the table packages delivered for the same years: the extract must not undo them
        tables_held = table_orders.check_extract(
            order,
            treated,
            register,
            ledger=ledger,
            work_dir=work_dir,
            record_secret=keystore.derive_key(cellkey.KEY_LABEL),
        )
        if tables_held is not None:
            report["tables_held"] = tables_held
            checks.append(
                Check(
                    "published_tables",
                    True,
                    f"the tables delivered for these years ({len(tables_held['tables'])} release(s)) "
                    "stay protected with this extract",
                    tables_held["cells_held"],
                    None,
                )
            )
    leaked = [i for i in policy.identifiers if i in treated.columns]
    checks.append(
        Check(
            "identifiers",
            not leaked,
            ("a direct identifier is still in the data: " + ", ".join(leaked))
            if leaked
            else "direct identifiers removed",
            len(leaked),
            0,
            leaked,
        )
    )
    out.data = treated


def prepare(
    policy: Policy,
    order: Order,
    register: pd.DataFrame,
    *,
    keystore: Any,
    work_dir: str | Path,
    inputs: list[Input],
    registers: dict[str, pd.DataFrame] | None = None,
    changes: pd.DataFrame | None = None,
    ledger: Any = None,
    actor: str = "ordering-service",
    policy_path: str | Path | None = None,
    order_path: str | Path | None = None,
    population: pd.DataFrame | None = None,
    progress: Callable[[str], None] | None = None,
) -> cand.Candidate:
    """Run the release flow for an order (a research extract or tables); write and seal the
    candidate in ``work_dir``.

    ``progress`` hears how far the flow has come (step, persons, rows), for a log or a terminal."""
    say = progress or (lambda _text: None)
    if ledger is not None:
        # a new ledger pins the store's custodians first; the preparer must be vouched for by them
        actors.anchor_new_ledger(ledger, keystore, actor, keystore.get_signing_key(actor, role="preparer"))
        actors.trust(keystore, ledger).require(actor, "preparer")
    report: dict[str, Any] = {
        "version": lsssdc.__version__,
        "order": _plain(order.model_dump(by_alias=True)) | {"hash": order.hash},
        "policy": _plain(policy.model_dump(by_alias=True)) | {"hash": policy.hash},
        "inputs": [i.__dict__ for i in inputs],
    }
    checks: list[Check] = []
    out = _Branch(report, checks)
    try:
        check_order(order, policy)
        if order.tables:
            _tables_branch(out, policy, order, register, keystore, ledger, work_dir, say)
        else:
            _microdata_branch(
                out, policy, order, register, keystore, ledger, work_dir, registers, changes, population, say
            )
    except DisclosureRefused as exc:
        checks.append(Check("disclosure", False, "; ".join(p.message for p in exc.problems)))
    except (KeyStoreError, LedgerIntegrityError):
        raise  # the keys or the ledger failed, not the order: nothing is recorded as a refusal
    except LsssdcError as exc:
        checks.append(Check("input", False, "; ".join(p.render() for p in exc.problems)))
        report["error"] = exc.to_dict()
    data, person_idx, protected, kept = out.data, out.person_idx, out.protected, out.kept
    verdict = gate(checks)
    report["verdict"] = verdict.to_dict()
    report["delivered_variables"] = list(data.columns) if data is not None else []
    report.setdefault(
        "selection",
        {"population_rule": "", "persons": 0, "rows": 0, "register_rows": len(register), "rows_by_year": {}},
    )
    report.setdefault("recodings", [])
    report.setdefault("risk", None)
    report.setdefault("suppression", None)
    report.setdefault("linkage", None)
    report.setdefault("tables", None)
    report.setdefault("information_loss", None)

    directory, tmp = cand.new_attempt(work_dir, order.order_id)
    releasable = verdict.decision == "releasable"
    if releasable and protected is not None:
        table_output.write_tables(protected, tmp / "tables", out.table_report, review_dir=tmp)
        if kept is not None:  # reviewer-only, like the full audit: never delivered
            kept.save(tmp / table_history.WITNESSES)
    if releasable and data is not None:
        data.to_parquet(tmp / "data.parquet", index=False)
        assert person_idx is not None  # built before the data it indexes
        (tmp / "person_index.bin").write_bytes(person_idx.tags)
    kind = "tables" if order.tables else "microdata"
    meta = {
        "kind": kind,
        "order_id": order.order_id,
        "project_id": order.project_id,
        "diarienummer": order.diarienummer,
        "years": sorted(set(order.years)),
        "recodings": report["recodings"],
        "suppressed_share": {
            k: v["share"] for k, v in (report["suppression"] or {}).get("per_variable", {}).items()
        },
        "linkage": report["linkage"] or {},
        "columns": report["delivered_variables"],
        "formats": list(policy.delivery.formats),
        "person_index": person_idx.summary() if (releasable and person_idx) else None,
    }
    cand.write_json(tmp / "metadata.json", meta)
    cand.write_json(tmp / "report.json", report)
    (tmp / "report.html").write_text(rep.render_html(report), encoding="utf-8")
    if releasable and data is not None:
        # the short report that may travel with the data: no risk detail
        (tmp / rep.SUMMARY_FILE).write_text(rep.render_summary(report), encoding="utf-8")
    if policy_path:
        shutil.copyfile(shipped.resolve(policy_path, "policy"), tmp / "policy.yaml")
    if order_path:
        shutil.copyfile(shipped.resolve(order_path, "order"), tmp / "order.yaml")
    sealed = cand.seal(
        tmp,
        {
            "kind": kind,
            "order_id": order.order_id,
            "project_id": order.project_id,
            "verdict": verdict.decision,
            "policy_hash": policy.hash,
            "order_hash": order.hash,
            "inputs": [i.__dict__ for i in inputs],
        },
    )
    # the entry is written while the candidate is still in its temporary folder: if the ledger
    # refuses, no candidate appears (its content hash does not depend on the folder's name)
    cand.restrict(tmp)
    faults.point("prepare.sealed")
    if ledger is not None:
        payload: kinds.PreparePayload = {
            "order_id": order.order_id,
            "project_id": order.project_id,
            "diarienummer": order.diarienummer,
            "policy": policy.name,
            "policy_hash": policy.hash,
            "order_hash": order.hash,
            "inputs": [i.__dict__ for i in inputs],
            "content_hash": sealed.content_hash,
            "data_hash": cand.data_hash(sealed.manifest["files"]),
            "verdict": verdict.decision,
            "reasons": verdict.reasons,
            "risk": _risk_payload(report["risk"]),
            "identifiers": list(policy.identifiers),
            "reviewers_required": policy.delivery.reviewers,
            "columns": [str(col) for col in data.columns] if releasable and data is not None else [],
        }
        try:
            ledger.append(
                "prepare" if releasable else "refuse",
                actor,
                dict(payload),
                signer=keystore.get_signing_key(actor, role="preparer"),
            )
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    faults.point("prepare.entry")
    tmp.rename(directory)
    faults.point("prepare.done")
    return cand.load(directory)


def _risk_payload(risk: dict[str, Any] | None) -> dict[str, Any] | None:
    """The risk figures the ledger keeps: k, records below k, uniques, expected re-identifications."""
    if not risk:
        return None
    keep = ("k", "records_below_k", "sample_uniques", "expected_reidentifications")
    return {when: {f: risk[when].get(f) for f in keep} for when in ("before", "after") if risk.get(when)}
