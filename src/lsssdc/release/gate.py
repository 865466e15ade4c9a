"""The gate: the checks a candidate is held to, and the one place that says releasable."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Check:
    """One condition the gate looks at."""

    name: str
    ok: bool
    reason: str
    #: the measured figure and the policy's threshold it is held to (None where there is none)
    figure: float | int | None = None
    threshold: float | int | None = None
    #: the variables the check names (roles without a role, identifiers still present)
    variables: list[str] | None = None


@dataclass
class Verdict:
    decision: str  # "releasable" or "refused"
    reasons: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "reasons": list(self.reasons),
            "checks": [c.__dict__ for c in self.checks],
        }


def gate(checks: list[Check]) -> Verdict:
    """The one place that says yes: releasable only when there are checks and every one holds."""
    failed = [c for c in checks if not c.ok]
    if not checks or failed:
        reasons = [c.reason for c in failed] or ["nothing was checked"]
        return Verdict("refused", reasons, checks)
    return Verdict("releasable", [], checks)
