"""Who an SSH connection goes to (``SSHTarget``: host, user, keys, known_hosts, jump hosts) and
the host-key policy every hop gets: an unknown key refused unless ``accept_new`` (then recorded,
like ``ssh -o StrictHostKeyChecking=accept-new``), a changed key always refused; which failures
are worth a retry, and how each failure reads (one ``ConnectError`` naming the hop)."""

from __future__ import annotations

import errno
import logging
import socket
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

from deployer.errors import ConnectError

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


def lost_reason(transport: paramiko.Transport, target: SSHTarget) -> str | None:
    """Why an open connection to ``target`` is gone, or None while it works."""
    if transport.is_active():
        return None
    # A cut link ends as a bare EOF of paramiko's transport thread once TCP_USER_TIMEOUT
    # fired: say what that means rather than "EOFError".
    saved = getattr(transport, "saved_exception", None)
    detail = "" if saved is None or isinstance(saved, EOFError) else f": {saved}"
    return (f"the SSH connection stopped answering (nothing acknowledged for "
            f"{target.dead_after:g} s) or was closed{detail}")


class _AcceptNewPolicy(paramiko.MissingHostKeyPolicy):
    """Record an unknown host's key in the user's known_hosts (OpenSSH ``accept-new``)."""

    def __init__(self, known_hosts: Path, name: str) -> None:
        self._file = known_hosts
        self._name = name

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        self._file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        line = f"{self._name} {key.get_name()} {key.get_base64()}\n"
        with self._file.open("a") as handle:
            handle.write(line)
        client.get_host_keys().add(self._name, key.get_name(), key)
        log.warning("recorded the new host key of %s in %s", self._name, self._file)


class _UnknownHostKey(Exception):
    def __init__(self, key: paramiko.PKey) -> None:
        super().__init__("unknown host key")
        self.key = key


class _RefusePolicy(paramiko.MissingHostKeyPolicy):
    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        raise _UnknownHostKey(key)


def _fingerprint(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.fingerprint}"


def _is_transient(exc: BaseException) -> bool:
    """Worth retrying: the server was there but dropped us (sshd MaxStartups, a reset)."""
    if isinstance(exc, ConnectionResetError | EOFError):
        return True
    if isinstance(exc, paramiko.SSHException) and not isinstance(
        exc, paramiko.AuthenticationException | paramiko.BadHostKeyException
    ):
        text = str(exc)
        return "banner" in text or "reset" in text.lower() or "EOF" in text
    return False


def _map_error(target: SSHTarget, exc: BaseException) -> ConnectError:
    """One ``ConnectError`` for any failure connecting to ``target`` (one hop)."""
    host = target.label
    known = ", ".join(target.known_hosts_files)
    if isinstance(exc, _UnknownHostKey):
        return ConnectError(
            host,
            f"unknown host key ({_fingerprint(exc.key)}): not in {known}",
            fix="verify the fingerprint with the server's admin, then rerun with "
            "--accept-new-host-key (records it), or add it to known_hosts yourself",
        )
    if isinstance(exc, paramiko.BadHostKeyException):
        return ConnectError(
            host,
            f"HOST KEY CHANGED: got {_fingerprint(exc.key)}, known_hosts has "
            f"{_fingerprint(exc.expected_key)} — refused (possible man-in-the-middle)",
            fix=f"if the server was legitimately re-keyed, remove its old entry "
            f"(`ssh-keygen -R '{target.known_hosts_name}'`) and reconnect",
        )
    if isinstance(exc, paramiko.AuthenticationException):
        tried = ", ".join(target.identity_files) or "ssh-agent and default keys"
        return ConnectError(
            host,
            f"authentication failed for user {target.user or '(default)'} (tried {tried})",
            fix="check the user and IdentityFile (inventory, --ssh-config), or load the key "
            "into ssh-agent",
        )
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        return ConnectError(
            host,
            "connection refused (nothing listens on that port)",
            fix="check the host name and port, and that sshd runs there",
        )
    if isinstance(exc, socket.timeout | TimeoutError):
        return ConnectError(
            host,
            f"no answer within {target.connect_timeout:g} s",
            fix="check the address, the port and firewalls",
        )
    if isinstance(exc, socket.gaierror):
        return ConnectError(
            host, f"cannot resolve host name {target.hostname!r}",
            fix="check the name, or add a HostName entry to your ssh config",
        )
    if isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return ConnectError(host, f"host unreachable: {exc.strerror}",
                            fix="check the address and routes")
    if isinstance(exc, paramiko.PasswordRequiredException):
        return ConnectError(host, "the private key is encrypted",
                            fix="load it into ssh-agent (ssh-add)")
    return ConnectError(host, f"{type(exc).__name__}: {exc}")
