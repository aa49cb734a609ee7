"""Validation errors of the values mapped to what a user fixes: the file, line and key
path, what was expected, and a did-you-mean for unknown keys."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

import pydantic
from pydantic import (
    BaseModel,
)

from deployer.errors import ValuesError
from deployer.values.sections import StackValues
from deployer.values.sources import KeyPath, Origin, _dotted

# --- Validation and error mapping -----------------------------------------------------------


def _validate(data: dict[str, Any], origins: dict[KeyPath, Origin]) -> StackValues:
    try:
        return StackValues.model_validate(data)
    except pydantic.ValidationError as exc:
        problems = [_describe(err, origins) for err in exc.errors()]
    first = problems[0]
    message = first[3]
    if len(problems) > 1:
        others = "\n".join(
            f"    {_where(src, line, key)}: {msg}" for src, line, key, msg, _ in problems[1:]
        )
        message += f"\n  and {len(problems) - 1} more:\n{others}"
    raise ValuesError(message, source=first[0], key=first[2] or None, line=first[1],
                      fix=first[4])


def _where(source: str, line: int | None, key: str) -> str:
    text = source + (f":{line}" if line is not None else "")
    return f"{text}: {key}" if key else text


def _describe(err: Any, origins: dict[KeyPath, Origin]) -> tuple[Any, ...]:
    loc: KeyPath = tuple(str(p) for p in err["loc"])
    msg: str = err["msg"]
    fix: str | None = None
    kind = err["type"]
    if kind == "value_error" and "|" in msg:
        # Cross-field errors from StackValues._check_combinations: "key.path|message".
        text = msg.removeprefix("Value error, ")
        paths_text, _, msg = text.partition("|")
        # Several keys may be involved: point at the one the user set last (highest layer).
        candidates = [tuple(p.split(".")) for p in paths_text.split(",")]
        loc = max(candidates, key=lambda c: _origin_for(c, origins).layer)
    elif kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        msg = f"unknown key {loc[-1]!r}"
        if allowed:
            msg += f"; allowed here: {', '.join(allowed)}"
            fix = _did_you_mean(loc[-1], allowed)
    elif kind == "missing":
        msg = "required key is missing"
    elif kind == "literal_error":
        msg = f"{msg}, got {err.get('input')!r}"
    elif "input" in err and not isinstance(err["input"], dict | list):
        msg = f"{msg} (got {err['input']!r})"
    # Pydantic appends the union member or function name to loc for some errors: trim them.
    loc = tuple(p for p in loc if not p.startswith(("function-", "literal[", "list[", "dict[")))
    loc = _trim_loc(loc)
    origin = _origin_for(loc, origins)
    return origin.source, origin.line, _dotted(loc), msg, fix


_TYPE_LOC_PARTS = {"str", "int", "float", "bool", "constrained-str", "none", "is-instance"}


def _trim_loc(loc: KeyPath) -> KeyPath:
    return tuple(p for p in loc if p not in _TYPE_LOC_PARTS)


def _origin_for(loc: KeyPath, origins: Mapping[KeyPath, Origin]) -> Origin:
    for n in range(len(loc), -1, -1):
        if loc[:n] in origins:
            found = origins[loc[:n]]
            return found
    return Origin("<values>")


def _allowed_keys(loc: KeyPath) -> list[str]:
    """The keys a model accepts at ``loc`` (walking the model classes by field name/alias)."""
    model: Any = StackValues
    for part in loc:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
        field = _field_by_key(model, part)
        if field is None:
            return []
        model = field.annotation
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return []
    return [info.alias or name for name, info in model.model_fields.items()]


def _field_by_key(model: type[BaseModel], key: str) -> Any:
    for name, info in model.model_fields.items():
        if (info.alias or name) == key:
            return info
    return None


def _did_you_mean(word: str, choices: Sequence[str]) -> str | None:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else None
