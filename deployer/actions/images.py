"""Putting a stored revision's images back on the manager before it is redeployed."""

from __future__ import annotations

from collections.abc import Mapping

from deployer import ship
from deployer.actions.base import ActionContext
from deployer.engine import objects
from deployer.engine.client import local_engine
from deployer.errors import DeployError
from deployer.shipping import Shipper


def ensure_images(ctx: ActionContext, images: Mapping[str, str]) -> None:
    """Each ``ref -> image id`` (the ID where the revision was pushed from) must be on the
    manager; ship those it lacks from the local engine, as push does (only the layers it lacks),
    or refuse before anything is deployed. Compared by content where the local engine still has
    the image (the manager's store may give it another ID), else by ID."""
    client = ctx.conn.docker_client()
    local = local_engine(ctx.conn)
    missing = {}
    for ref, image_id in sorted(images.items()):
        there = objects.image_identity(client, ref, ctx.host)
        here = objects.image_identity(local, image_id, "local") if local is not None else None
        if there is not None and (there.key == here.key if here is not None
                                  else there.id == image_id):
            continue
        if here is None:
            raise DeployError(f"image {ref} ({image_id[:19]}) of that revision is on neither "
                              f"{ctx.host} nor the local engine",
                              fix="rebuild or `docker load` it, or pick another revision")
        missing[ref] = image_id
    if not missing:
        return
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
