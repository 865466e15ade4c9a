"""After a crash: what the work area holds against what the ledger says.

Every command writes its ledger entry before its effect becomes visible, so a kill at any
instant leaves one of: nothing visible; an entry whose effect never appeared (settled: the
attempt simply did not happen, run it again); or an effect with its entry. What must never be
found is an effect without its entry. This scan says which of these the work area is in and
lists leftover ``.part`` folders (a killed command's unfinished output); it removes nothing.
Given the delivery folders, it also finds each ``deliver`` entry's package: one that never
appeared (settled: deliver again), one whose files differ from what the entry recorded, and
packages no entry records.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lsssdc.ledger.chain import Ledger
from lsssdc.release import package
from lsssdc.release.candidate import APPROVAL, HEAD, MANIFEST, MORE_APPROVALS, REJECTION, sha256_file


@dataclass
class Recovery:
    """The state of a work area against its ledger."""

    candidates: int = 0
    part_folders: list[str] = field(default_factory=list)
    #: visible effects the ledger does not hold (must be empty)
    without_entry: list[str] = field(default_factory=list)
    #: entries whose effect never appeared (harmless: the step is simply run again)
    entry_without_effect: list[str] = field(default_factory=list)
    #: delivered packages whose files differ from what their entry recorded (must be empty)
    changed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.without_entry and not self.changed

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def scan(work: Path, ledger: Ledger, deliveries: Sequence[Path] = ()) -> Recovery:
    """Compare every candidate and decision file under ``work``, and every package in the
    ``deliveries`` folders, with the ledger's entries."""
    by_kind: dict[str, dict[str, list[str]]] = {}
    delivered: list[tuple[int, dict[str, Any]]] = []
    for e in ledger.entries():
        h = e.payload.get("content_hash")
        if isinstance(h, str):
            by_kind.setdefault(e.kind, {}).setdefault(h, []).append(e.actor)
        if e.kind == "deliver":
            delivered.append((e.seq, e.payload))
    rec = Recovery()
    _packages(rec, delivered, deliveries)
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
        for more in sorted(folder.glob(MORE_APPROVALS)):
            reviewer = more.name[len("approval.") : -len(".json")]
            if reviewer not in by_kind.get("approve", {}).get(h, []):
                rec.without_entry.append(f"{folder}: {more.name} with no approve entry by {reviewer}")
    for kind in ("prepare", "refuse"):
        for h in by_kind.get(kind, {}):
            if h not in seen:
                rec.entry_without_effect.append(
                    f"{kind} entry for {h[:19]}...: no candidate with this content"
                )
    return rec


def _packages(rec: Recovery, delivered: list[tuple[int, dict[str, Any]]], roots: Sequence[Path]) -> None:
    """Each deliver entry's package in the delivery folders, and packages with no entry."""
    if not roots:
        return
    recorded = {str(p.get("package")): (seq, p) for seq, p in delivered}
    for root in (Path(r) for r in roots):
        if not root.is_dir():
            continue
        rec.part_folders.extend(str(p) for p in sorted(root.glob("*.part")))
        for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.endswith(".part")):
            if (folder / "MANIFEST.sha256").is_file() and folder.name not in recorded:
                rec.without_entry.append(f"{folder}: a package no deliver entry records")
    for name, (seq, p) in sorted(recorded.items(), key=lambda x: x[1][0]):
        found = [Path(r) / name for r in roots if (Path(r) / name).is_dir()]
        if not found:
            rec.entry_without_effect.append(
                f"deliver entry {seq} (order {p.get('order_id')}): package '{name}' is in none of the "
                "delivery folders (the delivery did not complete: deliver again)"
            )
            continue
        files = {f.name: sha256_file(f) for f in sorted(found[0].iterdir()) if f.is_file() and f.name != HEAD}
        if package.manifest_hash(files) != p.get("manifest_hash"):
            rec.changed.append(f"{found[0]}: its files are not the ones deliver entry {seq} recorded")
