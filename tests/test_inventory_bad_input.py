"""Bad inventories and --limit values, table-driven, through the real CLI: every case exits 2
with an error naming the inventory's file:line and key path (or the --limit), and contacts
nothing: the tripwire's listeners, where every host of these files resolves, count 0."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from deployer.cli import main
from tests.tripwire import Tripwire, tripwire_fixture  # noqa: F401 - the fixture

GOOD = "hosts:\n  mgr: {}\n  second: {}\n  laptop:\n    connection: local\n" \
       "groups:\n  prod:\n    hosts: [mgr, second]\n"


@dataclass(frozen=True)
class Case:
    id: str
    #: The inventory's text (bytes for raw encodings).
    inventory: str | bytes
    #: Substrings the error must contain; "{file}" is the inventory's path.
    expect: tuple[str, ...]
    #: The command and its arguments before `-i FILE` (a mix: every command reads inventories).
    command: tuple[str, ...] = ("push",)
    extra: tuple[str, ...] = ()
    #: Other files next to the inventory (name -> text).
    files: tuple[tuple[str, str], ...] = ()


CASES = [
    # --- keys ---------------------------------------------------------------------------------
    Case("unknown-host-setting",
         "hosts:\n  mgr:\n    hostnme: 10.250.0.2\n",
         ("{file}:3: hosts.mgr.hostnme", "unknown setting 'hostnme'",
          "did you mean 'hostname'")),
    Case("unknown-setting-in-vars", "vars:\n  usr: deploy\nhosts:\n  mgr: {}\n",
         ("{file}:2: vars.usr", "unknown setting 'usr'", "did you mean 'user'")),
    Case("unknown-group-key", "hosts:\n  mgr: {}\ngroups:\n  prod:\n    host: [mgr]\n",
         ("{file}:5: groups.prod.host", "unknown group key 'host'", "did you mean 'hosts'"),
         command=("status",)),
    Case("unknown-top-level-key", "host:\n  mgr: {}\n",
         ("{file}:1: host", "unknown top-level key 'host'", "did you mean 'hosts'")),
    Case("duplicate-host-name", "hosts:\n  mgr: {}\n  mgr:\n    port: 2200\n",
         ("{file}:3: hosts.mgr", "duplicate key 'mgr' (first on line 2)")),
    Case("duplicate-group-name",
         "hosts:\n  mgr: {}\ngroups:\n  prod: {hosts: [mgr]}\n  prod: {hosts: []}\n",
         ("{file}:5: groups.prod", "duplicate key 'prod' (first on line 4)"),
         command=("remove", "--yes")),
    Case("duplicate-setting", "hosts:\n  mgr:\n    user: a\n    user: b\n",
         ("{file}:4: hosts.mgr.user", "duplicate key 'user' (first on line 3)")),
    # --- groups -------------------------------------------------------------------------------
    Case("group-includes-itself", "hosts:\n  mgr: {}\ngroups:\n  prod:\n    children: [prod]\n",
         ("{file}:5: groups.prod.children.0", "group 'prod' includes itself: prod -> prod"),
         command=("status",)),
    Case("group-cycle",
         "hosts:\n  mgr: {}\ngroups:\n  a:\n    children: [b]\n  b:\n    children: [c]\n"
         "  c:\n    children: [a]\n",
         ("{file}:9: groups.c.children.0", "includes itself: a -> b -> c -> a")),
    Case("group-lists-itself-as-host", "hosts:\n  mgr: {}\ngroups:\n  prod:\n    hosts: [prod]\n",
         ("{file}:5: groups.prod.hosts.0", "group 'prod' lists itself as a host")),
    Case("group-lists-a-group-as-host",
         "hosts:\n  mgr: {}\ngroups:\n  prod: {hosts: [mgr]}\n  all-prod: {hosts: [prod]}\n",
         ("{file}:5: groups.all-prod.hosts.0", "'prod' is a group, not a host",
          "children: [prod]")),
    Case("group-children-names-a-host",
         "hosts:\n  mgr: {}\ngroups:\n  prod:\n    children: [mgr]\n",
         ("{file}:5: groups.prod.children.0", "'mgr' is a host, not a group", "hosts: [mgr]"),
         command=("history",)),
    Case("group-member-undefined",
         "hosts:\n  mgr: {}\ngroups:\n  prod:\n    hosts: [mrg]\n",
         ("{file}:5: groups.prod.hosts.0", "'mrg' is not defined under 'hosts'",
          "did you mean 'mgr'")),
    Case("group-member-twice", "hosts:\n  mgr: {}\ngroups:\n  prod:\n    hosts: [mgr, mgr]\n",
         ("{file}:5: groups.prod.hosts.1", "'mgr' is listed twice")),
    Case("host-and-group-same-name", "hosts:\n  prod: {}\ngroups:\n  prod: {hosts: [prod]}\n",
         ("{file}:4: groups.prod", "'prod' is both a host ({file}:2) and a group")),
    Case("host-name-is-a-glob", "hosts:\n  'web*': {}\n",
         ("{file}:2: hosts.web*", "host name 'web*'", "--limit patterns")),
    Case("host-name-with-comma", "hosts:\n  'mgr,second': {}\n",
         ("{file}:2: hosts.mgr,second", "no spaces, commas")),
    # --- setting values -----------------------------------------------------------------------
    Case("port-out-of-range", "hosts:\n  mgr:\n    port: 70000\n",
         ("{file}:3: hosts.mgr.port", "70000 is out of range 1-65535")),
    Case("port-zero", "vars:\n  port: 0\nhosts:\n  mgr: {}\n",
         ("{file}:2: vars.port", "0 is out of range 1-65535")),
    Case("port-boolean", "hosts:\n  mgr:\n    port: yes\n",
         ("{file}:3: hosts.mgr.port", "expected a number from 1 to 65535, got True")),
    Case("port-fraction", "hosts:\n  mgr:\n    port: 22.5\n",
         ("{file}:3: hosts.mgr.port", "got 22.5")),
    # The string 'no' was truthy: it turned host key checking *off*. Now it is refused.
    Case("accept-new-host-key-string", "hosts:\n  mgr:\n    accept_new_host_key: 'no'\n",
         ("{file}:3: hosts.mgr.accept_new_host_key", "expected true or false, got 'no'")),
    Case("connect-timeout-words", "hosts:\n  mgr:\n    connect_timeout: soon\n",
         ("{file}:3: hosts.mgr.connect_timeout", "number of seconds", "'soon'")),
    Case("connect-timeout-negative", "hosts:\n  mgr:\n    connect_timeout: -1\n",
         ("{file}:3: hosts.mgr.connect_timeout", "above 0")),
    Case("user-with-host", "hosts:\n  mgr:\n    user: deploy@mgr\n",
         ("{file}:3: hosts.mgr.user", "expected a user name", "'deploy@mgr'")),
    Case("hostname-with-port", "hosts:\n  mgr:\n    hostname: 10.250.0.2:22\n",
         ("{file}:3: hosts.mgr.hostname", "those are 'user' and 'port'")),
    Case("identity-file-number", "hosts:\n  mgr:\n    identity_file: 5\n",
         ("{file}:3: hosts.mgr.identity_file", "a path or a list of paths")),
    Case("connection-unknown", "hosts:\n  mgr:\n    connection: telnet\n",
         ("{file}:3: hosts.mgr.connection", "'ssh' or 'local'", "'telnet'")),
    Case("docker-host-not-an-address", "hosts:\n  laptop:\n    connection: local\n"
         "    docker_host: /var/run/docker.sock\n",
         ("{file}:4: hosts.laptop.docker_host", "unix:///var/run/docker.sock")),
    Case("docker-host-on-ssh-host", "vars:\n  docker_host: unix:///run/d.sock\nhosts:\n  mgr: {}\n",
         ("{file}:2: vars.docker_host", "connection: local only", "'mgr' connects over SSH")),
    Case("ssh-setting-on-local-host", "hosts:\n  laptop:\n    connection: local\n    port: 22\n",
         ("{file}:4: hosts.laptop.port", "no effect", "connection: local")),
    Case("settings-a-list", "hosts:\n  mgr: [port, 22]\n",
         ("{file}:2: hosts.mgr", "expected a mapping of settings, got a list")),
    # --- values carried by the inventory -------------------------------------------------------
    Case("values-overlay-invalid",
         "hosts:\n  laptop:\n    connection: local\n    values:\n      services:\n"
         "        minio: {replicas: -1}\n",
         ("{file}:6: hosts.laptop.values.services.minio.replicas", "greater than or equal to 0"),
         # Read-only commands (status, logs, history) take only stack.name of the values; any
         # command that uses them validates them first.
         command=("scale", "minio=1")),
    Case("group-values-typo",
         "hosts:\n  mgr: {}\ngroups:\n  prod:\n    hosts: [mgr]\n    vars:\n      values:\n"
         "        stack: {nmae: prod}\n",
         ("{file}:8: groups.prod.vars.values.stack.nmae", "did you mean 'name'")),
    # The first host is fine, the second's overlay is not: nothing may be deployed to the
    # first before the second's error (it was deployed before).
    Case("second-host-overlay-invalid",
         "hosts:\n  mgr: {}\n  second:\n    values:\n      swarm: {endpoint_mode: roundrobin}\n",
         ("{file}:5: hosts.second.values.swarm.endpoint_mode", "'vip' or 'dnsrr'")),
    Case("values-file-missing", "hosts:\n  mgr:\n    values_files: [prod.yaml, stagin.yaml]\n",
         ("{file}:3: hosts.mgr.values_files", "stagin.yaml", "does not exist"),
         files=(("prod.yaml", "stack: {name: prod}\n"),)),
    Case("values-file-invalid", "hosts:\n  mgr:\n    values_files: [prod.yaml]\n",
         ("prod.yaml:2", "services.minio.replicas", "'two'"),
         files=(("prod.yaml", "services:\n  minio: {replicas: two}\n"),)),
    # --- the file itself ----------------------------------------------------------------------
    Case("not-utf8", b"hosts:\n  mgr: {user: \xff}\n", ("{file}", "not UTF-8")),
    Case("several-documents", "hosts: {mgr: {}}\n---\nhosts: {second: {}}\n",
         ("{file}:3", "several YAML documents")),
    Case("yaml-syntax", "hosts:\n  mgr: {port: 22\n", ("{file}:3", "YAML syntax error")),
    Case("hosts-empty", "hosts: {}\nvars: {user: root}\n",
         ("{file}:1: hosts", "non-empty 'hosts'")),
    Case("top-level-list", "- mgr\n- second\n", ("{file}", "got a list")),
    # --- --limit ------------------------------------------------------------------------------
    Case("limit-matches-nothing", GOOD,
         ("--limit 'staging' ({file}): 'staging' matches no host or group",
          "hosts: mgr, second, laptop; groups: prod"),
         extra=("--limit", "staging")),
    Case("limit-typo-suggests", GOOD, ("'prd' matches no host or group", "did you mean 'prod'"),
         extra=("--limit", "prd")),
    # A typo in an exclusion must not widen a deploy: it is an error, not "exclude nothing".
    Case("limit-exclusion-matches-nothing", GOOD, ("'!secnd' matches no host or group",),
         extra=("--limit", "prod,!secnd")),
    Case("limit-excludes-everything", GOOD, ("selects no host",),
         extra=("--limit", "prod,!prod"), command=("remove", "--yes")),
    Case("limit-empty", GOOD, ("--limit ','", "no host or group named"), extra=("--limit", ",")),
    Case("limit-bare-bang", GOOD, ("'!' excludes nothing",), extra=("--limit", "prod,!")),
    Case("two-names-one-engine",
         "hosts:\n  mgr: {}\n  mgr-again: {hostname: 127.0.0.1, port: __MGR_PORT__}\n",
         ("hosts 'mgr' ({file}:2) and 'mgr-again' ({file}:3)", "are the same engine")),
]


def test_enough_cases() -> None:
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_inventory_is_refused_before_any_connection(
    case: Case, tripwire: Tripwire, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "inventory.yaml"
    if isinstance(case.inventory, bytes):
        path.write_bytes(case.inventory)
    else:
        path.write_text(case.inventory.replace("__MGR_PORT__", str(tripwire.ports["mgr"])))
    for name, text in case.files:
        (tmp_path / name).write_text(text)

    code = main([*case.command, "-i", str(path), *case.extra])

    err = capsys.readouterr().err
    assert code == 2, f"exit {code}, expected 2 (bad input); stderr:\n{err}"
    for want in case.expect:
        want = want.replace("{file}", str(path))
        assert want in err, f"{want!r} missing from:\n{err}"
    assert "Traceback" not in err
    assert tripwire.hits == [], f"contacted {tripwire.hits} on bad input"
    assert not (tmp_path / "state").exists()


def test_inventory_that_is_a_directory(
    tripwire: Tripwire, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "inventory.d"
    folder.mkdir()
    assert main(["push", "-i", str(folder)]) == 2
    assert f"inventory {folder} is a directory" in capsys.readouterr().err
    assert tripwire.hits == []


def test_tripwire_sees_an_ssh_attempt(
    tripwire: Tripwire, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The control: the same good inventory does reach the listener (then fails to connect:
    it is no SSH server), so a count of 0 above means nothing was tried."""
    path = tmp_path / "inventory.yaml"
    path.write_text(GOOD)
    assert main(["status", "-i", str(path), "--limit", "mgr"]) == 4
    assert "cannot connect: mgr (127.0.0.1:" in capsys.readouterr().err
    assert tripwire.hits and set(tripwire.hits) == {"ssh mgr"}


def test_tripwire_sees_an_engine_attempt(
    tripwire: Tripwire, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(GOOD)
    assert main(["status", "-i", str(path), "--limit", "laptop"]) == 4
    assert "local engine" in capsys.readouterr().err
    assert tripwire.hits == ["engine"]
