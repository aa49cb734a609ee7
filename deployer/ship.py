"""The save/load fallback of image shipping (``deployer.shipping`` uses it when layer shipping
cannot run): ``docker save`` (local engine) streamed into ``docker load`` on the manager over the
run's SSH connection, whole images. Also the image reference helpers shipping shares."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from deployer.engine.client import docker_errors

if TYPE_CHECKING:
    import docker

    from deployer.connectors.base import Connector

LOAD_ARGV = ["docker", "load", "--quiet"]


def split_ref(ref: str) -> tuple[str, str]:
    """``repo[:tag]`` -> (repo, tag); a registry port is not a tag; a digest is dropped."""
    ref = ref.split("@", 1)[0]
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        return ref[:colon], ref[colon + 1 :]
    return ref, "latest"


def pinned_ref(ref: str, image_id: str) -> str:
    """``repo:<first 12 hex of the image ID>``: a tag that names exactly this content."""
    repo, _ = split_ref(ref)
    return f"{repo}:{image_id.removeprefix('sha256:')[:12]}"


def ensure_local_tag(client: docker.DockerClient, image_id: str, ref: str) -> None:
    """Tag ``image_id`` as ``ref`` on ``client``'s engine (no-op if it already is)."""
    repo, tag = split_ref(ref)
    with docker_errors("local"):
        client.api.tag(image_id, repo, tag)


def ship_image(
    local: docker.DockerClient,
    conn: Connector,
    ref: str,
    *,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Stream image ``ref`` from the local engine into the manager's ``docker load``.

    Returns the number of bytes sent; ``on_progress`` gets the running total every few MB.
    """
    sent = 0
    step = 16 * 1024 * 1024

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        next_report = step
        with docker_errors("local"):
            for chunk in local.api.get_image(ref, chunk_size=1024 * 1024):
                sent += len(chunk)
                if on_progress and sent >= next_report:
                    on_progress(sent)
                    next_report += step
                yield chunk

    conn.run(LOAD_ARGV, stdin=chunks())
    if on_progress:
        on_progress(sent)
    return sent
