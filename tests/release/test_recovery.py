"""`lsssdc audit recover` on a delivered order: every package against its deliver entry."""

from __future__ import annotations

import shutil
from pathlib import Path

from lsssdc.ledger.chain import Ledger
from lsssdc.release import recovery
from tests.release.conftest import Release


def _site(delivered: Release, tmp_path: Path) -> tuple[Path, Path, Path]:
    root = tmp_path / "site"
    shutil.copytree(delivered.root, root)

    def moved(p: Path) -> Path:
        return root / p.relative_to(delivered.root)

    return moved(delivered.ledger), moved(delivered.work), moved(delivered.package).parent


def _scan(ledger: Path, work: Path, out: Path) -> recovery.Recovery:
    with Ledger.open(ledger, create=False, readonly=True) as led:
        return recovery.scan(work, led, [out])


def test_a_delivered_package_agrees_with_its_entry(delivered: Release, tmp_path: Path) -> None:
    ledger, work, out = _site(delivered, tmp_path)
    found = _scan(ledger, work, out)
    assert found.ok and found.entry_without_effect == [] and found.changed == []


def test_a_changed_package_a_missing_one_and_one_without_entry_are_reported(
    delivered: Release, tmp_path: Path
) -> None:
    ledger, work, out = _site(delivered, tmp_path)
    package = out / delivered.package.name
    readme = next(p for p in sorted(package.iterdir()) if p.suffix == ".md")
    readme.write_bytes(readme.read_bytes() + b"\nedited after delivery\n")
    found = _scan(ledger, work, out)
    assert not found.ok and len(found.changed) == 1 and package.name in found.changed[0]
    # the package moved away: its entry has no package, and the moved folder no entry
    package.rename(out / "renamed")
    found = _scan(ledger, work, out)
    assert any(f"'{package.name}'" in s for s in found.entry_without_effect)
    assert any("renamed" in s and "no deliver entry" in s for s in found.without_entry)
