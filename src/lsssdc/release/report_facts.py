"""Figures the reviewer report shows besides the gate's own, computed by the pipeline.

The reviewer HTML only renders the report; everything it shows is computed here from frames
the pipeline already holds and kept in ``report.json``: class sizes on a logarithmic scale
with the small classes exact, l-diversity per sensitive variable, persons by the number of
years they are in the extract (their trajectory), information loss by more than one measure,
and for a refused candidate a small set of changes measured again by the gate's own treatment.
Whole-array operations throughout; no loop over rows or persons.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from lsssdc import coarsen as C
from lsssdc.disclosure import persons as P

#: Checks whose failure the treatment can change (the options below are measured for them).
TREATMENT_CHECKS = ("k", "l", "suppression")
_MISSING = "\x00missing"


# --------------------------------------------------------------------------------------------
# class sizes


def small_class_limit(k: int) -> int:
    """Class sizes shown one by one: below 2k, and at least up to 10."""
    return max(2 * k - 1, 10)


def class_distribution(sizes: np.ndarray, k: int) -> dict[str, Any]:
    """Persons and classes by class size: exact for the small sizes, in powers of two above.

    ``sizes`` holds, per person, the size of the person's class; a class of size s holds s
    persons, so the classes of size s are the persons at s divided by s.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    limit = small_class_limit(k)
    counts = np.bincount(sizes, minlength=limit + 1) if len(sizes) else np.zeros(limit + 1, np.int64)
    small = {str(s): {"persons": int(counts[s]), "classes": int(counts[s] // s)} for s in range(1, limit + 1)}
    largest = int(sizes.max()) if len(sizes) else 0
    bins = []
    lo = 1
    while lo <= max(largest, 1):
        hi = 2 * lo - 1
        persons = counts[lo : hi + 1] if hi < len(counts) else counts[lo:]
        sizes_here = np.arange(lo, lo + len(persons))
        bins.append(
            {
                "from": lo,
                "to": hi,
                "persons": int(persons.sum()),
                "classes": int((persons // np.maximum(sizes_here, 1)).sum()),
            }
        )
        lo *= 2
    return {
        "small": small,
        "log2_bins": bins,
        "largest": largest,
        "classes": int((counts[1:] // np.arange(1, len(counts))).sum()),
    }


# --------------------------------------------------------------------------------------------
# l-diversity and trajectories


def l_diversity(treated: pd.DataFrame, classes: P.PersonClasses, sensitive: Sequence[str]) -> dict[str, Any]:
    """Per sensitive variable: the distinct value sets each person's class shows (the gate's l),
    its smallest value and persons by it (3 stands for 3 or more)."""
    out: dict[str, Any] = {}
    for s, lv in classes.l_per_person(treated, sensitive).items():
        capped = np.minimum(lv, 3)
        by = np.bincount(capped, minlength=4)
        out[s] = {
            "min": int(lv.min()) if len(lv) else 0,
            "persons_by_l": {str(v): int(by[v]) for v in (1, 2, 3)},
        }
    return out


def trajectories(
    extract: pd.DataFrame, treated: pd.DataFrame, person: str, before_sizes: np.ndarray, k: int
) -> dict[str, Any]:
    """Persons by the number of years they are in the extract: how many of them were in classes
    below k before treatment, got a suppressed value on their rows, or were withheld."""
    codes, uniques = pd.factorize(extract[person], sort=False)
    n = len(uniques)
    if not n:
        return {"by_years": {}}
    years = pd.DataFrame({"p": codes, "y": extract["year"].to_numpy()}).drop_duplicates()
    n_years = np.bincount(years["p"].to_numpy(), minlength=n)
    kept = np.zeros(n, bool)
    touched = np.zeros(n, bool)
    if len(treated):
        pos = pd.Index(uniques).get_indexer(treated[person])
        kept[pos[pos >= 0]] = True
        if P.FLAG_COLUMN in treated.columns:
            hit = treated[P.FLAG_COLUMN].fillna("").to_numpy(dtype=object) != ""
            touched[pos[(pos >= 0) & hit]] = True
    below = np.asarray(before_sizes) < k
    top = int(n_years.max())
    per = {
        "persons": np.bincount(n_years, minlength=top + 1),
        "below_k_before": np.bincount(n_years[below], minlength=top + 1),
        "suppressed": np.bincount(n_years[touched], minlength=top + 1),
        "withheld": np.bincount(n_years[~kept], minlength=top + 1),
    }
    return {
        "by_years": {
            str(y): {name: int(v[y]) for name, v in per.items()}
            for y in range(1, top + 1)
            if per["persons"][y]
        }
    }


# --------------------------------------------------------------------------------------------
# information loss


def _suppressed_rows(treated: pd.DataFrame, variable: str) -> np.ndarray:
    if P.FLAG_COLUMN not in treated.columns or not len(treated):
        return np.zeros(len(treated), bool)
    pattern = rf"(?:^| ){re.escape(variable)}(?: |$)"
    return treated[P.FLAG_COLUMN].fillna("").str.contains(pattern, regex=True).to_numpy(dtype=bool)


def _shares(values: pd.Series) -> pd.Series:
    s = values.astype("string").fillna(_MISSING)
    return s.value_counts(normalize=True, sort=False)


def total_variation(before: pd.Series, after: pd.Series) -> float:
    """Half the summed absolute difference of two distributions of values (missing is a value)."""
    if not len(before) or not len(after):
        return 0.0 if len(before) == len(after) else 1.0
    p, q = _shares(before), _shares(after)
    p, q = p.align(q, fill_value=0.0)
    return float(0.5 * np.abs(p.to_numpy(float) - q.to_numpy(float)).sum())


def information_loss(
    extract: pd.DataFrame,
    treated: pd.DataFrame,
    recodings: list[dict[str, Any]],
    person: str,
    quasi_identifiers: Sequence[str],
) -> dict[str, Any]:
    """Per delivered variable: how far it was generalised, the share of delivered rows where it
    is suppressed, and the total variation distance between its distribution in the selected
    rows (at the released categories, before suppression and withholding) and the values a user
    sees (suppressed values left out). Overall: values suppressed, rows withheld."""
    by_var = {r["variable"]: r for r in recodings}
    rows, delivered = len(extract), len(treated)
    per: dict[str, Any] = {}
    for v in treated.columns:
        if v in (person, P.FLAG_COLUMN) or v not in extract.columns:
            continue
        sup = _suppressed_rows(treated, v)
        rec = by_var.get(v)
        per[v] = {
            "generalised": None
            if rec is None
            else {
                "source": rec.get("source", v),
                "from_level": rec.get("from_level"),
                "to_level": rec.get("to_level"),
                "categories_before": rec.get("categories_before"),
                "categories_after": rec.get("categories_after"),
            },
            "suppressed_rows": int(sup.sum()),
            "suppressed_share": round(float(sup.mean()), 6) if delivered else 0.0,
            "total_variation": round(total_variation(extract[v], treated[v][~sup]), 6),
        }
    withheld = rows - delivered
    qi_values = sum(per[q]["suppressed_rows"] for q in quasi_identifiers if q in per)
    m = max(len([q for q in quasi_identifiers if q in per]), 1)
    return {
        "rows": rows,
        "rows_delivered": delivered,
        "persons_delivered": int(treated[person].nunique()) if person in treated.columns else 0,
        "rows_withheld": withheld,
        "rows_withheld_share": round(withheld / rows, 6) if rows else 0.0,
        "quasi_identifier_values_not_shown": round((qi_values + withheld * m) / (rows * m), 6)
        if rows
        else 0.0,
        "per_variable": per,
        "measures": ["generalisation level", "suppressed share", "total variation distance"],
    }


# --------------------------------------------------------------------------------------------
# what would make a refused candidate releasable


Run = Callable[[pd.DataFrame], tuple[pd.DataFrame, dict[str, Any], list[Any]]]


def _wider_bands(
    values: pd.Series, cuts: Sequence[int], open_top: bool
) -> tuple[pd.Series, list[str]] | None:
    """Age bands merged two by two (the delivered band labels mapped to the wider ones)."""
    wide = list(cuts[::2])
    if not open_top and wide[-1] != cuts[-1]:
        wide.append(cuts[-1])
    if len(wide) < 2 or len(wide) == len(cuts):
        return None
    old, new = C.AgeBands(cuts, open_top), C.AgeBands(wide, open_top)
    at = np.searchsorted(np.asarray(wide), np.asarray(old.cuts[: len(old.labels)]), side="right") - 1
    mapping = {o: new.labels[i] for o, i in zip(old.labels, at, strict=True)}
    return values.astype("string").map(mapping).astype("string[pyarrow]"), new.labels


def options(
    extract: pd.DataFrame,
    risk: dict[str, Any],
    run: Run,
    *,
    age_bands: tuple[Sequence[int], bool] | None = None,
) -> dict[str, Any]:
    """Single changes to the extract, each treated and checked again by ``run`` (the gate's own
    treatment and its k, l, suppression and role checks); when none passes, pairs of the three
    quasi-identifiers suppressed most are left out together.

    A change that leaves a variable out costs all its values; the ranking measure is the share
    of quasi-identifier values not shown (suppressed, withheld or left out; a wider band still
    shows a value). The nearest option is the passing one that shows the most.
    """
    qis = [q for q in risk.get("quasi_identifiers", []) if q != "year"]
    m = max(len(risk.get("quasi_identifiers", [])), 1)
    rows = max(len(extract), 1)

    def measure(change: str, variables: list[str], frame: pd.DataFrame, labels: list[str] | None) -> dict:
        _, facts, checks = run(frame)
        sup = facts.get("suppression") or {}
        per = sup.get("per_variable", {})
        withheld = int(sup.get("withheld_rows", 0))
        shown_m = len(facts.get("quasi_identifiers", []))
        not_shown = sum(v["count"] for v in per.values()) + withheld * shown_m + rows * (m - shown_m)
        failed = [c.name for c in checks if not c.ok]
        return {
            "change": change,
            "variables": variables,
            "bands": labels,
            "releasable": bool(checks) and not failed,
            "failed": failed,
            "min_class_size": (facts.get("after") or {}).get("min_class_size"),
            "below_k_before": (facts.get("before") or {}).get("records_below_k"),
            "record_share": sup.get("record_share"),
            "withheld_persons": sup.get("withheld_persons"),
            "values_not_shown": round(not_shown / (rows * m), 6),
        }

    tried = []
    for q in qis:
        tried.append(measure("leave_out", [q], extract.drop(columns=[q]), None))
    if age_bands is not None and "age_band" in extract.columns:
        wider = _wider_bands(extract["age_band"], *age_bands)
        if wider is not None:
            frame = extract.copy()
            frame["age_band"] = wider[0].to_numpy()
            tried.append(measure("wider_age_bands", ["age_band"], frame, wider[1]))
    if not any(o["releasable"] for o in tried):
        per = (risk.get("suppression") or {}).get("per_variable", {})
        worst = sorted(qis, key=lambda q: (-per.get(q, {}).get("count", 0), qis.index(q)))[:3]
        for i, a in enumerate(worst):
            for b in worst[i + 1 :]:
                tried.append(measure("leave_out", [a, b], extract.drop(columns=[a, b]), None))
    passing = [o for o in tried if o["releasable"]]
    nearest = min(passing, key=lambda o: (o["values_not_shown"], o["record_share"])) if passing else None
    sup = risk.get("suppression") or {}
    return {
        "method": "each change treated and checked again by the gate's own treatment (k, l, suppression, roles); "
        "membership is not measured again",
        "as_prepared": {
            "record_share": sup.get("record_share"),
            "values_not_shown": round(
                (
                    sum(v["count"] for v in sup.get("per_variable", {}).values())
                    + int(sup.get("withheld_rows", 0)) * m
                )
                / (rows * m),
                6,
            ),
        },
        "tried": tried,
        "nearest": None if nearest is None else tried.index(nearest),
    }
