"""Every rule of the register has its injector, registered once, next to the rules."""

from __future__ import annotations

from lsssdc.register.injectors import INJECTORS
from lsssdc.register.rules import RULE_IDS


def test_every_rule_has_an_injector_and_every_injector_a_rule() -> None:
    assert sorted(INJECTORS) == sorted(RULE_IDS)
