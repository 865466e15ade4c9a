"""Tables of counts and sums from the LSS register, their constraint model, and cell suppression.

A table here is every cell of a cross-classification *including* all its margins and the levels
of each hierarchy (kommun within län within riket), together with the linear relations between
cells that a reader of the published table knows. Which relations hold depends on what a cell
counts (its unit):

* ``insatser`` (person-insats pairs) and magnitude tables (sums of hours) add up everywhere:
  every margin is the sum of its cells (an equation);
* ``persons`` add up only over a dimension on which each person has exactly one value (sex, age
  band). Over insatser a person can hold several, and over kommuner a person can be served by
  two, so such a margin is the size of a union: at least its largest cell and at most the sum of
  its cells (two inequalities). Rule 9 of the register (the same insats is never reported by two
  kommuner) makes the kommun margins of one insats equations again; rule 5 (at most one housing
  insats) makes the housing cells disjoint, so a margin over insatser is at least their sum.

Primary suppression applies the frequency rule and, for magnitude tables, the (n, k) dominance
rule and the p% rule, each with protection levels. Secondary suppression hides further cells
until no primary cell can be narrowed below its protection interval by an attacker who knows all
published cells and every relation (see :mod:`lsssdc.disclosure.tables.attack`, which checks the
result and shares nothing with the suppression but the model).

How the secondary cells are chosen (deterministic):

1. a vectorised hypercube pass (in the spirit of HITAS and the hypercube method, made aware of
   union margins): for each primary cell and direction (up by its upper protection, down by its
   lower) a deviation shaped as a cube is built per table, each dimension either pairing the
   cell with a sibling (+/-), moving it with its margins up the hierarchy, staying put (where
   the line is a union with room), and descending to a leaf where the cell is itself a margin.
   Strategies are tried in stages; each candidate is checked against every relation of the
   linked tables, and the cheapest that holds is hidden and kept as a *witness*. A witness
   that moves another primary cell far enough protects that one too;
2. a local LP (HiGHS through :func:`scipy.optimize.milp`) for every cell and direction still
   unprotected: the cheapest deviation over a neighbourhood of the cell (hidden cells are
   free, published ones cost), widened until one exists. Its support is hidden and it becomes
   the witness;
3. the attacker runs; anything it can narrow too much is repaired as in 2, until it passes.

The package keeps each step in its own module: ``model`` (hierarchies, tables, relations, the
protected result), ``rules`` (primary suppression), ``from_register`` (building tables from the
register), ``joint`` (linked tables as one system), ``hypercube`` and ``secondary`` (choosing
the secondary cells), ``attack`` (the independent attacker; it imports only the model).
"""

from lsssdc.disclosure.tables.from_register import build_table
from lsssdc.disclosure.tables.model import (
    AGE_BANDS,
    COUNT_UNITS,
    DISJOINT,
    PRIMARY,
    PUBLISHED,
    REASON_DOMINANCE,
    REASON_FREQUENCY,
    REASON_NAMES,
    REASON_P,
    REASON_ZERO,
    RELATION_KINDS,
    RIKET,
    SECONDARY,
    STATUS_NAMES,
    SUM,
    TOTAL,
    UNION,
    CodeTree,
    ProtectedTables,
    Relations,
    Table,
    age_band_labels,
    kommun_tree,
    lan_tree,
)
from lsssdc.disclosure.tables.rules import DominanceRule, FrequencyRule, PRule, Rules, primary_cells
from lsssdc.disclosure.tables.secondary import protect

__all__ = [
    "AGE_BANDS",
    "COUNT_UNITS",
    "DISJOINT",
    "PRIMARY",
    "PUBLISHED",
    "REASON_DOMINANCE",
    "REASON_FREQUENCY",
    "REASON_NAMES",
    "REASON_P",
    "REASON_ZERO",
    "RELATION_KINDS",
    "RIKET",
    "SECONDARY",
    "STATUS_NAMES",
    "SUM",
    "TOTAL",
    "UNION",
    "DominanceRule",
    "FrequencyRule",
    "CodeTree",
    "PRule",
    "ProtectedTables",
    "Relations",
    "Rules",
    "Table",
    "age_band_labels",
    "build_table",
    "kommun_tree",
    "lan_tree",
    "primary_cells",
    "protect",
]
