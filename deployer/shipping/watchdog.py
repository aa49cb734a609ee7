"""A stream that must keep moving: a pull whose engine goes silent ends in an error, not a hang.

The Docker SDK reads a pull's progress stream with no timeout (a big layer takes as long as it
takes), so an engine that stops sending (its download slots held by the stalled downloads of SSH
sessions cut earlier, which a manager's sshd without ClientAlive settings keeps for hours; a
registry that stopped answering) would block the push for ever. The stream is read on a helper
thread; the caller gets each event as it comes, and ``Stalled`` once none came for ``stall``
seconds. The helper thread is then abandoned: the caller closes the stream's connection (a
client of its own), which ends it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from deployer.errors import DeployError

T = TypeVar("T")


class Stalled(DeployError):
    """No progress for too long (the caller says what was stalled and what to do)."""


def watched(start: Callable[[], Iterable[T]], stall: float,
            describe: Callable[[], str]) -> Iterator[T]:
    """Yield what ``start()`` yields (calling it on the helper thread too: opening a stream can
    block as well); raise its error in the caller's thread, or ``Stalled(describe())`` after
    ``stall`` s without an event."""
    events: queue.SimpleQueue[tuple[str, object]] = queue.SimpleQueue()

    def pump() -> None:
        try:
            for event in start():
                events.put(("event", event))
            events.put(("end", None))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            events.put(("error", exc))

    threading.Thread(target=pump, name="stream-watchdog", daemon=True).start()
    while True:
        try:
            kind, value = events.get(timeout=stall)
        except queue.Empty:
            raise Stalled(describe()) from None
        if kind == "end":
            return
        if kind == "error":
            assert isinstance(value, BaseException)
            raise value
        yield value  # type: ignore[misc]
