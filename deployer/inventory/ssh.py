"""Resolving how to reach a host over SSH: the ssh config file (``HostName``, ``User``,
``Port``, ``IdentityFile``, ``UserKnownHostsFile``, ``ProxyJump`` chains) and ad-hoc
``[user@]host[:port]`` targets."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deployer.connectors.ssh_target import DEFAULT_KNOWN_HOSTS, SSHTarget
from deployer.errors import ConfigError
from deployer.inventory.hosts import _ADHOC, DEFAULT_SSH_CONFIG, MAX_JUMPS, SSH_CONFIG_ENV, Host

if TYPE_CHECKING:
    import paramiko


def ssh_config_path(explicit: str | None = None) -> Path | None:
    """The ssh config file to use: ``explicit``, else ``$MLOPS_SSH_CONFIG``, else
    ``~/.ssh/config`` if it exists. An explicitly named file must exist."""
    name = explicit or os.environ.get(SSH_CONFIG_ENV)
    if name:
        path = Path(name).expanduser()
        if not path.is_file():
            source = "--ssh-config" if explicit else f"${SSH_CONFIG_ENV}"
            raise ConfigError(f"{source}: ssh config file {path} does not exist")
        return path
    default = Path(DEFAULT_SSH_CONFIG).expanduser()
    return default if default.is_file() else None


def _load_ssh_config(path: Path | None) -> paramiko.SSHConfig | None:
    if path is None:
        return None
    # Here, not at the top: paramiko takes 0.3 s to import, which a run on the local engine
    # with no ssh config to read should not pay.
    import paramiko

    try:
        return paramiko.SSHConfig.from_path(str(path))
    except (OSError, Exception) as exc:  # paramiko raises plain Exceptions for bad syntax
        raise ConfigError(f"{path}: cannot read ssh config: {exc}") from exc


def _as_tuple(value: Any, what: str, source: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError(f"{source}: {what}: expected a string or a list of strings, got {value!r}")


def resolve_ssh(
    alias: str,
    *,
    settings: Mapping[str, Any],
    ssh_config: paramiko.SSHConfig | None,
    source: str,
    accept_new_host_key: bool = False,
    _depth: int = 0,
) -> SSHTarget:
    """An ``SSHTarget`` for ``alias``: explicit ``settings`` over the ssh config's entry.

    Jump hosts (``proxy_jump`` in the settings, else the config's ``ProxyJump``) are resolved
    through the same ssh config, each with its own user, keys and known_hosts, as ``ssh -J``
    does; a jump host's own ProxyJump comes before it in the chain."""
    looked = ssh_config.lookup(alias) if ssh_config else {}
    if "proxycommand" in looked:
        raise ConfigError(
            f"{source}: host {alias!r} uses ProxyCommand in the ssh config, which the deployer "
            "does not support (it runs no local commands to connect)",
            fix="use ProxyJump (or the inventory's proxy_jump) for a jump host instead",
        )
    jump = _resolve_jumps(
        alias, settings.get("proxy_jump") or looked.get("proxyjump"), ssh_config=ssh_config,
        source=source, accept_new_host_key=accept_new_host_key, depth=_depth,
    )
    hostname = str(settings.get("hostname") or looked.get("hostname") or alias)
    raw_port = settings.get("port") or looked.get("port") or 22
    try:
        if isinstance(raw_port, bool | float):
            raise TypeError(raw_port)
        port = int(raw_port)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: port: expected a whole number, got {raw_port!r}") from exc
    if not 0 < port < 65536:
        raise ConfigError(f"{source}: port: {port} is out of range 1-65535")
    user = settings.get("user") or looked.get("user")
    identity = _as_tuple(settings.get("identity_file"), "identity_file", source) or tuple(
        looked.get("identityfile", ())
    )
    known = _as_tuple(settings.get("known_hosts_file"), "known_hosts_file", source)
    if not known and "userknownhostsfile" in looked:
        known = tuple(str(looked["userknownhostsfile"]).split())
    raw_timeout = settings.get("connect_timeout") or looked.get("connecttimeout") or 10
    try:
        timeout = float(raw_timeout)
    except ValueError as exc:
        raise ConfigError(
            f"{source}: connect_timeout: expected a number of seconds, got {raw_timeout!r}"
        ) from exc
    return SSHTarget(
        hostname=hostname,
        port=port,
        user=str(user) if user else None,
        identity_files=identity,
        known_hosts_files=known or (DEFAULT_KNOWN_HOSTS,),
        accept_new_host_key=bool(settings.get("accept_new_host_key")) or accept_new_host_key,
        connect_timeout=timeout,
        alias=alias,
        jump=jump,
    )


def _jump_list(value: Any) -> list[str]:
    items = [value] if isinstance(value, str) else list(value)
    return [part.strip() for item in items for part in str(item).split(",") if part.strip()]


def _resolve_jumps(
    alias: str,
    spec: Any,
    *,
    ssh_config: paramiko.SSHConfig | None,
    source: str,
    accept_new_host_key: bool,
    depth: int,
) -> tuple[SSHTarget, ...]:
    """The jump chain of ``alias`` from a ProxyJump value (``a,b`` or a list; ``none``: none)."""
    if not spec:
        return ()
    entries = _jump_list(spec)
    if [e.lower() for e in entries] == ["none"]:
        return ()
    if depth >= MAX_JUMPS:
        raise ConfigError(
            f"{source}: host {alias!r}: more than {MAX_JUMPS} jump hosts in a row",
            fix="check the ssh config for a ProxyJump loop (a jump host that jumps through "
            "itself)",
        )
    chain: list[SSHTarget] = []
    for entry in entries:
        match = _ADHOC.match(entry)
        if not match:
            raise ConfigError(
                f"{source}: ProxyJump {entry!r}: expected [user@]host[:port]",
                fix="write each jump host as [user@]host[:port], separated by commas",
            )
        hop_settings: dict[str, Any] = {}
        if match["user"]:
            hop_settings["user"] = match["user"]
        if match["port"]:
            hop_settings["port"] = int(match["port"])
        hop = resolve_ssh(
            match["host"].strip("[]"), settings=hop_settings, ssh_config=ssh_config,
            source=f"{source}: ProxyJump {entry}", accept_new_host_key=accept_new_host_key,
            _depth=depth + 1,
        )
        # A hop's own jump hosts come first; the hop then carries none itself.
        chain.extend(hop.jump)
        chain.append(dataclasses.replace(hop, jump=()))
    return tuple(chain)


def parse_adhoc(text: str) -> tuple[str | None, str, int | None]:
    """``[user@]host[:port]`` -> (user, host, port); ``ConfigError`` if malformed."""
    match = _ADHOC.match(text.strip())
    if not match:
        raise ConfigError(
            f"--host {text!r}: expected [user@]host[:port], e.g. deploy@manager1:22"
        )
    port = int(match["port"]) if match["port"] else None
    if port is not None and not 0 < port < 65536:
        raise ConfigError(f"--host {text!r}: port {port} is out of range 1-65535")
    return match["user"], match["host"].strip("[]"), port


def adhoc_host(
    text: str, *, ssh_config: str | None = None, accept_new_host_key: bool = False
) -> Host:
    """The ``Host`` for ``--host [user@]host[:port]`` (``local`` means the local engine)."""
    if text == "local":
        return Host("local", None)
    user, alias, port = parse_adhoc(text)
    settings: dict[str, Any] = {}
    if user:
        settings["user"] = user
    if port:
        settings["port"] = port
    target = resolve_ssh(
        alias,
        settings=settings,
        ssh_config=_load_ssh_config(ssh_config_path(ssh_config)),
        source="--host",
        accept_new_host_key=accept_new_host_key,
    )
    return Host(alias, target)
