"""A Swarm manager over SSH (paramiko): one connection per run for commands, files and the API.

Host keys follow OpenSSH's ``StrictHostKeyChecking`` semantics: keys come from the known_hosts
files; an unknown key is refused unless ``accept_new`` (then it is recorded, like ``accept-new``);
a changed key is always refused. Every failure becomes one ``ConnectError(host, reason, fix)``.
Commands run through the account's shell without a login (no rc files), argv joined by
``shlex.join``.

``ProxyJump``: a target may carry jump hosts (``SSHTarget.jump``, first hop first). The first hop
is reached directly, every further hop and the target through a ``direct-tcpip`` channel of the
hop before it, each with its *own* host-key check (its known_hosts files, ``accept_new``), user
and keys — as ``ssh -J`` does. A failure names the hop it happened on.
"""

from __future__ import annotations

import contextlib
import logging
import random
import select
import shlex
import threading
import time
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import paramiko

from deployer.connectors.base import (
    CANCELLED,
    Connector,
    LineCallback,
    LineSplitter,
    RunResult,
    Stdin,
    stdin_chunks,
)
from deployer.errors import CommandError, ConnectError, MlopsError

if TYPE_CHECKING:
    import docker

from deployer.connectors import sftp_files
from deployer.connectors.ssh_policy import (
    _AcceptNewPolicy,
    _is_transient,
    _map_error,
    _RefusePolicy,
    lost_reason,
)
from deployer.connectors.ssh_target import DEFAULT_KNOWN_HOSTS, SSHTarget, set_dead_after

__all__ = ["DEFAULT_KNOWN_HOSTS", "SSHConnector", "SSHTarget"]

log = logging.getLogger(__name__)
# paramiko logs every negotiation step at INFO/DEBUG; our own errors say what matters.
logging.getLogger("paramiko").setLevel(logging.WARNING)
# Its transport thread logs a whole traceback at ERROR when the peer is no SSH server (a wrong
# port): the ConnectError raised for it already says so, once.
logging.getLogger("paramiko.transport").setLevel(logging.CRITICAL)

class SSHConnector(Connector):
    """Commands, files and the Docker API of a manager over one paramiko connection."""

    def __init__(self, target: SSHTarget, *, via: Connector | None = None) -> None:
        """``via``: an open connector to the target's last jump host; its connection carries
        this one instead of a new connection through the whole chain."""
        self.target = target
        self.host = target.label
        self._client = self._connect(via)
        transport = self._client.get_transport()
        assert transport is not None
        self._transport: paramiko.Transport = transport
        self._sftp: paramiko.SFTPClient | None = None
        self._docker: docker.DockerClient | None = None
        self._lock = threading.Lock()

    @property
    def transport(self) -> paramiko.Transport:
        """The connection's SSH transport (its channels: jump hosts, the Engine API)."""
        return self._transport

    # Connection

    def _connect(self, via: Connector | None) -> paramiko.SSHClient:
        """Connect through every hop; the jump hosts' clients stay open (their transports carry
        the target's connection) and are closed with it."""
        self._jump_clients: list[paramiko.SSHClient] = []
        hops = self.target.hops
        if isinstance(via, SSHConnector):
            forward = self._open_forward(via.target, via._client, self.target)
            return self._connect_hop(self.target, forward, jump=False)
        sock: paramiko.Channel | None = None
        try:
            for index, hop in enumerate(hops[:-1]):
                client = self._connect_hop(hop, sock, jump=True)
                self._jump_clients.append(client)
                sock = self._open_forward(hop, client, hops[index + 1])
            return self._connect_hop(self.target, sock, jump=False)
        except BaseException:
            self._close_jumps()
            raise

    def _open_forward(
        self, hop: SSHTarget, client: paramiko.SSHClient, nxt: SSHTarget
    ) -> paramiko.Channel:
        """A channel from ``hop`` to ``nxt``'s sshd (what ``ssh -J`` asks the jump host for)."""
        transport = client.get_transport()
        assert transport is not None
        try:
            return transport.open_channel(
                "direct-tcpip", (nxt.hostname, nxt.port), ("127.0.0.1", 0),
                timeout=nxt.connect_timeout,
            )
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise ConnectError(
                nxt.label,
                f"the jump host {hop.label} cannot open a connection to "
                f"{nxt.hostname}:{nxt.port} ({exc})",
                fix="check the address and port as the jump host sees them, and that its sshd "
                "allows TCP forwarding (AllowTcpForwarding)",
            ) from exc

    def _connect_hop(
        self, hop: SSHTarget, sock: paramiko.Channel | None, *, jump: bool
    ) -> paramiko.SSHClient:
        delay = 0.3
        for attempt in range(1, max(1, hop.attempts) + 1):
            try:
                return self._connect_once(hop, sock)
            except Exception as exc:  # noqa: BLE001 - every failure is mapped below
                # Through a jump host the channel is spent after one attempt: no retry.
                if sock is None and attempt < hop.attempts and _is_transient(exc):
                    pause = delay * (1 + random.random())  # jitter: do not retry in lockstep
                    log.info("%s: transient failure (%s), retry in %.1f s", hop.label, exc, pause)
                    time.sleep(pause)
                    delay *= 2
                    continue
                error = _map_error(hop, exc)
                if jump:  # say which machine of the chain refused, and for which target
                    error = ConnectError(f"jump host {error.host} (for {self.target.label})",
                                         error.reason, fix=error.fix)
                raise error from exc
        raise AssertionError("unreachable")

    def _close_jumps(self) -> None:
        for client in reversed(self._jump_clients):
            client.close()
        self._jump_clients = []

    @staticmethod
    def _connect_once(target: SSHTarget, sock: paramiko.Channel | None) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        files = [Path(f).expanduser() for f in target.known_hosts_files]
        for path in files:
            if path.is_file():
                client.load_host_keys(str(path))
        if target.accept_new_host_key:
            client.set_missing_host_key_policy(_AcceptNewPolicy(files[0], target.known_hosts_name))
        else:
            client.set_missing_host_key_policy(_RefusePolicy())
        key_files = [str(Path(f).expanduser()) for f in target.identity_files]
        try:
            client.connect(
                target.hostname,
                port=target.port,
                username=target.user,
                key_filename=key_files or None,  # type: ignore[arg-type]  # accepts a list
                # Like ssh: the agent's keys and, without an explicit identity, the default keys.
                allow_agent=True,
                look_for_keys=not key_files,
                timeout=target.connect_timeout,
                banner_timeout=target.connect_timeout,
                auth_timeout=target.connect_timeout,
                channel_timeout=target.connect_timeout,
                sock=sock,
            )
        except BaseException:
            client.close()
            raise
        transport = client.get_transport()
        assert transport is not None
        transport.set_keepalive(target.keepalive)
        set_dead_after(transport.sock, target.dead_after)
        return client

    def lost(self) -> str | None:
        return lost_reason(self._transport, self.target)

    def _lost(self, exc: BaseException) -> ConnectError:
        return ConnectError(
            self.host, f"connection lost: {type(exc).__name__}: {exc}",
            fix="check the network and the SSH server, then rerun (a rerun picks up where "
            "this one stopped)",
        )

    # Commands

    def run(
        self,
        argv: list[str],
        *,
        stdin: Stdin = None,
        timeout: float | None = None,
        check: bool = True,
        on_line: LineCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> RunResult:
        command = shlex.join(argv)
        try:
            channel = self._transport.open_session(timeout=self.target.connect_timeout)
            channel.exec_command(command)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise self._lost(exc) from exc
        try:
            result = self._collect(channel, argv, stdin, timeout, on_line, cancel)
        finally:
            channel.close()
        if result.returncode == CANCELLED:
            return result
        return self._checked(argv, result, check)

    def _collect(
        self,
        channel: paramiko.Channel,
        argv: list[str],
        stdin: Stdin,
        timeout: float | None,
        on_line: LineCallback | None,
        cancel: threading.Event | None = None,
    ) -> RunResult:
        feeder_error: list[BaseException] = []
        feeder = _start_feeder(channel, stdin, feeder_error)
        out = bytearray()
        err = bytearray()
        splitter = LineSplitter(on_line) if on_line else None
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = 1.0 if deadline is None else max(0.0, min(1.0, deadline - time.monotonic()))
            if _drain(channel, wait, out, err, splitter):
                break
            if cancel is not None and cancel.is_set():
                # Closing the channel ends the remote command (sshd hangs it up).
                channel.close()
                return RunResult(CANCELLED, out.decode(errors="replace"), "cancelled")
            if not self._transport.is_active():
                raise self._lost(EOFError("SSH transport closed"))
            if deadline is not None and time.monotonic() >= deadline:
                channel.close()
                raise CommandError(argv, -1, f"timed out after {timeout:g} s", host=self.host)
        if splitter:
            splitter.flush()
        if feeder:
            feeder.join(timeout=5)
        returncode = channel.recv_exit_status()
        if feeder_error:
            exc = feeder_error[0]
            channel_failed = isinstance(exc, OSError | paramiko.SSHException | EOFError)
            if channel_failed and returncode > 0 and self._transport.is_active():
                # The command exited (rejecting its input, say) while it was being fed: its
                # own error, not the connection's, is the cause.
                return RunResult(returncode, out.decode(errors="replace"),
                                 err.decode(errors="replace"))
            if channel_failed:
                raise self._lost(exc)
            raise exc
        return RunResult(returncode, out.decode(errors="replace"), err.decode(errors="replace"))

    # Files

    def _sftp_client(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            try:
                self._sftp = self._client.open_sftp()
            except (paramiko.SSHException, OSError, EOFError) as exc:
                raise self._lost(exc) from exc
        return self._sftp

    def put_file(self, data: bytes, path: str, mode: int = 0o644) -> None:
        target = PurePosixPath(path)
        try:
            sftp_files.put(self._sftp_client(), data, target, mode)
        except (paramiko.SSHException, EOFError) as exc:
            raise self._lost(exc) from exc
        except OSError as exc:
            reason = self._full_disk(target.parent, len(data)) or str(exc)
            raise CommandError(["sftp-put", path], 1, reason, host=self.host) from exc

    def append_file(self, data: bytes, path: str) -> None:
        try:
            sftp_files.append(self._sftp_client(), data, PurePosixPath(path))
        except (paramiko.SSHException, EOFError) as exc:
            raise self._lost(exc) from exc
        except OSError as exc:
            raise CommandError(["sftp-append", path], 1, str(exc), host=self.host) from exc

    def _full_disk(self, folder: PurePosixPath, size: int) -> str | None:
        """Why an upload failed if the disk is full: SFTP says only "Failure" then."""
        try:
            result = self.run(["df", "-Pk", str(folder)], check=False)
            fields = result.stdout.splitlines()[-1].split()
            free_kb, mount = int(fields[3]), fields[5]
        except (MlopsError, IndexError, ValueError):
            return None
        if free_kb * 1024 >= size + 4096:  # room for it and a page: something else failed
            return None
        return (f"no space left on device: {mount} (holding {folder}) has {free_kb} KB free, "
                f"the upload needs {max(1, size // 1024)} KB; free some space on the manager")

    def get_file(self, path: str) -> bytes | None:
        sftp = self._sftp_client()
        try:
            with sftp.open(path, "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            return None
        except (paramiko.SSHException, EOFError) as exc:
            raise self._lost(exc) from exc

    # Docker API

    def docker_client(self) -> docker.DockerClient:
        with self._lock:
            if self._docker is None:
                self._docker = self.stream_client()
            return self._docker

    def stream_client(self) -> docker.DockerClient:
        from deployer.engine.client import ssh_client

        return ssh_client(self._transport, self.host)

    def close(self) -> None:
        # Closing what a dead connection carried must not mask the error that ended it.
        for part in (self._docker, self._sftp):
            if part is not None:
                with contextlib.suppress(Exception):
                    part.close()
        self._docker = self._sftp = None
        self._client.close()
        self._close_jumps()


def _start_feeder(channel: paramiko.Channel, stdin: Stdin,
                  errors: list[BaseException]) -> threading.Thread | None:
    """Send ``stdin`` on its own thread (a large input must not block reading the output);
    without input, end the command's stdin at once."""
    if stdin is None:
        channel.shutdown_write()
        return None

    def feed() -> None:
        try:
            for chunk in stdin_chunks(stdin):
                channel.sendall(chunk)
            channel.shutdown_write()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            # A failing producer (e.g. an image stream) must not leave the remote command
            # waiting for more input: end the channel, report after the loop.
            errors.append(exc)
            with contextlib.suppress(EOFError, OSError, paramiko.SSHException):
                channel.close()  # on a dead connection closing fails too: reported above

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    return feeder


def _drain(channel: paramiko.Channel, wait: float, out: bytearray, err: bytearray,
           splitter: LineSplitter | None) -> bool:
    """Wait up to ``wait`` s for output, take all there is; True once the command is done."""
    # The channel's fileno() is readable when stdout or stderr has data or it closed.
    select.select([channel], [], [], wait)
    while channel.recv_ready():
        chunk = channel.recv(65536)
        if splitter:
            splitter.feed(chunk)
        else:
            out += chunk
    while channel.recv_stderr_ready():
        err += channel.recv_stderr(65536)
    return bool(channel.exit_status_ready() and not channel.recv_ready()
                and not channel.recv_stderr_ready()
                and (channel.eof_received or channel.closed))
