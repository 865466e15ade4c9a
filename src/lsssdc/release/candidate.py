"""A candidate release in its work area, and its content hash.

A candidate is a directory. ``candidate.json`` lists every content file with its SHA-256; the
candidate's *content hash* is the SHA-256 of that list in canonical JSON (RFC 8785). A reviewer
signs the content hash, and delivery recomputes it from the bytes on disk, so a delivery is
exactly what was approved. Decisions (``approval.json``, ``rejection.json``) live next to the
content and are not part of it.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rfc8785

from lsssdc import names
from lsssdc.errors import InputDataError, Problem
from lsssdc.fileio import atomic_path

MANIFEST = "candidate.json"
APPROVAL = "approval.json"
#: each further reviewer's approval, next to the first (``approval.<reviewer>.json``)
MORE_APPROVALS = "approval.*.json"
REJECTION = "rejection.json"
#: the ledger's signed head after a delivery's entry: a receipt inside the package, written after
#: the entry (so it is not among the files the entry records)
HEAD = "ledger-head.json"
#: decision copies for people (names and patterns); never part of the candidate's content
DECISIONS = (APPROVAL, MORE_APPROVALS, REJECTION)
FORMAT = "lsssdc-candidate-1"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def canonical(obj: Any) -> bytes:
    return rfc8785.dumps(obj)


def write_json(path: Path, obj: Any) -> None:
    """Write JSON deterministically (sorted keys, UTF-8, newline) and atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
        os.chmod(tmp, 0o600)


def is_decision(rel: str) -> bool:
    """A decision copy at the candidate's top level (a name in DECISIONS or matching one)."""
    return "/" not in rel and any(fnmatch.fnmatchcase(rel, pattern) for pattern in DECISIONS)


def approval_name(first: bool, reviewer: str) -> str:
    """The first approval is ``approval.json``; every further reviewer's gets a file of its own."""
    return APPROVAL if first else MORE_APPROVALS.replace("*", reviewer)


def content_files(directory: Path) -> list[str]:
    """Every file of the candidate's content, relative, sorted (decisions and manifest excluded)."""
    out = []
    for root, _dirs, files in os.walk(directory):
        for f in files:
            rel = Path(root, f).relative_to(directory).as_posix()
            if rel != MANIFEST and not is_decision(rel) and not f.endswith(".part"):
                out.append(rel)
    return sorted(out)


def content_hash(files: dict[str, str], meta: dict[str, Any]) -> str:
    """Hash of the file list and the manifest's facts (verdict, order, project ...) together."""
    return "sha256:" + hashlib.sha256(canonical({"files": files, "meta": meta})).hexdigest()


def data_hash(files: dict[str, str]) -> str:
    """Hash of what a candidate releases (its data and tables), apart from the order and report
    around them: the same data under another order text has the same data hash."""
    released = {k: v for k, v in files.items() if k == "data.parquet" or k.startswith("tables/")}
    return "sha256:" + hashlib.sha256(canonical(released)).hexdigest()


@dataclass(frozen=True)
class Candidate:
    """A loaded candidate: where it is and what its manifest says."""

    path: Path
    manifest: dict[str, Any]

    @property
    def content_hash(self) -> str:
        return self.manifest["content_hash"]

    @property
    def order_id(self) -> str:
        return self.manifest["order_id"]

    @property
    def project_id(self) -> str:
        return self.manifest["project_id"]

    @property
    def verdict(self) -> str:
        return self.manifest["verdict"]

    def recompute(self) -> tuple[str, list[str]]:
        """The content hash of the bytes on disk now, and the files that differ from the manifest."""
        files = {rel: sha256_file(self.path / rel) for rel in content_files(self.path)}
        listed = self.manifest["files"]
        changed = sorted(
            set(files) ^ set(listed) | {k for k in files if k in listed and files[k] != listed[k]}
        )
        return content_hash(files, self.meta), changed

    @property
    def meta(self) -> dict[str, Any]:
        return {k: v for k, v in self.manifest.items() if k not in ("files", "content_hash")}


def seal(directory: Path, meta: dict[str, Any]) -> Candidate:
    """Hash every content file and write the manifest: the candidate is now fixed."""
    files = {rel: sha256_file(directory / rel) for rel in content_files(directory)}
    meta = {"format": FORMAT, **meta}
    manifest = {**meta, "files": files, "content_hash": content_hash(files, meta)}
    write_json(directory / MANIFEST, manifest)
    return Candidate(directory, manifest)


def load(directory: str | os.PathLike[str]) -> Candidate:
    d = Path(directory)
    p = d / MANIFEST
    if not p.is_file():
        raise InputDataError(
            Problem("not_a_candidate", "no candidate here (candidate.json is missing)", file=str(d))
        )
    try:
        manifest = json.loads(p.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise InputDataError(
            Problem("bad_candidate", "candidate.json is not readable JSON", file=str(p))
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InputDataError(Problem("bad_candidate", "candidate.json has an unknown format", file=str(p)))
    return Candidate(d, manifest)


def new_attempt(work_dir: str | os.PathLike[str], order_id: str) -> tuple[Path, Path]:
    """Claim the next attempt folder of an order: ``work/<order>/<n>`` and its ``.<n>.part``.

    Earlier attempts are never touched (a rejected or approved candidate stays as it was), and
    the claim is a ``mkdir`` that fails when taken, so concurrent prepares of one order get
    different attempts. The order id must be a name and the order's folder must stay inside the
    work area (a symbolic link out of it is refused).
    """
    order_dir = names.inside(work_dir, names.check(order_id, "order_id"))
    order_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    names.inside(work_dir, order_id)  # again, now that it exists: a link planted meanwhile
    taken = [
        int(p.name.strip(".").removesuffix(".part"))
        for p in order_dir.iterdir()
        if _ATTEMPT.fullmatch(p.name)
    ]
    n = max(taken, default=0) + 1
    while True:
        tmp = order_dir / f".{n}.part"
        if not (order_dir / str(n)).exists():
            try:
                tmp.mkdir(mode=0o700)
                return order_dir / str(n), tmp
            except FileExistsError:
                pass
        n += 1


_ATTEMPT = re.compile(r"\.?[1-9][0-9]{0,8}(\.part)?")


def restrict(folder: Path) -> None:
    """Files 0600 and folders 0700 under ``folder``: work areas and packages hold microdata."""
    for p in [folder, *folder.rglob("*")]:
        if p.is_symlink():
            continue
        os.chmod(p, 0o700 if p.is_dir() else 0o600)
