"""Shipping to a target on the containerd image store: OCI-layout archives (see
``oci_archive``), from one ``docker save`` or from the local registry's blobs, and the check
that each image then stands whole in the target's content store.

Both routes name every layer by diff ID with its exact size: a save's headers give the sizes,
and ``LayerIndex`` keeps them, so a later code change ships from the registry (its one new
layer inflated, sized, checked against its diff ID) instead of saving the whole image again.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import deployer.shipping.archive as archive
import deployer.shipping.registry_blobs as registry_blobs
from deployer.engine import objects
from deployer.shipping.oci_archive import OciImage, oci_archive, oci_from_save

if TYPE_CHECKING:
    import docker

    from deployer.connectors.base import Connector
    from deployer.events import Events
    from deployer.shipping.target_load import TargetLoad

class OciSender:
    """Sends OCI-layout archives to one containerd-store target."""

    def __init__(self, local: docker.DockerClient, conn: Connector, loader: TargetLoad,
                 index: registry_blobs.LayerIndex, events: Events, stall_seconds: float) -> None:
        """``stall_seconds``: a read from the local registry waiting this long is given up."""
        self.local = local
        self.conn = conn
        self.host = conn.host
        self.loader = loader
        self.index = index
        self.events = events
        self.stall_seconds = stall_seconds

    def send_blobs(self, image: OciImage, config: bytes,
                   blobs: dict[str, registry_blobs.Blob], address: str, path: str) -> int:
        """``image`` with the local registry's ``blobs`` (diff ID -> gzip blob) inflated, the
        other layers' sizes from the index; returns the bytes sent."""
        files: dict[str, archive.LayerFile] = {}
        temporary: list[Path] = []
        try:
            for diff, blob in blobs.items():
                size, file = registry_blobs.inflated(address, path, blob, diff,
                                                      self.stall_seconds)
                temporary.append(file)
                files[diff] = archive.LayerFile(size, functools.partial(_file_chunks, file))
            self.index.record_sizes({diff: f.size for diff, f in files.items()})
            sizes = {d: s for d in image.diff_ids if (s := self.index.size(d)) is not None}
            sent = self.loader.send(image.ref, archive.gzip_blocks(oci_archive(
                image, config, sizes, files)))
        finally:
            for file in temporary:
                file.unlink(missing_ok=True)
        left_out = len(files) < len(image.diff_ids)
        return sent + self.complete(image.ref, [image.ref], left_out=left_out)

    def send_save(self, what: str, save: Iterable[bytes], images: Sequence[OciImage],
                  leave_out: set[str], skipped: list[int]) -> int:
        """``images`` from their classic ``save`` stream, rewritten as an OCI layout without the
        layers ``leave_out`` names (``skipped`` gets their sizes; every size read goes into the
        index); returns the bytes sent."""
        sizes: dict[str, int] = {}
        sent = self.loader.send(what, archive.gzip_blocks(oci_from_save(
            save, images, leave_out, skipped.append, sizes)))
        self.index.record_sizes(sizes)
        extra = self.complete(what, [image.ref for image in images], left_out=bool(leave_out))
        if extra:
            skipped.clear()
        return sent + extra

    def complete(self, what: str, refs: Sequence[str], *, left_out: bool) -> int:
        """Bytes sent again: once loaded, every image must stand whole in the target's content
        store (it lists only those). One whose left-out layers the store lacks as uncompressed
        blobs (it pulled them, compressed, from a registry) is sent again whole (a plain save,
        which that store loads with every layer in it), said out loud."""
        if not left_out:
            return 0
        client = self.conn.docker_client()
        again = [ref for ref in refs if not objects.image_listed(client, ref, self.host)]
        if not again:
            return 0
        self.events.info(f"{self.host}'s content store lacks layers it has unpacked (pulled "
                         f"compressed?): sending {', '.join(again)} with every layer")
        return self.loader.send(what, archive.gzip_blocks(objects.save_stream(self.local,
                                                                               again)))


def _file_chunks(path: Path, size: int = 1024 * 1024) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(size):
            yield chunk
