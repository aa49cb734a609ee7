"""One shipping session: images from the local engine to one target engine, layer by layer.

``Shipper.ship(image_id, ref)`` makes ``ref`` name ``image_id`` on the target, sending only the
layers the target lacks (by chain ID) in a ``docker load`` archive over the SSH connection: the
target needs nothing but its engine and sshd, and nothing stays running there. Two routes:

* from the local registry (``registry``): ``docker push`` into it compresses only the layers it
  lacks (a code change: one small layer), and the archive carries those blobs;
* from a ``docker save`` of the image (a first ship: most missing layers have no blob in the
  registry yet), without the layer files the target has, compressed on every core. The engine's
  own gzip (one core per layer) would be the bottleneck there. Once shipped, the image is pushed
  into the local registry in the background, so the next change ships by the first route.

If the registry cannot run, or the target rejects the archive, it ships with
``docker save | docker load`` instead and reports why (once).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import deployer.shipping.archive as archive
import deployer.shipping.registry_blobs as registry_blobs
from deployer import ship
from deployer.engine import objects
from deployer.errors import ConnectionLost, DeployError, MlopsError
from deployer.shipping.local_push import push_local, repository_path
from deployer.shipping.oci_archive import OciImage
from deployer.shipping.oci_route import OciSender
from deployer.shipping.progress import LayerStats, human
from deployer.shipping.push_queue import PushQueue
from deployer.shipping.registry import LocalRegistry, RegistryUnavailable
from deployer.shipping.report import ShipReport
from deployer.shipping.target_layers import TargetLayers
from deployer.shipping.target_load import TargetLoad

if TYPE_CHECKING:
    import docker

    from deployer.connectors.base import Connector
    from deployer.events import Events

log = logging.getLogger(__name__)
T = TypeVar("T")

#: A read from the local registry that waits this long is given up (then whole images are
#: shipped instead): on loopback, a working registry answers in milliseconds.
STALL_SECONDS = 180.0


Key = tuple[str, str]  # (image ID, ref)


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
        pushed: Mapping[Key, LayerStats] | None = None,
    ) -> None:
        """``registry``: a running local registry shared with other sessions (the nodes of a
        cluster, shipped to in parallel); it is left running by ``close``. Without one, the
        session starts its own. ``pushed``: ``(image_id, ref)`` already in that registry (by
        ``push_local``), so this session only sends them."""
        self.local = local
        self.conn = conn
        self.host = conn.host
        self.events = events
        self._loader = TargetLoad(conn, events)
        self._registry_dir = registry_dir
        self._want_layers = layers
        self._registry: LocalRegistry | None = None
        self._shared = registry
        self._index: registry_blobs.LayerIndex | None = None
        self._opened = False
        # Pushes into the local registry run ahead (two at a time) while archives are sent.
        self._pusher: PushQueue | None = None
        self._pushed = dict(pushed or {})
        self._target: Future[TargetLayers] | None = None
        self._local_images: dict[str, tuple[list[str], str]] = {}
        self._store: str | None = None  # the local engine's image store, read once
        self._from_save: list[Key] = []  # routed to the docker save route, not yet sent
        self._sent: dict[Key, ShipReport] = {}  # sent with another image's archive
        self._filling: list[Future[LayerStats]] = []
        #: Why this session ships whole images (None: layer mode).
        self.fallback_reason: str | None = None
        self.reports: list[ShipReport] = []

    # -- session -------------------------------------------------------------------------------

    def _open(self) -> None:
        if self._opened:
            return
        self._opened = True
        if not self._want_layers:
            self._fall_back("layer shipping is turned off")
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
        self._registry = registry
        self._index = registry_blobs.LayerIndex(registry.dir)
        # What the target has, read while the first image is pushed into the local registry.
        self._target = in_background(
            lambda: TargetLayers.read(self.conn.docker_client(), self.host))

    def _fall_back(self, reason: str) -> None:
        self.fallback_reason = reason
        self.events.info(f"shipping whole images (docker save | docker load): {reason}")

    def _local_image(self, image_id: str) -> tuple[list[str], str]:
        """A local image's layers (diff IDs, bottom first) and content key: one inspect."""
        if image_id not in self._local_images:
            found = objects.image_identity(self.local, image_id, "local")
            if found is None:
                raise DeployError(f"image {image_id[:19]} vanished from the local engine")
            self._local_images[image_id] = (list(found.layers), found.key)
        return self._local_images[image_id]

    def _layers_of(self, image_id: str) -> list[str]:
        return self._local_image(image_id)[0]

    def _key_of(self, image_id: str) -> str:
        """The content key of a local image (how the target's copy is checked)."""
        return self._local_image(image_id)[1]

    def _oci_image(self, image_id: str, ref: str) -> OciImage:
        return OciImage(ref, image_id, tuple(self._layers_of(image_id)))

    def _local_store(self) -> str:
        if self._store is None:
            self._store = objects.image_store(self.local, "local")
        return self._store

    def _record_sizes(self, sizes: dict[str, int]) -> None:
        if self._index is not None:
            self._index.record_sizes(sizes)

    def _oci(self) -> OciSender:
        assert self._index is not None
        return OciSender(self.local, self.conn, self._loader, self._index, self.events,
                         STALL_SECONDS)

    def prepare(self, images: Iterable[Key]) -> None:
        """Route each ``(image_id, ref)`` and start pushing those that ship from the local
        registry into it, in order, in the background (the next one is compressed while one
        is sent)."""
        self._open()
        if self._registry is None or self._target is None or self._index is None:
            return
        try:
            target = self._target.result()
        except MlopsError as exc:
            self._give_up(exc, "reading which layers it has")
            return
        for image_id, ref in images:
            key = (image_id, ref)
            if key in self._from_save or key in self._sent:
                continue
            if self._local_store() == "containerd" or (
                    target.store == "containerd" and not self._sized(image_id, target)):
                # A local containerd store names images by manifest digest: the registry
                # route, which reads them back by config digest, cannot serve it. A
                # containerd-store target needs an OCI manifest naming every layer's exact size:
                # a save's headers give them, and the index keeps them for the next change.
                self._from_save.append(key)
                continue
            if key in self._pushed:
                continue  # in the local registry already (pushed once for every node)
            layers = self._layers_of(image_id)
            missing = target.missing(layers)
            # A code change misses one new layer on top of layers the registry has: pushing
            # compresses that one. A first ship misses layers below it that the registry lacks
            # too: the engine would gzip all of them on one core each, so a save is faster.
            if any(not self._index.has(layers[i]) for i in missing[:-1]):
                self._from_save.append(key)
            else:
                self._queue().submit(image_id, ref)

    def _sized(self, image_id: str, target: TargetLayers) -> bool:
        """Whether the index knows the size of every layer of the image the target has (the
        ones it lacks are sized as they are inflated from the registry)."""
        assert self._index is not None
        layers = self._layers_of(image_id)
        missing = set(target.missing(layers))
        return all(self._index.size(layer) is not None
                   for i, layer in enumerate(layers) if i not in missing)

    def _queue(self) -> PushQueue:
        if self._pusher is None:
            registry = self._registry
            assert registry is not None
            self._pusher = PushQueue(
                lambda image_id, ref: self._push_local(image_id, ref, registry),
                lambda image_id: frozenset(self._layers_of(image_id)))
        return self._pusher

    def close(self, *, wait: bool = False) -> None:
        """Stop the registry process (by its pidfile). ``wait``: let the background pushes of
        the images shipped from a save finish first (else those not started are dropped: the
        next ship from a save pushes them again). Safe twice."""
        filling, self._filling = self._filling, []
        self._from_save = []  # a closed session sends nothing more by layers
        if wait and not all(future.done() for future in filling):
            self.events.info(f"{len(filling)} image(s) first shipped from a save: waiting for "
                             "their push into the local registry (the next change ships from "
                             "there)")
        try:
            for future in filling if wait else ():
                with contextlib.suppress(Exception):  # a cache: a failed push costs speed only
                    future.result()
        finally:
            # Also on Ctrl-C during that wait: the registry process must not outlive the run.
            pusher, self._pusher = self._pusher, None
            try:
                if pusher is not None:
                    pusher.close()
            finally:
                if self._index is not None:
                    self._index.save()
                registry, self._registry = self._registry, None
                if registry is not None and registry is not self._shared:
                    registry.stop()

    @property
    def filling(self) -> bool:
        """Whether images shipped from a save are still being pushed into the local registry."""
        return any(not future.done() for future in self._filling)

    def __enter__(self) -> Shipper:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(wait=exc[0] is None)

    # -- one image -----------------------------------------------------------------------------

    def ship(self, image_id: str, ref: str) -> ShipReport:
        """Make ``ref`` name ``image_id`` on the target engine."""
        key = (image_id, ref)
        report = None
        self._open()
        if self._registry is not None:
            try:
                self.prepare([key])  # (it may fall back: then _registry is None)
                report = self._sent.pop(key, None)
                if report is None and key in self._from_save and self._registry is not None:
                    self._ship_saved()
                    report = self._sent.pop(key)
                elif report is None and self._registry is not None:
                    report = self._ship_layers(image_id, ref, self._registry)
            except ConnectionLost:
                # No fallback over a dead connection: it would only fail again, less clearly.
                self.close()
                raise
            except MlopsError as exc:
                self._give_up(exc, f"sending {ref}")
        if report is None:
            report = self._ship_whole(image_id, ref)
        self.reports.append(report)
        return report

    def _give_up(self, exc: MlopsError, doing: str) -> None:
        """Layer shipping failed: the connection died (raised), or the target rejected the
        archive, the registry stalled (whole images for the rest of this session)."""
        self.close()
        lost = self._loader.lost(doing)
        if lost is not None:
            raise lost from exc
        self._fall_back(f"layer shipping to {self.host} failed: {exc}")

    def _ship_whole(self, image_id: str, ref: str) -> ShipReport:
        ship.ensure_local_tag(self.local, image_id, ref)
        self.events.info(f"$ docker save {ref} | ssh {self.host} docker load", level=1)
        sent = self._loader.send(ref, objects.save_stream(self.local, [ref]))
        wasted, self._loader.wasted = self._loader.wasted, 0
        return ShipReport(ref, "save-load", 0, 0, sent + wasted, self.fallback_reason or "",
                          wasted=wasted)

    def _push_local(self, image_id: str, ref: str, registry: LocalRegistry) -> LayerStats:
        stats = push_local(self.local, self.events, image_id, ref, registry)
        if self._index is not None:
            repo, tag = ship.split_ref(ref)
            with contextlib.suppress(MlopsError):  # only the route of a later ship depends on it
                self._index.record(self._layers_of(image_id), registry_blobs.manifest(
                    registry.address, repository_path(repo), tag))
        return stats

    def _ship_layers(self, image_id: str, ref: str, registry: LocalRegistry) -> ShipReport:
        """From the local registry: its blobs of the layers the target lacks."""
        assert self._target is not None
        repo, tag = ship.split_ref(ref)
        path = repository_path(repo)
        key = (image_id, ref)
        future = self._pusher.pop(image_id, ref) if self._pusher is not None else None
        done = self._pushed.get(key)
        pushed = (done if done is not None else future.result() if future is not None
                  else self._push_local(image_id, ref, registry))
        self.events.info(f"{ref}: {len(pushed.moved)} of {pushed.layers} layers pushed to the "
                         f"local registry ({human(pushed.total_bytes)} uncompressed)")
        found = registry_blobs.manifest(registry.address, path, tag)
        config = registry_blobs.blob(registry.address, path, found.config.digest)
        if "sha256:" + hashlib.sha256(config).hexdigest() != image_id:
            raise DeployError(f"the local registry's {path}:{tag} is not image {image_id[:19]}")
        layers = self._layers_of(image_id)
        if len(found.layers) != len(layers):
            raise DeployError(f"the local registry's {path}:{tag} has {len(found.layers)} "
                              f"layers, the image {len(layers)}")
        target = self._target.result()
        missing = set(target.missing(layers))
        files = [_blob_file(registry.address, path, blob) if index in missing else None
                 for index, blob in enumerate(found.layers)]
        self.events.info(f"$ docker load  # on {self.host}: {len(missing)} layer(s) of {ref} "
                         "from the local registry", level=1)
        if target.store == "containerd":
            sent = self._oci().send_blobs(
                self._oci_image(image_id, ref), config,
                {layers[i]: found.layers[i] for i in sorted(missing)}, registry.address, path)
        else:
            sent = self._loader.send(ref, archive.load_archive(config, [ref], files))
        self._loader.check(self._key_of(image_id), ref)
        target.add(layers)
        return ShipReport(ref, "layers", len(layers), len(missing), sent)

    def _ship_saved(self) -> None:
        """From one ``docker save`` of every image routed so: without the layer files the
        target has, gzip on every core. Then pushed into the local registry meanwhile."""
        assert self._target is not None
        batch, self._from_save = self._from_save, []
        target = self._target.result()
        refs = [ref for _, ref in batch]
        for image_id, ref in batch:
            ship.ensure_local_tag(self.local, image_id, ref)
        moved = {key: len(target.missing(self._layers_of(key[0]))) for key in batch}
        present = target.left_out_of_save([self._layers_of(image_id) for image_id, _ in batch])
        skipped: list[int] = []

        def has(folder: str, layer_json: bytes) -> bool:
            return any(folder in archive.v1_layer_ids(layer_json, c) for c in present)

        what = refs[0] if len(refs) == 1 else f"{len(refs)} images"
        oci = target.store == "containerd"
        leave = target.diffs_left_out([self._layers_of(image_id) for image_id, _ in batch])
        save = objects.save_stream(self.local, refs)
        first = next(save, b"")
        stream = itertools.chain([first], save)
        if archive.is_oci_layout(first):
            # Docker 25+ saves an OCI layout, which either store loads: layers the target has
            # are left out by digest (the diff ID, where the local store keeps them
            # uncompressed), nothing rewritten.
            self.events.info(f"$ docker save {' '.join(refs)} | gzip -{archive.LEVEL} | ssh "
                             f"{self.host} docker load  # an OCI layout, without the layers "
                             f"{self.host} has", level=1)
            sizes: dict[str, int] = {}
            sent = self._loader.send(what, archive.gzip_blocks(archive.without_layers(
                stream, _nothing, skipped.append, leave, sizes)))
            diffs = {d for image_id, _ in batch for d in self._layers_of(image_id)}
            self._record_sizes({d: s for d, s in sizes.items() if d in diffs})
            if oci:
                sent += self._oci().complete(what, refs, left_out=bool(leave))
        elif oci:
            self.events.info(f"$ docker save {' '.join(refs)} | oci-layout | gzip -"
                             f"{archive.LEVEL} | ssh {self.host} docker load  # without the "
                             f"layers {self.host} has", level=1)
            sent = self._oci().send_save(what, stream, [self._oci_image(*key) for key in batch],
                                         leave, skipped)
        else:
            self.events.info(f"$ docker save {' '.join(refs)} | gzip -{archive.LEVEL} | ssh "
                             f"{self.host} docker load  # without the layers {self.host} has",
                             level=1)
            sent = self._loader.send(what, archive.gzip_blocks(archive.without_layers(
                stream, has, skipped.append)))
        self.events.info(f"{what}: {human(sent)} sent, {len(skipped)} layer(s) the target has "
                         f"left out ({human(sum(skipped))} uncompressed)")
        for number, key in enumerate(batch):
            self._loader.check(self._key_of(key[0]), key[1])
            target.add(self._layers_of(key[0]))
            layers = len(self._layers_of(key[0]))
            self._sent[key] = ShipReport(key[1], "layers", layers, moved[key],
                                         sent if number == 0 else 0,
                                         shared_with=len(batch) - 1)
        if self._local_store() == "containerd":
            return  # never shipped from the registry (see prepare)
        # The next change of these images ships from the registry: fill it while the stack
        # is deployed (the session waits for it when it closes normally).
        queue = self._queue()
        self._filling += [queue.submit(*key) for key in batch]


def _nothing(folder: str, layer_json: bytes) -> bool:
    """No classic layer folder to leave out (an OCI-layout save has none)."""
    del folder, layer_json
    return False


def _blob_file(address: str, path: str, blob: registry_blobs.Blob) -> archive.LayerFile:
    return archive.LayerFile(blob.size, lambda: registry_blobs.blob_chunks(
        address, path, blob.digest, STALL_SECONDS))


def in_background(call: Callable[[], T]) -> Future[T]:
    """``call()`` on a thread of its own; its result (or error) in the future."""
    future: Future[T] = Future()

    def run() -> None:
        try:
            future.set_result(call())
        except BaseException as exc:  # noqa: BLE001 - raised where the result is taken
            future.set_exception(exc)

    threading.Thread(target=run, name="ship-survey", daemon=True).start()
    return future
