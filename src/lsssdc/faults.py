"""Named step boundaries where a test can kill the process (fault injection).

Each state-changing command passes through named points (``prepare.sealed``,
``deliver.entry`` ...). When ``LSSSDC_KILL_AT`` names one, the process kills itself there with
SIGKILL, exactly as a crash or ``kill -9`` would: no cleanup, no ``finally``. Tests use this to
show that every boundary leaves either nothing visible or a visible effect with its ledger
entry. Unset (always, outside tests) it costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "LSSSDC_KILL_AT"

#: every point, in the order the commands pass them
POINTS = (
    "prepare.sealed",  # candidate sealed in its .part folder, no entry yet
    "prepare.entry",  # entry written, candidate not yet renamed into place
    "prepare.done",
    "approve.checked",  # everything checked, no entry yet
    "approve.entry",  # entry written, approval.json not yet
    "approve.done",
    "reject.entry",
    "reject.done",
    "deliver.built",  # package complete in its .part folder, no entry yet
    "deliver.entry",  # entry written, head and rename not yet
    "deliver.done",
)


def point(name: str) -> None:
    """Die here (SIGKILL) when the environment asks for this point."""
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
