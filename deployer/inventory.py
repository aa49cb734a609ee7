"""Where to deploy: the local engine, an ad-hoc ``[user@]host[:port]``, or an inventory file.

Inventory (YAML, Ansible-like)::

    vars:                         # for every host
      user: deploy
      values: {swarm: {endpoint_mode: dnsrr}}
    hosts:
      manager1:                   # name; also the ssh config alias looked up
        hostname: 10.0.0.5        # optional (default: the name, through ssh config)
        port: 22
        identity_file: ~/.ssh/deploy_ed25519
        values_files: [values.prod.yaml]     # relative to the inventory file
      laptop:
        connection: local
    groups:
      prod:
        hosts: [manager1]
        vars: {accept_new_host_key: false}

Settings merge: top ``vars`` < group ``vars`` (in file order) < the host's own. ``values``
mappings merge deeply. Every SSH host is resolved through an ssh config file (``~/.ssh/config``,
or ``--ssh-config`` / ``$MLOPS_SSH_CONFIG``): HostName, Port, User, IdentityFile,
UserKnownHostsFile, as ``ssh`` would; explicit settings win over the config file.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paramiko
import yaml

from deployer.connectors.ssh import DEFAULT_KNOWN_HOSTS, SSHTarget
from deployer.errors import ConfigError

SSH_CONFIG_ENV = "MLOPS_SSH_CONFIG"
DEFAULT_SSH_CONFIG = "~/.ssh/config"

#: Settings a host (or a group's/top vars) may carry; anything else is a typo, reported as such.
HOST_KEYS = frozenset(
    {
        "connection", "hostname", "port", "user", "identity_file", "known_hosts_file",
        "accept_new_host_key", "connect_timeout", "docker_host", "values", "values_files",
    }
)

_ADHOC = re.compile(r"^(?:(?P<user>[^@:/\s]+)@)?(?P<host>\[[0-9A-Fa-f:.]+\]|[^@:/\s\[\]]+)"
                    r"(?::(?P<port>\d+))?$")


@dataclass(frozen=True)
class Host:
    """One deploy target: its name, how to reach it, and its values overlays."""

    name: str
    #: ``None`` means the local engine.
    ssh: SSHTarget | None
    docker_host: str | None = None
    values_files: tuple[Path, ...] = ()
    values: Mapping[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return "local" if self.ssh is None else self.ssh.label


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
) -> SSHTarget:
    """An ``SSHTarget`` for ``alias``: explicit ``settings`` over the ssh config's entry."""
    looked = ssh_config.lookup(alias) if ssh_config else {}
    if "proxyjump" in looked or "proxycommand" in looked:
        raise ConfigError(
            f"{source}: host {alias!r} uses ProxyJump/ProxyCommand in the ssh config, which the "
            "deployer does not support yet",
            fix="run the deployer on a machine that reaches the manager directly",
        )
    hostname = str(settings.get("hostname") or looked.get("hostname") or alias)
    try:
        port = int(settings.get("port") or looked.get("port") or 22)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"{source}: port: expected a number, got {settings.get('port')!r}"
        ) from exc
    if not 0 < port < 65536:
        raise ConfigError(f"{source}: port: {port} is out of range 1-65535")
    user = settings.get("user") or looked.get("user")
    identity = _as_tuple(settings.get("identity_file"), "identity_file", source) or tuple(
        looked.get("identityfile", ())
    )
    known = _as_tuple(settings.get("known_hosts_file"), "known_hosts_file", source)
    if not known and "userknownhostsfile" in looked:
        known = tuple(str(looked["userknownhostsfile"]).split())
    timeout = settings.get("connect_timeout") or looked.get("connecttimeout") or 10
    return SSHTarget(
        hostname=hostname,
        port=port,
        user=str(user) if user else None,
        identity_files=identity,
        known_hosts_files=known or (DEFAULT_KNOWN_HOSTS,),
        accept_new_host_key=bool(settings.get("accept_new_host_key")) or accept_new_host_key,
        connect_timeout=float(timeout),
        alias=alias,
    )


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


def _deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _check_settings(raw: Any, where: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping of settings, got {type(raw).__name__}")
    unknown = sorted(set(raw) - HOST_KEYS)
    if unknown:
        raise ConfigError(
            f"{where}: unknown setting {unknown[0]!r}",
            fix=f"known settings: {', '.join(sorted(HOST_KEYS))}",
        )
    if "values" in raw and not isinstance(raw["values"], Mapping):
        raise ConfigError(f"{where}.values: expected a mapping (a values overlay)")
    if raw.get("connection", "ssh") not in ("ssh", "local"):
        raise ConfigError(
            f"{where}.connection: expected 'ssh' or 'local', got {raw['connection']!r}"
        )
    return dict(raw)


def _merge_settings(layers: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if key == "values":
                merged["values"] = _deep_merge(merged.get("values", {}), value)
            elif key == "values_files":
                merged["values_files"] = [*merged.get("values_files", []), *value]
            else:
                merged[key] = value
    return merged


@dataclass(frozen=True)
class Inventory:
    """Hosts and groups read from an inventory file."""

    path: Path
    hosts: Mapping[str, Host]
    groups: Mapping[str, tuple[str, ...]]

    def select(self, limit: str | None = None) -> list[Host]:
        """Hosts matching ``--limit`` (comma-separated host names, group names or globs;
        ``!pattern`` excludes), in inventory order. All hosts without a limit."""
        if not limit:
            return list(self.hosts.values())
        include: list[str] = []
        exclude: list[str] = []
        for part in (p.strip() for p in limit.split(",")):
            if part:
                (exclude if part.startswith("!") else include).append(part.lstrip("!"))

        def names(pattern: str) -> set[str]:
            if pattern in self.groups:
                return set(self.groups[pattern])
            found = {n for n in self.hosts if fnmatch.fnmatchcase(n, pattern)}
            for group, members in self.groups.items():
                if fnmatch.fnmatchcase(group, pattern):
                    found.update(members)
            return found

        chosen: set[str] = set()
        for pattern in include or ["*"]:
            matched = names(pattern)
            if not matched:
                raise ConfigError(
                    f"--limit {limit!r}: {pattern!r} matches no host or group of {self.path}",
                    fix=f"hosts: {', '.join(self.hosts)}; groups: {', '.join(self.groups) or '-'}",
                )
            chosen |= matched
        for pattern in exclude:
            chosen -= names(pattern)
        return [host for name, host in self.hosts.items() if name in chosen]


def load_inventory(
    path: str | Path, *, ssh_config: str | None = None, accept_new_host_key: bool = False
) -> Inventory:
    """Read and validate an inventory file (see the module docstring for the format)."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError as exc:
        raise ConfigError(f"inventory {path} does not exist") from exc
    except OSError as exc:
        raise ConfigError(f"inventory {path}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", exc)
        raise ConfigError(f"{path}{line}: YAML syntax error: {problem}") from exc
    if not isinstance(data, Mapping) or not data.get("hosts"):
        raise ConfigError(f"{path}: expected a mapping with a non-empty 'hosts' section")
    unknown = sorted(set(data) - {"hosts", "groups", "vars"})
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key {unknown[0]!r}",
                          fix="top-level keys: hosts, groups, vars")
    raw_hosts = data["hosts"]
    if not isinstance(raw_hosts, Mapping):
        raise ConfigError(f"{path}: hosts: expected a mapping of host name -> settings")
    top = _check_settings(data.get("vars"), f"{path}: vars")
    groups: dict[str, tuple[str, ...]] = {}
    group_vars: list[tuple[str, dict[str, Any]]] = []
    raw_groups = data.get("groups") or {}
    if not isinstance(raw_groups, Mapping):
        raise ConfigError(f"{path}: groups: expected a mapping of group name -> hosts/vars")
    for gname, graw in raw_groups.items():
        where = f"{path}: groups.{gname}"
        if not isinstance(graw, Mapping) or set(graw) - {"hosts", "vars"}:
            raise ConfigError(f"{where}: expected a mapping with 'hosts' (a list) and 'vars'")
        members = tuple(_as_tuple(graw.get("hosts"), "hosts", where))
        for member in members:
            if member not in raw_hosts:
                raise ConfigError(f"{where}.hosts: {member!r} is not defined under 'hosts'")
        groups[str(gname)] = members
        group_vars.append((str(gname), _check_settings(graw.get("vars"), f"{where}.vars")))
    if "all" not in groups:
        groups["all"] = tuple(str(h) for h in raw_hosts)
    config = _load_ssh_config(ssh_config_path(ssh_config))
    hosts: dict[str, Host] = {}
    for hname, hraw in raw_hosts.items():
        name = str(hname)
        where = f"{path}: hosts.{name}"
        own = _check_settings(hraw, where)
        layers = [top, *(v for g, v in group_vars if name in groups[g]), own]
        settings = _merge_settings(layers)
        files = tuple(
            (path.parent / f).resolve()
            for f in _as_tuple(settings.get("values_files"), "values_files", where)
        )
        for file in files:
            if not file.is_file():
                raise ConfigError(f"{where}.values_files: {file} does not exist")
        target = None
        if settings.get("connection", "ssh") == "ssh":
            target = resolve_ssh(
                name, settings=settings, ssh_config=config, source=where,
                accept_new_host_key=accept_new_host_key,
            )
        hosts[name] = Host(
            name=name,
            ssh=target,
            docker_host=settings.get("docker_host"),
            values_files=files,
            values=settings.get("values", {}),
        )
    return Inventory(path=path, hosts=hosts, groups=groups)


def select_hosts(
    *,
    host: str | None = None,
    inventory: str | None = None,
    limit: str | None = None,
    ssh_config: str | None = None,
    accept_new_host_key: bool = False,
) -> list[Host]:
    """The hosts a command targets: ``--host``, or ``-i``/``--limit``, else the local engine."""
    if host and inventory:
        raise ConfigError("--host and -i/--inventory are exclusive", fix="use one of them")
    if limit and not inventory:
        raise ConfigError("--limit needs an inventory (-i FILE)")
    if inventory:
        return load_inventory(
            inventory, ssh_config=ssh_config, accept_new_host_key=accept_new_host_key
        ).select(limit)
    if host:
        return [adhoc_host(host, ssh_config=ssh_config, accept_new_host_key=accept_new_host_key)]
    return [Host("local", None)]
