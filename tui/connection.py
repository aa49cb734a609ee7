"""The dashboard's hold on one connector: opened on first use, and again on the next call after
it was lost (that reopening is the dashboard's recovery from a dropped SSH connection or a
restarted engine). Blocking calls go through ``call``, which maps the engine's errors and drops a
connection that failed."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from deployer.connectors import Connector
from deployer.engine.client import docker_errors
from deployer.errors import ConnectError

log = logging.getLogger(__name__)


class Connection:
    """A connector made by ``connect``, shared by a backend's worker threads."""

    def __init__(self, connect: Callable[[], Connector], label: str) -> None:
        self._connect = connect
        self._label = label
        self._conn: Connector | None = None
        self._lock = threading.Lock()

    @property
    def connector(self) -> Connector:
        """The open connector, connecting first if needed."""
        with self._lock:
            if self._conn is None:
                self._conn = self._connect()
            return self._conn

    def call(self, fn: Callable[[], Any]) -> Any:
        """``fn()`` with the engine's errors mapped; a lost connection is dropped (and reopened
        by the next call)."""
        try:
            with docker_errors(self._label):
                return fn()
        except ConnectError:
            self.forget()
            raise

    def forget(self) -> None:
        """Close and drop the connector (closing a dead one may fail in any way)."""
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - a dead connection fails to close in many ways
                log.debug("closing a broken connection failed", exc_info=True)
