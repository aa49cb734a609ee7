"""Putting a stored revision's images back on the manager before it is redeployed."""

from __future__ import annotations

from collections.abc import Mapping

from deployer import facts, ship
from deployer.actions.base import ActionContext
from deployer.engine.client import local_engine
from deployer.errors import DeployError
from deployer.shipping import Shipper


def ensure_images(ctx: ActionContext, images: Mapping[str, str]) -> None:
    """Each ``ref -> image id`` must be on the manager; ship those it lacks from the local
    engine, as push does (only the layers it lacks), or refuse before anything is deployed."""
    client = ctx.conn.docker_client()
    missing = {ref: image_id for ref, image_id in sorted(images.items())
               if facts.image_id(client, ref, ctx.host) != image_id}
    if not missing:
        return
    local = local_engine(ctx.conn)
    for ref, image_id in missing.items():
        if local is None or facts.image_id(local, image_id, "local") is None:
            raise DeployError(f"image {ref} ({image_id[:19]}) of that revision is on neither "
                              f"{ctx.host} nor the local engine",
                              fix="rebuild or `docker load` it, or pick another revision")
    assert local is not None
    if ctx.host == "local":  # the manager is this engine: a tag is all it takes
        for ref, image_id in missing.items():
            ship.ensure_local_tag(local, image_id, ref)
            ctx.events.step(ctx.host, "changed", "ship-image", ref, image_id[:19])
        return
    with Shipper(local, ctx.conn, ctx.events) as shipper:
        shipper.prepare((image_id, ref) for ref, image_id in missing.items())
        for ref, image_id in missing.items():
            report = shipper.ship(image_id, ref)
            ctx.events.step(ctx.host, "changed", "ship-image", ref, report.describe())
