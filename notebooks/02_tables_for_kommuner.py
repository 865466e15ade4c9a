# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Tables per kommun: suppression and the attacker's audit
#
# Counts of persons per kommun and insats are the register's main table product (the LSS cost
# equalisation and the state grant for daglig verksamhet are computed from them). A small count
# can point at a person, so:
#
# 1. **primary suppression** hides every count below the policy's frequency threshold (1 or 2
#    persons under `public-tables`);
# 2. **secondary suppression** hides enough other cells that no hidden count can be worked out
#    from the published cells and the totals;
# 3. **the audit** plays the attacker: it knows every published cell and every relation between
#    cells, and solves linear programmes for the smallest and largest value each hidden cell
#    can take. A release passes only if every sensitive cell keeps its protection interval.
#
# One subtlety decides what the attacker knows: **persons are counted once**. A person with
# two insatser is one person in the kommun's total, so that total is *not* the sum of its
# cells; it lies between the largest cell and the sum. Counts of insatser, on the other hand,
# add up. The tables carry these relations, and the audit uses the bounds as well as the
# equations.
#
# **Synthetic data only.** The register below is generated (one year, about as many persons as
# the real register holds); the notebook runs offline in a few seconds.

# %%
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

import lsssdc
from lsssdc import policy as P
from lsssdc.disclosure.table_output import table_frame, write_tables
from lsssdc.disclosure.tables import (
    PRIMARY,
    PUBLISHED,
    SECONDARY,
    FrequencyRule,
    ProtectedTables,
    Rules,
    build_table,
    protect,
)
from lsssdc.disclosure.tables.attack import audit
from lsssdc.register import synth

pd.set_option("display.width", 200)
pd.set_option("display.max_columns", 20)

POLICIES = Path(lsssdc.__file__).resolve().parent / "policies"
assert POLICIES.is_dir(), "the shipped policies travel with the package"
OUT = Path(tempfile.mkdtemp(prefix="lsssdc-tables-"))

# %% [markdown]
# ## The order, the policy and the register

# %%
policy = P.load_policy(POLICIES / "public-tables.yaml")
order = P.load_order(POLICIES / "orders" / "kommun-tables-2023.yaml")
P.check_order(order, policy)
thresholds = policy.thresholds
rules = Rules(
    frequency=FrequencyRule(threshold=thresholds.table_frequency, zero_is_safe=thresholds.zero_is_safe)
)
print(
    f"policy {policy.name}: counts below {thresholds.table_frequency} are hidden; "
    f"zero is safe: {thresholds.zero_is_safe}"
)
pd.DataFrame([t.model_dump() for t in order.tables])

# %%
register = synth.synthesise(order.years, persons=75_000, seed=11).register
print(f"{len(register):,} register rows in {order.years}, {register['personnummer'].nunique():,} persons")

# %% [markdown]
# ## Persons per kommun and insats
#
# The table holds every cell *and* every margin: kommun within län within riket, and each
# insats with the total over insatser. Its relations say which margins are sums and which are
# only bounds (a persons total over insatser or over kommuner).

# %%
spec = order.tables[0]
kommun_table = build_table(register, spec.dimensions, spec.unit, name=spec.name)
kommun_table.describe()

# %%
protected = protect(kommun_table, rules)
status = protected.status[0]
print(
    f"{kommun_table.size:,} cells: {int((status == PRIMARY).sum())} primary (fewer than "
    f"{thresholds.table_frequency} persons), {int((status == SECONDARY).sum())} secondary, "
    f"{int((status == PUBLISHED).sum()):,} published"
)
{k: protected.report[k] for k in ("primary", "secondary", "lp_repairs", "audit_rounds", "seconds")}

# %% [markdown]
# The published rows of one län, as the files show them: `..` is a hidden cell (the Swedish
# convention). Jämtlands län has eight kommuner, several of them small.

# %%
LAN = "23"
frame = table_frame(protected, 0)
jamtland = frame[frame["kommun"].str.startswith(LAN)]
view = jamtland.set_index(["kommun_text", "insats"])["value"].unstack()
view.loc[jamtland["kommun_text"].unique(), jamtland["insats"].unique()]

# %% [markdown]
# ## The attacker
#
# The audit solves, for every hidden cell, two linear programmes (the smallest and the largest
# value the cell can take given everything published). A sensitive cell of value *v* with
# *n* persons must stay open up to at least *v + max(1, threshold - n)* (so the attacker cannot
# rule out a safe count) and down to at most *v - 1* (so nobody's presence is certain).

# %%
exact = audit(protected, exact=True)
print("audit passed:", exact.passed, "|", exact.summary["lps"], "linear programmes solved")
assert exact.passed

names = dict(
    zip(kommun_table.hierarchies["kommun"].codes, kommun_table.hierarchies["kommun"].labels, strict=True)
)
cells = exact.cells
hidden_here = cells[cells["sensitive"] & cells["kommun"].str.startswith(LAN)].copy()
hidden_here["kommun"] = hidden_here["kommun"].map(names)
hidden_here[
    ["kommun", "insats", "value", "required_lower", "required_upper", "lower", "upper", "exact", "ok"]
].head(8)

# %% [markdown]
# ## An under-suppressed table fails the audit
#
# Publish the secondary cells again and hide only the small counts: the attacker subtracts
# the published cells from the totals (and uses the bounds of the persons totals) and pins
# some hidden counts exactly.

# %%
only_primary = [np.where(s == SECONDARY, PUBLISHED, s).astype(np.int8) for s in protected.status]
under = ProtectedTables(
    protected.tables, protected.rules, only_primary, protected.reason, protected.upper, protected.lower
)
attack = audit(under)
print(f"audit passed: {attack.passed}; {len(attack.failures)} sensitive cells narrowed too far")
assert not attack.passed

failed = pd.DataFrame(attack.failures)
where = kommun_table.cells.iloc[failed["cell"].to_numpy()][["kommun", "insats", "value"]].reset_index(
    drop=True
)
where["kommun"] = where["kommun"].map(names)
pd.concat([where, failed[["lower", "upper", "required_lower", "required_upper"]]], axis=1).head(8)

# %% [markdown]
# ## Both tables of the order, protected together
#
# The second table (persons per län, sex, age band and insats) shares cells with the first:
# the län totals per insats appear in both. Protected one at a time, a cell hidden in one
# table could be published in the other. Protected together, shared cells are one cell with
# one status, and the audit attacks both tables at once.

# %%
age_bands = tuple(policy.hierarchies.age.cuts)  # the policy's bands: 0-6, 7-12, ..., 80+
tables = [build_table(register, t.dimensions, t.unit, name=t.name, age_bands=age_bands) for t in order.tables]
both = protect(tables, rules)
both_audit = audit(both)
assert both_audit.passed
pd.DataFrame(
    [
        {
            "table": t.name,
            "cells": t.size,
            "primary": int((both.status[i] == PRIMARY).sum()),
            "secondary": int((both.status[i] == SECONDARY).sum()),
        }
        for i, t in enumerate(tables)
    ]
)

# %%
print("audit:", both_audit.summary["attacker"], "| passed:", both_audit.passed)
print(
    "distinct cells over both tables:",
    both_audit.summary["distinct_cells"],
    "of",
    both_audit.summary["cells"],
)

# %% [markdown]
# ## The files
#
# Each table is written as CSV (UTF-8 with a byte order mark, so Excel shows å, ä, ö), as an
# Excel workbook, and as a JSON description; `audit.json` holds only the audit's statement
# (passed, the attacker's model, counts). Every hidden cell shows the same mark and note. The
# bytes depend only on the tables, so the same inputs give the same files.

# %%
written = write_tables(both, OUT, both_audit)
pd.DataFrame([(p.name, p.stat().st_size) for p in written], columns=["file", "bytes"])

# %%
print("\n".join((OUT / f"{order.tables[0].name}.csv").read_text(encoding="utf-8-sig").splitlines()[:8]))

# %%
shutil.rmtree(OUT)
