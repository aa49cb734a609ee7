"""Connectors: the local machine or a manager over SSH, behind one interface (``base.Connector``).

``connect(target)`` is the factory: ``None`` for the local engine, an ``SSHTarget`` for a manager.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from deployer.connectors.base import Connector, RunResult

if TYPE_CHECKING:
    from deployer.connectors.ssh_target import SSHTarget

__all__ = ["Connector", "RunResult", "connect"]


def connect(target: SSHTarget | None, *, docker_host: str | None = None,
            via: Connector | None = None) -> Connector:
    """Open a connector: the local machine (``target`` None; engine ``docker_host`` or
    ``$DOCKER_HOST``) or one SSH connection to ``target`` (raises ``ConnectError``). ``via``:
    an open SSH connector to ``target``'s last jump host, whose connection then carries this
    one (no second handshake with the jump host)."""
    if target is None:
        from deployer.connectors.local import LocalConnector

        return LocalConnector(docker_host)
    from deployer.connectors.ssh import SSHConnector

    return SSHConnector(target, via=via)
