"""Deterministic linkage of an LSS extract with other registers, by key, with a report.

Linkage happens inside the agency on personnummer, before pseudonymisation, or on the
project pseudonym when another agency pseudonymised its own part with the project's key.
Only registers and variables that both the policy allows and the order asks for come in.

Keys are normalised to 12 digits; a table of changed personnummer (old -> new) is applied to
both sides, following chains; duplicates in the other register are refused or resolved as the
policy says and counted, never silently multiplied. Registers with a ``year`` column link per
person and year when the extract has years too.

The :class:`LinkageReport` names no person: counts and shares only, and counts below the
policy's frequency threshold can be rendered as "<n" for anything that leaves the agency.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from lsssdc.errors import InputDataError, PolicyError, Problem
from lsssdc.identity import personnummer as pnr_mod
from lsssdc.policy import Order, Policy
from lsssdc.register.companions import COMPANIONS

KEY = "personnummer"


@dataclass
class RegisterLink:
    """What linking one register did."""

    register: str
    key: str
    rows: int
    persons: int
    samordningsnummer: int
    duplicate_keys: int
    duplicates_resolution: str
    changed_numbers_applied: int
    extract_persons: int
    matched_persons: int
    unmatched_persons: int
    match_share: float
    rows_outside_extract: int
    variables: list[str]
    match_share_by_year: dict[str, float] = field(default_factory=dict)

    def to_dict(self, threshold: int | None = None) -> dict[str, Any]:
        d = asdict(self)
        if threshold:
            for k in (
                "samordningsnummer",
                "duplicate_keys",
                "changed_numbers_applied",
                "matched_persons",
                "unmatched_persons",
                "rows_outside_extract",
            ):
                if 0 < d[k] < threshold:
                    d[k] = f"<{threshold}"
        return d


@dataclass
class LinkageReport:
    links: list[RegisterLink] = field(default_factory=list)

    def to_dict(self, threshold: int | None = None) -> dict[str, Any]:
        return {"registers": [link.to_dict(threshold) for link in self.links]}


def _normalise_key(values: pd.Series, column: str, source: str) -> tuple[pd.Series, pd.Series]:
    """Normalised keys and a samordningsnummer flag; refuse invalid values by row, never by value."""
    parsed = pnr_mod.parse(values)
    bad = ~parsed["valid"].to_numpy()
    if bad.any():
        idx = np.flatnonzero(bad)
        reasons = ", ".join(sorted({str(r) for r in parsed["reason"].to_numpy()[idx]}))
        raise InputDataError(
            Problem(
                "bad_personnummer",
                f"key column has invalid personnummer ({reasons})",
                file=source,
                column=column,
                rows=tuple(int(i) + 1 for i in idx[:20]),
                row_count=len(idx),
                hint="linkage keys must be valid 12-digit personnummer",
            )
        )
    return parsed["personnummer"], parsed["samordningsnummer"]


def apply_changes(keys: pd.Series, changes: pd.DataFrame | None) -> tuple[pd.Series, int]:
    """Replace changed personnummer (old -> new), following chains; count the replacements."""
    if changes is None or changes.empty:
        return keys, 0
    old = pnr_mod.normalise(changes["old"])
    new = pnr_mod.normalise(changes["new"])
    if old.isna().any() or new.isna().any():
        rows = tuple(int(i) + 1 for i in np.flatnonzero((old.isna() | new.isna()).to_numpy())[:20])
        raise InputDataError(
            Problem(
                "bad_personnummer",
                "the table of changed personnummer has invalid values",
                column="old/new",
                rows=rows,
            )
        )
    if old.duplicated().any():
        raise InputDataError(
            Problem("ambiguous_change", "a personnummer is changed to two different numbers", column="old")
        )
    mapping = pd.Series(new.to_numpy(), index=old.to_numpy())
    current = keys.astype(object).to_numpy()
    changed = np.zeros(len(current), bool)
    for _ in range(len(mapping) + 1):  # chains are short; a cycle would never settle
        hit = pd.Series(current).isin(mapping.index).to_numpy()
        if not hit.any():
            break
        current = np.where(hit, pd.Series(current).map(mapping).to_numpy(), current)
        changed |= hit
    else:
        raise InputDataError(Problem("change_cycle", "the table of changed personnummer has a cycle"))
    return pd.Series(current, index=keys.index, dtype="string[pyarrow]"), int(changed.sum())


def allowed_links(order: Order, policy: Policy) -> dict[str, list[str]]:
    """Registers and variables both the policy allows and the order asks for; refuse the rest by name."""
    out: dict[str, list[str]] = {}
    problems = []
    for req in order.linkages:
        rule = policy.linkage.get(req.register_name)
        if rule is None:
            problems.append(
                Problem(
                    "link_not_allowed",
                    f"the policy '{policy.name}' does not allow linking '{req.register_name}'",
                )
            )
            continue
        extra = [v for v in req.variables if v not in rule.variables]
        if extra:
            problems.append(
                Problem(
                    "link_not_allowed",
                    f"the policy '{policy.name}' does not allow "
                    f"{', '.join(extra)} from '{req.register_name}'",
                )
            )
            continue
        out[req.register_name] = list(req.variables)
    if problems:
        raise PolicyError(problems)
    return out


def _link_one(
    extract: pd.DataFrame,
    name: str,
    other: pd.DataFrame,
    variables: list[str],
    key: str,
    duplicates: str,
    changes: pd.DataFrame | None,
) -> tuple[pd.DataFrame, RegisterLink]:
    source = f"register '{name}'"
    missing = [c for c in (key, *variables) if c not in other.columns]
    if missing:
        raise InputDataError(Problem("missing_column", f"{source} lacks column(s) {', '.join(missing)}"))
    samord = 0
    applied = 0
    if key == KEY:
        keys, samord_flags = _normalise_key(other[key], key, source)
        samord = int(samord_flags.sum())
        keys, applied = apply_changes(keys, changes)
    else:
        keys = other[key].astype("string[pyarrow]")
    join = [key] + (
        ["year"] if "year" in other.columns and "year" in extract.columns and "year" not in variables else []
    )
    right = pd.DataFrame({key: keys.to_numpy()})
    if "year" in join:
        right["year"] = pd.to_numeric(other["year"]).astype(extract["year"].dtype).to_numpy()
    for v in variables:
        right[v] = other[v].to_numpy()
    dup = right.duplicated(join, keep=False)
    n_dup = int(right.loc[dup, join].drop_duplicates().shape[0])
    if n_dup:
        if duplicates == "refuse":
            raise InputDataError(
                Problem(
                    "duplicate_keys",
                    f"{source} has {n_dup} key(s) that occur more than once",
                    column=key,
                    rows=tuple(int(i) + 1 for i in np.flatnonzero(dup.to_numpy())[:20]),
                    row_count=int(dup.sum()),
                    hint="the policy refuses duplicates; resolve them at the source or set duplicates: first/last",
                )
            )
        right = right.drop_duplicates(join, keep=duplicates)
    rename = {v: (v if v not in extract.columns else f"{name}_{v}") for v in variables}
    right = right.rename(columns=rename)
    before = len(extract)
    merged = extract.merge(right, on=join, how="left", validate="many_to_one", sort=False, indicator="_link")
    if len(merged) != before:  # many_to_one guarantees it; checked because it must never happen
        raise InputDataError(Problem("multiplied", f"linking {source} would multiply rows"))
    indicator = (merged.pop("_link") == "both").to_numpy()
    persons = extract[key]
    matched_persons = int(pd.unique(persons[indicator]).size)
    all_persons = int(pd.unique(persons).size)
    by_year = {}
    if "year" in extract.columns:
        g = pd.DataFrame({"year": extract["year"].to_numpy(), "m": indicator})
        by_year = {str(y): round(float(v), 4) for y, v in g.groupby("year")["m"].mean().items()}
    outside = int((~right[key].isin(persons)).sum())
    link = RegisterLink(
        register=name,
        key=key,
        rows=len(other),
        persons=int(keys.nunique()),
        samordningsnummer=samord,
        duplicate_keys=n_dup,
        duplicates_resolution=duplicates if n_dup else "none",
        changed_numbers_applied=applied,
        extract_persons=all_persons,
        matched_persons=matched_persons,
        unmatched_persons=all_persons - matched_persons,
        match_share=round(matched_persons / all_persons, 4) if all_persons else 0.0,
        rows_outside_extract=outside,
        variables=list(rename.values()),
        match_share_by_year=by_year,
    )
    return merged, link


def link(
    extract: pd.DataFrame,
    registers: dict[str, pd.DataFrame],
    order: Order,
    policy: Policy,
    changes: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, LinkageReport]:
    """Link ``extract`` (with a normalised ``personnummer`` column) with the registers the order asks
    for and the policy allows. Returns the linked extract (same rows, same order) and the report."""
    wanted = allowed_links(order, policy)
    missing = [r for r in wanted if r not in registers]
    if missing:
        raise InputDataError(
            Problem(
                "missing_register", f"the order links {', '.join(missing)}, but no such register was given"
            )
        )
    if KEY not in extract.columns:
        raise InputDataError(Problem("missing_column", "the extract has no personnummer column to link on"))
    keys, _ = _normalise_key(extract[KEY], KEY, "the extract")
    keys, _ = apply_changes(keys, changes)
    out = extract.assign(**{KEY: keys.to_numpy()})
    report = LinkageReport()
    for name, variables in wanted.items():
        rule = policy.linkage[name]
        if name not in COMPANIONS:
            raise PolicyError(Problem("unknown_register", f"unknown register '{name}'"))
        out, rec = _link_one(out, name, registers[name], variables, rule.key, rule.duplicates, changes)
        report.links.append(rec)
    return out, report


def link_on_pseudonym(
    extract: pd.DataFrame,
    partner: pd.DataFrame,
    variables: list[str],
    name: str = "partner",
    column: str = "pseudonym",
    duplicates: str = "refuse",
) -> tuple[pd.DataFrame, RegisterLink]:
    """Join a partner agency's extract, pseudonymised with the same project key, on the pseudonym."""
    for frame, what in ((extract, "the extract"), (partner, f"register '{name}'")):
        if column not in frame.columns:
            raise InputDataError(Problem("missing_column", f"{what} has no column '{column}'"))
    return _link_one(extract, name, partner, variables, column, duplicates, None)
