"""Earlier deliveries to the same project: what a new delivery is measured together with.

A project's deliveries share its pseudonyms, so a researcher joins them: a supplement with
other age bands, or one that shows a value the first suppressed, would undo the first one's
protection. The ledger says which candidates were delivered to the project (no file in the
work area is trusted for that); their sealed rows in the work area are read back and checked
against the content hash the ledger holds. What the gate needs from them is a digest per person
of their released rows, never a personnummer.

Deliveries whose persons carry running numbers (``lopnummer``) are valid in that delivery only
and cannot be joined, so they are not part of the history of a pseudonymised delivery and vice
versa.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from lsssdc.disclosure import persons as P
from lsssdc.errors import DisclosureRefused, Problem
from lsssdc.ledger import kinds
from lsssdc.release import candidate as cand

DATA = "data.parquet"


@dataclass
class History:
    """The earlier deliveries found for a project and the digests of their persons."""

    deliveries: list[dict[str, Any]] = field(default_factory=list)
    profiles: P.Profiles | None = None
    persons: pd.Series | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "deliveries": list(self.deliveries),
            "persons": 0 if self.persons is None else len(self.persons),
        }


def find(work_dir: Path, order_id: str, content_hash: str) -> cand.Candidate | None:
    folder = work_dir / order_id
    if not folder.is_dir():
        return None
    for attempt in sorted(folder.iterdir()):
        if not attempt.is_dir() or attempt.name.startswith("."):
            continue
        try:
            c = cand.load(attempt)
        except Exception:  # noqa: BLE001 - any unreadable attempt is simply not the one
            continue
        if c.manifest.get("content_hash") == content_hash:
            return c
    return None


def earlier(
    ledger: Any, work_dir: str | Path, project_id: str, person: str, not_identifying: set[str]
) -> History:
    """Every delivery to ``project_id`` on the ledger, read back from the work area and checked.

    ``not_identifying`` are the variables the policy holds sensitive or safe: they enter the
    digests only through the register's rules (a flag that narrows an age), like in this one.
    Refuses (fail closed) when a delivered candidate is gone or changed: without its rows the
    new delivery cannot be measured with it.
    """
    out = History()
    if ledger is None:
        return out
    frames: list[pd.DataFrame] = []
    for entry in ledger.entries("deliver"):
        pl = kinds.delivered(entry)
        if pl.get("project_id") != project_id or not pl.get("persons"):
            continue
        where = f"ledger entry {entry.seq} (order {pl.get('order_id')})"
        c = find(Path(work_dir), str(pl.get("order_id")), str(pl.get("content_hash")))
        if c is None:
            raise DisclosureRefused(
                Problem(
                    "history_missing",
                    f"an earlier delivery to project {project_id} ({where}) is not in the work area; "
                    "a new delivery is measured together with every earlier one",
                    file=str(work_dir),
                    hint="restore the delivered candidate into the work area",
                )
            )
        now, changed = c.recompute()
        if now != c.content_hash or DATA in changed:
            raise DisclosureRefused(
                Problem(
                    "history_changed",
                    f"the earlier delivery {where} changed after it was sealed",
                    file=str(c.path),
                )
            )
        data = pd.read_parquet(c.path / DATA)
        if person not in data.columns:
            continue  # running numbers or another person column: not joinable with this one
        if any(d["content_hash"] == c.content_hash for d in out.deliveries):
            continue
        out.deliveries.append({"order_id": c.order_id, "content_hash": c.content_hash, "entry": entry.seq})
        frames.append(data.assign(_delivery=str(len(frames))))
    if not frames:
        return out
    rows = pd.concat(frames, ignore_index=True, sort=True)
    codes, uniques = pd.factorize(rows[person], sort=False)
    columns = [c for c in rows.columns if c not in {person, P.FLAG_COLUMN, *not_identifying}]
    age = next((a for a in ("age_band", "age") if a in rows.columns), None)
    out.profiles = P.profiles(
        rows, codes.astype("int64"), len(uniques), columns, known={"age", "personkrets"}, age_column=age
    )
    out.persons = pd.Series(uniques, dtype="string")
    return out
