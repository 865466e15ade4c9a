"""Signed ledger heads exported with every decision, to a folder outside the ledger.

A ledger cut back to before its last exported head, or rewritten since, no longer extends that
head; `lsssdc audit verify --checkpoint FOLDER` checks every head in the folder. So approve,
reject and deliver each export the head that follows their entry (deliver also puts one in the
package). The folder is the command's ``--checkpoints``, else ``LSSSDC_CHECKPOINTS``, else the
candidate's policy's ``delivery.checkpoints``; keep it where the work area's users cannot write.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lsssdc import policy as P
from lsssdc.errors import LedgerIntegrityError, LsssdcError, Problem
from lsssdc.ledger.chain import Checkpoint

ENV = "LSSSDC_CHECKPOINTS"


def folder(explicit: str | Path | None, candidate: Path | None = None) -> Path | None:
    """Where heads go: the command's folder, the environment's, or the sealed policy's."""
    if explicit:
        return Path(explicit)
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    if candidate is not None and (candidate / "policy.yaml").is_file():
        try:
            named = P.load_policy(candidate / "policy.yaml").delivery.checkpoints
        except LsssdcError:
            return None
        return Path(named) if named else None
    return None


def known(where: Path | None, origin: str) -> list[Checkpoint]:
    """Every head exported to the folder; all must be of this ledger (by its origin).

    A decision is taken only on a ledger that extends all of them: a copy of the ledger that
    forked from the real one, or the real one cut back, does not. An unreadable file in the
    folder stops the decision too (it may be the head that would have shown the fork).
    """
    if where is None or not where.is_dir():
        return []
    out = []
    for path in sorted(where.glob("*.json")):
        try:
            cp = Checkpoint.read(path)
        except LsssdcError as exc:
            raise LedgerIntegrityError(
                Problem(
                    "checkpoint_folder_unreadable",
                    f"a file in the checkpoint folder is not a readable ledger head: {exc.problems[0].message}",
                    file=str(path),
                    hint="move it away if it does not belong there; no decision is taken until then",
                )
            ) from None
        if cp.origin != origin:
            # the folder belongs to one ledger: a decision on another (a new or substitute ledger
            # started to escape the real one's history) is refused
            raise LedgerIntegrityError(
                Problem(
                    "foreign_ledger",
                    f"the checkpoint folder keeps the heads of ledger '{cp.origin}'; this decision is on "
                    f"ledger '{origin}'",
                    file=str(path),
                    hint="decide on the ledger whose heads the folder keeps, or give that ledger's own folder",
                )
            )
        out.append(cp)
    return out


def export(ledger: Any, signer: Any, where: Path | None, seq: int, kind: str) -> Path | None:
    """Write the ledger's signed head after entry ``seq`` as ``head-<seq>-<kind>.json``; never
    overwrite an exported head."""
    if where is None:
        return None
    cp = ledger.checkpoint(signer)
    target = where / f"head-{seq:08d}-{kind}.json"
    try:
        where.mkdir(parents=True, exist_ok=True)
        if target.exists():
            raise FileExistsError(str(target))
        return cp.write(target)
    except OSError as exc:
        raise LedgerIntegrityError(
            Problem(
                "checkpoint_export",
                f"the {kind} is on the ledger (entry {seq}) but its signed head could not be exported: "
                f"{exc.strerror or exc}",
                file=str(target),
                hint="export it now with: lsssdc audit checkpoint --out FILE",
            )
        ) from None
