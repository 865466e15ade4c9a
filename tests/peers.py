"""Peer tools used as independent cross-checks (pycanon, ...).

They live in an environment of their own: pycanon pins exact, older versions of numpy, pandas,
scipy and typer, so installing it normally would test versions users never get. It is
installed with ``pip install --no-deps pycanon`` (``.ci/run`` does this). Where a peer is
absent its tests are skipped with the reason; with ``LSSSDC_REQUIRE_PEERS=1`` (set by
``.ci/run``) an absent peer fails instead, so CI cannot skip the cross-check silently.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest

_HOW = {"pycanon": "pip install --no-deps pycanon (its exact pins would downgrade numpy, pandas and scipy)"}


def peer(module: str) -> ModuleType:
    """Import a peer tool's module, or skip (fail under LSSSDC_REQUIRE_PEERS=1) with how to get it."""
    top = module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        reason = f"peer cross-check: {top} is not installed; {_HOW.get(top, 'pip install --no-deps ' + top)}"
        if os.environ.get("LSSSDC_REQUIRE_PEERS") == "1":
            pytest.fail(f"{reason} ({exc})")
        pytest.skip(reason)
