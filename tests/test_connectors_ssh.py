"""SSH connector against the test bed's real sshd: commands, files, Docker API, and the faults."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path
from typing import Any

import paramiko
import pytest

from deployer.connectors import connect
from deployer.connectors.ssh import SSHTarget
from deployer.errors import CommandError, ConnectError

pytestmark = pytest.mark.e2e


def _target(bed: dict[str, Any], **over: Any) -> SSHTarget:
    m = bed["managers"]["loopback"]
    settings: dict[str, Any] = {
        "hostname": m["host"], "port": m["port"], "user": m["user"],
        "identity_files": (m["key_file"],), "known_hosts_files": (m["known_hosts"],),
        "connect_timeout": 5.0,
    }
    settings.update(over)
    return SSHTarget(**settings)


def test_run_files_and_docker_api(bed: dict[str, Any], tmp_path: Path) -> None:
    with connect(_target(bed)) as conn:
        result = conn.run(["sh", "-c", 'cat; echo "$1" >&2', "x", "a b"], stdin=b"in")
        assert (result.stdout, result.stderr) == ("in", "a b\n")
        lines: list[str] = []
        conn.run(["printf", "1\\n2\\n"], on_line=lines.append)
        assert lines == ["1", "2"]
        with pytest.raises(CommandError) as info:
            conn.run(["sh", "-c", "echo boom >&2; exit 3"])
        assert info.value.returncode == 3 and "boom" in str(info.value)
        path = str(tmp_path / "sub" / "f.txt")
        conn.put_file(b"data", path, 0o600)
        assert conn.get_file(path) == b"data"
        assert (Path(path).stat().st_mode & 0o777) == 0o600
        assert conn.get_file(str(tmp_path / "absent")) is None
        assert conn.docker_client().info()["Swarm"]["LocalNodeState"] == "active"


def test_unknown_host_key_is_refused(bed: dict[str, Any], tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(ConnectError, match="unknown host key") as info:
        connect(_target(bed, known_hosts_files=(str(empty),)))
    assert "--accept-new-host-key" in (info.value.fix or "")
    # Opting in records the key, like StrictHostKeyChecking=accept-new.
    with connect(_target(bed, known_hosts_files=(str(empty),), accept_new_host_key=True)):
        pass
    assert "[127.0.0.1]:2222" in empty.read_text()
    with connect(_target(bed, known_hosts_files=(str(empty),))):
        pass


def test_changed_host_key_is_refused(bed: dict[str, Any], tmp_path: Path) -> None:
    wrong = tmp_path / "known_hosts"
    other = paramiko.Ed25519Key.from_private_key_file(bed["managers"]["loopback"]["key_file"])
    wrong.write_text(f"[127.0.0.1]:2222 {other.get_name()} {other.get_base64()}\n")
    with pytest.raises(ConnectError, match="HOST KEY CHANGED"):
        connect(_target(bed, known_hosts_files=(str(wrong),), accept_new_host_key=True))


def test_wrong_key(bed: dict[str, Any], tmp_path: Path) -> None:
    wrong = tmp_path / "wrong_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(wrong)], check=True)
    with pytest.raises(ConnectError, match="authentication failed"):
        connect(_target(bed, identity_files=(str(wrong),)))


def test_closed_port_fails_fast(bed: dict[str, Any]) -> None:
    # A port we just bound and closed again on loopback: nothing listens there.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ConnectError, match="connection refused"):
        connect(_target(bed, port=port))
