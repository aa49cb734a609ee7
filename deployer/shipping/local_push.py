"""``docker push`` into the local registry, and the repository path images have there."""

from __future__ import annotations

from typing import TYPE_CHECKING

from deployer import ship
from deployer.engine import objects
from deployer.engine.client import docker_errors
from deployer.shipping.progress import LayerStats, follow

if TYPE_CHECKING:
    import docker

    from deployer.events import Events
    from deployer.shipping.registry import LocalRegistry


def repository_path(repo: str) -> str:
    """``repo`` without a registry host (``ghcr.io/a/b`` -> ``a/b``; ``mlops/x`` unchanged)."""
    first, sep, rest = repo.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return rest
    return repo


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
