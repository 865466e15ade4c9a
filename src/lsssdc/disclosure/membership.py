"""How much of a population group a delivery covers (delta-presence).

Everyone in an LSS delivery has a disability. If a delivery holds most of the persons of a
group an intruder can name from public knowledge (a year, a sex, an age band, a region), then
"this person is in that group" comes close to "this person is in the delivery", without any
record being singled out. The measure is, per group of the released values, the persons
delivered over the persons of the population; a suppressed value widens the group to every
value of that variable (it is compared with the population of the wider group).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from lsssdc.disclosure.persons import SUPPRESSED

ANY = "*"
#: Upper ends of the share bins of the report's histogram (a logarithmic scale, 1-2-5 steps).
SHARE_BINS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


@dataclass
class Presence:
    """Per group: delivered persons over population; the largest share and where it is."""

    columns: list[str]
    groups: int
    max_share: float
    above: int = 0
    bound: float | None = None
    no_population: int = 0
    worst: dict[str, Any] = field(default_factory=dict)
    #: groups by their share, per bin of SHARE_BINS ("<=0.001", ..., "<=1", ">1", "no population")
    histogram: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _keys(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    out = pd.DataFrame(index=frame.index)
    for c in columns:
        s = frame[c].astype("string")
        out[c] = s.mask(s.isna() | (s == SUPPRESSED), ANY).fillna(ANY)
    return out


def presence(
    rows: pd.DataFrame,
    person: str,
    population: pd.DataFrame,
    columns: list[str],
    bound: float | None = None,
) -> Presence:
    """Delivered persons per group of ``columns`` over the population's ``folkmangd`` there."""
    columns = [c for c in columns if c in rows.columns and c in population.columns]
    if rows.empty or not columns:
        return Presence(columns, 0, 0.0, bound=bound)
    keys = _keys(rows, columns)
    keys[person] = rows[person].to_numpy()
    delivered = (
        keys.drop_duplicates()
        .groupby(columns, sort=True, observed=True)
        .size()
        .rename("persons")
        .reset_index()
    )
    pop = population[[*columns, "folkmangd"]].copy()
    for c in columns:
        pop[c] = pop[c].astype("string")
    pattern = delivered[columns].eq(ANY)  # type: ignore[arg-type]  # the stubs omit str scalars
    parts = []
    for shown_mask, group in delivered.groupby([pattern[c] for c in columns], sort=True):
        mask = shown_mask if isinstance(shown_mask, tuple) else (shown_mask,)
        shown = [c for c, hidden in zip(columns, mask, strict=True) if not hidden]
        if shown:
            totals = pop.groupby(shown, observed=True)["folkmangd"].sum().rename("population").reset_index()
            merged = group.merge(totals, on=shown, how="left")
        else:
            merged = group.assign(population=pop["folkmangd"].sum())
        parts.append(merged)
    table = pd.concat(parts, ignore_index=True)
    table["population"] = table["population"].fillna(0)
    share = np.where(
        table["population"].to_numpy(float) > 0,
        table["persons"].to_numpy(float) / np.maximum(table["population"].to_numpy(float), 1.0),
        np.inf,
    )
    table["share"] = share
    worst = table.iloc[int(np.argmax(share))]
    finite = share[np.isfinite(share)]
    at = np.searchsorted(np.asarray(SHARE_BINS), finite, side="left")
    counts = np.bincount(at, minlength=len(SHARE_BINS) + 1)
    histogram = {f"<={b:g}": int(counts[i]) for i, b in enumerate(SHARE_BINS)}
    histogram |= {">1": int(counts[-1]), "no population": int(np.isinf(share).sum())}
    return Presence(
        columns=columns,
        groups=len(table),
        max_share=round(float(share.max()), 6) if np.isfinite(share.max()) else float("inf"),
        above=int((share > bound).sum()) if bound is not None else 0,
        bound=bound,
        no_population=int(np.isinf(share).sum()),
        worst={
            **{c: str(worst[c]) for c in columns},
            "persons": int(worst["persons"]),
            "population": int(worst["population"]),
        },
        histogram=histogram,
    )
