"""Person-level disclosure control of a coarsened extract: the gate's measure of classes of
persons over all their years (with the project's earlier deliveries), the treatment, l-diversity,
membership, and the facts the reviewer report shows about them."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import pandas as pd

from lsssdc.disclosure import membership as M
from lsssdc.disclosure import persons as P
from lsssdc.policy import Policy
from lsssdc.release import report_facts
from lsssdc.release.coarsening import _coarse_name, coarsen_extract
from lsssdc.release.gate import Check

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
    def classes(rows: pd.DataFrame) -> P.PersonClasses:
        return P.measure(
            rows,
            person,
            qis,
            known=known,
            age_column=age_column,
            history=joined[0] if joined else None,
            history_persons=joined[1] if joined else None,
        )

    after = classes(treated)
    after_sizes = after.sizes
    before_sizes = classes(df).sizes
    facts: dict[str, Any] = {
        "quasi_identifiers": qis,
        "unit": "persons with the same released rows over all their years",
        "intruder": intruder_model(policy, qis, record, holds),
        "before": _class_figures(before_sizes, t.k),
        "after": _class_figures(after_sizes, t.k),
        "treatment": record.to_dict(),
        "suppression": _suppression_facts(record, qis, policy, len(df)),
    }
    if detail:
        facts["l_diversity"] = report_facts.l_diversity(treated, after, sens)
        facts["trajectories"] = report_facts.trajectories(df, treated, person, before_sizes, t.k)
    checks = [roles, *_checks(policy, record, len(df), after, treated, sens)]
    return treated, facts, checks


def _suppression_facts(
    record: P.PersonProtection, qis: list[str], policy: Policy, n_rows: int
) -> dict[str, Any]:
    """What the treatment blanked and withheld, per variable and in all (shares of the rows)."""
    rows = max(n_rows, 1)
    touched = record.rows_touched + record.withheld_rows
    return {
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


def _checks(
    policy: Policy,
    record: P.PersonProtection,
    n_rows: int,
    after: P.PersonClasses,
    treated: pd.DataFrame,
    sens: list[str],
) -> list[Check]:
    """The gate's checks of the person-level control, on the figures measured after treatment."""
    t = policy.thresholds
    rows = max(n_rows, 1)
    touched = record.rows_touched + record.withheld_rows
    k_after = int(after.sizes.min()) if len(after.sizes) else t.k
    checks = [
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
        worst = after.lowest_l(treated, sens)
        checks.append(
            Check("l", worst >= t.l, f"l-diversity is {worst}; the policy asks for {t.l}", worst, t.l)
        )
    return checks


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
