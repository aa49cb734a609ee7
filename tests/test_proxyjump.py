"""ProxyJump over paramiko: chains resolved from the ssh config and the inventory (pure), and
push/status through the cluster manager to an address only it reaches, with every hop's host key
checked (real sshd on the cluster's nodes)."""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cluster_bed import ClusterStack, cluster  # noqa: F401 - the fixture

from deployer.cli import main
from deployer.connectors import connect
from deployer.errors import ConfigError, ConnectError
from deployer.inventory import adhoc_host, load_inventory

# ---------------------------------------------------------------- resolution (pure)


@pytest.fixture
def jump_config(tmp_path: Path) -> Path:
    path = tmp_path / "ssh_config"
    path.write_text(
        "Host bastion\n"
        "  HostName 10.9.0.1\n"
        "  User jumper\n"
        "  IdentityFile /keys/jump\n"
        "  UserKnownHostsFile /kh/jump\n"
        "Host inner\n"
        "  HostName 10.9.1.1\n"
        "  ProxyJump bastion\n"
        "Host target\n"
        "  HostName 10.9.2.2\n"
        "  User deploy\n"
        "  ProxyJump inner,admin@other:2200\n"
        "Host loop1\n"
        "  ProxyJump loop2\n"
        "Host loop2\n"
        "  ProxyJump loop1\n"
        "Host direct\n"
        "  HostName 10.9.3.3\n"
        "  ProxyJump none\n"
        "Host viacommand\n"
        "  ProxyCommand nc %h %p\n"
    )
    return path


def test_ssh_config_chain_with_each_hops_own_settings(jump_config: Path) -> None:
    host = adhoc_host("target", ssh_config=str(jump_config), accept_new_host_key=True)
    assert host.ssh is not None
    hops = [(h.hostname, h.port, h.user) for h in host.ssh.jump]
    # inner's own jump host comes first, then inner, then the second entry.
    assert hops == [("10.9.0.1", 22, "jumper"), ("10.9.1.1", 22, None), ("other", 2200, "admin")]
    bastion = host.ssh.jump[0]
    assert bastion.identity_files == ("/keys/jump",)
    assert bastion.known_hosts_files == ("/kh/jump",)
    # --accept-new-host-key applies to every hop; no hop carries a chain of its own.
    assert all(h.accept_new_host_key and not h.jump for h in host.ssh.jump)
    assert (host.ssh.hostname, host.ssh.user) == ("10.9.2.2", "deploy")
    assert "via bastion" in host.ssh.label


def test_proxyjump_none_loop_and_proxycommand(jump_config: Path) -> None:
    direct = adhoc_host("direct", ssh_config=str(jump_config))
    assert direct.ssh is not None and direct.ssh.jump == ()
    with pytest.raises(ConfigError, match="jump hosts in a row") as info:
        adhoc_host("loop1", ssh_config=str(jump_config))
    assert "loop" in (info.value.fix or "")
    with pytest.raises(ConfigError, match="ProxyCommand") as info:
        adhoc_host("viacommand", ssh_config=str(jump_config))
    assert "ProxyJump" in (info.value.fix or "")


def test_inventory_proxy_jump_setting(jump_config: Path, tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        "hosts:\n"
        "  mgr:\n"
        "    hostname: 10.9.5.5\n"
        "    proxy_jump: [bastion, 'ops@10.9.6.6:2222']\n"
        "  plain:\n"
        "    hostname: 10.9.5.6\n"
    )
    hosts = load_inventory(inventory, ssh_config=str(jump_config)).hosts
    mgr = hosts["mgr"].ssh
    assert mgr is not None
    assert [(h.hostname, h.port, h.user) for h in mgr.jump] == [
        ("10.9.0.1", 22, "jumper"), ("10.9.6.6", 2222, "ops")]
    assert hosts["plain"].ssh is not None and hosts["plain"].ssh.jump == ()


def test_inventory_bad_proxy_jump_names_file_and_line(jump_config: Path, tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("hosts:\n  mgr:\n    hostname: 10.9.5.5\n    proxy_jump: 'a b@c'\n")
    with pytest.raises(ConfigError, match=r"inventory.yaml:4: hosts\.mgr\.proxy_jump"):
        load_inventory(inventory, ssh_config=str(jump_config))


# ---------------------------------------------------------------- over the cluster (real sshd)


@pytest.fixture
def private(cluster: dict[str, Any]) -> str:  # noqa: F811
    return str(cluster["private_alias"])


@pytest.mark.e2e
def test_private_address_is_only_reachable_through_the_manager(
    cluster: dict[str, Any], private: str  # noqa: F811
) -> None:
    # Directly: no route (the bed's unreachable route: nothing leaves this machine).
    with socket.socket() as sock, pytest.raises(OSError) as info:
        sock.settimeout(3)
        sock.connect((cluster["manager_private_addr"], 22))
    assert info.value.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH)
    host = adhoc_host(private, ssh_config=cluster["ssh_config"])
    assert host.ssh is not None and [h.hostname for h in host.ssh.jump] == [
        cluster["nodes"]["manager"]["host"]]
    with connect(host.ssh) as conn:
        assert conn.run(["hostname"]).stdout.strip() == "mlc-manager"
        # The Docker API rides the same (jumped) transport.
        assert conn.docker_client().info()["Swarm"]["ControlAvailable"] is True


@pytest.mark.e2e
def test_unknown_jump_host_key_is_refused(
    cluster: dict[str, Any], tmp_path: Path, private: str  # noqa: F811
) -> None:
    manager = cluster["nodes"]["manager"]
    # known_hosts with the target's key (its private name) but not the jump host's.
    lines = Path(cluster["known_hosts"]).read_text().splitlines()
    target_key = next(line for line in lines if cluster["manager_private_addr"] in line)
    known = tmp_path / "known_hosts"
    known.write_text(f"{cluster['manager_private_addr']} {target_key.split(' ', 1)[1]}\n")
    config = tmp_path / "ssh_config"
    config.write_text(
        f"Host jumpbox\n  HostName {manager['host']}\n  User root\n"
        f"  IdentityFile {manager['key_file']}\n  UserKnownHostsFile {known}\n"
        f"Host {private}\n  HostName {cluster['manager_private_addr']}\n  User root\n"
        f"  IdentityFile {manager['key_file']}\n  UserKnownHostsFile {known}\n"
        "  ProxyJump jumpbox\n"
    )
    host = adhoc_host(private, ssh_config=str(config))
    assert host.ssh is not None
    with pytest.raises(ConnectError, match="unknown host key") as info:
        connect(host.ssh)
    assert info.value.host.startswith("jump host jumpbox")
    assert "--accept-new-host-key" in (info.value.fix or "")
    assert manager["host"] not in known.read_text()
    # Opting in records the jump host's key like any other; then it connects without it.
    opted = adhoc_host(private, ssh_config=str(config), accept_new_host_key=True)
    assert opted.ssh is not None
    with connect(opted.ssh):
        pass
    assert manager["host"] in known.read_text()
    with connect(host.ssh) as conn:
        assert conn.run(["hostname"]).stdout.strip() == "mlc-manager"


@pytest.fixture
def jumped_stack(cluster: dict[str, Any], tmp_path: Path,  # noqa: F811
                 monkeypatch: pytest.MonkeyPatch) -> Iterator[ClusterStack]:
    monkeypatch.setenv("GOOGLE_API_KEY", "pj-test-key")
    stack = ClusterStack(cluster, tmp_path, prefix="pj", replicas=1, base_port=21200)
    yield stack
    stack.cleanup()


@pytest.mark.e2e
@pytest.mark.slow
def test_push_and_status_through_a_jump_host(
    jumped_stack: ClusterStack, private: str, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = jumped_stack
    code = main(stack.argv("push", "--timeout", "120", host=private))
    out = capsys.readouterr()
    assert code == 0, out.out + out.err
    assert "via bed-cluster-manager" in out.out
    assert len(stack.running_tasks("llm-connector")) == 1
    code = main(stack.argv("status", host=private))
    out = capsys.readouterr()
    assert code == 0, out.out + out.err
    assert "llm-connector" in out.out and "1/1" in out.out
