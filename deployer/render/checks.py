"""Validation of rendered text before anything is written: the Compose JSON Schema, the
semantic checks the schema cannot do (references, ports), ``docker stack config`` for Swarm
files, and ``.env`` syntax."""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
from importlib import resources as importlib_resources
from typing import Any

import jsonschema
import yaml

from deployer.errors import RenderError
from deployer.render.targets import _YAML_LOADER, Target
from deployer.values import (
    StackValues,
)


@functools.lru_cache(maxsize=1)
def _compose_validator() -> jsonschema.protocols.Validator:
    ref = importlib_resources.files("check_jsonschema") / "builtin_schemas/vendor/compose-spec.json"
    schema = json.loads(ref.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


def _check_env_file(filename: str, text: str) -> None:
    for n, line in enumerate(text.splitlines(), 1):
        if line and not line.startswith("#") and not re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", line):
            raise RenderError(f"{filename}:{n}: not a KEY=value line: {line!r}")


def _check_stack_file(
    values: StackValues, target: Target, filename: str, text: str, *, docker_check: bool
) -> None:
    try:
        doc = yaml.load(text, Loader=_YAML_LOADER)
    except yaml.YAMLError as exc:
        raise RenderError(f"{filename}: rendered text is not YAML: {exc}",
                          fix="a template bug: report it with the values used") from None
    if not isinstance(doc, dict):
        raise RenderError(f"{filename}: rendered text is not a mapping")
    errors = sorted(_compose_validator().iter_errors(doc), key=lambda e: list(e.path))
    if errors:
        err = errors[0]
        where = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        raise RenderError(
            f"{filename}: {where}: {err.message} (Compose specification schema)",
            fix="check the values used for this key",
        )
    _semantic_checks(values, target, filename, doc, text)
    if target == "swarm" and docker_check:
        _docker_stack_config(filename, text)


def _semantic_checks(
    values: StackValues, target: Target, filename: str, doc: dict[str, Any], text: str
) -> None:
    """What the schema cannot see: references, port clashes, leaked secrets."""
    services: dict[str, Any] = doc.get("services") or {}
    declared = {
        kind: set((doc.get(kind) or {}).keys())
        for kind in ("networks", "volumes", "secrets", "configs")
    }
    published: dict[int, str] = {}
    for name, spec in services.items():
        for kind in ("networks", "volumes", "secrets", "configs"):
            for ref in spec.get(kind) or []:
                ref_name = _reference_name(kind, ref)
                if ref_name is not None and ref_name not in declared[kind]:
                    raise RenderError(f"{filename}: services.{name}.{kind}: {ref_name!r} is "
                                      f"not declared at the top level")
        for dep in spec.get("depends_on") or {}:
            if dep not in services:
                raise RenderError(f"{filename}: services.{name}.depends_on: unknown {dep!r}")
        replicas = (spec.get("deploy") or {}).get("replicas", 1)
        for i, port in enumerate(spec.get("ports") or []):
            host = int(port["published"])
            if host in published:
                raise RenderError(f"{filename}: services.{name}.ports.{i}: host port {host} "
                                  f"already published by {published[host]}")
            published[host] = name
            if target == "compose" and replicas > 1:
                raise RenderError(
                    f"{filename}: services.{name}: {replicas} replicas cannot all publish host "
                    f"port {host} under Compose",
                    fix=f"for Compose use services.{name}.replicas=1 or "
                    f"services.{name}.publish=false",
                )
    if target == "swarm":
        leaked = [values.s3.secret_key]
        if values.mlflow.backend_store == "postgres":
            leaked.append(values.mlflow.postgres_password)
        for secret in leaked:
            # Short values could match ordinary words; a real secret is long.
            if len(secret) >= 8 and secret in text:
                raise RenderError(f"{filename}: a secret value appears in the rendered file",
                                  fix="secrets must reach Swarm services as Docker secrets")


def _reference_name(kind: str, ref: Any) -> str | None:
    if kind == "volumes":
        source = ref.get("source") if isinstance(ref, dict) else str(ref).split(":", 1)[0]
        if not source or source.startswith(("/", ".", "~")):
            return None  # a bind mount
        return str(source)
    if isinstance(ref, dict):
        return str(ref.get("source"))
    return str(ref)


def _docker_stack_config(filename: str, text: str) -> None:
    docker = shutil.which("docker")
    if docker is None:
        return
    try:
        proc = subprocess.run(
            [docker, "stack", "config", "--compose-file", "-"],
            input=text, capture_output=True, text=True, timeout=30, check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RenderError(f"{filename}: `docker stack config` could not run: {exc}") from None
    if proc.returncode != 0:
        detail = " ".join(proc.stderr.split()) or f"exit {proc.returncode}"
        raise RenderError(f"{filename}: rejected by `docker stack config`: {detail}",
                          fix="check the values used for the named key")
