"""Which layers a target engine has, by chain ID, and which of an image's it lacks.

A ``docker load`` archive needs files only for the layers the target lacks; the target's layer
store is keyed by chain ID (a layer and every layer below it), so a layer is there when some
image on the target has the same stack of layers up to it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from deployer.engine import objects
from deployer.engine.client import docker_errors
from deployer.shipping.archive import chain_ids

if TYPE_CHECKING:
    import docker


def ordered_layers(client: docker.DockerClient, image_id: str, host: str = "local") -> list[str]:
    """The image's layers (diff IDs), bottom first."""
    with docker_errors(host):
        return list(client.api.inspect_image(image_id)["RootFS"].get("Layers") or ())


class TargetLayers:
    """The chain IDs of every image on one engine, read once, then kept up to date with what
    this session loads there."""

    def __init__(self, images: Iterable[Sequence[str]], store: str = "classic") -> None:
        """``images``: each image's layers (diff IDs), bottom first; ``store``: the engine's
        image store (``classic`` or ``containerd``: see ``objects.image_store``)."""
        self.store = store
        self._lock = threading.Lock()
        self._chains: set[str] = set()
        for layers in images:
            self._chains.update(chain_ids(layers))

    @classmethod
    def read(cls, client: docker.DockerClient, host: str) -> TargetLayers:
        """What the engine behind ``client`` holds now."""
        return cls((image.layers for image in objects.image_layer_lists(client, host)),
                   objects.image_store(client, host))

    def missing(self, diff_ids: Sequence[str]) -> list[int]:
        """Indexes of the layers the target lacks (a top part of the stack)."""
        with self._lock:
            return [index for index, chain in enumerate(chain_ids(diff_ids))
                    if chain not in self._chains]

    def add(self, diff_ids: Sequence[str]) -> None:
        with self._lock:
            self._chains.update(chain_ids(diff_ids))

    def diffs_left_out(self, images: Sequence[Sequence[str]]) -> set[str]:
        """The diff IDs of ``left_out_of_save``'s layers (an OCI layout names blobs by them)."""
        chains = self.left_out_of_save(images)
        return {diff for layers in images
                for chain, diff in zip(chain_ids(layers), layers, strict=True) if chain in chains}

    def left_out_of_save(self, images: Sequence[Sequence[str]]) -> set[str]:
        """The chain IDs among ``images``' layers whose files a ``docker save`` of them can
        leave out of the target's archive.

        docker save writes a diff ID's file once and links every later folder of the same diff
        ID to it, so a layer the target has is left out only if no layer it lacks shares its
        diff ID."""
        needed = {layers[i] for layers in images for i in self.missing(layers)}
        diff_of = {chain: diff for layers in images
                   for chain, diff in zip(chain_ids(layers), layers, strict=True)}
        with self._lock:
            return {chain for chain, diff in diff_of.items()
                    if chain in self._chains and diff not in needed}
