"""prepare: from an order and a policy to a sealed candidate with its reviewer report.

Every step is a function from a frame (plus the policy) to a frame and a small record; this
module calls them in the order of ARCHITECTURE.md, collects the records into the report, and
lets one gate decide. A candidate that fails the gate is still written (report only, no data)
so the reviewer sees why; every prepare, refused or not, appends one ledger entry.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import lsssdc
from lsssdc import coarsen as C
from lsssdc import faults, linkage, shipped
from lsssdc.audit import person_index as pindex
from lsssdc.disclosure import risk as R
from lsssdc.disclosure import suppress as S
from lsssdc.disclosure import table_output
from lsssdc.errors import DisclosureRefused, LsssdcError
from lsssdc.identity import pseudonym as pseudo
from lsssdc.policy import Order, Policy, check_order
from lsssdc.register import variables as V
from lsssdc.release import candidate as cand
from lsssdc.release import report as rep
from lsssdc.release import tables_flow
from lsssdc.release.extract import select

#: Column names after coarsening, by source variable and level.
_KOMMUN_LEVEL_NAMES = {
    "kommun": None,
    "kommungrupp": "kommungrupp",
    "huvudgrupp": "huvudgrupp",
    "lan": "lan",
    "riket": "riket",
}
#: Stands for a genuine missing value (e.g. no date of death) while risk is measured.
NONE = "\u2205"
_HIST_BINS = [
    (1, 1, "1"),
    (2, 2, "2"),
    (3, 4, "3-4"),
    (5, 9, "5-9"),
    (10, 19, "10-19"),
    (20, 49, "20-49"),
    (50, 99, "50-99"),
    (100, None, "100+"),
]


@dataclass
class Check:
    """One condition the gate looks at."""

    name: str
    ok: bool
    reason: str


@dataclass
class Verdict:
    decision: str  # "releasable" or "refused"
    reasons: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "reasons": list(self.reasons),
            "checks": [c.__dict__ for c in self.checks],
        }


def gate(checks: list[Check]) -> Verdict:
    """The one place that says yes: releasable only when there are checks and every one holds."""
    failed = [c for c in checks if not c.ok]
    if not checks or failed:
        reasons = [c.reason for c in failed] or ["nothing was checked"]
        return Verdict("refused", reasons, checks)
    return Verdict("releasable", [], checks)


@dataclass
class Input:
    """A file that went into a release: name, SHA-256, rows (for the report and the ledger)."""

    name: str
    hash: str
    rows: int


# --------------------------------------------------------------------------------------------
# coarsening according to the policy


def coarsen_extract(df: pd.DataFrame, policy: Policy) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Apply the policy's hierarchies; return the frame and one record per recoding."""
    out = df.copy()
    records: list[dict[str, Any]] = []
    h = policy.hierarchies

    def put(old: str, new: str, recoded: C.Recoded, description: str) -> None:
        nonlocal out
        pos = list(out.columns).index(old)
        values = recoded.values.astype("string[pyarrow]")
        out = out.drop(columns=[old])
        out.insert(pos, new, values.to_numpy())
        out[new] = out[new].astype("string[pyarrow]")
        d = recoded.record.to_dict()
        d.pop("mapping", None)
        records.append({**d, "variable": new, "source": old, "description": description})

    if h.age is not None and "age" in out.columns:
        bands = C.AgeBands(h.age.cuts, open_top=h.age.open_top)
        put(
            "age",
            "age_band",
            C.band_ages(out["age"], bands, variable="age_band"),
            "age at the measurement date in bands " + ", ".join(bands.labels),
        )
    for col in V.KOMMUN_COLUMNS:
        spec = getattr(h, col, None)
        if spec is None or col not in out.columns:
            continue
        name = col
        if spec.merge_below:
            rule = C.MergeSmallKommuner(spec.merge_below)
            rec = C.merge_small_kommuner(out[col], rule, variable=col)
            if spec.level == "kommun":
                put(
                    col,
                    col,
                    rec,
                    f"kommuner with fewer than {spec.merge_below} inhabitants merged into the rest "
                    "of their län (code <län>R)",
                )
                continue
        if spec.level != "kommun":
            level_name = _KOMMUN_LEVEL_NAMES[spec.level]
            name = level_name if col == "kommun" else f"{col}_{level_name}"
            put(
                col,
                name,
                C.recode_kommun(out[col], spec.level, variable=name),
                f"{col} coarsened to {spec.level}",
            )
    for amount in V.AMOUNTS:
        spec = getattr(h, amount, None)
        if spec is None or amount not in out.columns:
            continue
        top = C.TopCode(limit=spec.top_code, bands=spec.bands)
        put(
            amount,
            amount,
            C.top_code(out[amount], top, variable=amount),
            f"top-coded at {spec.top_code:g}"
            + (f", in bands from {', '.join(f'{b:g}' for b in spec.bands)}" if spec.bands else ""),
        )
    if h.death_date is not None and "death_date" in out.columns and h.death_date.precision != "day":
        fmt = {"month": "%Y-%m", "year": "%Y"}[h.death_date.precision]
        d = pd.to_datetime(out["death_date"])
        out["death_date"] = d.dt.strftime(fmt).astype("string[pyarrow]")
        records.append(
            {
                "variable": "death_date",
                "source": "death_date",
                "operation": "date_precision",
                "from_level": "day",
                "to_level": h.death_date.precision,
                "description": f"date of death given to the {h.death_date.precision}",
            }
        )
    return out, records


def _coarse_name(var: str, columns: list[str]) -> str | None:
    for cand_name in (
        var,
        {"age": "age_band", "kommun": "lan"}.get(var, ""),
        "kommungrupp" if var == "kommun" else "",
        "huvudgrupp" if var == "kommun" else "",
        "riket" if var == "kommun" else "",
    ):
        if cand_name and cand_name in columns:
            return cand_name
    return None


# --------------------------------------------------------------------------------------------
# disclosure control on persons, not rows


def _histograms(sizes: np.ndarray) -> dict[str, dict[str, int]]:
    hist = {}
    for lo, hi, label in _HIST_BINS:
        m = sizes >= lo if hi is None else (sizes >= lo) & (sizes <= hi)
        hist[label] = int(m.sum())
    risk = {}
    for lo, hi, label in (
        ((0.5, 1.0, "1")),
        (0.2, 0.5, "0.2-0.5"),
        (0.1, 0.2, "0.1-0.2"),
        (0.05, 0.1, "0.05-0.1"),
        (0.0, 0.05, "<0.05"),
    ):
        r = 1.0 / np.maximum(sizes, 1)
        risk[label] = int(((r > lo) & (r <= hi)).sum()) if label != "1" else int((r == 1.0).sum())
    return {"class_size_histogram": hist, "risk_histogram": risk}


def _risk_summary(report: R.RiskReport) -> dict[str, Any]:
    d = report.to_dict()
    d["min_class_size"] = d["k"]
    d.update(_histograms(report.class_size))
    return d


def suppression_order(qis: list[str], policy: Policy) -> list[str]:
    """Quasi-identifiers from first suppressed to last: the policy's suppression_order, else the
    quasi-identifiers in reverse; the year is suppressed last."""
    names = {q: _coarse_name(q, qis) for q in policy.suppression_order}
    first = [names[q] for q in policy.suppression_order if names.get(q)]
    rest = [q for q in reversed(qis) if q not in first and q != "year"]
    return [*first, *rest, *(["year"] if "year" in qis else [])]


def _strict_sizes(units: pd.DataFrame, qis: list[str]) -> np.ndarray:
    """Class size per record when a suppressed (missing) value is a value of its own."""
    g = units.groupby(qis, dropna=False, sort=False, observed=True).ngroup().to_numpy()
    return np.bincount(g)[g]


def trajectories(units: pd.DataFrame, person: str, qis: list[str]) -> dict[str, Any]:
    """For information: how many persons share their whole sequence of quasi-identifier values
    over the years with fewer than k others. One pseudonym links a person's years, so an outsider
    who knows someone's history could look for it; k per person-year does not cover that."""
    if units.empty:
        return {"persons": 0, "unique_trajectories": 0, "unique_share": 0.0}
    row = pd.util.hash_pandas_object(units[qis].astype("string"), index=False).to_numpy(np.uint64)
    year = pd.to_numeric(units["year"], errors="coerce").fillna(0).to_numpy(np.uint64)
    # an order-dependent combination per person: each year's row hash mixed with the year
    mixed = row * (np.uint64(0x9E3779B97F4A7C15) + year * np.uint64(2)) + year
    per_person = pd.Series(mixed).groupby(units[person].to_numpy()).sum()
    years = pd.Series(1, index=units.index).groupby(units[person].to_numpy()).sum()
    key = per_person.to_numpy() ^ (years.to_numpy().astype(np.uint64) << np.uint64(56))
    _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    size = counts[inverse]
    n = len(size)
    return {
        "persons": int(n),
        "unique_trajectories": int((size == 1).sum()),
        "unique_share": round(float((size == 1).sum()) / n, 6),
        "below_5_share": round(float((size < 5).sum()) / n, 6),
        "note": "persons whose quasi-identifiers over all their years are shared by no (or fewer "
        "than 4) other persons; for the reviewer's judgement, not part of the gate",
    }


def control(
    df: pd.DataFrame, policy: Policy, person: str
) -> tuple[pd.DataFrame, dict[str, Any], list[Check]]:
    """Measure and treat the extract on the policy's quasi-identifiers, counting persons.

    A person can have several rows (years, two kommuner); classes are counted on distinct
    (person, quasi-identifier values), with the year a quasi-identifier when there are several.
    """
    cols = list(df.columns)
    qis = [q for q in (_coarse_name(v, cols) for v in policy.quasi_identifiers) if q]
    if "year" in cols and df["year"].nunique() > 1:
        qis = ["year", *qis]
    sens = [s for s in policy.sensitive if s in cols]
    t = policy.thresholds
    l_needed = t.l if t.l > 1 and sens else None
    criteria = R.Criteria(
        k=t.k,
        l_diversity=l_needed,
        sensitive=sens if l_needed else (),
        max_suppressed_share=t.max_suppressed_share,
    )
    if not qis:
        return df, {"quasi_identifiers": []}, [Check("k", True, "no quasi-identifier is delivered")]
    key_cols = [person, *qis]
    group = df.groupby(key_cols, dropna=False, sort=False, observed=True).ngroup().to_numpy()
    first = pd.Series(np.arange(len(df))).groupby(group).first().to_numpy()
    units = df.iloc[first][[person, *qis, *criteria.sensitive]].reset_index(drop=True)
    for q in qis:
        # a missing value here is a value (alive, not collected that year), not a suppression:
        # it must not match everything, so it becomes a category of its own while measuring
        units[q] = units[q].astype("string[pyarrow]").fillna(NONE)
    before = R.measure(units, qis, criteria, unit=person)
    facts: dict[str, Any] = {
        "quasi_identifiers": qis,
        "unit": "distinct persons per class",
        "before": _risk_summary(before),
    }
    order = suppression_order(qis, policy)
    try:
        treated, srep = S.suppress_locally(units, qis, criteria, order=order, unit=person)
    except DisclosureRefused as exc:
        best = getattr(exc, "report", None)
        if best is not None and hasattr(best, "to_dict"):
            facts["suppression"] = best.to_dict()
        reasons = [p.message for p in exc.problems]
        return df, facts, [Check("disclosure", False, "; ".join(reasons) or "the policy cannot be met")]
    after = R.measure(treated, qis, criteria, unit=person)
    facts["after"] = _risk_summary(after)
    # for information: k when a suppressed value is read as a value of its own
    facts["after"]["k_missing_as_value"] = int(_strict_sizes(treated, qis).min()) if len(treated) else 0
    if "year" in qis:
        facts["longitudinal"] = trajectories(treated, person, [q for q in qis if q != "year"])
    n_units = max(len(units), 1)
    suppressed = {q: int((treated[q].isna() & units[q].notna()).sum()) for q in qis}
    records = int(
        np.logical_or.reduce([(treated[q].isna() & units[q].notna()).to_numpy() for q in qis]).sum()
    )
    facts["suppression"] = {
        "per_variable": {
            q: {"count": suppressed[q], "share": round(suppressed[q] / n_units, 6)} for q in qis
        },
        "records": records,
        "record_share": round(records / n_units, 6),
        "rounds": srep.rounds,
        "order": order,
        "information_loss": round(sum(suppressed.values()) / (n_units * len(qis)), 6),
        "information_loss_measure": "share of quasi-identifier values suppressed",
    }
    out = df.copy()
    for q in qis:
        gone = (treated[q].isna() & units[q].notna()).to_numpy()[group]
        if q == "year":  # kept as numbers; suppressed only if nothing else helped
            out[q] = out[q].astype("Int16").mask(gone)
            continue
        out[q] = out[q].astype("string[pyarrow]").mask(gone)
    checks = [
        Check("k", after.k >= t.k, f"the smallest class has {after.k} persons; the policy asks for {t.k}"),
        Check(
            "suppression",
            records / n_units <= t.max_suppressed_share,
            f"{records / n_units:.2%} of records have a suppressed value; the policy allows "
            f"{t.max_suppressed_share:.2%}",
        ),
    ]
    if l_needed:
        worst = min(after.l_distinct.values()) if after.l_distinct else 0
        checks.append(Check("l", worst >= t.l, f"l-diversity is {worst}; the policy asks for {t.l}"))
    return out, facts, checks


# --------------------------------------------------------------------------------------------
# prepare


def person_column(policy: Policy) -> str:
    """The delivered person column: the policy's name, or `lopnummer` for running numbers."""
    ps = policy.pseudonymisation
    return "lopnummer" if ps.output == "lopnummer" and ps.column == "pseudonym" else ps.column


class _TablesDone(Exception):
    """A table order has no microdata steps after its tables are protected and audited."""


def _plain(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


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
) -> cand.Candidate:
    """Run the release flow for a microdata order; write and seal the candidate in ``work_dir``."""
    report: dict[str, Any] = {
        "version": lsssdc.__version__,
        "order": _plain(order.model_dump(by_alias=True)) | {"hash": order.hash},
        "policy": _plain(policy.model_dump(by_alias=True)) | {"hash": policy.hash},
        "inputs": [i.__dict__ for i in inputs],
    }
    checks: list[Check] = []
    data = None
    person_idx = None
    protected = None
    try:
        check_order(order, policy)
        if order.tables:
            protected, table_report, tsum = tables_flow.protect_tables(policy, order, register)
            report["tables"] = tsum["tables"]
            report["table_audit"] = tsum["audit"]
            audit_summary = tsum["audit"].get("summary", {})
            checks.append(
                Check(
                    "table_audit",
                    table_report.passed,
                    "the attacker's linear programmes prove every hidden cell's interval wide enough"
                    if table_report.passed
                    else f"the attacker can narrow {audit_summary.get('failed', '?')} hidden cell(s) too much",
                )
            )
            checks.append(Check("identifiers", True, "tables hold counts only"))
            raise _TablesDone
        extract, selection = select(register, order)
        report["selection"] = selection.to_dict()
        if order.linkages:
            extract, link_report = linkage.link(extract, registers or {}, order, policy, changes)
            report["linkage"] = link_report.to_dict(threshold=policy.thresholds.table_frequency)
        person_idx = pindex.build(extract["personnummer"], keystore.audit_index_key())
        key = keystore.pseudonym_key(order.project_id, create=True)
        person = person_column(policy)
        extract, pseudo_report = pseudo.pseudonymise_frame(extract, "personnummer", key, out_column=person)
        if policy.pseudonymisation.output == "lopnummer":
            # a running number per person, valid in this delivery only (ranks of the pseudonyms)
            extract[person] = pseudo.lopnummer(extract[person]).to_numpy()

        report["pseudonymisation"] = pseudo_report.to_dict()
        coarse, recodings = coarsen_extract(extract, policy)
        report["recodings"] = recodings
        treated, risk_facts, risk_checks = control(coarse, policy, person)
        report["risk"] = risk_facts
        report["suppression"] = risk_facts.get("suppression") if "after" in risk_facts else None
        checks += risk_checks
        leaked = [i for i in policy.identifiers if i in treated.columns]
        checks.append(
            Check(
                "identifiers",
                not leaked,
                ("a direct identifier is still in the data: " + ", ".join(leaked))
                if leaked
                else "direct identifiers removed",
            )
        )
        data = treated
    except _TablesDone:
        pass
    except DisclosureRefused as exc:
        checks.append(Check("disclosure", False, "; ".join(p.message for p in exc.problems)))
    except LsssdcError as exc:
        checks.append(Check("input", False, "; ".join(p.render() for p in exc.problems)))
        report["error"] = exc.to_dict()
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

    directory, tmp = cand.new_attempt(work_dir, order.order_id)
    releasable = verdict.decision == "releasable"
    if releasable and protected is not None:
        table_output.write_tables(protected, tmp / "tables", table_report, review_dir=tmp)
    if releasable and data is not None:
        data.to_parquet(tmp / "data.parquet", index=False)
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
        payload = {
            "order_id": order.order_id,
            "project_id": order.project_id,
            "diarienummer": order.diarienummer,
            "policy": policy.name,
            "policy_hash": policy.hash,
            "order_hash": order.hash,
            "inputs": [i.__dict__ for i in inputs],
            "content_hash": sealed.content_hash,
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
                payload,
                signer=keystore.get_signing_key(actor, role="preparer"),
            )
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    faults.point("prepare.entry")
    tmp.rename(directory)
    faults.point("prepare.done")
    sealed = cand.load(directory)
    return sealed


def _risk_payload(risk: dict[str, Any] | None) -> dict[str, Any] | None:
    """The risk figures the ledger keeps: k, records below k, uniques, expected re-identifications."""
    if not risk:
        return None
    keep = ("k", "records_below_k", "sample_uniques", "expected_reidentifications")
    return {when: {f: risk[when].get(f) for f in keep} for when in ("before", "after") if risk.get(when)}
