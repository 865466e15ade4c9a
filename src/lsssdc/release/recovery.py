"""After a crash: what the work area holds against what the ledger says.

Every command writes its ledger entry before its effect becomes visible, so a kill at any
instant leaves one of: nothing visible; an entry whose effect never appeared (settled: the
attempt simply did not happen, run it again); or an effect with its entry. What must never be
found is an effect without its entry. This scan says which of these the work area is in and
lists leftover ``.part`` folders (a killed command's unfinished output); it removes nothing.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lsssdc.audit.ledger import Ledger
from lsssdc.release.candidate import APPROVAL, MANIFEST, REJECTION


@dataclass
class Recovery:
    """The state of a work area against its ledger."""

    candidates: int = 0
    part_folders: list[str] = field(default_factory=list)
    #: visible effects the ledger does not hold (must be empty)
    without_entry: list[str] = field(default_factory=list)
    #: entries whose effect never appeared (harmless: the step is simply run again)
    entry_without_effect: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.without_entry

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def scan(work: Path, ledger: Ledger) -> Recovery:
    """Compare every candidate and decision file under ``work`` with the ledger's entries."""
    by_kind: dict[str, dict[str, list[str]]] = {}
    for e in ledger.entries():
        h = e.payload.get("content_hash")
        if isinstance(h, str):
            by_kind.setdefault(e.kind, {}).setdefault(h, []).append(e.actor)
    rec = Recovery()
    seen: set[str] = set()
    work = Path(work)
    if not work.is_dir():
        return rec
    for part in sorted(work.rglob("*.part")):
        rec.part_folders.append(str(part))
    for manifest in sorted(work.glob(f"*/*/{MANIFEST}")):
        folder = manifest.parent
        if folder.name.endswith(".part"):
            continue
        rec.candidates += 1
        try:
            if manifest.is_symlink() or not manifest.is_file() or manifest.stat().st_size > (1 << 20):
                raise ValueError("not a regular manifest")  # a pipe or a device would hang the scan
            h = json.loads(manifest.read_text(encoding="utf-8"))["content_hash"]
        except (OSError, ValueError, KeyError, TypeError):
            rec.without_entry.append(f"{folder}: unreadable {MANIFEST}")
            continue
        seen.add(h)
        if h not in by_kind.get("prepare", {}) and h not in by_kind.get("refuse", {}):
            rec.without_entry.append(f"{folder}: a candidate with no prepare entry")
        for name, kind in ((APPROVAL, "approve"), (REJECTION, "reject")):
            if (folder / name).exists() and h not in by_kind.get(kind, {}):
                rec.without_entry.append(f"{folder}: {name} with no {kind} entry")
    for kind in ("prepare", "refuse"):
        for h in by_kind.get(kind, {}):
            if h not in seen:
                rec.entry_without_effect.append(
                    f"{kind} entry for {h[:19]}...: no candidate with this content"
                )
    return rec
