"""The cell key method: noise on frequency tables, the same for the same persons everywhere.

A second protection for count tables next to cell suppression, the method of the EU 2021
census (the sdcTools R packages ``ptable`` and ``cellKey`` are the reference; nothing here is
taken from their code). Every person gets a secret 32-bit *record key*, the same in every year,
table and order. A cell's key is the sum modulo 2**32 of the record keys of what it counts, so a
cell of the same persons has the same key in every table that shows it. The noise of a cell is
looked up in a *perturbation table* (ptable) by the cell's true count and its key: the same
cell gets the same noise in every release, so publishing it again, in another order, or next to
a table of other dimensions gives an attacker nothing to average away. That is the point of the
method, and what :func:`audit` checks against an attacker who holds every release.

* :func:`record_keys`: the keys of the register rows (a keyed AES PRF of the personnummer);
* :class:`PTableParams` and :func:`ptable`: per true count ``i`` a maximum-entropy distribution
  of the published count with mean ``i``, variance ``V``, noise at most ``D`` and no published
  value in ``1..js-1``, as intervals of the key space;
* :func:`perturb`: the published values of one count table and what the noise costs;
* :func:`audit`: how far an attacker who holds every release and every relation can narrow
  each small cell (linear programmes over the feasible true values).

Margins are perturbed on their own key, not recomputed from their perturbed cells: a published
table does not add up (a reader cannot difference a margin against its cells to undo the
noise). Zero cells stay zero, so a published positive count shows that a cell is not empty;
the audit counts that against the frequency rule's lower protection (see :func:`audit`).

The package keeps each step in its own module: ``keys`` (record keys), ``perturbation_table``,
``noise`` (perturbing one table), ``space`` (the cells of every release as one space),
``proofs`` (feasible deviations and the LPs that prove them) and ``attacker`` (the audit with
every release).
"""

from lsssdc.disclosure.tables.cellkey.attacker import CellKeyAudit, audit
from lsssdc.disclosure.tables.cellkey.keys import KEY_LABEL, KEY_SPACE, record_keys
from lsssdc.disclosure.tables.cellkey.noise import CellKeyRecord, perturb
from lsssdc.disclosure.tables.cellkey.perturbation_table import PTable, PTableParams, ptable

__all__ = [
    "KEY_LABEL",
    "KEY_SPACE",
    "CellKeyAudit",
    "CellKeyRecord",
    "PTable",
    "PTableParams",
    "audit",
    "perturb",
    "ptable",
    "record_keys",
]
