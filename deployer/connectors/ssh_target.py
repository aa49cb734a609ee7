"""Who an SSH connection goes to (``SSHTarget``: host, user, keys, known_hosts, jump hosts).

Plain data, free of paramiko: the inventory and the CLI resolve targets on every run, while
paramiko (0.3 s to import) is loaded only by a run that connects (``connectors.ssh``)."""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"


@dataclass(frozen=True)
class SSHTarget:
    """Everything needed to reach one manager (resolved from the CLI, inventory, ssh config)."""

    hostname: str
    port: int = 22
    user: str | None = None
    identity_files: tuple[str, ...] = ()
    known_hosts_files: tuple[str, ...] = (DEFAULT_KNOWN_HOSTS,)
    accept_new_host_key: bool = False
    connect_timeout: float = 10.0
    keepalive: int = 15
    #: Seconds the link may leave what we sent unacknowledged before the connection counts as
    #: dead (TCP_USER_TIMEOUT on its socket). With a keepalive every ``keepalive`` s there is
    #: always something in flight, so a cut link ends the run within ``keepalive + dead_after``
    #: s, like OpenSSH's ServerAliveInterval x ServerAliveCountMax (15 s x 3), instead of the
    #: kernel's ~15 min of retransmissions (or never, for a blocked read with no timeout).
    dead_after: float = 30.0
    attempts: int = 3
    #: The name the user typed (inventory name or ssh config alias), for messages.
    alias: str | None = field(default=None, compare=False)
    #: Jump hosts (``ProxyJump``), in the order they are passed through.
    jump: tuple[SSHTarget, ...] = ()

    @property
    def label(self) -> str:
        """``user@host:port`` (plus the alias the user typed): never a credential."""
        who = f"{self.user}@" if self.user else ""
        text = f"{who}{self.hostname}:{self.port}"
        if self.alias and self.alias != self.hostname:
            text = f"{self.alias} ({text})"
        if self.jump:
            text += " via " + " > ".join(hop.label for hop in self.jump)
        return text

    @property
    def hops(self) -> tuple[SSHTarget, ...]:
        """Every machine connected to, in order: the jump hosts, then the target itself."""
        return (*self.jump, self)

    @property
    def known_hosts_name(self) -> str:
        """How the host appears in known_hosts (``[host]:port`` off port 22)."""
        return self.hostname if self.port == 22 else f"[{self.hostname}]:{self.port}"


def set_dead_after(sock: object, seconds: float) -> None:
    """TCP_USER_TIMEOUT on the connection's socket (Linux): the kernel ends a connection whose
    sent data stays unacknowledged that long, which wakes every thread blocked on it. A jump
    host's channel (no socket of ours) and systems without the option keep the default."""
    option = getattr(socket, "TCP_USER_TIMEOUT", None)
    if option is None or not isinstance(sock, socket.socket) or seconds <= 0:
        return
    try:
        sock.setsockopt(socket.IPPROTO_TCP, option, int(seconds * 1000))
    except OSError as exc:
        log.debug("TCP_USER_TIMEOUT not set: %s", exc)
