"""What every action shares: its context (connection, stack, event sink) and the locked section
that takes the stack's deploy lock and reads the state under it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from deployer.events import Events
from deployer.lock import DeployLock
from deployer.state import StackState, audit, read_state

if TYPE_CHECKING:
    from deployer.connectors.base import Connector


@dataclass(frozen=True)
class ActionContext:
    """One action's inputs besides its own arguments."""

    conn: Connector
    stack: str
    events: Events
    #: Take the lock even if another run holds it (the old holder is named in the audit log).
    break_lock: bool = False
    #: How long to wait for the stack to converge (seconds).
    timeout: float = 300.0
    #: Wait for convergence before returning. The dashboard does not: it shows the stack
    #: converge live, and keeps the lock only for the change itself.
    wait: bool = True

    @property
    def host(self) -> str:
        return self.conn.host


@contextlib.contextmanager
def locked(ctx: ActionContext) -> Iterator[StackState]:
    """Hold the stack's deploy lock; yields the state read under it.

    Raises ``LockHeldError`` naming the holder while another run holds it (unless
    ``ctx.break_lock``; a taken-over lock is reported and audited).
    """
    lock = DeployLock(ctx.conn, read_state(ctx.conn, ctx.stack, with_services=False),
                      break_lock=ctx.break_lock, read_state=True).acquire()
    try:
        # Read by the lock's own process once it held the lock.
        state = lock.state or read_state(ctx.conn, ctx.stack, with_services=False)
        if lock.stale:
            ctx.events.info(f"took over the lock of {lock.stale.describe()}")
            audit(ctx.conn, state, "break-lock", holder=lock.stale.holder,
                  since=lock.stale.since)
        yield state
    finally:
        lock.release()


def record(ctx: ActionContext, state: StackState, action: str, **details: Any) -> None:
    """One line in the stack's audit log (who/what/when; never secret values)."""
    audit(ctx.conn, state, action, **details)
