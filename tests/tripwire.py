"""A tripwire for bad-input tests: real listeners where a run would connect, counting attempts.

Every SSH host of a test resolves (through the test's own ssh config) to one of a few TCP ports
on 127.0.0.1, and the local engine (``DOCKER_HOST``) is a unix socket in the test's folder; each
connection is accepted, counted and closed at once. "Nothing was contacted" is then a count of
0 on real sockets, not a patched function; ``test_tripwire_sees_*`` prove each listener counts.
"""

from __future__ import annotations

import os
import selectors
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

#: ssh config aliases the tests use; each gets its own port (two hosts must not be one engine).
ALIASES = ("mgr", "mgr2", "second", "web1", "web2")


class Tripwire:
    """Loopback TCP listeners (one per alias, plus a catch-all) and a unix socket."""

    def __init__(self, folder: Path) -> None:
        self._selector = selectors.DefaultSelector()
        self._lock = threading.Lock()
        self._hits: list[str] = []
        self.ports: dict[str, int] = {}
        for alias in (*ALIASES, "*"):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sock.listen(16)
            self.ports[alias] = sock.getsockname()[1]
            self._selector.register(sock, selectors.EVENT_READ, f"ssh {alias}")
        self.engine_socket = folder / "engine.sock"
        unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        unix.bind(str(self.engine_socket))
        unix.listen(16)
        self._selector.register(unix, selectors.EVENT_READ, "engine")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="tripwire", daemon=True)
        self._thread.start()

    @property
    def hits(self) -> list[str]:
        with self._lock:
            return list(self._hits)

    def ssh_config(self) -> str:
        """An ssh config sending each alias (and any other name) to its listener."""
        entries = [f"Host {alias}\n  HostName 127.0.0.1\n  Port {port}\n"
                   for alias, port in self.ports.items()]
        return "".join(entries)

    def _serve(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._selector.select(timeout=0.1):
                server = key.fileobj
                assert isinstance(server, socket.socket)
                try:
                    conn, _addr = server.accept()
                except OSError:
                    continue
                with self._lock:
                    self._hits.append(str(key.data))
                conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for key in list(self._selector.get_map().values()):
            self._selector.unregister(key.fileobj)
            key.fileobj.close()  # type: ignore[union-attr]
        self._selector.close()


@pytest.fixture(name="tripwire")
def tripwire_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Tripwire]:
    """A tripwire, and a process environment that can reach nothing else: HOME (so no real
    ~/.ssh), the ssh config, DOCKER_HOST and the state folder all point into ``tmp_path``; the
    working folder too (no ./.env is read)."""
    wire = Tripwire(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    config = tmp_path / "ssh_config"
    config.write_text(wire.ssh_config())
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("MLOPS_SSH_CONFIG", str(config))
    monkeypatch.setenv("DOCKER_HOST", f"unix://{wire.engine_socket}")
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    assert os.environ["DOCKER_HOST"].startswith("unix://")
    try:
        yield wire
    finally:
        wire.close()
