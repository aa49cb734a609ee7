"""The test bed refuses a bad environment with a message that names the fix."""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parent.parent


def _testbed() -> ModuleType:
    spec = importlib.util.spec_from_file_location("testbed", REPO / "scripts" / "testbed.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_not_root_is_refused() -> None:
    # The venv's interpreter may sit in root's home, out of nobody's reach: use the system one.
    python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
    proc = subprocess.run(
        ["runuser", "-u", "nobody", "--", python, str(REPO / "scripts" / "testbed.py"), "up"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 1
    assert "must run as root" in proc.stderr
    assert "fix:" in proc.stderr


def test_port_in_use_names_the_port_and_the_fix() -> None:
    testbed = _testbed()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(testbed.BedError) as info:
            testbed.require_port_free("127.0.0.1", port, "MLflow")
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message and "MLflow" in message and "fix:" in message


def test_no_apt_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    testbed = _testbed()
    monkeypatch.setattr(testbed.shutil, "which", lambda name: None)
    with pytest.raises(testbed.BedError, match="no apt-get"):
        testbed.preflight()


def test_a_daemon_that_dies_shows_its_log(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    testbed = _testbed()
    monkeypatch.setattr(testbed, "RUN", tmp_path / "run")
    monkeypatch.setattr(testbed, "LOGS", tmp_path / "logs")
    monkeypatch.setattr(testbed, "REPO", tmp_path)
    # A real process that fails at start-up the way a broken dockerd does.
    testbed.spawn("broken", ["sh", "-c", "echo 'failed to start daemon: bad config'; exit 1"])
    log = tmp_path / "logs" / "broken.log"

    def probe() -> bool:
        if testbed.read_pid("broken") is None:
            raise testbed.BedError(f"broken exited.\n{testbed.tail(log)}")
        return False

    with pytest.raises(testbed.BedError, match="failed to start daemon: bad config"):
        testbed.wait_for("broken", probe, timeout=10, log=log)
