"""An inventory file as data plus the line of every key (duplicate keys refused), its
settings checked with file:line errors, and layers merged (top vars < group vars < host)
remembering where each values key came from."""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from deployer.errors import ConfigError
from deployer.inventory.hosts import (
    _ADHOC,
    _DOCKER_HOST,
    _HOSTNAME,
    _USER,
    HOST_KEYS,
    MAX_CONNECT_TIMEOUT,
    KeyPath,
)
from deployer.inventory.ssh import _jump_list


@dataclass(frozen=True)
class _Doc:
    """An inventory file's parsed data and the (1-based) line of every key path in it."""

    path: Path
    data: Any
    lines: Mapping[KeyPath, int]

    def line_of(self, keys: KeyPath) -> str:
        """``file:line`` of ``keys`` (the line of its nearest parent that has one)."""
        line = next((self.lines[keys[:n]] for n in range(len(keys), -1, -1)
                     if keys[:n] in self.lines), None)
        return f"{self.path}:{line}" if line is not None else str(self.path)

    def where(self, keys: KeyPath) -> str:
        """``file:line: key.path`` of ``keys``."""
        return f"{self.line_of(keys)}: {'.'.join(keys)}" if keys else self.line_of(keys)

    def error(self, keys: KeyPath, message: str, fix: str | None = None) -> ConfigError:
        return ConfigError(f"{self.where(keys)}: {message}", fix=fix)


_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read_doc(path: Path) -> _Doc:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"inventory {path} does not exist", fix="check the -i path") from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"inventory {path} is a directory, expected a YAML file") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"inventory {path}: not UTF-8 text ({exc.reason} at byte "
                          f"{exc.start})") from exc
    except OSError as exc:
        raise ConfigError(f"inventory {path}: {exc.strerror}") from exc
    loader = _Loader(text)
    try:
        nodes: list[yaml.Node] = []
        while loader.check_node():
            node = loader.get_node()
            if node is not None:
                nodes.append(node)
        if len(nodes) > 1:
            raise ConfigError(f"{path}:{nodes[1].start_mark.line + 1}: holds several YAML "
                              "documents (---); an inventory is one mapping")
        lines: dict[KeyPath, int] = {}
        if nodes:
            _index(nodes[0], (), lines, path)
        data = loader.construct_document(nodes[0]) if nodes else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}{line}: YAML syntax error: {problem}") from exc
    finally:
        loader.dispose()
    return _Doc(path, data, lines)


def _index(node: yaml.Node, keys: KeyPath, lines: dict[KeyPath, int], path: Path) -> None:
    lines.setdefault(keys, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *anchor`: its keys are the anchor's, indexed where it was
            key = str(key_node.value)
            if key in seen:
                dotted = ".".join((*keys, key))
                raise ConfigError(
                    f"{path}:{line}: {dotted}: duplicate key {key!r} (first on line "
                    f"{seen[key]}); YAML would silently keep only the last one",
                    fix="rename one of them (every host and group needs its own name)",
                )
            seen[key] = line
            lines[(*keys, key)] = line
            _index(value_node, (*keys, key), lines, path)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, (*keys, str(i)), lines, path)


def _did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _strings(value: Any) -> bool:
    items = [value] if isinstance(value, str) else value
    return isinstance(items, list) and all(isinstance(v, str) and v.strip() for v in items)


def _expect(ok: Callable[[Any], bool], expected: str) -> Callable[[Any], str | None]:
    return lambda value: None if ok(value) else f"expected {expected}, got {value!r}"


def _port_problem(value: Any) -> str | None:
    if not isinstance(value, int) or isinstance(value, bool):
        return f"expected a number from 1 to 65535, got {value!r}"
    return None if 0 < value < 65536 else f"{value} is out of range 1-65535"


#: setting -> its check (None: fine, else what is wrong). Run before anything reads a setting.
_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "connection": _expect(lambda v: v in ("ssh", "local"), "'ssh' or 'local'"),
    "hostname": _expect(lambda v: isinstance(v, str) and bool(_HOSTNAME.match(v)),
                        "a host name or IP address (no spaces, user@ or :port: those are "
                        "'user' and 'port')"),
    "port": _port_problem,
    "user": _expect(lambda v: isinstance(v, str) and bool(_USER.match(v)),
                    "a user name (letters, digits, '.', '-', '_')"),
    "identity_file": _expect(_strings, "a path or a list of paths"),
    "known_hosts_file": _expect(_strings, "a path or a list of paths"),
    "accept_new_host_key": _expect(lambda v: isinstance(v, bool), "true or false"),
    "connect_timeout": _expect(
        lambda v: _is_number(v) and math.isfinite(v) and 0 < v <= MAX_CONNECT_TIMEOUT,
        f"a number of seconds above 0 and at most {MAX_CONNECT_TIMEOUT}"),
    "docker_host": _expect(lambda v: isinstance(v, str) and bool(_DOCKER_HOST.match(v)),
                           "an engine address such as unix:///var/run/docker.sock or "
                           "tcp://HOST:2376"),
    "values": _expect(lambda v: isinstance(v, Mapping), "a mapping (a values overlay)"),
    "values_files": _expect(_strings, "a file name or a list of file names"),
    "proxy_jump": _expect(
        lambda v: _strings(v) and all(_ADHOC.match(x.strip()) for x in _jump_list(v)),
        "a jump host [user@]host[:port] (an ssh config alias works), a list of them, or "
        "'none'"),
}


def _check_settings(doc: _Doc, keys: KeyPath) -> dict[str, Any]:
    raw = _get(doc.data, keys)
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise doc.error(keys, f"expected a mapping of settings, got {_kind(raw)}",
                        fix=f"settings: {', '.join(sorted(HOST_KEYS))}")
    for key, value in raw.items():
        key = str(key)
        if key not in HOST_KEYS:
            hint = _did_you_mean(key, HOST_KEYS)
            raise doc.error((*keys, key), f"unknown setting {key!r}",
                            fix=(f"{hint} " if hint else "")
                            + f"known settings: {', '.join(sorted(HOST_KEYS))}")
        problem = _CHECKS[key](value)
        if problem:
            raise doc.error((*keys, key), problem)
    return {str(k): v for k, v in raw.items()}


def _get(data: Any, keys: KeyPath) -> Any:
    for key in keys:
        data = data.get(key) if isinstance(data, Mapping) else None
    return data


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return f"{type(value).__name__} {value!r}"


def _names(doc: _Doc, keys: KeyPath, what: str) -> tuple[str, ...]:
    """A list of host/group names under ``keys`` (a single name is accepted too)."""
    raw = _get(doc.data, keys)
    if raw is None:
        return ()
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        raise doc.error(keys, f"expected a list of {what} names, got {_kind(raw)}")
    seen: set[str] = set()
    for i, item in enumerate(items):
        if item in seen:
            raise doc.error((*keys, str(i)), f"{item!r} is listed twice")
        seen.add(item)
    return tuple(items)


@dataclass
class _Merged:
    settings: dict[str, Any] = field(default_factory=dict)
    #: setting -> the layer's key path that set it last (for errors about the merged result)
    origin: dict[str, KeyPath] = field(default_factory=dict)
    values_origins: dict[str, tuple[str, str]] = field(default_factory=dict)


def _deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _walk_keys(value: Any, keys: KeyPath) -> Iterable[KeyPath]:
    yield keys
    if isinstance(value, Mapping):
        for key, sub in value.items():
            yield from _walk_keys(sub, (*keys, str(key)))


def _merge_layers(doc: _Doc, layers: Iterable[tuple[KeyPath, Mapping[str, Any]]]) -> _Merged:
    out = _Merged()
    for base, layer in layers:
        for key, value in layer.items():
            out.origin[key] = (*base, key)
            if key == "values":
                out.settings["values"] = _deep_merge(out.settings.get("values", {}), value)
                for sub in _walk_keys(value, ()):
                    keys = (*base, key, *sub)
                    out.values_origins[".".join(sub)] = (doc.line_of(keys), ".".join(keys))
            elif key == "values_files":
                files = [value] if isinstance(value, str) else value
                out.settings["values_files"] = [
                    *out.settings.get("values_files", []),
                    *(((*base, key), f) for f in files),
                ]
            else:
                out.settings[key] = value
    return out
