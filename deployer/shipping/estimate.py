"""For ``--check``: roughly how many bytes shipping an image to a target would move.

Which of our image's bottom layers the target has comes from its images' layer lists (by chain
ID, as shipping decides). Their size comes from the local engine: our image's size minus the
biggest local image whose layers are a prefix of ours the target has (images share their bottom
layers: a base, then each build step). Uncompressed bytes, an upper bound of the wire bytes in
layer mode (layers travel gzip-compressed); save/load would send the whole image. Sizes are read
on the local engine only: an image store reports its own (the containerd store counts content
and snapshots both), so the target's would not compare.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from deployer.engine import objects
from deployer.engine.client import docker_errors
from deployer.shipping.target_layers import TargetLayers

if TYPE_CHECKING:
    import docker


def missing_bytes(layers: Sequence[str], size: int,
                  target: Iterable[tuple[Sequence[str], int]]) -> int:
    """``size`` minus the biggest target image whose layers are a prefix of ``layers``."""
    have = 0
    for their_layers, their_size in target:
        n = len(their_layers)
        if 0 < n <= len(layers) and list(their_layers) == list(layers[:n]):
            have = max(have, their_size)
    return max(0, size - have)


class Estimator:
    """Reads the target's layers and the local images once, then estimates per image."""

    def __init__(self, local: docker.DockerClient, target: docker.DockerClient,
                 host: str) -> None:
        self.local = local
        self.target = target
        self.host = host
        self._target: TargetLayers | None = None
        self._local: list[tuple[Sequence[str], int]] | None = None

    def _local_images(self) -> list[tuple[Sequence[str], int]]:
        if self._local is None:
            # (A local engine on the containerd store counts an image twice, content and
            # snapshots: halved, its sizes are those of the layers.)
            share = 2 if objects.image_store(self.local, "local") == "containerd" else 1
            self._local = [(image.layers, image.size // share)
                           for image in objects.image_layer_lists(self.local, "local")]
        return self._local

    def estimate(self, image_id: str) -> tuple[int, int]:
        """(bytes the target lacks, the image's size), both uncompressed."""
        with docker_errors("local"):
            info = self.local.api.inspect_image(image_id)
        layers = list(info.get("RootFS", {}).get("Layers") or ())
        if self._target is None:
            self._target = TargetLayers.read(self.target, self.host)
        missing = self._target.missing(layers)
        present = layers[:missing[0]] if missing else layers
        images = self._local_images()
        size = next((s for lays, s in images if list(lays) == layers), 0) or int(
            info.get("Size") or 0)
        shared = [(lays, s) for lays, s in images if len(lays) <= len(present)]
        return missing_bytes(layers, size, shared), size

    def describe(self, image_id: str, ref: str) -> str:
        """One line: roughly what shipping ``ref`` would move."""
        from deployer.shipping.progress import human

        missing, size = self.estimate(image_id)
        return (f"{ref}: ~{human(missing)} of layers {self.host} lacks would ship "
                f"(uncompressed; image {human(size)})")
