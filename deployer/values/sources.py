"""Reading values YAML with the line of every key, and merging layers while remembering
which file (and line) set each key last."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from deployer.errors import ValuesError

KeyPath = tuple[str, ...]


@dataclass(frozen=True)
class Origin:
    """Where a key's value came from: a file (with line) or a ``--set`` argument."""

    source: str
    line: int | None = None
    #: 0 for the shipped defaults, then one more per -f file and per --set.
    layer: int = 0


# --- YAML reading with line numbers ---------------------------------------------------------


# libyaml's parser when PyYAML was built with it (several times faster), else pure Python.
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read_yaml_file(path: Path) -> tuple[dict[str, Any], dict[KeyPath, int]]:
    """Parse one values file; return the data and the line (1-based) of every key path."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValuesError("file not found", source=source, fix="check the -f path") from None
    except IsADirectoryError:
        raise ValuesError("is a directory, expected a YAML file", source=source) from None
    except UnicodeDecodeError as exc:
        raise ValuesError(f"not UTF-8 text ({exc.reason})", source=source) from None
    except OSError as exc:
        raise ValuesError(f"cannot read: {exc.strerror}", source=source) from None
    loader = _Loader(text)
    try:
        docs: list[yaml.Node] = []
        while loader.check_node():
            node = loader.get_node()
            if node is not None:
                docs.append(node)
    except yaml.YAMLError as exc:
        line = None
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            line = mark.line + 1
        raise ValuesError(f"YAML syntax error: {_yaml_problem(exc)}", source=source,
                          line=line) from None
    docs = [d for d in docs if d is not None]
    if not docs:
        raise ValuesError(
            "file is empty; a values file is a YAML mapping such as `stack: {name: mlops}`",
            source=source,
        )
    if len(docs) > 1:
        raise ValuesError(
            "holds several YAML documents (---); put one mapping per file",
            source=source,
            line=docs[1].start_mark.line + 1,
        )
    root = docs[0]
    if not isinstance(root, yaml.MappingNode):
        raise ValuesError(
            f"top level must be a mapping of keys, got {_node_kind(root)}",
            source=source,
            line=root.start_mark.line + 1,
        )
    lines: dict[KeyPath, int] = {}
    _index_lines(root, (), lines, source)
    try:
        data = loader.construct_document(root)
    except yaml.YAMLError as exc:  # e.g. a bad tag value found only while constructing
        raise ValuesError(f"YAML error: {_yaml_problem(exc)}", source=source) from None
    finally:
        loader.dispose()
    return data, lines


def _index_lines(node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int], source: str) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise ValuesError("YAML merge keys (<<) are not supported in values files",
                                  source=source, line=line)
            if not isinstance(key_node, yaml.ScalarNode):
                raise ValuesError("keys must be plain strings", source=source,
                                  key=_dotted(path) or None, line=line)
            if key in seen:
                raise ValuesError(
                    f"duplicate key {key!r} (first set on line {seen[key]})",
                    source=source, key=_dotted((*path, key)), line=line,
                )
            seen[key] = line
            lines[(*path, key)] = line
            _index_lines(value_node, (*path, key), lines, source)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index_lines(item, (*path, str(i)), lines, source)


def _node_kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if isinstance(node, yaml.ScalarNode):
        return f"the scalar {node.value!r}"
    return "something else"


def _yaml_problem(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None)
    context = getattr(exc, "context", None)
    text = problem or str(exc).splitlines()[0]
    if context:
        text = f"{text} ({context})"
    return str(text)


# --- Merging with origins -------------------------------------------------------------------


def _dotted(loc: KeyPath) -> str:
    return ".".join(loc)


@dataclass(frozen=True)
class Source:
    """One layer being merged: its display name and position."""

    name: str
    layer: int


def _merge(
    into: dict[str, Any],
    new: Mapping[str, Any],
    path: KeyPath,
    origins: dict[KeyPath, Origin],
    source: Source,
    lines: Mapping[KeyPath, int],
) -> None:
    for key, value in new.items():
        key = str(key)
        here = (*path, key)
        current = into.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            origins.setdefault(here, Origin(source.name, lines.get(here), source.layer))
            _merge(current, value, here, origins, source, lines)
            continue
        into[key] = value
        # Drop stale origins below a replaced subtree, then record the new ones.
        for old in [k for k in origins if k[: len(here)] == here]:
            del origins[old]
        for sub in _walk(value, here):
            origins[sub] = Origin(source.name, lines.get(sub, lines.get(here)), source.layer)


def _walk(value: Any, path: KeyPath) -> Iterator[KeyPath]:
    yield path
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, (*path, str(k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk(v, (*path, str(i)))


def _nest(path: KeyPath, value: Any) -> dict[str, Any]:
    out: Any = value
    for part in reversed(path):
        out = {part: out}
    assert isinstance(out, dict)
    return out
