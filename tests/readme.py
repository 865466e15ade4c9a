"""README.md's code, extracted where tests and `.ci/run` read it (so the two cannot drift).

``python tests/readme.py setup N`` prints the N-th set-up command; ``python tests/readme.py
tour`` prints "A release, step by step".
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def section_code(title: str) -> str:
    """The first ``sh`` block under the heading ``## title`` of README.md."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f"## {title}\n")
    block = re.search(r"```sh\n(.*?)```", text[start:], re.S)
    if block is None:
        raise LookupError(f"no sh block under '## {title}'")
    return block.group(1)


def setup_commands() -> list[str]:
    """The README's two set-up commands (comment lines left out)."""
    lines = [ln for ln in section_code("Set-up: two commands").splitlines() if ln.strip()]
    return [ln for ln in lines if not ln.lstrip().startswith("#")]


if __name__ == "__main__":
    what = sys.argv[1:]
    if what[:1] == ["setup"] and len(what) == 2:
        print(setup_commands()[int(what[1]) - 1])
    elif what == ["tour"]:
        print(section_code("A release, step by step"))
    else:
        sys.exit("usage: python tests/readme.py setup 1|2 | tour")
