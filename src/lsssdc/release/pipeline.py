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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

import lsssdc
from lsssdc import coarsen as C
from lsssdc import faults, linkage, shipped
from lsssdc.disclosure import membership as M
from lsssdc.disclosure import persons as P
from lsssdc.disclosure import table_output
from lsssdc.disclosure.tables import cellkey
from lsssdc.errors import DisclosureRefused, KeyStoreError, LedgerIntegrityError, LsssdcError
from lsssdc.identity import actors
from lsssdc.identity import pseudonym as pseudo
from lsssdc.ledger import kinds
from lsssdc.ledger import person_index as pindex
from lsssdc.policy import Order, Policy, check_order
from lsssdc.register import variables as V
from lsssdc.release import candidate as cand
from lsssdc.release import history, report_facts, table_history, table_orders
from lsssdc.release import report as rep
from lsssdc.release.extract import select

#: Column names after coarsening, by source variable and level.
_KOMMUN_LEVEL_NAMES = {
    "kommun": None,
    "kommungrupp": "kommungrupp",
    "huvudgrupp": "huvudgrupp",
    "lan": "lan",
    "riket": "riket",
}
#: The delivered name of the date of death, by the precision it is given at.
DEATH_COLUMNS = {"month": "death_month", "year": "death_year"}
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
    #: the measured figure and the policy's threshold it is held to (None where there is none)
    figure: float | int | None = None
    threshold: float | int | None = None
    #: the variables the check names (roles without a role, identifiers still present)
    variables: list[str] | None = None


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
            assert level_name is not None  # only the level kommun has no name of its own
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
        # the column says what it holds: death_year (or death_month), in the place of death_date
        fmt = {"month": "%Y-%m", "year": "%Y"}[h.death_date.precision]
        name = DEATH_COLUMNS[h.death_date.precision]
        values = pd.to_datetime(out["death_date"]).dt.strftime(fmt).astype("string[pyarrow]")
        pos = list(out.columns).index("death_date")
        out = out.drop(columns=["death_date"])
        out.insert(pos, name, values.to_numpy())
        out[name] = out[name].astype("string[pyarrow]")
        records.append(
            {
                "variable": name,
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
        *(DEATH_COLUMNS.values() if var == "death_date" else ()),
    ):
        if cand_name and cand_name in columns:
            return cand_name
    return None


# --------------------------------------------------------------------------------------------
# disclosure control on persons, not rows


def _histograms(sizes: np.ndarray) -> dict[str, dict[str, int]]:
    lo: float
    hi: float | None
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


def suppression_order(qis: list[str], policy: Policy) -> list[str]:
    """Quasi-identifiers from first suppressed to last: the policy's suppression_order, else the
    quasi-identifiers in reverse; the year is suppressed last."""
    names = {q: _coarse_name(q, qis) for q in policy.suppression_order}
    first = cast(list[str], [names[q] for q in policy.suppression_order if names.get(q)])
    rest = [q for q in reversed(qis) if q not in first and q != "year"]
    return [*first, *rest, *(["year"] if "year" in qis else [])]


def _class_figures(sizes: np.ndarray, k: int) -> dict[str, Any]:
    """Figures of one set of person classes: smallest class, persons below k, uniques, risk."""
    n = len(sizes)
    d: dict[str, Any] = {
        "unit": "persons",
        "persons": int(n),
        "k": int(sizes.min()) if n else 0,
        "min_class_size": int(sizes.min()) if n else 0,
        "records_below_k": int((sizes < k).sum()),
        "sample_uniques": int((sizes == 1).sum()),
        "expected_reidentifications": round(float((1.0 / np.maximum(sizes, 1)).sum()), 2) if n else 0.0,
        "max_risk": round(float(1.0 / sizes.min()), 6) if n else 0.0,
    }
    d.update(_histograms(sizes))
    d["class_sizes"] = report_facts.class_distribution(sizes, k)
    return d


def _roles(columns: list[str], policy: Policy, qis: list[str], person: str) -> Check:
    """Every delivered variable needs a role: quasi-identifier, sensitive, or safe with a reason."""
    known = {person, P.FLAG_COLUMN, "year", *qis, *policy.sensitive, *policy.safe}
    missing = [c for c in columns if c not in known]
    if missing:
        return Check(
            "roles",
            False,
            "no role in the policy (quasi_identifiers, sensitive or safe with a reason) for: "
            + ", ".join(missing),
            len(missing),
            0,
            missing,
        )
    return Check("roles", True, "every delivered variable has a role in the policy", 0, 0, [])


def control(
    df: pd.DataFrame,
    policy: Policy,
    person: str,
    joined: tuple[P.Profiles, pd.Series] | None = None,
    holds: str = "this delivery",
    *,
    detail: bool = True,
) -> tuple[pd.DataFrame, dict[str, Any], list[Check]]:
    """Protect the extract's persons against the policy's intruder and measure what they reach.

    Classes are persons with the same released rows over all their years (see
    :mod:`lsssdc.disclosure.persons`); the figures after treatment are measured again on the
    treated rows, not taken from the treatment's own account. ``detail`` adds the figures only
    the reviewer report shows (l-diversity per sensitive variable, trajectories).
    """
    cols = list(df.columns)
    qis = [q for q in (_coarse_name(v, cols) for v in policy.quasi_identifiers) if q]
    if "year" in cols:
        qis = ["year", *[q for q in qis if q != "year"]]
    sens = [s for s in policy.sensitive if s in cols]
    t = policy.thresholds
    age_column = _coarse_name("age", cols) if "age" in policy.quasi_identifiers else None
    known = ["year", *policy.quasi_identifiers]
    roles = _roles(cols, policy, qis, person)
    if not qis:
        return df, {"quasi_identifiers": []}, [roles, Check("k", True, "no quasi-identifier is delivered")]
    treated, record = P.protect(
        df,
        person,
        qis,
        k=t.k,
        l=t.l,
        sensitive=sens,
        order=[q for q in suppression_order(qis, policy) if q != "year"],
        known=known,
        age_column=age_column,
        history=joined[0] if joined else None,
        history_persons=joined[1] if joined else None,
    )
    # measured again on what leaves: a suppressed value is a value of its own
    codes, n = P._person_codes(treated[person])
    extra = P._history_for(treated[person], codes, n, *joined) if joined else None
    after_prof = P.profiles(treated, codes, n, qis, known=set(known), age_column=age_column)
    after_groups, after_sizes = P.class_sizes(after_prof.key(extra))
    ucodes, un = P._person_codes(df[person])
    uextra = P._history_for(df[person], ucodes, un, *joined) if joined else None
    before_prof = P.profiles(df, ucodes, un, qis, known=set(known), age_column=age_column)
    _, before_sizes = P.class_sizes(before_prof.key(uextra))
    rows = max(len(df), 1)
    touched = record.rows_touched + record.withheld_rows
    facts: dict[str, Any] = {
        "quasi_identifiers": qis,
        "unit": "persons with the same released rows over all their years",
        "intruder": intruder_model(policy, qis, record, holds),
        "before": _class_figures(before_sizes, t.k),
        "after": _class_figures(after_sizes, t.k),
        "treatment": record.to_dict(),
    }
    facts["suppression"] = {
        "per_variable": {
            q: {
                "count": record.suppressed_rows.get(q, 0),
                "share": round(record.suppressed_rows.get(q, 0) / rows, 6),
                "persons": record.suppressed_persons.get(q, 0),
            }
            for q in qis
        },
        "records": int(touched),
        "record_share": round(touched / rows, 6),
        "withheld_persons": record.withheld_persons,
        "withheld_rows": record.withheld_rows,
        "order": list(suppression_order(qis, policy)),
        "information_loss": round(sum(record.suppressed_rows.values()) / (rows * len(qis)), 6),
        "information_loss_measure": "share of quasi-identifier values suppressed (rows x variables)",
    }
    if detail:
        facts["l_diversity"] = report_facts.l_diversity(treated, codes, n, after_groups, sens)
        facts["trajectories"] = report_facts.trajectories(df, treated, person, before_sizes, t.k)
    k_after = int(after_sizes.min()) if len(after_sizes) else t.k
    checks = [
        roles,
        Check(
            "k",
            k_after >= t.k,
            f"the smallest group of persons with the same released rows over all years has {k_after}; "
            f"the policy asks for {t.k}",
            k_after,
            t.k,
        ),
        Check(
            "suppression",
            touched / rows <= t.max_suppressed_share,
            f"{touched / rows:.2%} of records have a suppressed value or are withheld; the policy allows "
            f"{t.max_suppressed_share:.2%}",
            round(touched / rows, 6),
            t.max_suppressed_share,
        ),
    ]
    if t.l > 1 and sens:
        worst = _l_after(treated, person, codes, n, after_prof.key(extra), sens)
        checks.append(
            Check("l", worst >= t.l, f"l-diversity is {worst}; the policy asks for {t.l}", worst, t.l)
        )
    return treated, facts, checks


def _l_after(
    treated: pd.DataFrame, person: str, codes: np.ndarray, n: int, key: pd.DataFrame, sens: list[str]
) -> int:
    groups, _ = P.class_sizes(key)
    worst = 1 << 30
    for s, sig in P._diversity(treated, codes, n, sens).items():
        del s
        lv = P._l_per_person(groups, sig)
        worst = min(worst, int(lv.min()) if len(lv) else worst)
    return worst


def membership_check(
    treated: pd.DataFrame, policy: Policy, person: str, population: pd.DataFrame | None
) -> tuple[dict[str, Any] | None, list[Check]]:
    """Delta-presence against the population register, when one is given or the policy asks."""
    bound = policy.thresholds.max_presence
    if population is None:
        if bound is None:
            return None, []
        return None, [
            Check(
                "membership",
                False,
                f"the policy bounds the share of a population group a delivery covers ({bound:.0%}) "
                "but no population register was given (prepare --population FILE)",
                None,
                bound,
            )
        ]
    pop, _ = coarsen_extract(population, policy)
    cols = list(treated.columns)
    columns = [c for c in ("year", "sex", _coarse_name("age", cols), _coarse_name("kommun", cols)) if c]
    rec = M.presence(treated, person, pop, columns, bound)
    facts = rec.to_dict() | {
        "statement": "persons delivered over persons in the population, per group of "
        + ", ".join(rec.columns)
        + " (a suppressed value widens the group); being in the delivery reveals a disability"
    }
    if bound is None:
        return facts, []
    worst = ", ".join(f"{c} {rec.worst.get(c)}" for c in rec.columns)
    return facts, [
        Check(
            "membership",
            rec.max_share <= bound,
            f"the delivery covers at most {rec.max_share:.2%} of a population group ({worst}); "
            f"the policy allows {bound:.0%}",
            rec.max_share,
            bound,
        )
    ]


def intruder_model(policy: Policy, qis: list[str], record: P.PersonProtection, holds: str) -> dict[str, Any]:
    """What the gate assumes the intruder knows and holds, in plain words (for the report)."""
    return {
        "knows": sorted({"year", *policy.quasi_identifiers}),
        "measured_on": qis,
        "statement": (
            "The intruder knows, about a person they look for, the true values of "
            + ", ".join(sorted(policy.quasi_identifiers))
            + " in any or all of the person's years, the years in which the person had services, "
            "and the year of death; they read a blank from the person's other rows, apply the "
            "register's rules ("
            + "; ".join(record.implications or ["none apply to the delivered variables"])
            + "), and hold "
            + holds
            + ". Every person they look for has at least "
            + f"{policy.thresholds.k} persons whose released rows agree with all of it."
        ),
    }


# --------------------------------------------------------------------------------------------
# prepare


def person_column(policy: Policy) -> str:
    """The delivered person column: the policy's name, or `lopnummer` for running numbers."""
    ps = policy.pseudonymisation
    return "lopnummer" if ps.output == "lopnummer" and ps.column == "pseudonym" else ps.column


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
