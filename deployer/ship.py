"""The image reference helpers shipping shares, and the ``docker load`` command its archives
(layer archives, or whole images when layer shipping cannot run) are fed to on a target."""

from __future__ import annotations

from typing import TYPE_CHECKING

from deployer.engine.client import docker_errors

if TYPE_CHECKING:
    import docker


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
