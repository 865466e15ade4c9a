"""prepare: from an order and a policy to a sealed candidate with its reviewer report.

Every step is a function from a frame (plus the policy) to a frame and a small record; this
module calls them in the order of ARCHITECTURE.md, collects the records into the report, and
lets one gate decide. A candidate that fails the gate is still written (report only, no data)
so the reviewer sees why; every prepare, refused or not, appends one ledger entry.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pandas as pd

from lsssdc import faults, linkage, shipped
from lsssdc.disclosure import table_output
from lsssdc.disclosure.tables import cellkey
from lsssdc.errors import DisclosureRefused, KeyStoreError, LedgerIntegrityError, LsssdcError
from lsssdc.identity import actors
from lsssdc.identity import pseudonym as pseudo
from lsssdc.ledger import person_index as pindex
from lsssdc.policy import Order, Policy
from lsssdc.release import candidate as cand
from lsssdc.release import history, report_facts, table_history, table_orders
from lsssdc.release import report as rep
from lsssdc.release.coarsening import coarsen_extract
from lsssdc.release.extract import select
from lsssdc.release.gate import Check
from lsssdc.release.person_control import control, membership_check
from lsssdc.release.plan import Plan, make_plan
from lsssdc.release.release_report import HistoryRecord, Input, ReleaseReport, TablesRecord


@dataclass
class Prepared:
    """A prepare's result: the candidate written and sealed, and the report it was rendered from."""

    candidate: cand.Candidate
    report: ReleaseReport

    def summary(self) -> dict[str, Any]:
        """The command line's summary (a rendering of the report)."""
        return self.report.summary(self.candidate.path, self.candidate.content_hash)


@dataclass
class _Context:
    """What every step of one prepare reads: the plan, the register and the other registers,
    the keys, the ledger and the work area, and where progress is told."""

    plan: Plan
    register: pd.DataFrame
    keystore: Any
    ledger: Any
    work_dir: str | Path
    registers: dict[str, pd.DataFrame] | None
    changes: pd.DataFrame | None
    population: pd.DataFrame | None
    say: Callable[[str], None]


@dataclass
class _Products:
    """What a branch of :func:`prepare` has produced besides its report: kept when a later step
    refuses, so the report shows what was measured up to the refusal."""

    data: pd.DataFrame | None = None
    person_idx: pindex.PersonIndex | None = None
    protected: Any = None
    table_report: Any = None
    kept: Any = None


def _tables_branch(ctx: _Context, rep_: ReleaseReport, out: _Products) -> None:
    """A table order: build, protect and audit its tables with every earlier release."""
    plan = ctx.plan
    ctx.say(f"building, suppressing and auditing {len(plan.order.tables)} table(s)")
    out.protected, out.table_report, tsum, out.kept = table_orders.protect_tables(
        plan,
        ctx.register,
        ledger=ctx.ledger,
        work_dir=ctx.work_dir,
        record_secret=ctx.keystore.derive_key(cellkey.KEY_LABEL) if plan.cell_key else None,
    )
    rep_.tables = TablesRecord(tsum["tables"], tsum["audit"], tsum["history"], tsum.get("cell_key"))
    audit_summary = tsum["audit"].get("summary", {})
    rep_.checks.append(
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
    rep_.checks.append(Check("identifiers", True, "tables hold counts only", 0, 0, []))


def _microdata_branch(ctx: _Context, rep_: ReleaseReport, out: _Products) -> None:
    """A research extract: select, link, pseudonymise, coarsen, protect against the intruder
    with the project's history, and check it with the tables delivered for its years."""
    plan, policy, order, say = ctx.plan, ctx.plan.policy, ctx.plan.order, ctx.say
    extract, rep_.selection = select(ctx.register, order)
    say(f"selected {rep_.selection.persons:,} persons, {rep_.selection.rows:,} rows")
    if order.linkages:
        extract, rep_.linkage = linkage.link(extract, ctx.registers or {}, order, policy, ctx.changes)
        say(f"linked with {', '.join(sorted(ctx.registers or {}))}")
    out.person_idx = pindex.build(extract["personnummer"], ctx.keystore.audit_index_key())
    key = ctx.keystore.pseudonym_key(order.project_id, create=True)
    person = plan.person
    extract, rep_.pseudonymisation = pseudo.pseudonymise_frame(
        extract, "personnummer", key, out_column=person
    )
    say("pseudonymised; coarsening")
    coarse, rep_.recodings = coarsen_extract(extract, policy)
    past = (
        history.earlier(ctx.ledger, ctx.work_dir, order.project_id, person, set(plan.history_columns))
        if not plan.lopnummer
        else history.History()
    )
    rep_.history = HistoryRecord(past, ctx.ledger is not None)
    treated = _person_control(ctx, rep_, coarse, past)
    if plan.lopnummer:
        # a running number per person, valid in this delivery only (ranks of the pseudonyms
        # of the persons delivered, so a withheld person leaves no gap)
        treated[person] = pseudo.lopnummer(treated[person]).to_numpy()
    member_facts, member_checks = membership_check(treated, policy, person, ctx.population)
    if member_facts is not None:
        assert rep_.risk is not None
        rep_.risk["membership"] = member_facts
    rep_.checks += member_checks
    if ctx.ledger is not None:
        _tables_held(ctx, rep_, treated)
    leaked = [i for i in policy.identifiers if i in treated.columns]
    rep_.checks.append(
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


def _person_control(
    ctx: _Context, rep_: ReleaseReport, coarse: pd.DataFrame, past: history.History
) -> pd.DataFrame:
    """The person-level gate on the coarsened extract joined with the project's history; when
    treatment cannot make it releasable, the single changes that would, each measured again."""
    plan, say = ctx.plan, ctx.say
    policy, person = plan.policy, plan.person
    joined = (past.profiles, cast(pd.Series, past.persons)) if past.profiles is not None else None
    holds = (
        "this delivery and the project's earlier deliveries on the ledger ("
        + (", ".join(d["order_id"] for d in past.deliveries) or "none so far")
        + ")"
        if ctx.ledger is not None
        else "this delivery (no ledger was given, so earlier deliveries were not looked for)"
    )
    say(f"disclosure control on {len(coarse):,} rows ({len(past.deliveries)} earlier deliveries joined)")
    treated, risk_facts, risk_checks = control(coarse, policy, person, joined, holds)
    say(f"{len(treated):,} rows after treatment; writing the candidate")
    rep_.risk = risk_facts
    rep_.information_loss = report_facts.information_loss(
        coarse, treated, rep_.recodings, person, risk_facts.get("quasi_identifiers", [])
    )
    refused_by_treatment = any(not c.ok and c.name in report_facts.TREATMENT_CHECKS for c in risk_checks)
    # what would make it releasable: single changes, each measured again by this same gate
    risk_facts["options"] = (
        report_facts.options(
            coarse,
            risk_facts,
            lambda variant: control(variant, policy, person, joined, holds, detail=False),
            age_bands=plan.age_bands,
        )
        if refused_by_treatment
        else None
    )
    rep_.checks += risk_checks
    return treated


def _tables_held(ctx: _Context, rep_: ReleaseReport, treated: pd.DataFrame) -> None:
    """The table packages delivered for the same years: the extract must not undo them."""
    held = table_orders.check_extract(
        ctx.plan.order,
        treated,
        ctx.register,
        ledger=ctx.ledger,
        work_dir=ctx.work_dir,
        record_secret=ctx.keystore.derive_key(cellkey.KEY_LABEL),
    )
    if held is not None:
        rep_.tables_held = held
        rep_.checks.append(
            Check(
                "published_tables",
                True,
                f"the tables delivered for these years ({len(held['tables'])} release(s)) "
                "stay protected with this extract",
                held["cells_held"],
                None,
            )
        )


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
) -> Prepared:
    """Run the release flow for an order (a research extract or tables); write and seal the
    candidate in ``work_dir``.

    ``progress`` hears how far the flow has come (step, persons, rows), for a log or a terminal."""
    say = progress or (lambda _text: None)
    if ledger is not None:
        # a new ledger pins the store's custodians first; the preparer must be vouched for by them
        actors.anchor_new_ledger(ledger, keystore, actor, keystore.get_signing_key(actor, role="preparer"))
        actors.trust(keystore, ledger).require(actor, "preparer")
    report = ReleaseReport(order, policy, list(inputs), register_rows=len(register))
    out = _Products()
    try:
        ctx = _Context(
            make_plan(policy, order),
            register,
            keystore,
            ledger,
            work_dir,
            registers,
            changes,
            population,
            say,
        )
        (_tables_branch if order.tables else _microdata_branch)(ctx, report, out)
    except DisclosureRefused as exc:
        report.checks.append(Check("disclosure", False, "; ".join(p.message for p in exc.problems)))
    except (KeyStoreError, LedgerIntegrityError):
        raise  # the keys or the ledger failed, not the order: nothing is recorded as a refusal
    except LsssdcError as exc:
        report.checks.append(Check("input", False, "; ".join(p.render() for p in exc.problems)))
        report.error = exc.to_dict()
    data = out.data
    report.delivered = [str(c) for c in data.columns] if data is not None else []
    if out.person_idx is not None:
        report.person_index = out.person_idx.summary()
    return Prepared(
        _write(
            report,
            out,
            work_dir=work_dir,
            ledger=ledger,
            keystore=keystore,
            actor=actor,
            policy_path=policy_path,
            order_path=order_path,
        ),
        report,
    )


def _write(
    report: ReleaseReport,
    out: _Products,
    *,
    work_dir: str | Path,
    ledger: Any,
    keystore: Any,
    actor: str,
    policy_path: str | Path | None,
    order_path: str | Path | None,
) -> cand.Candidate:
    """Write the candidate's files in a temporary folder, seal it, append the ledger entry and
    only then give the folder its name."""
    order = report.order
    directory, tmp = cand.new_attempt(work_dir, order.order_id)
    releasable = report.releasable
    data = out.data
    if releasable and out.protected is not None:
        table_output.write_tables(out.protected, tmp / "tables", out.table_report, review_dir=tmp)
        if out.kept is not None:  # reviewer-only, like the full audit: never delivered
            out.kept.save(tmp / table_history.WITNESSES)
    if releasable and data is not None:
        data.to_parquet(tmp / "data.parquet", index=False)
        assert out.person_idx is not None  # built before the data it indexes
        (tmp / "person_index.bin").write_bytes(out.person_idx.tags)
    as_json = report.to_json()
    cand.write_json(tmp / "metadata.json", report.metadata())
    cand.write_json(tmp / "report.json", as_json)
    (tmp / "report.html").write_text(rep.render_html(as_json), encoding="utf-8")
    if releasable and data is not None:
        # the short report that may travel with the data: no risk detail
        (tmp / rep.SUMMARY_FILE).write_text(rep.render_summary(as_json), encoding="utf-8")
    if policy_path:
        shutil.copyfile(shipped.resolve(policy_path, "policy"), tmp / "policy.yaml")
    if order_path:
        shutil.copyfile(shipped.resolve(order_path, "order"), tmp / "order.yaml")
    sealed = cand.seal(tmp, report.seal_facts())
    # the entry is written while the candidate is still in its temporary folder: if the ledger
    # refuses, no candidate appears (its content hash does not depend on the folder's name)
    cand.restrict(tmp)
    faults.point("prepare.sealed")
    if ledger is not None:
        payload = report.ledger_payload(sealed.content_hash, cand.data_hash(sealed.manifest["files"]))
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
