"""lsssdc: statistical disclosure control and audited release of LSS register extracts.

The public API, imported on first use so that ``import lsssdc`` stays quick::

    from lsssdc import load_policy, load_order, prepare, approve, reject, deliver, Ledger, KeyStore
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_API = {
    "load_policy": ("lsssdc.policy", "load_policy"),
    "load_order": ("lsssdc.policy", "load_order"),
    "check_order": ("lsssdc.policy", "check_order"),
    "prepare": ("lsssdc.release.pipeline", "prepare"),
    "approve": ("lsssdc.release", "approve"),
    "reject": ("lsssdc.release", "reject"),
    "deliver": ("lsssdc.release", "deliver"),
    "Ledger": ("lsssdc.ledger.chain", "Ledger"),
    "KeyStore": ("lsssdc.identity.keystore", "KeyStore"),
    "validate": ("lsssdc.register.rules", "validate"),
    "synthesise": ("lsssdc.register.synth", "synthesise"),
    "read_register": ("lsssdc.register.files", "read_register"),
}
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        module, attr = _API[name]
        value = getattr(import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lsssdc' has no attribute {name!r}")
