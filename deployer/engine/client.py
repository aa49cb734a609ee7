"""The one place that builds Docker SDK clients and maps Docker/HTTP failures to project errors.

Two transports:

* the local engine through its socket (``local_client``), and
* a remote engine through an already-open SSH connection (``ssh_client``): every HTTP connection
  of the client is one paramiko channel running ``docker system dial-stdio`` on the manager, so
  the Docker API rides the same SSH connection as every other command of a run (no second
  handshake, no host-key logic of its own, the manager's ``DOCKER_HOST`` is honoured).

``docker_errors(host)`` wraps SDK calls and turns ``docker.errors.*`` and ``requests`` errors into
``ConnectError`` (engine unreachable) or ``DockerError`` (engine refused the request).
"""

from __future__ import annotations

import contextlib
import shlex
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import docker
import docker.errors
import requests
import requests.adapters
import urllib3
import urllib3.connection
import urllib3.connectionpool

from deployer.errors import ConnectError, ConnectionLost, DockerError, MlopsError

if TYPE_CHECKING:
    import paramiko

    from deployer.connectors.base import Connector

#: The client timeout (seconds) for one API request; log follows pass their own.
DEFAULT_TIMEOUT = 60

#: What runs on the manager for each API connection. An argv joined for the remote shell.
DIAL_STDIO_ARGV = ["docker", "system", "dial-stdio"]

# docker-py finds the raw socket of a streamed response (logs -f, attach) by looking at the base
# URL: for ``http+docker://ssh...`` it takes ``.channel`` of the response file, which a paramiko
# channel file has. Using that base URL keeps streaming working on our channel transport.
_SSH_BASE_URL = "http+docker://ssh"


def local_client(
    base_url: str | None = None, *, timeout: int = DEFAULT_TIMEOUT
) -> docker.DockerClient:
    """A client for a local engine: ``base_url`` (e.g. ``unix:///var/run/docker.sock``), else
    the environment (``DOCKER_HOST``...) like the docker CLI.

    Raises ``ConnectError`` if the engine does not answer.
    """
    host = base_url or "local engine"
    with docker_errors(host):
        if base_url:
            return docker.DockerClient(base_url=base_url, version="auto", timeout=timeout)
        return docker.DockerClient.from_env(version="auto", timeout=timeout)


class _ChannelConnection(urllib3.connection.HTTPConnection):
    """An HTTP connection whose socket is an SSH channel running ``docker system dial-stdio``."""

    def __init__(self, transport: paramiko.Transport, timeout: float | None) -> None:
        super().__init__("localhost", timeout=timeout)
        self._transport = transport
        self._channel_timeout = timeout

    def connect(self) -> None:
        channel = self._transport.open_session(timeout=self._channel_timeout)
        channel.settimeout(self._channel_timeout)
        channel.exec_command(shlex.join(DIAL_STDIO_ARGV))
        self.sock = channel  # a channel quacks like a socket for http.client


class _ChannelPool(urllib3.connectionpool.HTTPConnectionPool):
    def __init__(self, transport: paramiko.Transport, timeout: float | None, maxsize: int) -> None:
        super().__init__("localhost", timeout=timeout, maxsize=maxsize)
        self._transport = transport
        self._channel_timeout = timeout

    def _new_conn(self) -> _ChannelConnection:
        return _ChannelConnection(self._transport, self._channel_timeout)


class _ChannelAdapter(requests.adapters.HTTPAdapter):
    """Sends every request of the session through channels of one SSH transport."""

    def __init__(self, transport: paramiko.Transport, timeout: float | None) -> None:
        self._transport = transport
        self._timeout = timeout
        self._pool: _ChannelPool | None = None
        super().__init__()

    def get_connection_with_tls_context(
        self, request: Any, verify: Any, proxies: Any = None, cert: Any = None
    ) -> _ChannelPool:
        return self._get_pool()

    def get_connection(self, url: Any, proxies: Any = None) -> _ChannelPool:
        return self._get_pool()

    def _get_pool(self) -> _ChannelPool:
        if self._pool is None:
            # A few connections so a log follow and status polling can run side by side.
            self._pool = _ChannelPool(self._transport, self._timeout, maxsize=4)
        return self._pool

    def request_url(self, request: Any, proxies: Any) -> str:
        # The request line carries only the path: the "host" part of our URL means nothing.
        return str(request.path_url)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        super().close()


def ssh_client(
    transport: paramiko.Transport, host: str, *, timeout: int = DEFAULT_TIMEOUT
) -> docker.DockerClient:
    """A client for the engine of an SSH-connected manager, over channels of ``transport``.

    Closing the client closes its channels, not the SSH connection (the connector owns that).
    Raises ``ConnectError`` if the manager cannot run ``docker system dial-stdio``.
    """
    # Build without talking to anyone (a fixed version skips the probe), mount our adapter, then
    # negotiate the API version over it, as ``version="auto"`` would have done.
    client = docker.DockerClient(base_url="http://localhost:2375", version="1.41", timeout=timeout)
    api = client.api
    adapter = _ChannelAdapter(transport, timeout)
    for prefix in ("http://", "https://"):
        api.adapters.pop(prefix, None)
    api.mount(_SSH_BASE_URL, adapter)
    api.base_url = _SSH_BASE_URL
    with docker_errors(host):
        server = api.version(api_version=False)
    version = str(server.get("ApiVersion", "1.41"))
    # The SDK has no public setter for the negotiated version; ``_version`` is what it reads.
    api._version = version
    return client


#: What the engine answers while it shuts down: its gRPC link to its Swarm manager part closing
#: (Canceled) or already gone (Unavailable: "dial unix .../swarm/control.sock").
_SHUTTING_DOWN = ("rpc error: code = Canceled", "rpc error: code = Unavailable",
                  "the client connection is closing", "transport is closing")


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0] if len(text) > 300 else text


@contextlib.contextmanager
def docker_errors(host: str) -> Iterator[None]:
    """Map Docker SDK and HTTP exceptions raised inside the block to project errors.

    * engine unreachable (socket missing, connection refused or reset, SSH channel failure,
      timeouts) -> ``ConnectError(host, reason, fix=...)``
    * the engine answered with an error (``APIError`` incl. ``NotFound``), or the SDK refused
      the input -> ``DockerError`` naming the host and the engine's explanation.

    Catch ``docker.errors.NotFound`` inside the block when "absent" is an expected answer.
    """
    try:
        yield
    except docker.errors.APIError as exc:
        explanation = exc.explanation or str(exc)
        if isinstance(explanation, bytes):
            explanation = explanation.decode(errors="replace")
        if any(marker in str(explanation) for marker in _SHUTTING_DOWN):
            # Its Swarm part going away under the request: dockerd is stopping or restarting,
            # not refusing what was asked.
            raise ConnectError(
                host, "the Docker engine is shutting down or restarting, or its Swarm "
                f"manager is unavailable ({explanation})",
                fix="check that dockerd runs there (`docker version` on that host)",
            ) from exc
        status = exc.status_code or "?"
        fix = None
        if "not a swarm manager" in str(explanation):
            fix = "run `docker swarm init` on the manager, or target a Swarm manager node"
        raise DockerError(f"{host}: engine said ({status}): {explanation}", fix=fix,
                          status=exc.status_code, explanation=str(explanation),
                          host=host) from exc
    except (requests.exceptions.ReadTimeout, urllib3.exceptions.ReadTimeoutError) as exc:
        # The request went out and nothing came back: over SSH that is most often the
        # connection itself going silent (a link cut on the way), not dockerd being down.
        raise ConnectError(
            host,
            f"no answer from the Docker engine: {_reason(exc)}; the connection to {host} (or "
            "its engine) stopped answering",
            fix="check the network path to the manager (`ssh HOST docker version`), then rerun: "
            "it converges or says what it waits on (a lock the cut run left is named, with "
            "--break-lock as the way out)",
        ) from exc
    except (
        requests.exceptions.ConnectionError,
        requests.exceptions.Timeout,
        urllib3.exceptions.HTTPError,
        ConnectionError,
        TimeoutError,
    ) as exc:
        raise ConnectError(
            host,
            f"Docker engine unreachable: {_reason(exc)}",
            fix="check that dockerd runs there and DOCKER_HOST points at it "
            "(`docker version` on that host)",
        ) from exc
    except docker.errors.DockerException as exc:
        text = _reason(exc)
        if "Error while fetching server API version" in text or "Connection" in text:
            raise ConnectError(
                host,
                f"Docker engine unreachable: {text}",
                fix="check that dockerd runs there and DOCKER_HOST points at it "
                "(`docker version` on that host)",
            ) from exc
        raise DockerError(f"{host}: {text}", host=host) from exc
    except Exception as exc:
        # A dropped SSH connection surfaces as paramiko's exceptions (not OSError) when a new
        # channel cannot be opened; socket-level failures as OSError.
        if not isinstance(exc, (OSError, *ssh_errors())):
            raise
        raise ConnectError(
            host,
            f"connection lost: {_reason(exc)}",
            fix="check the network and the SSH server, then rerun",
        ) from exc


def ssh_errors() -> tuple[type[Exception], ...]:
    """paramiko's base error when paramiko is loaded (by runs with a remote host)."""
    # Without paramiko loaded no SSH error can occur, and importing it here would cost 0.3 s.
    loaded = sys.modules.get("paramiko")
    return (loaded.SSHException,) if loaded is not None else ()


def engine_stopped(conn: Connector, doing: str, exc: MlopsError,
                   fix_tail: str) -> ConnectError | None:
    """``exc`` (the engine unreachable, or answering 503, through a working connection in the
    middle of a run) reworded with what was going on and, once the engine is gone, what the host
    itself says (``docker version`` there: "Cannot connect to the Docker daemon at ... Is the
    docker daemon running?"), which beats the HTTP layer's "Remote end closed connection" or
    a stopping engine's "not a swarm manager" (whose usual fix, swarm init, would be wrong).
    None when the engine answers after all (then ``exc`` says it best)."""
    said = ""
    answered = False
    for attempt in range(3):  # a stopping engine may answer for a moment longer
        try:
            probe = conn.run(["docker", "version", "--format", "{{.Server.APIVersion}}"],
                             check=False, timeout=20)
        except MlopsError:
            break  # the probe failing too says no more than the error itself
        if probe.returncode != 0:
            lines = [line for line in probe.stderr.splitlines() if line.strip()]
            said = lines[-1].strip() if lines else f"docker version exited {probe.returncode}"
            break
        answered = True
        if attempt < 2:
            time.sleep(1)
    if answered and not said:
        return None
    reason = exc.reason if isinstance(exc, ConnectError) else exc.message
    return ConnectError(
        conn.host, f"the Docker engine stopped, restarted or left its swarm while {doing}: "
        f"{said or reason}",
        fix=f"check dockerd on {conn.host} (`docker version` and `docker info` there; its log "
        f"says why it stopped), start it if it is down, then rerun: {fix_tail}")


def step_cause(conn: Connector, exc: MlopsError, doing: str, lost_fix: str,
               rerun_note: str) -> MlopsError | None:
    """What really ended a step that raised ``exc`` while ``doing``: the connection (lost),
    or the manager's engine (stopped); None when ``exc`` says it best."""
    lost = conn.lost()
    if lost is not None:
        # Whatever failed first (an API call, a command, an upload), the cause is the
        # connection: say so, and what was going on.
        return ConnectionLost(conn.host, f"{lost}, while {doing}", fix=lost_fix)
    # The link works: the manager's engine went away (503: its Swarm part did). Not the local
    # engine's errors (a build or save here), and not when the manager's engine answers.
    if getattr(exc, "host", None) == conn.host and (
            isinstance(exc, ConnectError) or getattr(exc, "status", None) == 503):
        return engine_stopped(conn, doing, exc, rerun_note)
    return None


def local_engine(conn: Connector) -> docker.DockerClient | None:
    """The local engine (where images are built) next to ``conn``'s, or None if there is none."""
    if conn.host == "local":
        return conn.docker_client()
    try:
        return local_client()
    except MlopsError:
        return None
