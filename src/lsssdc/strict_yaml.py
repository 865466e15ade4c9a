"""Strict YAML with line numbers: how a policy or order file is read before its model sees it.

Only what a policy needs gets through: no aliases, anchors, tags or merge keys, no deep nesting,
no huge values; duplicate keys and unquoted codes (``0114``) are problems, and every value keeps
its line so that a problem can name it. Apart from :mod:`lsssdc.policy` so that the models and
their checks can be read without the parser, and so that :mod:`lsssdc.order_check` can name lines
without importing the models."""

from __future__ import annotations

from typing import Any

import yaml

from lsssdc.errors import PolicyError, Problem


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps every node's line and refuses duplicate keys."""


#: bounds checked on the raw event stream, before anything is built from it
MAX_BYTES = 1 << 20  # a policy or order is a few kilobytes
MAX_DEPTH = 12
MAX_SCALAR = 4_000
MAX_DIGITS = 20


def _refuse(message: str, source: str, mark: Any = None, hint: str | None = None) -> PolicyError:
    return PolicyError(
        Problem("yaml_hostile", message, file=source, line=(mark.line + 1) if mark else None, hint=hint)
    )


def _bounded(text: str, source: str) -> None:
    """Refuse what a policy never needs and an attacker uses: aliases (billion laughs), tags,
    deep nesting, huge scalars and numbers. Reads events only, so nothing is expanded."""
    if len(text.encode("utf-8")) > MAX_BYTES:
        raise _refuse(f"the file is larger than {MAX_BYTES // 1024} KiB", source)
    depth = 0
    for event in yaml.parse(text, Loader=_Loader):
        mark = event.start_mark
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise _refuse(
                "YAML anchors and aliases (& and *) are not allowed", source, mark, "write values out"
            )
        tag = getattr(event, "tag", None)
        if tag is not None and not (isinstance(event, yaml.ScalarEvent) and tag == "!"):
            raise _refuse(f"YAML tags are not allowed ({tag})", source, mark)
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise _refuse(f"nested deeper than {MAX_DEPTH} levels", source, mark)
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
        elif isinstance(event, yaml.ScalarEvent):
            if event.style is None and event.value == "<<":
                raise _refuse("YAML merge keys (<<) are not allowed", source, mark, "write values out")
            if len(event.value) > MAX_SCALAR:
                raise _refuse(f"a value longer than {MAX_SCALAR} characters", source, mark)
            digits = sum(ch.isdigit() for ch in event.value)
            if event.style is None and digits > MAX_DIGITS and not any(ch.isalpha() for ch in event.value):
                raise _refuse(f"a number with more than {MAX_DIGITS} digits", source, mark)


def _compose(text: str, source: str) -> yaml.Node:
    try:
        _bounded(text, source)
        node = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise PolicyError(
            Problem("yaml", f"not valid YAML: {problem}", file=source, line=(mark.line + 1) if mark else None)
        ) from None
    if node is None:
        raise PolicyError(Problem("empty", "the file is empty", file=source))
    return node


def _to_python(
    node: yaml.Node, path: tuple, lines: dict[tuple, int], problems: list[Problem], source: str
) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _construct(key_node, source) if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str):
                problems.append(
                    Problem(
                        "bad_key", "keys must be plain text", file=source, line=key_node.start_mark.line + 1
                    )
                )
                continue
            if key in out:
                problems.append(
                    Problem(
                        "yaml_duplicate_key",
                        f"key '{key}' appears twice",
                        file=source,
                        line=key_node.start_mark.line + 1,
                        hint="YAML would silently keep the last one; remove one of them",
                    )
                )
                continue
            out[key] = _to_python(value_node, (*path, key), lines, problems, source)
            lines[(*path, key)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(v, (*path, i), lines, problems, source) for i, v in enumerate(node.value)]
    value = _construct(node, source)
    if (
        isinstance(value, int)
        and isinstance(node, yaml.ScalarNode)
        and node.style is None
        and node.value.startswith("0")
        and len(node.value) > 1
    ):
        problems.append(
            Problem(
                "unquoted_code",
                f"'{node.value}' is read by YAML as the number {value}",
                file=source,
                line=node.start_mark.line + 1,
                hint='put codes in quotes, e.g. "0114"',
            )
        )
    return value


def _strings(data: Any, where: tuple = ()) -> list[tuple[tuple, str]]:
    """Every text value in a loaded document, with where it is."""
    if isinstance(data, dict):
        return [x for k, v in data.items() for x in _strings(v, (*where, k))]
    if isinstance(data, list):
        return [x for i, v in enumerate(data) for x in _strings(v, (*where, i))]
    return [(where, data)] if isinstance(data, str) else []


def _construct(node: yaml.Node, source: str) -> Any:
    """A scalar's value; a value YAML cannot read (a date like 2023-02-30) is an input problem,
    reported by line without repeating the text (it could hold an identifier)."""
    try:
        return _Loader(" ").construct_object(node)
    except (yaml.YAMLError, ValueError, TypeError, OverflowError):
        raise PolicyError(
            Problem("yaml", "a value YAML cannot read", file=source, line=node.start_mark.line + 1)
        ) from None


def _line_for(loc: tuple, lines: dict[tuple, int]) -> int | None:
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return None
