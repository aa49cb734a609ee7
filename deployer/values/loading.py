"""Loading the values: the shipped defaults < each ``-f FILE`` < each ``--set``, validated;
their hash and JSON Schema."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from deployer.errors import ValuesError
from deployer.resources import templates_dir
from deployer.values.problems import _did_you_mean, _origin_for, _validate
from deployer.values.sections import StackValues
from deployer.values.services import Jobs, Services
from deployer.values.sources import (
    KeyPath,
    Origin,
    Source,
    _Loader,
    _merge,
    _nest,
    _read_yaml_file,
    _yaml_problem,
)
from deployer.values.types import DEFAULT_S3_CREDENTIALS

# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------



def default_values_file() -> Path:
    """The shipped defaults (lowest layer)."""
    return templates_dir() / "values.yaml"


def known_service_names() -> list[str]:
    """Every name accepted under ``services.``."""
    return [info.alias or name for name, info in Services.model_fields.items()]


def known_job_names() -> list[str]:
    """Every name accepted under ``jobs.``."""
    return [info.alias or name for name, info in Jobs.model_fields.items()]


def load_values(
    files: Sequence[Path] = (),
    sets: Sequence[str] = (),
    *,
    allow_default_credentials: bool = False,
) -> StackValues:
    """Load the defaults, overlay ``files`` in order, then ``sets``; validate.

    Raises ValuesError naming the file, key path and line of the first problem.
    Default credentials are refused when ``stack.environment`` is production unless
    ``allow_default_credentials``.
    """
    merged: dict[str, Any] = {}
    origins: dict[KeyPath, Origin] = {}
    layer = 0
    for path in (default_values_file(), *files):
        data, lines = _read_yaml_file(Path(path))
        _merge(merged, data, (), origins, Source(str(path), layer), lines)
        layer += 1
    for raw in sets:
        keypath, value = parse_set(raw)
        _merge(merged, _nest(keypath, value), (), origins, Source(f"--set {raw}", layer), {})
        layer += 1
    values = _validate(merged, origins)
    if values.stack.environment == "production" and not allow_default_credentials:
        bad = values.uses_default_credentials()
        if bad:
            key = bad[0]
            origin = _origin_for(tuple(key.split(".")), origins)
            env_origin = _origin_for(("stack", "environment"), origins)
            env_where = env_origin.source + (
                f":{env_origin.line}" if env_origin.line is not None else ""
            )
            raise ValuesError(
                "well-known default credentials are refused because stack.environment is "
                f"production (set by {env_where})",
                source=origin.source,
                key=key,
                line=origin.line,
                fix=f"set real credentials in {key} (and its pair) or pass "
                "--allow-default-credentials",
            )
    if not allow_default_credentials and values.compose_exposes_default_credentials():
        # Name what made the address non-loopback: the address itself, or the environment.
        key = "compose.bind_address"
        if values.compose.bind_address is None:
            key = "stack.environment"
        origin = _origin_for(tuple(key.split(".")), origins)
        raise ValuesError(
            f"Compose would publish the S3 store (services.minio) on "
            f"{values.compose_bind_address()}, not a loopback address, with the well-known "
            f"default credentials {'/'.join(DEFAULT_S3_CREDENTIALS)}: anyone on the network "
            "could read and write it",
            source=origin.source,
            key=key,
            line=origin.line,
            fix="set real s3.access_key and s3.secret_key, or bind to this machine only "
            "(compose.bind_address=127.0.0.1), or services.minio.publish=false; to accept it, "
            "set compose.publish_default_credentials=true",
        )
    return values


def parse_set(raw: str) -> tuple[KeyPath, Any]:
    """Parse one ``--set dotted.key=value``; the value is typed as a YAML scalar/flow node."""
    source = f"--set {raw}"
    key, sep, text = raw.partition("=")
    key = key.strip()
    if not sep:
        raise ValuesError(
            "expected KEY=VALUE", source=source, fix="e.g. --set services.minio.replicas=2"
        )
    if not key:
        raise ValuesError("the key before '=' is empty", source=source)
    parts = tuple(key.split("."))
    for part in parts:
        if not re.fullmatch(r"[A-Za-z0-9_-]+", part):
            raise ValuesError(
                f"malformed key segment {part!r} (letters, digits, '-', '_' between dots)",
                source=source,
                key=key,
            )
    if parts[0] in ("services", "jobs") and len(parts) >= 2:
        known = known_service_names() if parts[0] == "services" else known_job_names()
        if parts[1] not in known:
            raise ValuesError(
                f"unknown {parts[0][:-1]} {parts[1]!r}; known: {', '.join(known)}",
                source=source,
                key=key,
                fix=_did_you_mean(parts[1], known),
            )
    try:
        value = yaml.load(text, Loader=_Loader) if text.strip() else ""
    except yaml.YAMLError as exc:
        raise ValuesError(
            f"value is not valid YAML: {_yaml_problem(exc)}", source=source, key=key
        ) from None
    return parts, value


def values_hash(values: StackValues) -> str:
    """A stable sha256 hex digest of the values' canonical JSON (key order independent)."""
    return hashlib.sha256(canonical_json(values).encode()).hexdigest()


def canonical_json(values: StackValues) -> str:
    """The values as compact JSON with sorted keys (the input of values_hash)."""
    data = values.model_dump(mode="json", by_alias=True)
    _omit_new_defaults(data)
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


#: Keys added after stacks were deployed, as (path, default); "*" matches every key. Left out
#: of the hash while at their default, so adding them changes no deployed revision's hash (a
#: changed hash would make the next push redeploy an unchanged stack).
_NEW_DEFAULTS: tuple[tuple[tuple[str, ...], Any], ...] = (
    (("swarm", "node_labels"), {}),
    (("services", "*", "placement", "preferences"), []),
    (("compose", "bind_address"), None),
    (("compose", "publish_default_credentials"), False),
    (("compose",), {}),
    (("registry",), None),
)


def _omit_new_defaults(data: dict[str, Any]) -> None:
    def prune(node: Any, path: tuple[str, ...], default: Any) -> None:
        if not isinstance(node, dict):
            return
        head, rest = path[0], path[1:]
        keys = list(node) if head == "*" else [head]
        for key in keys:
            if key not in node:
                continue
            if rest:
                prune(node[key], rest, default)
            elif node[key] == default:
                del node[key]

    for path, default in _NEW_DEFAULTS:
        prune(data, path, default)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the values file (for editors and `deployer schema`)."""
    return StackValues.model_json_schema(by_alias=True)
