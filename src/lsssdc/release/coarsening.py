"""An extract coarsened as its policy says: age bands, kommun levels, top-coded amounts, the
date of death at its precision; each recoding recorded for the report and the metadata."""

from __future__ import annotations

from typing import Any

import pandas as pd

from lsssdc import coarsen as C
from lsssdc.policy import Policy
from lsssdc.register import variables as V

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
