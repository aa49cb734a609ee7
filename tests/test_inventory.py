"""Inventory, ad-hoc hosts and ssh config resolution (pure: no connection is made)."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployer.errors import ConfigError
from deployer.inventory import adhoc_host, load_inventory, parse_adhoc, select_hosts


@pytest.fixture
def ssh_config(tmp_path: Path) -> Path:
    path = tmp_path / "ssh_config"
    path.write_text(
        "Host mgr\n"
        "  HostName 10.250.0.2\n"
        "  Port 2200\n"
        "  User deploy\n"
        "  IdentityFile ~/keys/deploy\n"
        "  UserKnownHostsFile /tmp/kh1 /tmp/kh2\n"
        "Host jumpy\n"
        "  ProxyJump bastion\n"
    )
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mgr", (None, "mgr", None)),
        ("root@mgr", ("root", "mgr", None)),
        ("root@127.0.0.1:2222", ("root", "127.0.0.1", 2222)),
        ("[::1]:22", (None, "::1", 22)),
    ],
)
def test_parse_adhoc(text: str, expected: tuple[str | None, str, int | None]) -> None:
    assert parse_adhoc(text) == expected


@pytest.mark.parametrize("text", ["", "a@b@c", "host:port", "host:70000", "user@", "a b"])
def test_parse_adhoc_rejects(text: str) -> None:
    with pytest.raises(ConfigError, match="--host"):
        parse_adhoc(text)


def test_adhoc_resolves_through_ssh_config(ssh_config: Path) -> None:
    host = adhoc_host("mgr", ssh_config=str(ssh_config))
    assert host.ssh is not None
    assert (host.ssh.hostname, host.ssh.port, host.ssh.user) == ("10.250.0.2", 2200, "deploy")
    assert host.ssh.identity_files[0].endswith("keys/deploy")
    assert host.ssh.known_hosts_files == ("/tmp/kh1", "/tmp/kh2")
    assert not host.ssh.accept_new_host_key


def test_adhoc_explicit_parts_win_over_ssh_config(ssh_config: Path) -> None:
    host = adhoc_host("root@mgr:2222", ssh_config=str(ssh_config), accept_new_host_key=True)
    assert host.ssh is not None
    assert (host.ssh.user, host.ssh.port) == ("root", 2222)
    assert host.ssh.accept_new_host_key
    assert host.ssh.known_hosts_name == "[10.250.0.2]:2222"


def test_ssh_config_from_environment(ssh_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_SSH_CONFIG", str(ssh_config))
    host = adhoc_host("mgr")
    assert host.ssh is not None and host.ssh.hostname == "10.250.0.2"


def test_missing_explicit_ssh_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        adhoc_host("mgr", ssh_config=str(tmp_path / "nope"))


def test_proxyjump_is_resolved(ssh_config: Path) -> None:
    host = adhoc_host("jumpy", ssh_config=str(ssh_config))
    assert host.ssh is not None
    assert [hop.hostname for hop in host.ssh.jump] == ["bastion"]


def test_local_host() -> None:
    assert select_hosts() == select_hosts(host="local")
    assert select_hosts()[0].ssh is None


INVENTORY = """
vars:
  user: root
  values: {swarm: {endpoint_mode: dnsrr, publish_mode: host}}
hosts:
  mgr:
    values_files: [prod.yaml]
    values: {stack: {name: prod}}
  second:
    hostname: 127.0.0.1
    port: 2222
    identity_file: [/k1, /k2]
  laptop:
    connection: local
groups:
  prod:
    hosts: [mgr, second]
    vars:
      user: deploy
      values: {swarm: {publish_mode: ingress}}
"""


@pytest.fixture
def inventory(tmp_path: Path, ssh_config: Path) -> Path:
    (tmp_path / "prod.yaml").write_text("stack: {name: x}\n")
    path = tmp_path / "inventory.yaml"
    path.write_text(INVENTORY)
    return path


def test_inventory_layers(inventory: Path, ssh_config: Path) -> None:
    inv = load_inventory(inventory, ssh_config=str(ssh_config))
    mgr = inv.hosts["mgr"]
    assert mgr.ssh is not None
    # group vars over top vars, ssh config fills the rest, host values over group values
    assert (mgr.ssh.hostname, mgr.ssh.port, mgr.ssh.user) == ("10.250.0.2", 2200, "deploy")
    assert mgr.values == {
        "swarm": {"endpoint_mode": "dnsrr", "publish_mode": "ingress"},
        "stack": {"name": "prod"},
    }
    assert mgr.values_files == ((inventory.parent / "prod.yaml").resolve(),)
    second = inv.hosts["second"]
    assert second.ssh is not None
    assert (second.ssh.hostname, second.ssh.port) == ("127.0.0.1", 2222)
    assert second.ssh.identity_files == ("/k1", "/k2")
    assert inv.hosts["laptop"].ssh is None


@pytest.mark.parametrize(
    ("limit", "names"),
    [
        (None, ["mgr", "second", "laptop"]),
        ("prod", ["mgr", "second"]),
        ("prod,!second", ["mgr"]),
        ("lap*", ["laptop"]),
        ("all,!prod", ["laptop"]),
    ],
)
def test_limit(inventory: Path, ssh_config: Path, limit: str | None, names: list[str]) -> None:
    inv = load_inventory(inventory, ssh_config=str(ssh_config))
    assert [h.name for h in inv.select(limit)] == names


def test_limit_matching_nothing(inventory: Path, ssh_config: Path) -> None:
    inv = load_inventory(inventory, ssh_config=str(ssh_config))
    with pytest.raises(ConfigError, match="matches no host"):
        inv.select("staging")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hosts: {a: {prot: 22}}", "unknown setting 'prot'"),
        ("hosts: {a: {port: 99999}}", "out of range"),
        ("hosts: {a: {port: abc}}", "expected a number"),
        ("hosts: {a: {connection: telnet}}", "connection"),
        ("hosts: {a: {values: [1]}}", "values: expected a mapping"),
        ("hosts: {a: {values_files: [missing.yaml]}}", "does not exist"),
        ("hosts: {a: {}}\ngroups: {g: {hosts: [b]}}", "'b' is not defined"),
        ("hosts: {a: {}}\nhostz: {}", "unknown top-level key 'hostz'"),
        ("hosts: {}", "non-empty 'hosts'"),
        ("", "non-empty 'hosts'"),
        ("hosts: {a: [}", "YAML syntax error"),
    ],
)
def test_inventory_errors(tmp_path: Path, ssh_config: Path, text: str, message: str) -> None:
    path = tmp_path / "inv.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_inventory(path, ssh_config=str(ssh_config))
    assert str(path) in str(info.value)


def test_missing_inventory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_inventory(tmp_path / "nope.yaml")


def test_exclusive_options(inventory: Path) -> None:
    with pytest.raises(ConfigError, match="exclusive"):
        select_hosts(host="mgr", inventory=str(inventory))
    with pytest.raises(ConfigError, match="--limit needs"):
        select_hosts(limit="prod")
