"""The host-key policy every SSH hop gets: an unknown key refused unless ``accept_new`` (then
recorded, like ``ssh -o StrictHostKeyChecking=accept-new``), a changed key always refused; which
failures are worth a retry, and how each failure reads (one ``ConnectError`` naming the hop)."""

from __future__ import annotations

import errno
import logging
import socket
from pathlib import Path

import paramiko

from deployer.connectors.ssh_target import SSHTarget
from deployer.errors import ConnectError

log = logging.getLogger(__name__)


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
