"""HTTP to a port on the connector's host, through the connection itself: a plain loopback
socket for the local machine, an SSH ``direct-tcpip`` channel of the open transport for a
manager (what ``ssh -L`` does). Nothing is published or opened to the network for it: the stack's
MLflow and model APIs stay reachable only where they already are.
"""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from deployer.errors import ConnectError

if TYPE_CHECKING:
    from deployer.connectors.base import Connector

#: Seconds for one request (connect + answer).
DEFAULT_TIMEOUT = 10.0


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


class _ChannelHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection whose socket is a ``direct-tcpip`` channel of an SSH transport."""

    def __init__(self, transport: Any, host: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._transport = transport

    def connect(self) -> None:
        channel = self._transport.open_channel(
            "direct-tcpip", (self.host, self.port), ("127.0.0.1", 0), timeout=self.timeout)
        channel.settimeout(self.timeout)
        self.sock = channel


def request(conn: Connector, port: int, method: str, path: str, *,
            body: Any = None, address: str = "127.0.0.1",
            timeout: float = DEFAULT_TIMEOUT) -> Response:
    """``method path`` on ``address:port`` as seen from ``conn``'s host; JSON ``body``.

    Raises ``ConnectError`` naming the host and port when nothing answers there.
    """
    transport = getattr(conn, "transport", None)
    http_conn: http.client.HTTPConnection
    if transport is None:
        http_conn = http.client.HTTPConnection(address, port, timeout=timeout)
    else:
        http_conn = _ChannelHTTPConnection(transport, address, port, timeout)
    payload = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if payload is not None else {}
    try:
        http_conn.request(method, path, body=payload, headers=headers)
        answer = http_conn.getresponse()
        return Response(answer.status, answer.read())
    except (OSError, http.client.HTTPException, EOFError) as exc:
        raise ConnectError(
            f"{conn.host} -> {address}:{port}", f"no HTTP answer ({exc or type(exc).__name__})",
            fix="is the service running and published on that port? (`deployer status`)",
        ) from exc
    except Exception as exc:  # paramiko's ChannelException and SSHException
        if type(exc).__module__.startswith("paramiko"):
            raise ConnectError(f"{conn.host} -> {address}:{port}",
                               f"the SSH server refused the channel ({exc})",
                               fix="allow TCP forwarding in the manager's sshd "
                               "(AllowTcpForwarding yes)") from exc
        raise
    finally:
        http_conn.close()
