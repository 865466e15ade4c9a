"""The generated policy reference: committed, current, and complete."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from lsssdc import docs
from lsssdc import policy as P

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "docs" / "policy-reference.md"


def test_the_committed_reference_matches_the_models() -> None:
    assert COMMITTED.is_file(), f"docs/policy-reference.md is missing; generate it with: {docs.REGENERATE}"
    committed = COMMITTED.read_text(encoding="utf-8")
    fresh = docs.policy_reference_markdown()
    assert committed == fresh, (
        "docs/policy-reference.md is out of date with lsssdc/policy.py; regenerate it with: "
        f"{docs.REGENERATE}"
    )


def test_the_module_command_prints_the_reference() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "lsssdc.docs"], capture_output=True, check=True, cwd=ROOT, timeout=60
    )
    assert out.stdout.decode("utf-8") == docs.policy_reference_markdown()


def _paths(model: type[BaseModel]) -> set[tuple[str, str]]:
    """(model name, YAML key) of every field reachable from ``model``."""
    out: set[tuple[str, str]] = set()
    todo, seen = [model], set()
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        for name, info in m.model_fields.items():
            out.add((m.__name__, info.alias or name))
            todo.extend(docs._nested(info.annotation))
    return out


def _section(text: str, heading: str) -> str:
    start = text.index(f"### {heading}\n")
    end = text.find("\n### ", start + 1)
    return text[start : end if end >= 0 else len(text)]


def test_every_key_of_every_section_is_listed_in_its_section() -> None:
    text = docs.policy_reference_markdown()
    pairs = _paths(P.Policy) | _paths(P.Order)
    assert ("LinkRequest", "register") in pairs  # the alias, not the attribute name
    for model, key in sorted(pairs):
        assert f"| `{key}` |" in _section(text, model), f"{model}.{key} is missing from the reference"


def test_descriptions_defaults_and_constraints_come_from_the_model() -> None:
    class Inner(BaseModel):
        """Why the inner section exists."""

        model_config = ConfigDict(extra="forbid")
        mode: Literal["fast", "careful"] = "careful"

    class Outer(BaseModel):
        model_config = ConfigDict(extra="forbid")
        size: Annotated[StrictInt, Field(ge=2, description="how many persons a class holds")] = 5
        #: read from the comment above the field
        share: Annotated[float, Field(ge=0, le=1)] = 0.05
        source: str = Field(alias="from")
        inner: Inner | None = None
        names: Annotated[list[str], Field(min_length=1)] = ["a"]

    text = docs.model_markdown(Outer)
    assert "| `size` | integer | `5` | >= 2 | How many persons a class holds |" in text
    assert "| `share` | number | `0.05` | >= 0; <= 1 | Read from the comment above the field |" in text
    assert "| `from` | text | **required** |" in text
    assert "| `inner` | section ([Inner](#inner)), or empty | not set |" in text
    assert "| `names` | list of text | `[a]` | at least 1 item |" in text
    inner = _section(text, "Inner")
    assert "Where: `inner`." in inner and "Why the inner section exists." in inner
    assert "| `mode` | text | `careful` | `fast`, `careful` |" in inner


def test_the_reference_names_the_accepted_versions_and_every_known_variable() -> None:
    text = docs.policy_reference_markdown()
    assert "`policy_version` must be " + ", ".join(f"`{v}`" for v in P.POLICY_VERSIONS) in text
    assert "`order_version` must be " + ", ".join(f"`{v}`" for v in P.ORDER_VERSIONS) in text
    variables = text[text.index("## Variable names") :]
    for name in P.known_variables():
        assert f"| `{name}` |" in variables
