"""The policies and example orders that ship inside the package.

They travel with the installed package (package data), so a policy is addressable by its name
from any folder: ``--policy research-with-deaths`` is the shipped file, while anything that
looks like a path (a folder separator or a ``.yaml``/``.yml`` suffix) is read as a file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from lsssdc.errors import PolicyError, Problem

_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")


@dataclass(frozen=True)
class Shipped:
    """One shipped policy or example order."""

    name: str
    kind: str  # "policy" or "order"
    path: Path
    policy: str  # for an order, the policy it is written for; for a policy, its own name
    title: str


def folder() -> Path:
    """The folder of the shipped policies (example orders in its `orders` subfolder)."""
    return Path(str(resources.files("lsssdc") / "policies"))


def _describe(path: Path, kind: str) -> Shipped:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if kind == "policy":
        title = str(data.get("description", "")).strip().splitlines()[0] if data.get("description") else ""
        return Shipped(path.stem, kind, path, str(data.get("name", path.stem)), title)
    title = str(data.get("purpose", "")).strip().splitlines()[0] if data.get("purpose") else ""
    return Shipped(path.stem, kind, path, str(data.get("policy", "")), title)


def policies() -> list[Shipped]:
    """The shipped policies, by name."""
    return [_describe(p, "policy") for p in sorted(folder().glob("*.yaml"))]


def orders() -> list[Shipped]:
    """The shipped example orders, by name, each with the policy it is written for."""
    return [_describe(p, "order") for p in sorted((folder() / "orders").glob("*.yaml"))]


def looks_like_path(arg: str | os.PathLike[str]) -> bool:
    """True when ``arg`` is meant as a file: it has a folder separator or a YAML suffix."""
    text = os.fspath(arg)
    return "/" in text or os.sep in text or text.lower().endswith((".yaml", ".yml"))


def resolve(arg: str | os.PathLike[str], kind: str) -> Path:
    """A policy or order argument as a file: a path as given, a bare name as the shipped file.

    A bare name that is not shipped is refused with the shipped names, never looked up in the
    current folder (so the same command means the same thing from any folder).
    """
    if looks_like_path(arg):
        return Path(arg)
    name = os.fspath(arg)
    found = {s.name: s for s in (policies() if kind == "policy" else orders())}
    if _NAME.fullmatch(name) and name in found:
        return found[name].path
    listing = ", ".join(sorted(found)) or "none"
    raise PolicyError(
        Problem(
            "no_shipped",
            f"no shipped {kind} is named '{name}' (shipped: {listing})",
            file=name if _NAME.fullmatch(name) else None,
            hint="to read a file, give its path (ending in .yaml); `lsssdc policy list` shows the shipped ones",
        )
    )
