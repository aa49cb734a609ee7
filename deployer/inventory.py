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
      everything:
        children: [prod]          # groups of groups (no cycles)
        hosts: [laptop]

Settings merge: top ``vars`` < group ``vars`` (in file order) < the host's own. ``values``
mappings merge deeply. Every SSH host is resolved through an ssh config file (``~/.ssh/config``,
or ``--ssh-config`` / ``$MLOPS_SSH_CONFIG``): HostName, Port, User, IdentityFile,
UserKnownHostsFile, as ``ssh`` would; explicit settings win over the config file.

Every problem is a ``ConfigError`` naming ``file:line: key.path``, found before any host is
contacted: reading an inventory is pure (files and the ssh config only).
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paramiko
import yaml

from deployer.connectors.ssh import DEFAULT_KNOWN_HOSTS, SSHTarget
from deployer.errors import ConfigError, ValuesError

SSH_CONFIG_ENV = "MLOPS_SSH_CONFIG"
DEFAULT_SSH_CONFIG = "~/.ssh/config"

#: Settings a host (or a group's/top vars) may carry; anything else is a typo, reported as such.
HOST_KEYS = frozenset(
    {
        "connection", "hostname", "port", "user", "identity_file", "known_hosts_file",
        "accept_new_host_key", "connect_timeout", "docker_host", "values", "values_files",
        "proxy_jump",
    }
)
#: Settings that only mean something for an SSH host.
SSH_KEYS = frozenset(
    {"hostname", "port", "user", "identity_file", "known_hosts_file", "accept_new_host_key",
     "connect_timeout", "proxy_jump"}
)
#: Longest chain of jump hosts followed: more is a loop in the ssh config.
MAX_JUMPS = 8
GROUP_KEYS = ("hosts", "children", "vars")
TOP_KEYS = ("hosts", "groups", "vars")
#: Longest connect timeout accepted: more is a unit mistake (milliseconds), not a wish.
MAX_CONNECT_TIMEOUT = 600

_ADHOC = re.compile(r"^(?:(?P<user>[^@:/\s]+)@)?(?P<host>\[[0-9A-Fa-f:.]+\]|[^@:/\s\[\]]+)"
                    r"(?::(?P<port>\d+))?$")
# Names are also --limit patterns: no glob characters, commas, '!' or spaces in them.
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")
# A DNS name / IPv4 address, or an IPv6 address (two colons or more, no brackets).
_HOSTNAME = re.compile(r"^(?:[A-Za-z0-9_.-]+|[0-9A-Fa-f.]*:[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*)$")
_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*\$?$")
_DOCKER_HOST = re.compile(r"^(?:unix|tcp|ssh|npipe)://\S+$")

KeyPath = tuple[str, ...]


@dataclass(frozen=True)
class Host:
    """One deploy target: its name, how to reach it, and its values overlays."""

    name: str
    #: ``None`` means the local engine.
    ssh: SSHTarget | None
    docker_host: str | None = None
    values_files: tuple[Path, ...] = ()
    values: Mapping[str, Any] = field(default_factory=dict)
    #: Where each key of ``values`` was set: dotted key -> (``file:line``, the inventory key
    #: path that set it, e.g. ``groups.prod.vars.values.stack.name``), for error messages.
    values_origins: Mapping[str, tuple[str, str]] = field(default_factory=dict, compare=False)

    @property
    def label(self) -> str:
        return "local" if self.ssh is None else self.ssh.label

    def values_origin(self, key: str) -> str | None:
        """``file:line: inventory.key.path`` of the entry that set values key ``key`` (or the
        nearest parent set as a whole), or None when the inventory did not set it."""
        parts = key.split(".") if key else []
        for n in range(len(parts), -1, -1):
            found = self.values_origins.get(".".join(parts[:n]))
            if found:
                line, keypath = found
                return f"{line}: {'.'.join([keypath, *parts[n:]])}"
        return None

    def relocate_values_error(self, exc: ValuesError, overlay: Path) -> ValuesError:
        """``exc`` raised while reading ``overlay`` (this host's ``values`` written to a temp
        file) pointing at the inventory lines instead: a temp file's name means nothing to the
        user, and its line numbers are not theirs."""
        if str(overlay) not in exc.message:
            return exc
        # "OVERLAY:LINE: key.path: message" (also in the "and N more" lines); no key path
        # when no colon follows it.
        prefix = re.compile(re.escape(str(overlay)) + r"(?::\d+)?(?:: (?P<key>[\w.-]+)(?=:))?")

        def where(match: re.Match[str]) -> str:
            return self.values_origin(match["key"] or "") or f"inventory values of {self.name}"

        moved = ValuesError("", fix=exc.fix)
        moved.message = prefix.sub(where, exc.message)
        moved.args = (moved.message,)
        moved.key = exc.key
        moved.source = self.values_origin("")
        return moved


# ---------------------------------------------------------------------------------------------
# ssh config and ad-hoc hosts


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


# ---------------------------------------------------------------------------------------------
# Reading an inventory file: data plus the line of every key, duplicate keys refused


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


# ---------------------------------------------------------------------------------------------
# Checking settings


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


# ---------------------------------------------------------------------------------------------
# Merging layers (top vars < group vars < host), remembering where each values key came from


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


# ---------------------------------------------------------------------------------------------
# The inventory


@dataclass(frozen=True)
class Inventory:
    """Hosts and groups read from an inventory file."""

    path: Path
    hosts: Mapping[str, Host]
    #: group -> every host in it, its children's included (inventory order).
    groups: Mapping[str, tuple[str, ...]]
    #: host -> ``file:line`` where it is defined, for messages.
    lines: Mapping[str, str] = field(default_factory=dict, compare=False)

    def select(self, limit: str | None = None) -> list[Host]:
        """Hosts matching ``--limit`` (comma-separated host names, group names or globs;
        ``!pattern`` excludes), in inventory order. All hosts without a limit.

        Every pattern must match something (a typo in an exclusion would otherwise deploy
        where it was meant not to), and the selection may not be empty or name one engine
        twice."""
        if limit is None:
            return self._distinct(list(self.hosts.values()), "the inventory")
        include: list[str] = []
        exclude: list[str] = []
        for part in (p.strip() for p in limit.split(",")):
            if part.startswith("!") and part.lstrip("!"):
                exclude.append(part.lstrip("!"))
            elif part and not part.startswith("!"):
                include.append(part)
            elif part:
                raise self._limit_error(limit, f"{part!r} excludes nothing (a bare '!')")
        if not include and not exclude:
            raise self._limit_error(limit, "no host or group named")

        chosen: set[str] = set()
        for pattern in include or ["*"]:
            chosen |= self._matching(limit, pattern)
        for pattern in exclude:
            chosen -= self._matching(limit, f"!{pattern}")
        hosts = [host for name, host in self.hosts.items() if name in chosen]
        if not hosts:
            raise self._limit_error(limit, "selects no host (every match is excluded)")
        return self._distinct(hosts, f"--limit {limit!r}")

    def _matching(self, limit: str, pattern: str) -> set[str]:
        name = pattern.lstrip("!")
        if name in self.groups:
            return set(self.groups[name])
        found = {n for n in self.hosts if fnmatch.fnmatchcase(n, name)}
        for group, members in self.groups.items():
            if fnmatch.fnmatchcase(group, name):
                found.update(members)
        if not found:
            hint = _did_you_mean(name, [*self.hosts, *self.groups])
            raise self._limit_error(limit, f"{pattern!r} matches no host or group", hint)
        return found

    def _limit_error(self, limit: str, problem: str, hint: str | None = None) -> ConfigError:
        return ConfigError(
            f"--limit {limit!r} ({self.path}): {problem}",
            fix=(f"{hint} " if hint else "") + f"hosts: {', '.join(self.hosts)}; "
            f"groups: {', '.join(g for g in self.groups if g != 'all') or '-'}",
        )

    def _distinct(self, hosts: list[Host], what: str) -> list[Host]:
        """Refuse two selected hosts that are one engine: the run would deploy it twice,
        and the second name is almost always a copy-paste slip."""
        seen: dict[tuple[Any, ...], str] = {}
        for host in hosts:
            if host.ssh is None:
                key: tuple[Any, ...] = ("local", host.docker_host or "")
            else:
                key = ("ssh", host.ssh.hostname, host.ssh.port)
            if key in seen:
                first = seen[key]
                raise ConfigError(
                    f"hosts {first!r} ({self.lines.get(first, self.path)}) and {host.name!r} "
                    f"({self.lines.get(host.name, self.path)}) of {what} are the same engine "
                    f"({host.label})",
                    fix="give each host its own hostname/port (or docker_host), or remove one",
                )
            seen[key] = host.name
        return hosts


def load_inventory(
    path: str | Path, *, ssh_config: str | None = None, accept_new_host_key: bool = False
) -> Inventory:
    """Read and validate an inventory file (see the module docstring for the format)."""
    doc = _read_doc(Path(path))
    data = doc.data
    if not isinstance(data, Mapping):
        raise doc.error((), "expected a mapping with a non-empty 'hosts' section, got "
                        f"{'an empty file' if data is None else _kind(data)}")
    for key in data:
        if key not in TOP_KEYS:
            hint = _did_you_mean(str(key), TOP_KEYS)
            raise doc.error((str(key),), f"unknown top-level key {key!r}",
                            fix=(f"{hint} " if hint else "") + "top-level keys: "
                            + ", ".join(TOP_KEYS))
    raw_hosts = data.get("hosts")
    if not isinstance(raw_hosts, Mapping) or not raw_hosts:
        got = "nothing" if not raw_hosts else _kind(raw_hosts)
        raise doc.error(("hosts",), "expected a non-empty 'hosts' mapping of host name -> "
                        f"settings, got {got}")
    for name in raw_hosts:
        _check_name(doc, ("hosts", str(name)), name, "host")
    top = _check_settings(doc, ("vars",))
    groups, group_vars = _read_groups(doc, raw_hosts)
    config = _load_ssh_config(ssh_config_path(ssh_config))
    hosts: dict[str, Host] = {}
    for hname in raw_hosts:
        name = str(hname)
        keys: KeyPath = ("hosts", name)
        own = _check_settings(doc, keys)
        layers = [(("vars",), top), *((("groups", g, "vars"), v) for g, v in group_vars
                                      if name in groups[g]), (keys, own)]
        merged = _merge_layers(doc, layers)
        hosts[name] = _host(doc, name, own, merged, config, accept_new_host_key)
    if "all" not in groups:
        groups["all"] = tuple(hosts)
    return Inventory(path=doc.path, hosts=hosts, groups=groups,
                     lines={name: doc.line_of(("hosts", name)) for name in hosts})


def _check_name(doc: _Doc, keys: KeyPath, name: Any, what: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise doc.error(keys, f"{what} name {name!r}: expected letters, digits, '.', '-', '_' "
                        "(names are --limit patterns: no spaces, commas, globs or '!')")


def _read_groups(
    doc: _Doc, raw_hosts: Mapping[str, Any]
) -> tuple[dict[str, tuple[str, ...]], list[tuple[str, dict[str, Any]]]]:
    """Each group's hosts (children resolved, cycles refused) and its vars, in file order."""
    raw_groups = doc.data.get("groups")
    if raw_groups is None:
        return {}, []
    if not isinstance(raw_groups, Mapping):
        raise doc.error(("groups",), f"expected a mapping of group name -> hosts/children/vars, "
                        f"got {_kind(raw_groups)}")
    direct: dict[str, tuple[str, ...]] = {}
    children: dict[str, tuple[str, ...]] = {}
    group_vars: list[tuple[str, dict[str, Any]]] = []
    for gname, graw in raw_groups.items():
        name = str(gname)
        keys: KeyPath = ("groups", name)
        _check_name(doc, keys, gname, "group")
        if name in raw_hosts:
            raise doc.error(keys, f"{name!r} is both a host ({doc.line_of(('hosts', name))}) "
                            "and a group: --limit could not tell them apart",
                            fix="rename the group or the host")
        if not isinstance(graw, Mapping):
            raise doc.error(keys, f"expected a mapping with {', '.join(GROUP_KEYS)}, got "
                            f"{'nothing' if graw is None else _kind(graw)}")
        for key in graw:
            if key not in GROUP_KEYS:
                hint = _did_you_mean(str(key), GROUP_KEYS)
                raise doc.error((*keys, str(key)), f"unknown group key {key!r}",
                                fix=(f"{hint} " if hint else "") + "group keys: "
                                + ", ".join(GROUP_KEYS))
        members = _names(doc, (*keys, "hosts"), "host")
        for i, member in enumerate(members):
            if member in raw_hosts:
                continue
            where = (*keys, "hosts", str(i))
            if member == name:
                raise doc.error(where, f"group {name!r} lists itself as a host")
            if member in raw_groups:
                raise doc.error(where, f"{member!r} is a group, not a host",
                                fix=f"list groups under 'children': children: [{member}]")
            hint = _did_you_mean(member, [str(h) for h in raw_hosts])
            raise doc.error(where, f"{member!r} is not defined under 'hosts'", fix=hint)
        subs = _names(doc, (*keys, "children"), "group")
        for i, child in enumerate(subs):
            if child not in raw_groups:
                where = (*keys, "children", str(i))
                if child in raw_hosts:
                    raise doc.error(where, f"{child!r} is a host, not a group",
                                    fix=f"list hosts under 'hosts': hosts: [{child}]")
                raise doc.error(where, f"{child!r} is not a group of this inventory",
                                fix=_did_you_mean(child, [str(g) for g in raw_groups]))
        direct[name], children[name] = members, subs
        group_vars.append((name, _check_settings(doc, (*keys, "vars"))))
    order = [str(h) for h in raw_hosts]
    groups = {name: _closure(doc, name, direct, children, order) for name in direct}
    return groups, group_vars


def _closure(doc: _Doc, group: str, direct: Mapping[str, tuple[str, ...]],
             children: Mapping[str, tuple[str, ...]], order: list[str]) -> tuple[str, ...]:
    """Every host of ``group`` and its children, transitively; a cycle is an error."""
    found: set[str] = set()

    def visit(name: str, trail: tuple[str, ...]) -> None:
        if name in trail:
            cycle = " -> ".join((*trail[trail.index(name):], name))
            i = children[trail[-1]].index(name)
            raise doc.error(("groups", trail[-1], "children", str(i)),
                            f"group {name!r} includes itself: {cycle}",
                            fix="a group's children may not lead back to it")
        found.update(direct[name])
        for child in children[name]:
            visit(child, (*trail, name))

    visit(group, ())
    return tuple(h for h in order if h in found)


def _host(doc: _Doc, name: str, own: Mapping[str, Any], merged: _Merged,
          config: paramiko.SSHConfig | None, accept_new_host_key: bool) -> Host:
    settings = merged.settings
    keys: KeyPath = ("hosts", name)
    files: list[Path] = []
    for origin, file in settings.get("values_files", []):
        resolved = (doc.path.parent / Path(file).expanduser()).resolve()
        if not resolved.is_file():
            raise doc.error(origin, f"{file}: values file {resolved} does not exist",
                            fix="values_files are relative to the inventory file")
        files.append(resolved)
    local = settings.get("connection", "ssh") == "local"
    if local:
        for key in sorted(SSH_KEYS & set(own)):
            raise doc.error((*keys, key), f"{key} has no effect on a host with connection: "
                            "local", fix=f"drop {key}, or connect over ssh")
    elif "docker_host" in settings:
        raise doc.error(merged.origin["docker_host"],
                        f"docker_host applies to connection: local only; host {name!r} connects "
                        "over SSH and uses the manager's own engine",
                        fix="drop docker_host, or set connection: local on that host")
    target = None
    if not local:
        target = resolve_ssh(name, settings=settings, ssh_config=config,
                             source=doc.where(keys), accept_new_host_key=accept_new_host_key)
    return Host(
        name=name,
        ssh=target,
        docker_host=settings.get("docker_host"),
        values_files=tuple(files),
        values=settings.get("values", {}),
        values_origins=merged.values_origins,
    )


def select_hosts(
    *,
    host: str | None = None,
    inventory: str | None = None,
    limit: str | None = None,
    ssh_config: str | None = None,
    accept_new_host_key: bool = False,
) -> list[Host]:
    """The hosts a command targets: ``--host``, or ``-i``/``--limit``, else the local engine."""
    if host is not None and inventory is not None:
        raise ConfigError("--host and -i/--inventory are exclusive", fix="use one of them")
    if limit is not None and inventory is None:
        raise ConfigError("--limit needs an inventory (-i FILE)")
    if inventory is not None:
        return load_inventory(
            inventory, ssh_config=ssh_config, accept_new_host_key=accept_new_host_key
        ).select(limit)
    if host is not None:
        return [adhoc_host(host, ssh_config=ssh_config, accept_new_host_key=accept_new_host_key)]
    return [Host("local", None)]
