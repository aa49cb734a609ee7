"""A target host of the deployer (``Host``: how to reach it, its values overlays) and the
shapes every inventory setting must have."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deployer.connectors.ssh_target import SSHTarget
from deployer.errors import ValuesError

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
