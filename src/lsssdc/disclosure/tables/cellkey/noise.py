"""Perturbing one count table: every cell, margins too, plus the noise its key draws from the
ptable, and the :class:`CellKeyRecord` of what that noise costs (for the reviewer report).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lsssdc.disclosure.tables.cellkey.perturbation_table import PTable
from lsssdc.disclosure.tables.model import SUM, Table
from lsssdc.errors import PolicyError, Problem


@dataclass(frozen=True)
class CellKeyRecord:
    """What the noise did to one table: the figures the reviewer report shows (no cell values)."""

    table: str
    params: dict[str, Any]
    cells: int
    changed: int
    share_unchanged: float
    mean_abs_error: float
    mean_abs_error_leaves: float
    mean_abs_error_margins: float
    mean_abs_error_nonzero: float
    max_abs_error: int
    mean_noise: float
    relative_error_mean: float
    relative_error_by_size: dict[str, dict[str, float]]
    sum_relations: int
    sum_relations_broken: int
    ptable: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "method": "cell key",
            "params": dict(self.params),
            "cells": self.cells,
            "changed": self.changed,
            "share_unchanged": self.share_unchanged,
            "mean_abs_error": self.mean_abs_error,
            "mean_abs_error_leaves": self.mean_abs_error_leaves,
            "mean_abs_error_margins": self.mean_abs_error_margins,
            "mean_abs_error_nonzero": self.mean_abs_error_nonzero,
            "max_abs_error": self.max_abs_error,
            "mean_noise": self.mean_noise,
            "relative_error_mean": self.relative_error_mean,
            "relative_error_by_size": {k: dict(v) for k, v in self.relative_error_by_size.items()},
            "sum_relations": self.sum_relations,
            "sum_relations_broken": self.sum_relations_broken,
            "additive": False,
            "ptable": dict(self.ptable),
            "notes": list(self.notes),
        }


_SIZE_CLASSES = ((1, 10, "1-9"), (10, 100, "10-99"), (100, 1000, "100-999"), (1000, None, "1000+"))


def _mean(x: np.ndarray) -> float:
    return float(x.mean()) if len(x) else 0.0


def _count_table(table: Table, what: str) -> None:
    if table.measure is not None:
        raise PolicyError(
            Problem(
                "cellkey_counts_only",
                f"table '{table.name}': the cell key method here perturbs count tables only",
                hint="protect a table of sums by suppression",
            )
        )
    if what == "key" and "cell_key" not in table.cells:
        raise PolicyError(
            Problem(
                "cellkey_no_key",
                f"table '{table.name}' has no cell keys",
                hint="build it with record_keys (build_table(..., record_keys=record_keys(...)))",
            )
        )


def perturb(table: Table, pt: PTable) -> tuple[np.ndarray, CellKeyRecord]:
    """Published values of a count table: each cell's value plus the noise its key draws.

    Every cell, margins too, is perturbed on its own key (row ``min(value, last row)``); zero
    cells stay zero. The published table therefore does not add up, which is what keeps a
    margin from undoing the noise of its cells; the record counts the broken sums.
    """
    _count_table(table, "key")
    value = table.cells["value"].to_numpy(dtype=np.int64)
    if (value < 0).any():
        raise PolicyError(Problem("cellkey_negative", f"table '{table.name}' has negative counts"))
    keys = table.cells["cell_key"].to_numpy()
    if keys.dtype != np.uint32:
        raise PolicyError(Problem("cellkey_key_type", f"table '{table.name}': cell keys must be uint32"))
    noise = pt.noise(value, keys)
    published = value + noise
    err = np.abs(noise)
    margin = table.cells["margin"].to_numpy(dtype=bool)
    nz = value > 0
    rel = err[nz] / value[nz]
    by_size: dict[str, dict[str, float]] = {}
    for lo, hi, name in _SIZE_CLASSES:
        sel = (value >= lo) & (value < hi) if hi is not None else value >= lo
        if sel.any():
            by_size[name] = {
                "cells": int(sel.sum()),
                "mean_abs_error": round(_mean(err[sel]), 6),
                "mean_relative_error": round(_mean(err[sel] / value[sel]), 6),
                "max_relative_error": round(float((err[sel] / value[sel]).max()), 6),
            }
    rels = table.relations
    sums = np.flatnonzero(rels.kind == SUM)
    broken = 0
    if len(sums) and len(rels.children):  # a sum relation has children
        child_sum = np.add.reduceat(published[rels.children], rels.ptr[:-1])
        broken = int((child_sum[sums] != published[rels.parent[sums]]).sum())
    record = CellKeyRecord(
        table=table.name,
        params=pt.params.to_dict(),
        cells=int(len(value)),
        changed=int((noise != 0).sum()),
        share_unchanged=round(_mean((noise == 0).astype(np.float64)), 6) if len(value) else 1.0,
        mean_abs_error=round(_mean(err), 6),
        mean_abs_error_leaves=round(_mean(err[~margin]), 6),
        mean_abs_error_margins=round(_mean(err[margin]), 6),
        mean_abs_error_nonzero=round(_mean(err[nz]), 6),
        max_abs_error=int(err.max()) if len(err) else 0,
        mean_noise=round(_mean(noise.astype(np.float64)), 6),
        relative_error_mean=round(_mean(rel), 6),
        relative_error_by_size=by_size,
        sum_relations=int(len(sums)),
        sum_relations_broken=broken,
        ptable=pt.to_dict(),
        notes=(
            "every cell, margins too, is perturbed on its own key: the published table does not add up",
            "zero cells stay zero",
            *pt.notes,
        ),
    )
    return published, record
