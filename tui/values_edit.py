"""Write a live replica count back to a values file, keeping the user's comments and layout.

A targeted text edit, not a YAML dump: the file is composed with PyYAML to find where the
``services.<name>.replicas`` scalar sits (its exact character span), and only that span changes.
When the file does not set the key, one line is inserted under the service (or the service
under ``services``, or a ``services:`` block at the end). The result is loaded again with the
deployer's values loader before it counts; on any problem the original text is put back.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from deployer.errors import ConfigError, MlopsError, ValuesError


@dataclass(frozen=True, slots=True)
class ReplicasEdit:
    """A planned edit: which file, where, and the text before and after."""

    path: Path
    service: str
    replicas: int
    #: 1-based line of the edited (or inserted) ``replicas`` key.
    line: int
    #: The count the file set before (None when the key was added).
    old: int | str | None
    original: str
    updated: str

    @property
    def key(self) -> str:
        return f"services.{self.service}.replicas"

    def describe(self) -> str:
        """``values.yaml:14 services.web.replicas: 1 -> 2`` (or ``(added)``)."""
        before = "(added)" if self.old is None else str(self.old)
        return f"{self.path}:{self.line} {self.key}: {before} -> {self.replicas}"


def _compose(text: str, path: Path) -> yaml.MappingNode:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ValuesError(f"cannot parse to edit it: {exc}", source=str(path)) from None
    if root is None:
        return yaml.MappingNode("tag:yaml.org,2002:map", [])
    if not isinstance(root, yaml.MappingNode):
        raise ValuesError("top level is not a mapping", source=str(path))
    return root


def _child(node: yaml.MappingNode, key: str) -> tuple[yaml.Node, yaml.Node] | None:
    for key_node, value_node in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
            return key_node, value_node
    return None


def _sets_key(path: Path, service: str) -> bool:
    root = _compose(path.read_text(encoding="utf-8"), path)
    services = _child(root, "services")
    if services is None or not isinstance(services[1], yaml.MappingNode):
        return False
    svc = _child(services[1], service)
    return svc is not None and isinstance(svc[1], yaml.MappingNode) and (
        _child(svc[1], "replicas") is not None
    )


def target_file(files: Sequence[Path], service: str) -> Path:
    """The last ``-f`` file that sets ``services.<service>.replicas``, else the last file."""
    if not files:
        raise ConfigError(
            "no values file to write to: the dashboard was started without -f",
            fix="restart mlops-tui with -f VALUES.yaml (the file the stack is deployed from)",
        )
    for path in reversed(files):
        if _sets_key(Path(path), service):
            return Path(path)
    return Path(files[-1])


def _line_start(text: str, line: int) -> int:
    """Character index where 0-based ``line`` starts (len(text) past the end)."""
    index = 0
    for _ in range(line):
        nl = text.find("\n", index)
        if nl < 0:
            return len(text)
        index = nl + 1
    return index


def _insert_block(text: str, parent_key: yaml.Node, parent: yaml.MappingNode, lines: list[str]
                  ) -> tuple[str, int]:
    """Insert ``lines`` as the first entries of block mapping ``parent`` (right below the line
    of its key, so a comment above the first existing entry stays with that entry)."""
    if parent.value:
        indent = parent.value[0][0].start_mark.column
    else:
        indent = parent_key.start_mark.column + 2
    at_line = parent_key.start_mark.line + 1
    at = _line_start(text, at_line)
    prefix = "" if at == 0 or text[at - 1] == "\n" else "\n"
    block = prefix + "".join(" " * indent + line + "\n" for line in lines)
    return text[:at] + block + text[at:], at_line + (1 if prefix else 0) + len(lines)


def _insert_flow(text: str, parent: yaml.MappingNode, entry: str) -> tuple[str, int]:
    """Insert ``entry`` as the first item of flow mapping ``parent`` (``{a: 1}``)."""
    at = parent.start_mark.index + 1  # just after "{"
    sep = ", " if parent.value else ""
    return text[:at] + entry + sep + text[at:], parent.start_mark.line + 1


def plan_replicas_edit(path: Path, service: str, replicas: int) -> ReplicasEdit:
    """Where and how ``services.<service>.replicas: <replicas>`` goes into ``path``."""
    if replicas < 0:
        raise ConfigError(f"cannot write replicas {replicas}: must be 0 or more")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValuesError(f"cannot read: {exc.strerror}", source=str(path)) from None
    root = _compose(text, path)
    new = str(replicas)
    old: int | str | None = None
    services = _child(root, "services")
    if services is None:
        # No services block at all: append one (the file may end without a newline).
        sep = "" if not text or text.endswith("\n") else "\n"
        updated = f"{text}{sep}services:\n  {service}:\n    replicas: {new}\n"
        line = updated.count("\n")
    else:
        services_key, services_node = services
        if not isinstance(services_node, yaml.MappingNode):
            raise ValuesError("services is not a mapping", source=str(path), key="services",
                              line=services_node.start_mark.line + 1)
        svc = _child(services_node, service)
        if svc is None:
            if services_node.flow_style:
                updated, line = _insert_flow(text, services_node, f"{service}: {{replicas: {new}}}")
            else:
                updated, line = _insert_block(
                    text, services_key, services_node, [f"{service}:", f"  replicas: {new}"]
                )
        else:
            svc_key, svc_node = svc
            if not isinstance(svc_node, yaml.MappingNode):
                raise ValuesError(
                    f"services.{service} is not a mapping", source=str(path),
                    key=f"services.{service}", line=svc_node.start_mark.line + 1,
                )
            current = _child(svc_node, "replicas")
            if current is None:
                if svc_node.flow_style:
                    updated, line = _insert_flow(text, svc_node, f"replicas: {new}")
                else:
                    updated, line = _insert_block(text, svc_key, svc_node, [f"replicas: {new}"])
            else:
                value = current[1]
                if not isinstance(value, yaml.ScalarNode):
                    raise ValuesError(
                        "replicas is not a number", source=str(path),
                        key=f"services.{service}.replicas", line=value.start_mark.line + 1,
                    )
                old = int(value.value) if value.value.isdigit() else value.value
                # Only the scalar's own characters change: comments and layout stay.
                start, end = value.start_mark.index, value.end_mark.index
                updated = text[:start] + new + text[end:]
                line = value.start_mark.line + 1
    return ReplicasEdit(path, service, replicas, line, old, text, updated)


def _write_atomic(path: Path, text: str) -> None:
    mode = path.stat().st_mode & 0o7777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def apply_replicas_edit(
    edit: ReplicasEdit, files: Sequence[Path], sets: Sequence[str] = ()
) -> dict[str, int]:
    """Write the edit, load every values layer again to prove the result is valid and declares
    the new count; return the declared replicas per service. On any failure the file gets its
    original text back and the error says why."""
    from tui.drift import declared_replicas

    current = edit.path.read_text(encoding="utf-8")
    if current != edit.original:
        raise ConfigError(
            f"{edit.path} changed since the edit was planned; nothing written",
            fix="try again (the new content will be read)",
        )
    _write_atomic(edit.path, edit.updated)
    try:
        declared = declared_replicas(list(files), list(sets))
        if declared.get(edit.service) != edit.replicas:
            raise ConfigError(
                f"after writing {edit.key}: {edit.replicas} to {edit.path}, the values still "
                f"declare {declared.get(edit.service)} (a later layer sets it)",
            )
    except MlopsError as exc:
        _write_atomic(edit.path, edit.original)
        raise ConfigError(
            f"the edited {edit.path} did not load ({exc.message}); the original was restored",
            fix=exc.fix,
        ) from exc
    return declared


def set_overrides_replicas(sets: Sequence[str], service: str) -> str | None:
    """The ``--set`` argument that fixes ``services.<service>.replicas``, if any (a file edit
    would then change nothing the dashboard compares with)."""
    key = f"services.{service}.replicas"
    for raw in reversed(sets):
        name, sep, _ = raw.partition("=")
        if sep and name.strip() == key:
            return raw
    return None
