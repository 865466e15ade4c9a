"""An independent recount of k and l for the tests: shares no code with lsssdc.disclosure.

Brute force over pairs of distinct rows (identical records are counted once, with their
number), in blocks so that large frames fit in memory. The definition is the one lsssdc states: two records are compatible when
they agree on every quasi-identifier where both have a value; a record's class size counts the
compatible records, itself included; l counts the distinct sensitive values among them (a
missing sensitive value is a value of its own) and entropy l is exp of their entropy. With
``missing_weight=0`` a record that is missing a value the other record has does not count.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import sparse

_BLOCK = 512
_NA = "\x00missing"  # a marker no real value can equal


def _text(df: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Each column as text, missing values as a marker that no value equals."""
    out = pd.DataFrame(index=range(len(df)))
    for c in columns:
        col = df[c]
        na = col.isna().to_numpy()
        out[c] = [_NA if m else str(v) for v, m in zip(col.tolist(), na, strict=True)]
    return out


def _distinct(text: pd.DataFrame, columns: Sequence[str]) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Distinct rows over ``columns``, how many records each stands for, and each record's row."""
    grouped = text.groupby(list(columns), sort=True)
    sizes = grouped.size()
    uniques = sizes.index.to_frame(index=False)
    return uniques, sizes.to_numpy(), grouped.ngroup().to_numpy()


def _compatible_blocks(uniques: pd.DataFrame, qis: Sequence[str], missing_weight: int = 1):
    """Yield (offset, boolean block x U): which distinct rows count for which.

    With ``missing_weight`` 0 a row does not count for another when it is missing a value the
    other has.
    """
    n = len(uniques)
    ids = np.zeros((n, len(qis)), dtype=np.int64)
    missing = np.zeros((n, len(qis)), dtype=bool)
    for j, q in enumerate(qis):
        lookup: dict[str, int] = {}
        ids[:, j] = [lookup.setdefault(v, len(lookup)) for v in uniques[q]]
        missing[:, j] = (uniques[q] == _NA).to_numpy()
    for start in range(0, n, _BLOCK):
        stop = min(start + _BLOCK, n)
        block = np.ones((stop - start, n), dtype=bool)
        for j in range(len(qis)):
            same = ids[start:stop, j][:, None] == ids[None, :, j]
            either_missing = missing[start:stop, j][:, None] | missing[None, :, j]
            block &= same | either_missing
            if not missing_weight:
                block &= ~(~missing[start:stop, j][:, None] & missing[None, :, j])
        yield start, block


def class_sizes(df: pd.DataFrame, qis: Sequence[str], missing_weight: int = 1) -> np.ndarray:
    """Per record: the number of records compatible with it, itself included."""
    if not len(df):
        return np.zeros(0, dtype=np.int64)
    uniques, counts, row = _distinct(_text(df, qis), qis)
    per_unique = np.zeros(len(uniques), dtype=np.int64)
    for start, block in _compatible_blocks(uniques, qis, missing_weight):
        per_unique[start : start + len(block)] = block.astype(np.int64) @ counts
    return per_unique[row]


def diversity(
    df: pd.DataFrame, qis: Sequence[str], sensitive: str, missing_weight: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Per record: distinct sensitive values and exp(entropy) among the compatible records."""
    text = _text(df, [*qis, sensitive])
    uniques, counts, row = _distinct(text, [*qis, sensitive])
    levels = sorted(set(uniques[sensitive]))
    index = {v: i for i, v in enumerate(levels)}
    weighted = np.zeros((len(uniques), len(levels)), dtype=np.float64)
    weighted[np.arange(len(uniques)), [index[v] for v in uniques[sensitive]]] = counts
    distinct = np.zeros(len(uniques), dtype=np.int64)
    ent = np.zeros(len(uniques), dtype=np.float64)
    for start, block in _compatible_blocks(uniques, qis, missing_weight):
        per_value = block.astype(np.float64) @ weighted
        total = per_value.sum(axis=1, keepdims=True)
        p = np.divide(per_value, total, out=np.zeros_like(per_value), where=total > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            h = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)
        distinct[start : start + len(block)] = (per_value > 0).sum(axis=1)
        ent[start : start + len(block)] = np.exp(h)
    return distinct[row], ent[row]


def persons(df: pd.DataFrame, qis: Sequence[str], unit: str, missing_weight: int = 1) -> np.ndarray:
    """Per record: the number of distinct persons (``unit``) among the compatible records.

    Rows x persons incidence as a sparse matrix; compatible rows x incidence, then the
    non-zero persons per row.
    """
    if not len(df):
        return np.zeros(0, dtype=np.int64)
    uniques, _, row = _distinct(_text(df, qis), qis)
    pid = pd.factorize(df[unit].astype(str))[0]
    incidence = sparse.csr_matrix((np.ones(len(df)), (row, pid)), shape=(len(uniques), int(pid.max()) + 1))
    incidence.data[:] = 1.0  # duplicates were summed
    per_unique = np.zeros(len(uniques), dtype=np.int64)
    for start, block in _compatible_blocks(uniques, qis, missing_weight):
        reach = sparse.csr_matrix(block.astype(np.float64)) @ incidence
        per_unique[start : start + len(block)] = reach.getnnz(axis=1)
    return per_unique[row]


def check(
    df: pd.DataFrame,
    qis: Sequence[str],
    k: int,
    *,
    sensitive: Sequence[str] = (),
    l_diversity: int | None = None,
    entropy_l: float | None = None,
    missing_weight: int = 1,
    unit: str | None = None,
) -> list[str]:
    """The rules that fail, as short texts (empty when k and l hold)."""
    failures = []
    f = persons(df, qis, unit, missing_weight) if unit else class_sizes(df, qis, missing_weight)
    if (f < k).any():
        failures.append(f"k: {(f < k).sum()} records below k={k} (min {f.min()})")
    for s in sensitive:
        if l_diversity is None and entropy_l is None:
            continue
        distinct, ent = diversity(df, qis, s, missing_weight)
        if l_diversity is not None and (distinct < l_diversity).any():
            failures.append(f"l[{s}]: {(distinct < l_diversity).sum()} records below l={l_diversity}")
        if entropy_l is not None and (np.log(ent) < math.log(entropy_l) - 1e-9).any():
            failures.append(f"entropy l[{s}]: below {entropy_l}")
    return failures


def group_sizes_without_missing(df: pd.DataFrame, qis: Sequence[str]) -> np.ndarray:
    """Ordinary equivalence-class sizes (for frames without missing values), via pandas."""
    return df.groupby(list(qis), observed=True, dropna=False)[qis[0]].transform("size").to_numpy()
