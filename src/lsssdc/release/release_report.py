"""The one record of a prepare: what every step did, and its renderings.

Each step of :func:`lsssdc.release.pipeline.prepare` returns its own record (the selection,
the linkage report, the pseudonymisation, the history joined, the person-level control's
facts, the table summaries, the gate's verdict); :class:`ReleaseReport` holds them together.
Everything that tells of the release is rendered from it, never assembled by hand a second
time: ``report.json`` (:meth:`ReleaseReport.to_json`, which the HTML report and the short
summary render in turn), ``metadata.json`` (:meth:`ReleaseReport.metadata`), the facts the seal
binds (:meth:`ReleaseReport.seal_facts`), the ledger entry's payload
(:meth:`ReleaseReport.ledger_payload`) and the command line's summary
(:meth:`ReleaseReport.summary`). So the reviewer, the ledger and the terminal cannot tell
different stories of one release.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import lsssdc
from lsssdc.identity.pseudonym import PseudonymReport
from lsssdc.ledger import kinds
from lsssdc.linkage import LinkageReport
from lsssdc.policy import Order, Policy
from lsssdc.release.extract import SelectionRecord
from lsssdc.release.gate import Check, Verdict, gate
from lsssdc.release.history import History

#: the ledger keeps these risk figures of the person-level control, before and after treatment
_LEDGER_RISK = ("k", "records_below_k", "sample_uniques", "expected_reidentifications")


@dataclass
class Input:
    """A file that went into a release: name, SHA-256, rows (for the report and the ledger)."""

    name: str
    hash: str
    rows: int


def _plain(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


@dataclass
class TablesRecord:
    """What a table order produced: the tables' summaries, the attacker's audit, the earlier
    releases read with them, and the cell key parameters when values are perturbed."""

    tables: list[dict[str, Any]]
    audit: dict[str, Any]
    history: dict[str, Any]
    cell_key: dict[str, Any] | None = None


@dataclass
class HistoryRecord:
    """The project's earlier deliveries joined to this one, and whether a ledger was looked in."""

    history: History
    ledger: bool

    def to_dict(self) -> dict[str, Any]:
        return self.history.to_dict() | {"ledger": self.ledger}


@dataclass
class ReleaseReport:
    """Every step's record of one prepare, in the order the steps ran.

    A step that did not run (a table order has no selection; a refusal stops the flow) leaves
    its field empty; the renderings say so the same way every time."""

    order: Order
    policy: Policy
    inputs: list[Input]
    version: str = lsssdc.__version__
    selection: SelectionRecord | None = None
    register_rows: int = 0
    linkage: LinkageReport | None = None
    pseudonymisation: PseudonymReport | None = None
    recodings: list[dict[str, Any]] = field(default_factory=list)
    history: HistoryRecord | None = None
    risk: dict[str, Any] | None = None
    information_loss: dict[str, Any] | None = None
    tables: TablesRecord | None = None
    tables_held: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    checks: list[Check] = field(default_factory=list)
    delivered: list[str] = field(default_factory=list)
    person_index: dict[str, Any] | None = None

    @property
    def kind(self) -> Literal["tables", "microdata"]:
        return "tables" if self.order.tables else "microdata"

    @property
    def verdict(self) -> Verdict:
        """The gate's decision on the checks recorded (the one place that says yes)."""
        return gate(self.checks)

    @property
    def releasable(self) -> bool:
        return self.verdict.decision == "releasable"

    @property
    def suppression(self) -> dict[str, Any] | None:
        """The local suppression's record, when the person-level control treated the data."""
        risk = self.risk or {}
        return risk.get("suppression") if "after" in risk else None

    # ------------------------------------------------------------------ renderings

    def to_json(self) -> dict[str, Any]:
        """``report.json``: the reviewer's full record (the HTML report renders this)."""
        selection = (
            self.selection.to_dict()
            if self.selection is not None
            else {
                "population_rule": "",
                "persons": 0,
                "rows": 0,
                "register_rows": self.register_rows,
                "rows_by_year": {},
            }
        )
        out: dict[str, Any] = {
            "version": self.version,
            "order": _plain(self.order.model_dump(by_alias=True)) | {"hash": self.order.hash},
            "policy": _plain(self.policy.model_dump(by_alias=True)) | {"hash": self.policy.hash},
            "inputs": [i.__dict__ for i in self.inputs],
            "selection": selection,
            "linkage": (
                self.linkage.to_dict(threshold=self.policy.thresholds.table_frequency)
                if self.linkage is not None
                else None
            ),
            "recodings": self.recodings,
            "risk": self.risk,
            "suppression": self.suppression,
            "information_loss": self.information_loss,
            "tables": self.tables.tables if self.tables is not None else None,
            "verdict": self.verdict.to_dict(),
            "delivered_variables": list(self.delivered),
        }
        optional: dict[str, Any] = {
            "pseudonymisation": self.pseudonymisation.to_dict() if self.pseudonymisation else None,
            "history": self.history.to_dict() if self.history is not None else None,
            "table_audit": self.tables.audit if self.tables is not None else None,
            "table_history": self.tables.history if self.tables is not None else None,
            "cell_key": self.tables.cell_key if self.tables is not None else None,
            "tables_held": self.tables_held,
            "error": self.error,
        }
        return out | {k: v for k, v in optional.items() if v is not None}

    def metadata(self) -> dict[str, Any]:
        """``metadata.json``: what the delivery holds, for the package and its codebook."""
        return {
            "kind": self.kind,
            "order_id": self.order.order_id,
            "project_id": self.order.project_id,
            "diarienummer": self.order.diarienummer,
            "years": sorted(set(self.order.years)),
            "recodings": self.recodings,
            "suppressed_share": {
                k: v["share"] for k, v in (self.suppression or {}).get("per_variable", {}).items()
            },
            "linkage": (
                self.linkage.to_dict(threshold=self.policy.thresholds.table_frequency)
                if self.linkage is not None
                else {}
            ),
            "columns": list(self.delivered),
            "formats": list(self.policy.delivery.formats),
            "person_index": self.person_index if self.releasable else None,
        }

    def seal_facts(self) -> dict[str, Any]:
        """What the candidate's seal binds besides its files: whose order, under which policy."""
        return {
            "kind": self.kind,
            "order_id": self.order.order_id,
            "project_id": self.order.project_id,
            "verdict": self.verdict.decision,
            "policy_hash": self.policy.hash,
            "order_hash": self.order.hash,
            "inputs": [i.__dict__ for i in self.inputs],
        }

    def ledger_payload(self, content_hash: str, data_hash: str) -> kinds.PreparePayload:
        """The ``prepare``/``refuse`` entry: the seal and the figures the ledger keeps."""
        verdict = self.verdict
        return {
            "order_id": self.order.order_id,
            "project_id": self.order.project_id,
            "diarienummer": self.order.diarienummer,
            "policy": self.policy.name,
            "policy_hash": self.policy.hash,
            "order_hash": self.order.hash,
            "inputs": [i.__dict__ for i in self.inputs],
            "content_hash": content_hash,
            "data_hash": data_hash,
            "verdict": verdict.decision,
            "reasons": verdict.reasons,
            "risk": self._risk_payload(),
            "identifiers": list(self.policy.identifiers),
            "reviewers_required": self.policy.delivery.reviewers,
            "columns": [str(c) for c in self.delivered] if verdict.decision == "releasable" else [],
        }

    def summary(self, path: Path, content_hash: str) -> dict[str, Any]:
        """The command line's summary of the candidate written at ``path``."""
        verdict = self.verdict
        return {
            "candidate": str(path),
            "verdict": verdict.decision,
            "content_hash": content_hash,
            "report": str(path / "report.html"),
            "reasons": list(verdict.reasons),
        }

    def _risk_payload(self) -> dict[str, Any] | None:
        """The risk figures the ledger keeps: k, records below k, uniques, expected
        re-identifications, before and after treatment."""
        risk = self.risk
        if not risk:
            return None
        return {
            when: {f: risk[when].get(f) for f in _LEDGER_RISK}
            for when in ("before", "after")
            if risk.get(when)
        }
