"""An SSH remote port forward: ``127.0.0.1:PORT`` on the target carried back to a local port.

The target engine pulls from ``127.0.0.1:PORT`` on its own host (an address it trusts without
TLS); sshd accepts the connection and opens a ``forwarded-tcpip`` channel back to us, which we
pump to the local registry. Bytes sent back are counted (what crossed the wire towards the
target). Closing cancels the forward: nothing stays listening on the target.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
from typing import TYPE_CHECKING, Any

import paramiko

from deployer.errors import DeployError

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger(__name__)

BIND = "127.0.0.1"


class ForwardRefused(DeployError):
    """sshd refused the forward (``AllowTcpForwarding no``) or the connection has none."""


class RemoteForward:
    """``BIND:port`` on the SSH server forwarded to ``BIND:local_port`` here."""

    def __init__(self, transport: paramiko.Transport, local_port: int, host: str) -> None:
        self._transport = transport
        self._local_port = local_port
        self._host = host
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._open: set[paramiko.Channel] = set()
        self.bytes_to_target = 0
        self.bytes_from_target = 0
        try:
            self.port = int(transport.request_port_forward(BIND, 0, handler=self._accept))
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise ForwardRefused(
                f"{host}: sshd refused a remote port forward ({exc})",
                fix="allow it for the deploying user (`AllowTcpForwarding yes` or `remote` in "
                "the target's sshd_config) to ship only changed layers",
            ) from exc

    def _accept(self, channel: paramiko.Channel, origin: tuple[str, int],
                server: tuple[str, int]) -> None:
        # Called on paramiko's transport thread: hand the connection to a pump thread at once.
        thread = threading.Thread(target=self._pump, args=(channel,), daemon=True,
                                  name=f"forward-{server[1]}")
        with self._lock:
            self._open.add(channel)
            self._threads.append(thread)
        thread.start()

    def _count(self, to_target: int, from_target: int) -> None:
        with self._lock:
            self.bytes_to_target += to_target
            self.bytes_from_target += from_target

    def _pump(self, channel: paramiko.Channel) -> None:
        try:
            sock = socket.create_connection((BIND, self._local_port), timeout=10)
        except OSError as exc:
            log.warning("forward: cannot reach local port %s: %s", self._local_port, exc)
            channel.close()
            return
        sock.settimeout(None)
        try:
            _relay(sock, channel, self._count)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            # The SSH connection died under the transfer (a cut link): the pull waiting on it
            # fails and reports that, once; this thread just ends.
            log.debug("forward: relay ended: %s", exc)
        finally:
            with contextlib.suppress(OSError):
                sock.close()
            with contextlib.suppress(paramiko.SSHException, EOFError, OSError):
                channel.close()
            with self._lock:
                self._open.discard(channel)

    def close(self) -> None:
        """Cancel the forward on the server and end the open connections."""
        with contextlib.suppress(paramiko.SSHException, EOFError, OSError):
            if self._transport.is_active():
                self._transport.cancel_port_forward(BIND, self.port)
        with self._lock:
            channels, threads = list(self._open), list(self._threads)
        for channel in channels:
            with contextlib.suppress(paramiko.SSHException, EOFError, OSError):
                channel.close()  # fails on a connection that just died: nothing left to end
        for thread in threads:
            thread.join(timeout=5)

    def __enter__(self) -> RemoteForward:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _relay(sock: socket.socket, channel: paramiko.Channel,
           count: Callable[[int, int], None]) -> None:
    """Copy both ways until either side closes."""
    while True:
        waitables: list[Any] = [sock, channel]
        readable, _, _ = select.select(waitables, [], [], 30)
        if not readable:
            if channel.closed:
                return
            continue
        if sock in readable:
            data = sock.recv(262144)
            if not data:
                return
            channel.sendall(data)
            count(len(data), 0)
        if channel in readable:
            data = channel.recv(262144)
            if not data:
                return
            sock.sendall(data)
            count(0, len(data))
