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
    from deployer.push import PushOptions
    from deployer.values import StackValues


def push(ctx: ActionContext, values: StackValues, options: PushOptions, *,
         local: docker.DockerClient | None) -> Plan:
    """Push ``values`` to ``ctx.conn`` (images from the ``local`` engine); returns the plan that
    was (or, with ``options.check``, would be) executed."""
    from deployer.push import Pusher

    return Pusher(ctx.conn, ctx.events, options, local=local).push(values)
