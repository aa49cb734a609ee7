"""For ``--check``: roughly how many bytes shipping an image to a target would move.

The target has every layer of any of its images whose layer list is a prefix of ours (images
share their bottom layers: a base, then each build step). What it lacks is our image's size
minus the biggest such image's size: uncompressed bytes, an upper bound of the wire bytes in
layer mode (layers travel gzip-compressed); save/load would send the whole image.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from deployer.engine import objects
from deployer.engine.client import docker_errors

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
    """Reads the target's images once (one inspect per image), then estimates per image."""

    def __init__(self, local: docker.DockerClient, target: docker.DockerClient,
                 host: str) -> None:
        self.local = local
        self.target = target
        self.host = host
        self._target: list[tuple[Sequence[str], int]] | None = None

    def _target_images(self) -> list[tuple[Sequence[str], int]]:
        if self._target is None:
            self._target = [(image.layers, image.size)
                            for image in objects.image_layer_lists(self.target, self.host)]
        return self._target

    def estimate(self, image_id: str) -> tuple[int, int]:
        """(bytes the target lacks, the image's size), both uncompressed."""
        with docker_errors("local"):
            info = self.local.api.inspect_image(image_id)
        layers = list(info.get("RootFS", {}).get("Layers") or ())
        size = int(info.get("Size") or 0)
        return missing_bytes(layers, size, self._target_images()), size

    def describe(self, image_id: str, ref: str) -> str:
        """One line: roughly what shipping ``ref`` would move."""
        from deployer.shipping.progress import human

        missing, size = self.estimate(image_id)
        return (f"{ref}: ~{human(missing)} of layers {self.host} lacks would ship "
                f"(uncompressed; image {human(size)})")
