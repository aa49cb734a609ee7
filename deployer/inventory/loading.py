"""The inventory: hosts and groups (children, cycles refused), ``--limit`` patterns, and the
selection of hosts a command acts on, all checked before any host is contacted."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deployer.errors import ConfigError
from deployer.inventory.document import (
    _check_settings,
    _did_you_mean,
    _Doc,
    _kind,
    _merge_layers,
    _Merged,
    _names,
    _read_doc,
)
from deployer.inventory.hosts import _NAME, GROUP_KEYS, SSH_KEYS, TOP_KEYS, Host, KeyPath
from deployer.inventory.ssh import _load_ssh_config, adhoc_host, resolve_ssh, ssh_config_path

if TYPE_CHECKING:
    import paramiko


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
