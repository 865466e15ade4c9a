"""The policy reference, generated from the Policy and Order models so that it cannot go stale.

Every key of a policy file and of an order file is listed with its type, its default (or that it
is required), the values it accepts and its description. Descriptions come from the models
themselves: ``Field(description=...)`` first, else a ``#:`` comment on the line(s) just above
the field; each section opens with its model's docstring. Nested sections are rendered once per
model, in the order they are first met, with the keys that lead to them.

Regenerate the committed reference (a test fails when it differs from the models)::

    python -m lsssdc.docs > docs/policy-reference.md
"""

from __future__ import annotations

import inspect
import re
import sys
import types
import typing
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from lsssdc import policy as P
from lsssdc.register import variables as V
from lsssdc.register.companions import COMPANIONS
from lsssdc.release.extract import COARSE_SOURCE

REGENERATE = "python -m lsssdc.docs > docs/policy-reference.md"

_SCALARS = {int: "integer", float: "number", str: "text", bool: "true or false"}
_FIELD_LINE = re.compile(r"^\s+([A-Za-z_][A-Za-z0-9_]*)\s*:")
_DOC_COMMENT = re.compile(r"^\s+#:\s?(.*)$")


# --------------------------------------------------------------------------------------------
# reading the models


def _doc(obj: Any) -> str:
    """A class's or module's own docstring (not inherited), as Markdown."""
    text = obj.__dict__.get("__doc__") if isinstance(obj, type) else getattr(obj, "__doc__", None)
    return _markdown(inspect.cleandoc(text)) if text else ""


def _markdown(text: str) -> str:
    """reStructuredText literals (``x``) as Markdown code (`x`)."""
    return text.replace("``", "`")


def _comments(model: type[BaseModel]) -> dict[str, str]:
    """``#:`` comments written just above a field, by field name."""
    try:
        source = inspect.getsource(model)
    except (OSError, TypeError):  # pragma: no cover - source not shipped
        return {}
    out: dict[str, str] = {}
    pending: list[str] = []
    for line in source.splitlines():
        comment = _DOC_COMMENT.match(line)
        if comment:
            pending.append(comment.group(1).strip())
            continue
        field = _FIELD_LINE.match(line)
        if field and pending:
            out[field.group(1)] = " ".join(pending)
        pending = []
    return out


def _description(model: type[BaseModel], name: str, info: FieldInfo) -> str:
    text = info.description or _comments(model).get(name, "")
    text = " ".join(_markdown(text).split())
    return text[:1].upper() + text[1:] if text else ""


def _key(name: str, info: FieldInfo) -> str:
    """The key as written in the YAML file (the alias, where there is one)."""
    return info.alias or name


def _unwrap(tp: Any) -> tuple[Any, list[Any]]:
    """The bare type and the constraints gathered from ``Annotated`` layers."""
    constraints: list[Any] = []
    while typing.get_origin(tp) is typing.Annotated:
        tp, *meta = typing.get_args(tp)
        for m in meta:
            constraints.extend(m.metadata if isinstance(m, FieldInfo) else [m])
    return tp, constraints


def _is_optional(tp: Any) -> tuple[bool, Any]:
    """(True, X) for ``X | None``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(args) < len(typing.get_args(tp)):
            return True, args[0]
    return False, tp


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _nested(tp: Any) -> Iterator[type[BaseModel]]:
    """Every model class inside a type (``X | None``, ``list[X]``, ``dict[str, X]``)."""
    tp, _ = _unwrap(tp)
    if _is_model(tp):
        yield tp
        return
    for arg in typing.get_args(tp):
        if arg is not type(None) and not isinstance(arg, str):
            yield from _nested(arg)


# --------------------------------------------------------------------------------------------
# rendering one field


def _anchor(model: type[BaseModel]) -> str:
    return model.__name__.lower()


def _link(model: type[BaseModel]) -> str:
    return f"[{model.__name__}](#{_anchor(model)})"


def _literal(values: tuple[Any, ...]) -> str:
    return ", ".join(f"`{_yaml(v)}`" for v in values)


def _type(tp: Any) -> str:
    """The type in words: 'integer', 'list of text', 'mapping: name to [LinkRule](#linkrule)'."""
    optional, tp = _is_optional(tp)
    tp, _ = _unwrap(tp)
    origin = typing.get_origin(tp)
    if _is_model(tp):
        text = f"section ({_link(tp)})"
    elif origin is typing.Literal:
        kinds = {type(v) for v in typing.get_args(tp)}
        text = _SCALARS.get(kinds.pop(), "value") if len(kinds) == 1 else "value"
    elif origin is list:
        (item,) = typing.get_args(tp)
        text = f"list of {_type(item)}"
    elif origin is dict:
        _, value = typing.get_args(tp)
        text = f"mapping of name to {_type(value)}"
    elif tp in _SCALARS:
        text = _SCALARS[tp]
    else:  # pragma: no cover - a type the models do not use yet
        text = getattr(tp, "__name__", str(tp))
    return text + (", or empty" if optional else "")


def _bounds(constraints: list[Any], what: str = "") -> list[str]:
    """Constraints in words: '>= 2', 'at least 1 item', 'matches `...`'."""
    out: list[str] = []
    for c in constraints:
        for attr, words in (("gt", "> {}"), ("ge", ">= {}"), ("lt", "< {}"), ("le", "<= {}")):
            value = getattr(c, attr, None)
            if value is not None:
                out.append(words.format(_yaml(value)))
        min_len = getattr(c, "min_length", None)
        if min_len is not None:
            out.append(f"at least {min_len} {what or 'item'}{'s' if min_len != 1 else ''}")
        max_len = getattr(c, "max_length", None)
        if max_len is not None:
            out.append(f"at most {max_len} {what or 'item'}{'s' if max_len != 1 else ''}")
        pattern = getattr(c, "pattern", None)
        if pattern is not None:
            out.append(f"matches `{pattern}`")
    return out


def _allowed(tp: Any, constraints: list[Any]) -> str:
    """The values a key accepts, as far as its type says."""
    _, tp = _is_optional(tp)
    tp, inner = _unwrap(tp)
    parts = _bounds([*constraints, *inner])
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        parts.insert(0, _literal(typing.get_args(tp)))
    elif origin is list:
        (item,) = typing.get_args(tp)
        item_tp, item_constraints = _unwrap(_is_optional(item)[1])
        if typing.get_origin(item_tp) is typing.Literal:
            parts.append("each one of " + _literal(typing.get_args(item_tp)))
        parts.extend("each " + b for b in _bounds(item_constraints))
    elif origin is dict:
        _, value = typing.get_args(tp)
        parts.extend("each " + b for b in _bounds(_unwrap(value)[1]))
    return "; ".join(parts)


def _yaml(value: Any) -> str:
    """A default value as it would be written in YAML."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format(value, "g")
    if isinstance(value, str):
        return f'"{value}"' if value == "" or value[:1] in "0123456789" else value
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_yaml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_yaml(v)}" for k, v in value.items()) + "}"
    return str(value)


def _default(info: FieldInfo) -> str:
    if info.is_required():
        return "**required**"
    value = info.get_default(call_default_factory=True)
    if type(value).__name__ == "PydanticUndefinedType":  # pragma: no cover - required handled above
        return "**required**"
    if value is None:
        return "not set"
    if isinstance(value, BaseModel):
        return f"the defaults of {_link(type(value))}"
    return f"`{_yaml(value)}`"


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ") or " "


# --------------------------------------------------------------------------------------------
# rendering models


def _table(model: type[BaseModel]) -> list[str]:
    rows = [
        "| Key | Type | Default | Allowed values | Description |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, info in model.model_fields.items():
        cells = (
            f"`{_key(name, info)}`",
            _type(info.annotation),
            _default(info),
            _allowed(info.annotation, list(info.metadata)),
            _description(model, name, info),
        )
        rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return rows


def _sections(root: type[BaseModel], prefix: str) -> tuple[list[type[BaseModel]], dict[type, list[str]]]:
    """Nested models in the order they are first met, and the YAML paths that lead to each."""
    order: list[type[BaseModel]] = []
    paths: dict[type, list[str]] = {}

    def walk(model: type[BaseModel], path: str) -> None:
        for name, info in model.model_fields.items():
            key = _key(name, info)
            tp = _unwrap(_is_optional(info.annotation)[1])[0]
            origin = typing.get_origin(tp)
            step = f"{path}{key}" + ("[]" if origin is list else ".<name>" if origin is dict else "")
            for sub in _nested(info.annotation):
                first = sub not in paths
                paths.setdefault(sub, []).append(step)
                if first:
                    order.append(sub)
                    walk(sub, step + ".")

    walk(root, prefix)
    return order, paths


def _model_section(model: type[BaseModel], level: str, paths: list[str] | None = None) -> list[str]:
    out = [f"{level} {model.__name__}", ""]
    if paths:
        out += ["Where: " + ", ".join(f"`{p}`" for p in paths) + ".", ""]
    doc = _doc(model)
    if doc:
        out += [doc, ""]
    out += [*_table(model), ""]
    return out


def model_markdown(model: type[BaseModel], level: str = "###") -> str:
    """One model's keys and then every nested section, once each, with the keys leading there."""
    out = [f"{level} {model.__name__}", "", "The top-level keys.", "", *_table(model), ""]
    nested, paths = _sections(model, "")
    for sub in nested:
        out += _model_section(sub, level, paths[sub])
    return "\n".join(out)


def _document(model: type[BaseModel], title: str, version_key: str, versions: tuple[int, ...]) -> list[str]:
    out = [f"## {title}", ""]
    doc = _doc(model)
    if doc:
        out += [doc, ""]
    accepted = ", ".join(f"`{v}`" for v in versions)
    which = "must be" if len(versions) == 1 else "must be one of"
    out += [f"`{version_key}` {which} {accepted}.", "", model_markdown(model)]
    return out


def _variables() -> list[str]:
    """Every variable name a policy or an order may use, with where it comes from."""
    rows = ["| Name | Meaning | Comes from |", "| --- | --- | --- |"]
    linked: dict[str, tuple[str, str]] = {}
    for comp in COMPANIONS.values():
        for var, (_, label_en) in comp.variables.items():
            if var not in V.BY_NAME:
                linked.setdefault(var, (label_en, f"linked register `{comp.name}` ({comp.label_en})"))
    for name in sorted(P.known_variables()):
        if name in V.BY_NAME:
            v = V.BY_NAME[name]
            source = "derived from the personnummer" if v.kind == "derived" else "the LSS register"
            meaning = v.label_en
        elif name in linked:
            meaning, source = linked[name]
        elif name in COARSE_SOURCE:
            base = COARSE_SOURCE[name]
            meaning = f"{V.BY_NAME[base].label_en}, coarsened to `{name}`"
            source = f"coarsening `{base}` (`hierarchies.{base}`)"
        elif name == P.Pseudonymisation.model_fields["column"].default:
            meaning, source = "Keyed, project-scoped pseudonym of the person", "pseudonymisation"
        else:  # pragma: no cover - a new extra variable: named, not explained
            meaning, source = "", "made during the release"
        rows.append(f"| `{name}` | {_cell(meaning)} | {_cell(source)} |")
    return rows


def policy_reference_markdown() -> str:
    """The whole reference as Markdown (deterministic: the same models give the same bytes)."""
    out = [
        "# Policy and order reference",
        "",
        "<!-- Generated from lsssdc/policy.py; do not edit by hand. Regenerate with:",
        f"     {REGENERATE} -->",
        "",
        _doc(P),
        "",
        "Keys are listed as they are written in the YAML file. A key that is not **required** may "
        "be left out (its default applies); one whose type says *or empty* may also be `null`. "
        'Codes (kommun, län) must be quoted strings such as `"0114"`.',
        "",
        *_document(P.Policy, "Policy file", "policy_version", P.POLICY_VERSIONS),
        *_document(P.Order, "Order file", "order_version", P.ORDER_VERSIONS),
        "## Variable names",
        "",
        "The names `allowed_variables`, `quasi_identifiers`, `sensitive`, `identifiers`, an order's "
        "`variables` and a linkage's `variables` may use.",
        "",
        *_variables(),
        "",
    ]
    return "\n".join(out).rstrip("\n") + "\n"


def main() -> int:
    """Print the reference as UTF-8 with LF line ends, whatever the terminal's settings."""
    sys.stdout.flush()
    sys.stdout.buffer.write(policy_reference_markdown().encode("utf-8"))
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
