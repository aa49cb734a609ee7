"""``docker load`` on one target engine: an archive streamed over its connection, with progress,
and a check that the tag names the image it should.

A connection that dies mid-archive is reported as such (``ConnectionLost``, with how much had
crossed), not as the engine's error: the fix is the network, and a rerun ships only what the
target still lacks.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from deployer import ship
from deployer.engine import objects
from deployer.engine.identity import short
from deployer.errors import ConnectionLost, DeployError, MlopsError
from deployer.shipping.progress import human

if TYPE_CHECKING:
    from deployer.connectors.base import Connector
    from deployer.events import Events

#: What to do when the connection dies while an image ships.
LOST_WHILE_SHIPPING_FIX = (
    "check the network path to the manager (`ssh HOST true`), then rerun: nothing was deployed "
    "yet, and the rerun ships only the layers the manager still lacks")
#: Progress lines while an archive moves, one per this many bytes.
PROGRESS_STEP = 32 * 1024 * 1024


class TargetLoad:
    """Loads archives into ``conn``'s engine."""

    def __init__(self, conn: Connector, events: Events) -> None:
        self.conn = conn
        self.host = conn.host
        self.events = events
        #: Bytes of archives that crossed the wire but were not loaded (a failed attempt
        #: costs the link as much as a good one: it is counted in the next report).
        self.wasted = 0

    def send(self, what: str, chunks: Iterable[bytes]) -> int:
        """Stream ``chunks`` (a ``docker load`` archive of ``what``) in; returns its size."""
        sent = [0]
        say = self.events.info

        def counted() -> Iterator[bytes]:
            next_report = PROGRESS_STEP
            for chunk in chunks:
                sent[0] += len(chunk)
                yield chunk
                if sent[0] >= next_report:
                    say(f"{what}: {human(sent[0])} sent to {self.host}")
                    next_report = sent[0] + PROGRESS_STEP

        try:
            self.conn.run(ship.LOAD_ARGV, stdin=counted())
        except (ValueError, tarfile.TarError) as exc:  # an image stream we cannot parse
            self.wasted += sent[0]
            raise DeployError(f"the archive of {what} could not be written: {exc}") from exc
        except MlopsError as exc:
            self.wasted += sent[0]
            lost = self.lost(f"sending {what} ({human(sent[0])} had crossed)")
            if lost is None:
                raise
            raise lost from exc
        return sent[0]

    def lost(self, doing: str) -> ConnectionLost | None:
        """The error to raise if the connection is gone (None while it is up)."""
        reason = self.conn.lost()
        if reason is None:
            return None
        return ConnectionLost(self.host, f"{reason}, while {doing}", fix=LOST_WHILE_SHIPPING_FIX)

    def check(self, key: str, ref: str) -> None:
        """``ref`` names an image of content ``key`` on the target (else the archive was not
        what we meant). By content, not by ID: the target's image store may name the image
        otherwise than the local one does."""
        got = objects.image_identity(self.conn.docker_client(), ref, self.host)
        if got is None or got.key != key:
            found = "missing" if got is None else f"{got.id[:19]} (content {short(got.key)})"
            raise DeployError(f"{self.host}: {ref} is {found} after docker load, expected "
                              f"content {short(key)}")
