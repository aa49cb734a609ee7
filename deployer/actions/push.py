"""``push``: render the values, ship what the manager lacks, deploy, wait, record (or roll back).

The machinery is ``deployer.push.Pusher`` (plan from facts, then the steps under the lock); this
is the door both front ends use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from deployer.actions.base import ActionContext

if TYPE_CHECKING:
    import docker

    from deployer.operations import Plan
    from deployer.push_inputs import PushOptions
    from deployer.values import StackValues


def push(ctx: ActionContext, values: StackValues, options: PushOptions, *,
         local: docker.DockerClient | None) -> Plan:
    """Push ``values`` to ``ctx.conn`` (images from the ``local`` engine); returns the plan that
    was (or, with ``options.check``, would be) executed.

    The values' ``swarm.node_labels`` are given to the nodes first (only what differs), so the
    placement of the deploy sees them."""
    from deployer.push import Pusher

    if values.swarm.node_labels and not options.check:
        from deployer.actions.nodes import apply_node_labels

        apply_node_labels(ctx, values.swarm.node_labels)
    return Pusher(ctx.conn, ctx.events, options, local=local).push(values)
