"""The dashboard's only door to Docker: reads snapshots, runs actions, streams logs.

Screens and widgets talk to a :class:`Backend` and never import ``docker`` or ``paramiko``.
Every method blocks, so callers run them in thread workers. Failures arrive as the project's
errors (``ConnectError`` when the engine or the SSH connection is gone, ``DockerError`` when the
engine refuses), mapped by ``deployer.engine.client.docker_errors``.

Backends:

* :class:`DockerBackend`: a Docker SDK client from a factory (local socket, or a manager over
  SSH through the deployer's connectors); reconnects by itself after a lost connection.
* :class:`ReplayBackend`: a recorded snapshot (Engine API JSON), for offline viewing and tests.
"""

from __future__ import annotations

import json
import logging
import queue
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import docker
import docker.errors

from deployer.connectors import Connector, connect
from deployer.engine.client import docker_errors, local_client
from deployer.errors import ConfigError, ConnectError, DockerError
from deployer.inventory import Host
from deployer.swarm import SwarmSnapshot, parse_snapshot, read_snapshot
from tui.deploy import DashboardReporter, DeployEvent, DeployRequest, DeployResult
from tui.logs import LogLine, parse_log_line

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LogTarget:
    """A service whose logs to read, and how to label its lines."""

    service_id: str
    name: str
    #: task id -> display source (``web.1``) so interleaved lines say which replica wrote them.
    task_sources: Mapping[str, str] = field(default_factory=dict)


class LogStream(Protocol):
    """Lines of one or more services, read by background threads until closed."""

    def read(self, max_lines: int, timeout: float) -> list[LogLine]:
        """Up to ``max_lines`` lines, waiting at most ``timeout`` seconds for the first."""
        ...

    @property
    def finished(self) -> bool:
        """Every reader has ended (follow off and all lines read, or errors)."""
        ...

    def errors(self) -> list[str]:
        """Why readers ended early (for display)."""
        ...

    def close(self) -> None:
        """Stop every reader and release its connection."""
        ...


class Backend(Protocol):
    """What the dashboard needs from a Swarm manager."""

    @property
    def host_label(self) -> str:
        """Where the dashboard is connected (shown in the status bar)."""
        ...

    def snapshot(self, stack: str | None) -> SwarmSnapshot:
        """Services, tasks and nodes of ``stack`` (every service when None)."""
        ...

    def scale(self, service_id: str, replicas: int) -> None:
        """Set a replicated service's replica count."""
        ...

    def restart(self, service_id: str) -> None:
        """Replace every task of a service (a forced update)."""
        ...

    def rollback(self, service_id: str) -> None:
        """Return a service to its previous spec."""
        ...

    def remove(self, service_id: str) -> None:
        """Remove a service."""
        ...

    def open_logs(
        self, targets: Sequence[LogTarget], *, tail: int | None, follow: bool = True
    ) -> LogStream:
        """Start reading the logs of ``targets`` (interleaved as they arrive)."""
        ...

    def deploy(
        self, request: DeployRequest, emit: Callable[[DeployEvent], object]
    ) -> DeployResult:
        """Run the deployer's push of ``request`` on this host, reporting through ``emit``.

        Deployer errors end as a ``failed`` result with the reason (not as an exception).
        """
        ...

    def close(self) -> None:
        """Release connections."""
        ...


# ---------------------------------------------------------------------------------------------
# Docker


class DockerBackend:
    """A backend over a Docker SDK client made by ``connect`` (called again after a failure)."""

    def __init__(
        self,
        connect: Callable[[], docker.DockerClient],
        host_label: str,
        *,
        release: Callable[[], None] | None = None,
        host: Host | None = None,
    ) -> None:
        self._connect = connect
        self._release = release
        #: The inventory host (how the deployer reaches it); None: the local engine.
        self._host = host or Host("local", None)
        self._host_label = host_label
        self._client: docker.DockerClient | None = None
        self._lock = threading.Lock()

    @property
    def host_label(self) -> str:
        return self._host_label

    @property
    def api(self) -> docker.APIClient:
        """The low-level client, connecting first if needed (tests wrap it to count calls)."""
        with self._lock:
            if self._client is None:
                self._client = self._connect()
            return self._client.api

    def _forget_client(self) -> None:
        # After a lost connection the next call builds a fresh client: that is the recovery.
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # noqa: BLE001 - closing a dead client may fail in any way
                log.debug("closing a broken client failed", exc_info=True)

    def _call(self, fn: Callable[[docker.APIClient], Any]) -> Any:
        try:
            with docker_errors(self._host_label):
                return fn(self.api)
        except ConnectError:
            self._forget_client()
            raise

    def snapshot(self, stack: str | None) -> SwarmSnapshot:
        return self._call(lambda api: read_snapshot(api, stack))  # type: ignore[no-any-return]

    def _inspect(self, api: docker.APIClient, service_id: str) -> dict[str, Any]:
        return api.inspect_service(service_id)  # type: ignore[no-any-return]

    def scale(self, service_id: str, replicas: int) -> None:
        if replicas < 0:
            raise DockerError(f"cannot scale to {replicas}: replicas must be 0 or more")

        def run(api: docker.APIClient) -> None:
            current = self._inspect(api, service_id)
            spec = current["Spec"]
            if "Replicated" not in spec.get("Mode", {}):
                raise DockerError(
                    f"{spec.get('Name', service_id)} is not a replicated service: "
                    "only replicated services can be scaled"
                )
            spec["Mode"] = {"Replicated": {"Replicas": replicas}}
            self._update(api, service_id, current["Version"]["Index"], spec)

        self._call(run)

    def restart(self, service_id: str) -> None:
        def run(api: docker.APIClient) -> None:
            current = self._inspect(api, service_id)
            spec = current["Spec"]
            task_template = spec.setdefault("TaskTemplate", {})
            # Bumping ForceUpdate is what `docker service update --force` does.
            task_template["ForceUpdate"] = int(task_template.get("ForceUpdate") or 0) + 1
            self._update(api, service_id, current["Version"]["Index"], spec)

        self._call(run)

    def rollback(self, service_id: str) -> None:
        def run(api: docker.APIClient) -> None:
            current = self._inspect(api, service_id)
            if not current.get("PreviousSpec"):
                raise DockerError(
                    f"{current['Spec'].get('Name', service_id)} has no previous spec to roll "
                    "back to"
                )
            self._update(
                api, service_id, current["Version"]["Index"], current["Spec"], rollback=True
            )

        self._call(run)

    @staticmethod
    def _update(
        api: docker.APIClient,
        service_id: str,
        version: int,
        spec: dict[str, Any],
        *,
        rollback: bool = False,
    ) -> None:
        # The SDK's update_service rebuilds the spec from keyword arguments and has no rollback
        # flag; posting the inspected spec back (what the docker CLI does) keeps every field.
        params: dict[str, Any] = {"version": version}
        if rollback:
            params["rollback"] = "previous"
        response = api._post_json(
            api._url("/services/{0}/update", service_id), data=spec, params=params
        )
        api._raise_for_status(response)

    def remove(self, service_id: str) -> None:
        self._call(lambda api: api.remove_service(service_id))

    def open_logs(
        self, targets: Sequence[LogTarget], *, tail: int | None, follow: bool = True
    ) -> DockerLogStream:
        return DockerLogStream(self, targets, tail=tail, follow=follow)

    def deploy(
        self, request: DeployRequest, emit: Callable[[DeployEvent], object]
    ) -> DeployResult:
        return run_push(self._host, request, emit)

    def close(self) -> None:
        self._forget_client()
        if self._release is not None:
            self._release()


class DockerLogStream:
    """One reader thread per service, all feeding one queue the UI worker drains in chunks."""

    def __init__(
        self,
        backend: DockerBackend,
        targets: Sequence[LogTarget],
        *,
        tail: int | None,
        follow: bool,
    ) -> None:
        self._backend = backend
        self._queue: queue.Queue[LogLine] = queue.Queue(maxsize=50_000)
        self._stop = threading.Event()
        self._responses: list[Any] = []
        self._errors: list[str] = []
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(
                target=self._read, args=(t, tail, follow), name=f"logs-{t.name}", daemon=True
            )
            for t in targets
        ]
        for thread in self._threads:
            thread.start()

    def _read(self, target: LogTarget, tail: int | None, follow: bool) -> None:
        try:
            with docker_errors(self._backend.host_label):
                api = self._backend.api
                params = {
                    "details": True,
                    "follow": follow,
                    "stdout": True,
                    "stderr": True,
                    "timestamps": True,
                    "tail": "all" if tail is None else str(tail),
                }
                # The SDK's service_logs hides the HTTP response, which we need to be able to
                # close from another thread to stop a quiet follow; the same two steps here.
                response = api._get(
                    api._url("/services/{0}/logs", target.service_id),
                    params=params,
                    stream=True,
                    timeout=None,
                )
                with self._lock:
                    if self._stop.is_set():
                        response.close()
                        return
                    self._responses.append(response)
                api._raise_for_status(response)
                pending = b""
                for frame in api._multiplexed_response_stream_helper(response):
                    if self._stop.is_set():
                        return
                    pending += frame
                    *complete, pending = pending.split(b"\n")
                    for raw in complete:
                        self._put(
                            parse_log_line(
                                raw.decode(errors="replace"), target.name, target.task_sources
                            )
                        )
                if pending:
                    self._put(
                        parse_log_line(
                            pending.decode(errors="replace"), target.name, target.task_sources
                        )
                    )
        except (ConnectError, DockerError) as exc:
            if not self._stop.is_set():
                with self._lock:
                    self._errors.append(f"{target.name}: {exc.message}")
        except Exception as exc:  # noqa: BLE001 - a reader killed by close() raises anything
            if not self._stop.is_set():
                with self._lock:
                    self._errors.append(f"{target.name}: {exc}")

    def _put(self, line: LogLine) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(line, timeout=0.2)
                return
            except queue.Full:
                continue

    def read(self, max_lines: int, timeout: float) -> list[LogLine]:
        lines: list[LogLine] = []
        try:
            lines.append(self._queue.get(timeout=timeout))
        except queue.Empty:
            return lines
        while len(lines) < max_lines:
            try:
                lines.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return lines

    @property
    def finished(self) -> bool:
        return not any(t.is_alive() for t in self._threads) and self._queue.empty()

    def errors(self) -> list[str]:
        with self._lock:
            return list(self._errors)

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            responses = list(self._responses)
        for response in responses:
            _interrupt(response)


def _interrupt(response: Any) -> None:
    """Wake a thread blocked reading a streamed response: shut its socket down, then close."""
    raw_sock: Any = None
    try:
        fp = response.raw._fp.fp
        raw_sock = getattr(fp, "channel", None) or getattr(fp.raw, "_sock", None)
    except AttributeError:
        pass
    if raw_sock is not None:
        try:
            raw_sock.shutdown(socket.SHUT_RDWR)
        except (OSError, EOFError):
            pass
    try:
        response.close()
    except Exception:  # noqa: BLE001 - best effort on a connection being torn down
        log.debug("closing a log response failed", exc_info=True)


def host_backend_factory(host: Host) -> Callable[[], Backend]:
    """A factory of the backend for an inventory ``Host``: the local engine, or a manager over
    one SSH connection (the deployer's connector: same host-key policy and errors)."""

    def make() -> Backend:
        if host.ssh is None:
            return DockerBackend(lambda: local_client(host.docker_host), host.label, host=host)
        target = host.ssh
        holder: list[Connector] = []

        def release() -> None:
            for old in holder:
                old.close()
            holder.clear()

        def client() -> docker.DockerClient:
            # One SSH connection carries every API call; after a loss a new one is opened.
            release()
            holder.append(connect(target))
            return holder[0].docker_client()

        return DockerBackend(client, host.label, release=release, host=host)

    return make


def run_push(
    host: Host, request: DeployRequest, emit: Callable[[DeployEvent], object]
) -> DeployResult:
    """The deployer's ``push`` on ``host`` (its own connection, as ``deployer push`` opens one):
    values = defaults < the host's inventory values < ``-f`` files < ``--set``, as the CLI
    layers them. Refuses values naming another stack than the one on screen."""
    from deployer.commands.targets import host_values_files, local_engine
    from deployer.errors import MlopsError
    from deployer.push import Pusher, PushOptions
    from deployer.values import load_values

    reporter = DashboardReporter(emit, check=request.check)
    stack = request.stack or "?"
    label = host.label
    try:
        with host_values_files(host) as files:
            values = load_values([*files, *map(Path, request.values_files)], request.sets)
        stack = values.stack.name
        if request.stack is not None and stack != request.stack:
            raise ConfigError(
                f"the values deploy stack {stack!r} but the dashboard shows stack "
                f"{request.stack!r}; nothing was deployed",
                fix=f"start mlops-tui with --stack {stack}, or pass the values of "
                f"{request.stack} with -f",
            )
        conn = connect(host.ssh, docker_host=host.docker_host)
        label = conn.host
        try:
            plan = Pusher(
                conn, reporter, PushOptions(check=request.check), local=local_engine(conn)
            ).push(values)
        finally:
            conn.close()
    except MlopsError as exc:
        reason = exc.message if not exc.fix else f"{exc.message} (fix: {exc.fix})"
        reporter.step(label, "failed", "push", stack, exc.message)
        return DeployResult("failed", stack, label, request.check, reason)
    steps = tuple(f"{s.kind} {s.target}" for s in plan.steps)
    if not plan.changed:
        unchanged = f"revision {plan.revision} unchanged" if plan.revision else "nothing to do"
        return DeployResult("ok", stack, label, request.check, unchanged)
    reason = f"revision {plan.revision}" if plan.revision is not None else "new revision"
    if plan.reason:
        reason += f": {plan.reason}"
    return DeployResult("changed", stack, label, request.check, reason, steps)


# ---------------------------------------------------------------------------------------------
# Recorded data


class ReplayBackend:
    """A fixed snapshot from a recording (``{"services": [...], "tasks": [...], "nodes": [...],
    "taken_at": "..."}`` as the Engine API returned them). Actions are refused: it is read-only.
    """

    def __init__(self, recording: Mapping[str, Any], host_label: str = "recording") -> None:
        self._recording = recording
        self._host_label = host_label

    @classmethod
    def from_file(cls, path: Path) -> ReplayBackend:
        """Load a recording written by :func:`record_snapshot`."""
        return cls(json.loads(path.read_text()), host_label=f"replay:{path.name}")

    @property
    def host_label(self) -> str:
        return self._host_label

    def snapshot(self, stack: str | None) -> SwarmSnapshot:
        rec = self._recording
        services = [
            s
            for s in rec["services"]
            if stack is None
            or (s.get("Spec", {}).get("Labels") or {}).get("com.docker.stack.namespace") == stack
        ]
        taken_at = datetime.fromisoformat(rec["taken_at"]) if rec.get("taken_at") else None
        return parse_snapshot(
            services, rec["tasks"], rec.get("nodes", []), stack=stack, taken_at=taken_at
        )

    def _refuse(self, *_: object) -> None:
        raise DockerError("this is a recording: actions are not available")

    scale = _refuse
    restart = _refuse
    rollback = _refuse
    remove = _refuse

    def deploy(
        self, request: DeployRequest, emit: Callable[[DeployEvent], object]
    ) -> DeployResult:
        return DeployResult(
            "failed", request.stack or "?", self._host_label, request.check,
            "this is a recording: deploy is not available",
        )

    def open_logs(
        self, targets: Sequence[LogTarget], *, tail: int | None, follow: bool = True
    ) -> LogStream:
        lines = [
            parse_log_line(raw, name, {})
            for name, raws in self._recording.get("logs", {}).items()
            if any(t.name == name for t in targets)
            for raw in raws
        ]
        return _ListLogStream(lines)

    def close(self) -> None:
        return None


class _ListLogStream:
    def __init__(self, lines: list[LogLine]) -> None:
        self._lines = lines

    def read(self, max_lines: int, timeout: float) -> list[LogLine]:
        chunk, self._lines = self._lines[:max_lines], self._lines[max_lines:]
        return chunk

    @property
    def finished(self) -> bool:
        return not self._lines

    def errors(self) -> list[str]:
        return []

    def close(self) -> None:
        self._lines = []


def record_snapshot(api: docker.APIClient, stack: str | None) -> dict[str, Any]:
    """The raw JSON a snapshot is made of, for :class:`ReplayBackend` and tests' data files."""
    from deployer.swarm import stack_filters

    filters = stack_filters(stack)
    return {
        "taken_at": datetime.now(UTC).isoformat(),
        "services": api.services(filters=filters, status=True),
        "tasks": api.tasks(filters=filters),
        "nodes": api.nodes(),
    }
