"""Disclosure control: measure the risk of a candidate release and treat it until the policy holds.

Microdata: :mod:`.risk` (k-anonymity, l-diversity, per-record risk), :mod:`.suppress` (local
suppression) and :mod:`.lattice` (least-loss generalisation). Tables: :mod:`.tables`.
"""

from lsssdc.disclosure.lattice import LatticeReport, generalise
from lsssdc.disclosure.risk import Criteria, RiskReport, measure
from lsssdc.disclosure.suppress import SuppressionReport, suppress_locally

__all__ = [
    "Criteria",
    "LatticeReport",
    "RiskReport",
    "SuppressionReport",
    "generalise",
    "measure",
    "suppress_locally",
]
