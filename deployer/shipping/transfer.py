"""One shipping session: images from the local engine to one target engine, layer by layer.

``Shipper.ship(image_id, ref)`` makes ``ref`` name ``image_id`` on the target. Layer mode pushes
into the local registry (``registry``), pulls on the target through the SSH forward
(``forward``), re-tags as ``ref`` and drops the temporary ``127.0.0.1:PORT/...`` tags on both
engines. If layer mode cannot start or the target cannot pull, it ships with
``docker save | docker load`` instead and reports why (once).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from deployer import ship
from deployer.engine import objects
from deployer.engine.client import docker_errors
from deployer.errors import ConnectionLost, DeployError, MlopsError
from deployer.shipping.forward import ForwardRefused, RemoteForward
from deployer.shipping.progress import LayerStats, follow, human
from deployer.shipping.push_queue import PushQueue
from deployer.shipping.registry import LocalRegistry, RegistryUnavailable
from deployer.shipping.watchdog import watched

if TYPE_CHECKING:
    import docker

    from deployer.connectors.base import Connector
    from deployer.events import Events

log = logging.getLogger(__name__)

#: What to do when the connection dies while an image ships.
LOST_WHILE_SHIPPING_FIX = (
    "check the network path to the manager (`ssh HOST true`), then rerun: nothing was deployed "
    "yet, and the rerun ships only the layers the manager still lacks")
#: Progress lines while an image moves, one per this many bytes.
PROGRESS_STEP = 32 * 1024 * 1024
#: A pull that sends no progress event for this long is given up (then whole images are
#: shipped instead). A working pull reports every few hundred kB downloaded or extracted.
STALL_SECONDS = 180.0


@dataclass(frozen=True)
class ShipReport:
    """How one image reached the target and what crossed the wire."""

    ref: str
    method: Literal["layers", "save-load"]
    layers: int  # layers of the image (0 when unknown: save/load)
    moved: int  # layers transferred to the target
    bytes: int  # bytes sent towards the target (forwarded registry traffic, or the save stream)
    reason: str = ""  # why save/load was used

    def describe(self) -> str:
        if self.method == "layers":
            return (f"{self.moved} of {self.layers} layers pulled, {human(self.bytes)} "
                    "over SSH")
        return f"docker save | docker load, {human(self.bytes)} over SSH"


def repository_path(repo: str) -> str:
    """``repo`` without a registry host (``ghcr.io/a/b`` -> ``a/b``; ``mlops/x`` unchanged)."""
    first, sep, rest = repo.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return rest
    return repo


class Shipper:
    """Ships images to ``conn``'s engine; open lazily on the first image, ``close()`` after."""

    def __init__(
        self,
        local: docker.DockerClient,
        conn: Connector,
        events: Events,
        *,
        registry_dir: Path | None = None,
        layers: bool = True,
        registry: LocalRegistry | None = None,
        pushed: Mapping[tuple[str, str], LayerStats] | None = None,
    ) -> None:
        """``registry``: a running local registry shared with other sessions (the nodes of a
        cluster, shipped to in parallel); it is left running by ``close``. Without one, the
        session starts its own. ``pushed``: ``(image_id, ref)`` already in that registry (by
        ``push_local``), so this session only pulls them."""
        self.local = local
        self.conn = conn
        self.host = conn.host
        self.events = events
        self._registry_dir = registry_dir
        self._want_layers = layers
        self._registry: LocalRegistry | None = None
        self._shared = registry
        self._forward: RemoteForward | None = None
        self._opened = False
        # Pushes into the local registry run ahead (two at a time) while the target pulls.
        self._pusher: PushQueue | None = None
        self._pushed = dict(pushed or {})
        # The target's pull client: opened in the background with the session, kept while its
        # pulls work (a stalled one closes it), closed with the session.
        self._puller: Future[docker.DockerClient] | None = None
        #: Why this session ships whole images (None: layer mode).
        self.fallback_reason: str | None = None
        self.reports: list[ShipReport] = []

    # -- session -------------------------------------------------------------------------------

    def _open(self) -> None:
        if self._opened:
            return
        self._opened = True
        transport = getattr(self.conn, "transport", None)
        if not self._want_layers:
            self._fall_back("layer shipping is turned off")
            return
        if transport is None:
            self._fall_back(f"{self.host} is not reached over SSH (no port forward)")
            return
        registry = self._shared or LocalRegistry(self._registry_dir)
        if self._shared is None:
            try:
                registry.start()
            except RegistryUnavailable as exc:
                self._fall_back(exc.render())
                return
            self.events.info(f"local registry on {registry.address} (data in {registry.dir})",
                             level=1)
        try:
            forward = RemoteForward(transport, registry.port, self.host)
        except ForwardRefused as exc:
            if self._shared is None:
                registry.stop()
            self._fall_back(exc.render())
            return
        self.events.info(f"{self.host}: 127.0.0.1:{forward.port} forwarded to the local "
                         "registry", level=1)
        self._registry, self._forward = registry, forward
        # Its channel and `docker system dial-stdio` on the target cost about 0.15 s: paid
        # while the first image is pushed into the local registry, not after.
        self._puller = in_background(self.conn.stream_client)

    def _fall_back(self, reason: str) -> None:
        self.fallback_reason = reason
        self.events.info(f"shipping whole images (docker save | docker load): {reason}")

    def prepare(self, images: Iterable[tuple[str, str]]) -> None:
        """Start pushing ``(image_id, ref)`` pairs into the local registry, in order, in the
        background: the target pulls one image while the next one is compressed and pushed."""
        self._open()
        if self._registry is None:
            return
        if self._pusher is None:
            registry = self._registry
            self._pusher = PushQueue(
                lambda image_id, ref: self._push_local(image_id, ref, registry),
                lambda image_id: image_layers(self.local, image_id))
        self._pusher.submit_all(images)

    def close(self) -> None:
        """Cancel the forward and stop the registry process (by its pidfile). Safe twice."""
        pusher, self._pusher = self._pusher, None
        if pusher is not None:
            pusher.close()
        self._drop_puller()
        forward, self._forward = self._forward, None
        registry, self._registry = self._registry, None
        try:
            if forward is not None:
                forward.close()
        finally:
            if registry is not None and registry is not self._shared:
                registry.stop()

    def __enter__(self) -> Shipper:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one image -----------------------------------------------------------------------------

    def ship(self, image_id: str, ref: str) -> ShipReport:
        """Make ``ref`` name ``image_id`` on the target engine."""
        self._open()
        report: ShipReport | None = None
        if self._registry is not None and self._forward is not None:
            try:
                report = self._ship_layers(image_id, ref, self._registry, self._forward)
            except ConnectionLost:
                # No fallback over a dead connection: it would only fail again, less clearly.
                self.close()
                raise
            except MlopsError as exc:
                # The target could not pull (an old engine, a proxy in the way): whole images
                # for the rest of this session.
                self.close()
                self._fall_back(f"{self.host} could not pull from the forwarded registry: "
                                f"{exc}")
        if report is None:
            report = self._ship_whole(image_id, ref)
        self.reports.append(report)
        return report

    def _ship_whole(self, image_id: str, ref: str) -> ShipReport:
        ship.ensure_local_tag(self.local, image_id, ref)
        self.events.info(f"$ docker save {ref} | ssh {self.host} docker load", level=1)
        sent = ship.ship_image(
            self.local, self.conn, ref,
            on_progress=lambda n: self.events.info(f"{ref}: {human(n)} sent"))
        return ShipReport(ref, "save-load", 0, 0, sent, self.fallback_reason or "")

    def _stall_text(self, ref: str, crossed: int) -> str:
        return (f"{self.host}: the pull of {ref} made no progress for {STALL_SECONDS:.0f} s "
                f"({human(crossed)} had crossed); its engine may be stuck on earlier downloads "
                "(of SSH sessions cut before: `ClientAliveInterval 15` in the manager's "
                "sshd_config ends those; restarting its dockerd clears them)")

    def _take_puller(self) -> docker.DockerClient:
        pending, self._puller = self._puller, None
        return pending.result() if pending is not None else self.conn.stream_client()

    def _drop_puller(self) -> None:
        pending, self._puller = self._puller, None
        if pending is None:
            return
        with contextlib.suppress(Exception):  # failed to open: nothing to close
            pending.result().close()

    def _push_local(self, image_id: str, ref: str, registry: LocalRegistry) -> LayerStats:
        return push_local(self.local, self.events, image_id, ref, registry)

    def _ship_layers(self, image_id: str, ref: str, registry: LocalRegistry,
                     forward: RemoteForward) -> ShipReport:
        repo, tag = ship.split_ref(ref)
        path = repository_path(repo)
        pulled_repo = f"127.0.0.1:{forward.port}/{path}"
        say = self.events.info
        future = self._pusher.pop(image_id, ref) if self._pusher is not None else None
        done = self._pushed.get((image_id, ref))
        pushed = (done if done is not None else future.result() if future is not None
                  else self._push_local(image_id, ref, registry))
        say(f"{ref}: {len(pushed.moved)} of {pushed.layers} layers pushed to the local "
            f"registry ({human(pushed.total_bytes)} uncompressed)")
        # The target side: pull through the forward, only layers the engine lacks.
        client = self.conn.docker_client()
        before = forward.bytes_to_target
        next_report = [before + PROGRESS_STEP]

        def progress(stats: LayerStats) -> None:
            sent = forward.bytes_to_target
            if sent >= next_report[0]:
                say(f"{ref}: {human(sent - before)} pulled by {self.host}")
                next_report[0] = sent + PROGRESS_STEP

        say(f"$ docker pull {pulled_repo}:{tag}  # on {self.host}", level=1)
        try:
            with docker_errors(self.host):
                # On a client of its own: a stalled pull is ended by closing it (the engine
                # drops a pull whose client went away), rather than left blocking a thread.
                puller = self._take_puller()
                try:
                    stream = watched(
                        lambda: puller.api.pull(pulled_repo, tag=tag, stream=True,
                                                decode=True),
                        STALL_SECONDS,
                        lambda: self._stall_text(ref, forward.bytes_to_target - before))
                    pulled = follow(stream, pull=True, on_event=progress)
                except BaseException:
                    with contextlib.suppress(Exception):
                        puller.close()
                    raise
                self._puller = already(puller)  # for the next image of the session
                got = str(client.api.inspect_image(f"{pulled_repo}:{tag}")["Id"])
                if got != image_id:
                    raise DeployError(f"{self.host}: pulled {pulled_repo}:{tag} is {got}, "
                                      f"expected {image_id}")
                say(f"$ docker tag {pulled_repo}:{tag} {ref}  # on {self.host}", level=1)
                client.api.tag(image_id, repo, tag)
                objects.untag(client.api, f"{pulled_repo}:{tag}")
        except MlopsError as exc:
            lost = self.conn.lost()
            if lost is None:
                raise
            raise ConnectionLost(
                self.host,
                f"{lost}, while pulling {ref} from the forwarded registry "
                f"({human(forward.bytes_to_target - before)} of its {len(pushed.moved)} new "
                f"layer(s), {human(pushed.total_bytes)} uncompressed, had crossed)",
                fix=LOST_WHILE_SHIPPING_FIX) from exc
        sent = forward.bytes_to_target - before
        return ShipReport(ref, "layers", pulled.layers, len(pulled.moved), sent)


def image_layers(local: docker.DockerClient, image_id: str) -> frozenset[str]:
    """The image's layers (diff IDs) on the local engine."""
    with docker_errors("local"):
        return frozenset(local.api.inspect_image(image_id)["RootFS"].get("Layers") or ())


def push_local(local: docker.DockerClient, events: Events, image_id: str, ref: str,
               registry: LocalRegistry) -> LayerStats:
    """``docker push`` into the local registry: only layers it lacks are compressed and
    uploaded. The temporary ``127.0.0.1:PORT/...`` tag is removed again."""
    repo, tag = ship.split_ref(ref)
    pushed_repo = f"{registry.address}/{repository_path(repo)}"
    events.info(f"$ docker tag {image_id} {pushed_repo}:{tag}", level=1)
    events.info(f"$ docker push {pushed_repo}:{tag}", level=1)
    with docker_errors("local"):
        local.api.tag(image_id, pushed_repo, tag)
        try:
            return follow(local.api.push(pushed_repo, tag, stream=True, decode=True),
                          pull=False)
        finally:
            objects.untag(local.api, f"{pushed_repo}:{tag}")


def in_background(open_client: Callable[[], docker.DockerClient]) -> Future[docker.DockerClient]:
    """``open_client()`` on a thread of its own; its result (or error) in the future."""
    future: Future[docker.DockerClient] = Future()

    def run() -> None:
        try:
            future.set_result(open_client())
        except BaseException as exc:  # noqa: BLE001 - raised where the client is taken
            future.set_exception(exc)

    threading.Thread(target=run, name="open-puller", daemon=True).start()
    return future


def already(client: docker.DockerClient) -> Future[docker.DockerClient]:
    future: Future[docker.DockerClient] = Future()
    future.set_result(client)
    return future
