"""The test bed's three-node Swarm: one manager and two workers on one Linux bridge.

    scripts/testbed cluster-up      (idempotent; `scripts/testbed down` removes it)

Each node is its own network namespace (``ip netns``) with its own UTS namespace and hostname
(so Swarm node names differ), its own dockerd (started like the bed's remote manager: cgroup
remount, own data/exec roots, socket, pidfile, config file, cgroup parent) and its own sshd
(``SetEnv DOCKER_HOST`` at that node's socket). The namespaces hang off one bridge,
10.251.0.1/24 on the host. The manager also answers on a *private* address (10.251.1.1 on its
loopback) that the host cannot reach (an ``unreachable`` route, so nothing ever leaves the
machine): the ProxyJump tests reach it only through the manager's bridge address.

The host's FORWARD policy is DROP (Docker) and bridged frames pass iptables here, so one rule
``DOCKER-USER -i BR -o BR -j ACCEPT`` lets the nodes talk; teardown removes it again.

Facts go under the ``cluster`` key of .testbed/facts.json (see :func:`cluster_facts`).
Uses the helpers of scripts/testbed.py (pidfiles, spawn/stop, ssh material).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import testbed as tb
import testbed_engines as engines

BRIDGE = "mlcbr0"
SUBNET_PREFIX = 24
BRIDGE_ADDR = "10.251.0.1"
#: Reachable only from inside the manager's namespace (and through it, by SSH jumps).
PRIVATE_NET = "10.251.1.0/24"
MANAGER_PRIVATE_ADDR = "10.251.1.1"
IPTABLES_RULE = ("DOCKER-USER", "-i", BRIDGE, "-o", BRIDGE, "-j", "ACCEPT")

CLUSTER = tb.BED / "cluster"
CLUSTER_RUN = Path(f"/run/mlc-{tb._TAG}")
SSH_CONFIG = tb.SSH_DIR / "cluster_config"
KNOWN_HOSTS = tb.SSH_DIR / "cluster_known_hosts"
FORMED_MARKER = "cluster_formed.marker"
ENGINES_MARKER = "engine_managers.marker"
CLUSTER_MARKER = "cluster_nodes.marker"


@dataclass(frozen=True)
class Node:
    """One cluster node: names, address, where its engine listens."""

    name: str  # short: manager, worker1, worker2 (e26, e26c: the standalone engine managers)
    addr: str
    role: str
    #: Which engine runs it (scripts/testbed_engines.py): "20.10", "26.1", "26.1-containerd".
    kind: str = "20.10"

    @property
    def netns(self) -> str:
        return f"mlc-{self.name}"

    @property
    def hostname(self) -> str:
        return f"mlc-{self.name}"

    @property
    def veth(self) -> str:
        return f"mlcv-{self.name}"[:15]

    @property
    def run_dir(self) -> Path:
        return CLUSTER_RUN / self.name

    @property
    def sock(self) -> Path:
        return self.run_dir / "docker.sock"

    @property
    def docker_host(self) -> str:
        return f"unix://{self.sock}"

    @property
    def engine(self) -> str:
        """Our pidfile name of this node's dockerd."""
        return f"dockerd_cluster_{self.name}"

    @property
    def sshd(self) -> str:
        return f"cluster_{self.name}"

    @property
    def alias(self) -> str:
        return f"bed-cluster-{self.name}"


#: Mixed engine versions, as a cluster being upgraded node by node: the manager on 20.10, one
#: worker on 26.1 (classic store), one on 26.1 with the containerd image store.
NODES = (
    Node("manager", "10.251.0.11", "manager"),
    Node("worker1", "10.251.0.12", "worker", "26.1"),
    Node("worker2", "10.251.0.13", "worker", "26.1-containerd"),
)
MANAGER = NODES[0]
#: Standalone single-node swarms on the same bridge, one per modern engine kind (the bed's
#: remote manager is the 20.10 one): `scripts/testbed engines-up`.
ENGINE_MANAGERS = (
    Node("e26", "10.251.0.21", "manager", "26.1"),
    Node("e26c", "10.251.0.22", "manager", "26.1-containerd"),
)


def node(name: str) -> Node:
    for candidate in (*NODES, *ENGINE_MANAGERS):
        if name in (candidate.name, candidate.hostname):
            return candidate
    raise tb.BedError(f"no cluster node {name!r}; nodes: {', '.join(n.name for n in NODES)}")


# ---------------------------------------------------------------- network

def _netns_list() -> list[str]:
    return [line.split()[0] for line in tb.run(["ip", "netns", "list"]).stdout.splitlines()
            if line.strip()]


def _link_exists(name: str) -> bool:
    return tb.ok(["ip", "link", "show", name])


def ensure_bridge() -> None:
    if not _link_exists(BRIDGE):
        tb.say(f"creating bridge {BRIDGE} ({BRIDGE_ADDR}/{SUBNET_PREFIX})")
        tb.run(["ip", "link", "add", BRIDGE, "type", "bridge"])
    addrs = tb.run(["ip", "-o", "-4", "addr", "show", "dev", BRIDGE]).stdout
    if f"{BRIDGE_ADDR}/" not in addrs:
        tb.run(["ip", "addr", "add", f"{BRIDGE_ADDR}/{SUBNET_PREFIX}", "dev", BRIDGE])
    tb.run(["ip", "link", "set", BRIDGE, "up"])
    if not tb.ok(["iptables", "-C", *IPTABLES_RULE]):
        tb.run(["iptables", "-I", *IPTABLES_RULE])
    # The private network lives only inside the manager's namespace: without this route the
    # host would send such packets to its default gateway.
    if PRIVATE_NET not in tb.run(["ip", "route", "show", "type", "unreachable"]).stdout:
        tb.run(["ip", "route", "add", "unreachable", PRIVATE_NET])


def ensure_node_netns(n: Node) -> None:
    ns = ["ip", "netns", "exec", n.netns]
    if n.netns in _netns_list() and tb.ok([*ns, "ip", "addr", "show", "eth0"]):
        return
    if n.netns in _netns_list():
        tb.run(["ip", "netns", "del", n.netns])
    tb.run(["ip", "link", "del", n.veth], check=False)
    tb.say(f"creating namespace {n.netns} ({n.addr})")
    tb.run(["ip", "netns", "add", n.netns])
    tb.run(["ip", "link", "add", n.veth, "type", "veth", "peer", "name", "eth0",
            "netns", n.netns])
    tb.run(["ip", "link", "set", n.veth, "master", BRIDGE, "up"])
    tb.run([*ns, "ip", "link", "set", "lo", "up"])
    tb.run([*ns, "ip", "addr", "add", f"{n.addr}/{SUBNET_PREFIX}", "dev", "eth0"])
    tb.run([*ns, "ip", "link", "set", "eth0", "up"])
    tb.run([*ns, "ip", "route", "add", "default", "via", BRIDGE_ADDR])
    if n is MANAGER:
        tb.run([*ns, "ip", "addr", "add", f"{MANAGER_PRIVATE_ADDR}/32", "dev", "lo"])


# ---------------------------------------------------------------- engines

# Own hostname (UTS namespace from `unshare --uts`), then the bed's cgroup remount, then exec.
_NODE_DOCKERD_SCRIPT = 'hostname "$NODE_HOSTNAME"\n' + tb._REMOTE_DOCKERD_SCRIPT
_NODE_SSHD_SCRIPT = 'hostname "$NODE_HOSTNAME"\nexec "$@"\n'


def _engine_answers(n: Node) -> bool:
    return tb.ok(tb.docker("version", host=n.docker_host))


def start_node_engine(n: Node, *, wait_ready: bool = True) -> None:
    """Start the node's dockerd unless ours runs and answers (tests call this to bring a stopped
    worker back); a worker of a formed cluster is then waited on until the manager sees it
    Ready."""
    if tb.read_pid(n.engine) is not None and _engine_answers(n):
        if wait_ready and n in NODES[1:] and (tb.RUN / FORMED_MARKER).exists():
            ensure_node_ready(n)
        return
    tb.stop(n.engine, grace=30)
    (CLUSTER / n.name / "data").mkdir(parents=True, exist_ok=True)
    n.run_dir.mkdir(parents=True, exist_ok=True)
    if n.sock.exists():
        n.sock.unlink()  # stale, from an engine that died
    config = CLUSTER / n.name / "daemon.json"
    config.write_text(json.dumps(engines.daemon_config(n.kind)) + "\n")
    env = {**os.environ, "DOCKER_SERVICE_PREFER_OFFLINE_IMAGE": "1",
           "CONTROLLERS": " ".join(tb.CGROUP_CONTROLLERS), "NODE_HOSTNAME": n.hostname,
           "PATH": engines.engine_path(n.kind)}
    tb.say(f"starting dockerd {n.kind} on {n.hostname}")
    tb.spawn(n.engine, [
        "unshare", "--uts", "sh", "-c", _NODE_DOCKERD_SCRIPT, n.engine,
        "dockerd", "-H", n.docker_host, "--data-root", str(CLUSTER / n.name / "data"),
        "--exec-root", str(n.run_dir / "exec"), "--pidfile", str(n.run_dir / "dockerd.pid"),
        "--config-file", str(config), "--cgroup-parent", f"mlc-{tb._TAG}-{n.name}",
    ], env=env, netns=n.netns)
    log = tb.LOGS / f"{n.engine}.log"

    def up() -> bool:
        if tb.read_pid(n.engine) is None:
            raise tb.BedError(f"dockerd of {n.hostname} exited during start-up.\nlast lines of "
                              f"{log.relative_to(tb.REPO)}:\n{tb.tail(log)}")
        return _engine_answers(n)

    tb.wait_for(f"dockerd of {n.hostname}", up, timeout=60, log=log)
    if wait_ready and n in NODES[1:] and (tb.RUN / FORMED_MARKER).exists():
        ensure_node_ready(n)


def stop_node_engine(n: Node) -> None:
    """Stop the node's dockerd (by our pidfile); its containers stop with it."""
    tb.stop(n.engine, grace=30)


def ensure_images(n: Node, archive: Path) -> None:
    missing = [ref for ref in (tb.BASE_IMAGE, tb.STANDIN_IMAGE)
               if tb.image_content(ref) != tb.image_content(ref, host=n.docker_host)]
    if not missing:
        return
    tb.say(f"loading {', '.join(missing)} into {n.hostname}")
    tb.run(tb.docker("load", "-q", "-i", str(archive), host=n.docker_host), timeout=600)


def ensure_all_images(nodes: tuple[Node, ...] = NODES) -> None:
    if all(tb.image_content(ref) == tb.image_content(ref, host=n.docker_host)
           for n in nodes for ref in (tb.BASE_IMAGE, tb.STANDIN_IMAGE)):
        return
    # One archive, loaded into the three engines at once (a load is mostly disk and CPU of
    # that engine; the save is the shared part).
    archive = CLUSTER / f"images-{nodes[0].name}.tar"
    tb.run(tb.docker("save", "-o", str(archive), tb.BASE_IMAGE, tb.STANDIN_IMAGE), timeout=600)
    try:
        with ThreadPoolExecutor(len(nodes)) as pool:
            list(pool.map(lambda n: ensure_images(n, archive), nodes))
    finally:
        archive.unlink(missing_ok=True)


# ---------------------------------------------------------------- swarm

def _info(n: Node) -> dict[str, Any]:
    proc = tb.run(tb.docker("info", "--format", "{{json .Swarm}}", host=n.docker_host),
                  check=False)
    try:
        info: dict[str, Any] = json.loads(proc.stdout or "{}")
    except json.JSONDecodeError:
        return {}
    return info


def ready_nodes() -> dict[str, str]:
    """hostname -> Status.State of every node the manager knows."""
    proc = tb.run(tb.docker("node", "ls", "--format", "{{.Hostname}} {{.Status}}",
                            host=MANAGER.docker_host), check=False)
    states: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2:
            states[parts[0]] = parts[1].lower()
    return states


def ensure_swarm() -> None:
    info = _info(MANAGER)
    if info.get("LocalNodeState") != "active" or not info.get("ControlAvailable"):
        tb.say(f"initialising the cluster's swarm on {MANAGER.addr}")
        if info.get("LocalNodeState") == "active":
            tb.run(tb.docker("swarm", "leave", "--force", host=MANAGER.docker_host))
        tb.run(tb.docker("swarm", "init", "--advertise-addr", MANAGER.addr,
                         host=MANAGER.docker_host))
    token = tb.run(tb.docker("swarm", "join-token", "-q", "worker",
                             host=MANAGER.docker_host)).stdout.strip()
    cluster_id = _info(MANAGER).get("Cluster", {}).get("ID")
    for n in NODES[1:]:
        winfo = _info(n)
        if winfo.get("LocalNodeState") == "active":
            if winfo.get("Cluster", {}).get("ID") in (None, cluster_id) and (
                    winfo.get("RemoteManagers")):
                continue
            tb.run(tb.docker("swarm", "leave", "--force", host=n.docker_host))
        tb.say(f"joining {n.hostname} to the cluster")
        tb.run(tb.docker("swarm", "join", "--token", token, "--advertise-addr", n.addr,
                         f"{MANAGER.addr}:2377", host=n.docker_host), timeout=60)
    # A node that left (or was re-joined) leaves a "down" entry of its old identity behind.
    for line in tb.run(tb.docker("node", "ls", "--format", "{{.ID}} {{.Status}}",
                                 host=MANAGER.docker_host)).stdout.splitlines():
        node_id, _, status = line.partition(" ")
        if status.strip().lower() == "down" and len(ready_nodes()) > len(NODES):
            tb.run(tb.docker("node", "rm", "--force", node_id, host=MANAGER.docker_host),
                   check=False)
    for n in NODES[1:]:
        ensure_node_ready(n)
    (tb.RUN / FORMED_MARKER).write_text("formed by testbed\n")


def ensure_standalone_swarm(n: Node) -> None:
    """``n`` manages a swarm of its own (an engine manager)."""
    info = _info(n)
    if info.get("LocalNodeState") == "active" and info.get("ControlAvailable"):
        return
    if info.get("LocalNodeState") == "active":
        tb.run(tb.docker("swarm", "leave", "--force", host=n.docker_host))
    tb.say(f"initialising a single-node swarm on {n.hostname} ({n.kind})")
    tb.run(tb.docker("swarm", "init", "--advertise-addr", n.addr, host=n.docker_host))


def _is_ready(n: Node) -> bool:
    return ready_nodes().get(n.hostname) == "ready"


def ensure_node_ready(n: Node) -> None:
    """Wait until the manager sees the worker Ready. Seen here: a worker engine restarted right
    after a stop registers, then never heartbeats ("heartbeat failure", its agent silent); a
    second restart cures it, so one is made before giving up."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if _is_ready(n):
            return
        time.sleep(0.5)
    tb.say(f"{n.hostname} is not Ready on the manager ({ready_nodes().get(n.hostname)}): "
           "restarting its engine")
    tb.stop(n.engine, grace=30)
    start_node_engine(n, wait_ready=False)
    tb.wait_for(f"{n.hostname} Ready on the manager", lambda: _is_ready(n), timeout=60,
                log=tb.LOGS / f"{n.engine}.log")


# ---------------------------------------------------------------- ssh

def ensure_ssh() -> None:
    """Host keys, known_hosts and an ssh config for the three nodes (client key: the bed's)."""
    lines = []
    config = []
    for n in (*NODES, *ENGINE_MANAGERS):
        key = tb.SSH_DIR / f"host_cluster_{n.name}"
        tb.keygen(key, f"testbed cluster {n.name} host")
        pub = " ".join(key.with_suffix(".pub").read_text().split()[:2])
        names = [n.addr] + ([MANAGER_PRIVATE_ADDR] if n is MANAGER else [])
        lines.append(f"{','.join(names)} {pub}")
        config += [f"Host {n.alias}", f"    HostName {n.addr}", "    Port 22", "    User root",
                   f"    IdentityFile {tb.SSH_DIR / 'client_key'}",
                   f"    UserKnownHostsFile {KNOWN_HOSTS}", ""]
    config += ["# The manager by its private address: only through the manager's bridge address.",
               "Host bed-cluster-private", f"    HostName {MANAGER_PRIVATE_ADDR}", "    Port 22",
               "    User root", f"    IdentityFile {tb.SSH_DIR / 'client_key'}",
               f"    UserKnownHostsFile {KNOWN_HOSTS}", f"    ProxyJump {MANAGER.alias}", ""]
    KNOWN_HOSTS.write_text("\n".join(lines) + "\n")
    SSH_CONFIG.write_text("\n".join(config))


def _ssh_works(addr: str) -> bool:
    return tb.ok(["ssh", "-F", "/dev/null", "-i", str(tb.SSH_DIR / "client_key"),
                  "-o", f"UserKnownHostsFile={KNOWN_HOSTS}", "-o", "StrictHostKeyChecking=yes",
                  "-o", "BatchMode=yes", "-o", "ConnectTimeout=3", f"root@{addr}", "true"])


def ensure_node_sshd(n: Node) -> None:
    state_dir = tb.BED / "state" / n.sshd
    state_dir.mkdir(parents=True, exist_ok=True)
    config = tb.write_sshd_config(n.sshd, n.addr, 22, tb.SSH_DIR / f"host_cluster_{n.name}",
                                  n.docker_host, state_dir)
    if n is MANAGER:
        with config.open("a") as handle:
            handle.write(f"ListenAddress {MANAGER_PRIVATE_ADDR}\n")
    name = f"sshd_{n.sshd}"
    if tb.read_pid(name) is not None and _ssh_works(n.addr):
        return
    tb.stop(name)
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    tb.spawn(name, ["unshare", "--uts", "sh", "-c", _NODE_SSHD_SCRIPT, name,
                    sshd, "-D", "-e", "-f", str(config)],
             env={**os.environ, "NODE_HOSTNAME": n.hostname}, netns=n.netns)
    tb.wait_for(f"sshd of {n.hostname}", lambda: _ssh_works(n.addr), timeout=20,
                log=tb.LOGS / f"{name}.log")


# ---------------------------------------------------------------- facts, up, down

def cluster_facts() -> dict[str, Any]:
    """What tests need: every node's address, engine socket, ssh alias; the ssh files."""
    return {
        "ssh_config": str(SSH_CONFIG),
        "known_hosts": str(KNOWN_HOSTS),
        "bridge": BRIDGE,
        "manager": MANAGER.name,
        "manager_private_addr": MANAGER_PRIVATE_ADDR,
        "private_alias": "bed-cluster-private",
        "nodes": {n.name: _node_facts(n) for n in NODES},
    }


def _node_facts(n: Node) -> dict[str, Any]:
    return {"host": n.addr, "port": 22, "user": "root", "hostname": n.hostname, "role": n.role,
            "kind": n.kind, "docker_host": n.docker_host, "netns": n.netns, "alias": n.alias,
            "state_dir": str(tb.BED / "state" / n.sshd),
            "key_file": str(tb.SSH_DIR / "client_key"), "known_hosts": str(KNOWN_HOSTS)}


def engine_facts() -> dict[str, Any]:
    """The engine managers by kind (the 20.10 kind is the bed's remote manager)."""
    return {"ssh_config": str(SSH_CONFIG),
            "managers": {n.kind: _node_facts(n) for n in ENGINE_MANAGERS}}


def write_facts() -> None:
    facts: dict[str, Any] = json.loads(tb.FACTS.read_text()) if tb.FACTS.exists() else {}
    if is_up():
        facts["cluster"] = cluster_facts()
    if engines_up_now():
        facts["engines"] = engine_facts()
    tmp = tb.FACTS.with_suffix(".cluster.tmp")
    tmp.write_text(json.dumps(facts, indent=2) + "\n")
    os.chmod(tmp, 0o600)
    tmp.replace(tb.FACTS)


def _bring_up(nodes: tuple[Node, ...], label: str, swarm: Any, marker: str) -> float:
    """Namespaces, engines (in parallel), swarm, images, ssh of ``nodes``; returns seconds."""
    started = time.monotonic()
    CLUSTER.mkdir(parents=True, exist_ok=True)
    if any(n.kind != "20.10" for n in nodes):  # fetched once, before the engines start
        tb.step("engine binaries", engines.ensure_trixie_engine)
    tb.step("cluster bridge", ensure_bridge)
    for n in nodes:
        ensure_node_netns(n)

    def start() -> None:
        with ThreadPoolExecutor(len(nodes)) as pool:
            list(pool.map(start_node_engine, nodes))

    tb.step(f"{label} engines", start)
    tb.step(f"{label} swarm", swarm)
    tb.step(f"{label} images", lambda: ensure_all_images(nodes))
    tb.step("cluster ssh", ensure_ssh)
    for n in nodes:
        tb.step(f"{label} sshd {n.name}", lambda n=n: ensure_node_sshd(n))
    (tb.RUN / marker).write_text(f"{label} up\n")
    write_facts()
    return time.monotonic() - started


def engines_up() -> float:
    """Bring the engine managers up (idempotent), each a single-node swarm of its kind; returns
    the seconds it took. Needs the bed's engine, images and ssh material."""
    def swarms() -> None:
        for n in ENGINE_MANAGERS:
            ensure_standalone_swarm(n)

    took = _bring_up(ENGINE_MANAGERS, "engine managers", swarms, ENGINES_MARKER)
    tb.say(f"engine managers up in {took:.1f}s ("
           f"{', '.join(f'{n.kind} on {n.addr}' for n in ENGINE_MANAGERS)})")
    return took


def engines_up_now() -> bool:
    return (tb.RUN / ENGINES_MARKER).exists() and _link_exists(BRIDGE)


def up() -> float:
    """Bring the cluster up (idempotent); returns the seconds it took. Needs the bed's engine,
    images and ssh material (call after those steps of `up`)."""
    took = _bring_up(NODES, "cluster", ensure_swarm, CLUSTER_MARKER)
    tb.say(f"cluster up in {took:.1f}s (manager {MANAGER.addr}, workers "
           f"{', '.join(f'{n.addr} ({n.kind})' for n in NODES[1:])})")
    return took


def down() -> None:
    """Stop and remove everything `up` and `engines_up` made: processes (pidfiles), namespaces,
    links, the iptables rule, the route, the directories. Safe to run when nothing is up."""
    every = (*NODES, *ENGINE_MANAGERS)
    for n in every:
        tb.stop(f"sshd_{n.sshd}", grace=5)
    for n in every:
        if tb.read_pid(n.engine) is not None:
            tb.stop(n.engine, grace=30)
    present = _netns_list()
    for n in every:
        if n.netns in present:
            tb.say(f"removing namespace {n.netns}")
            tb.run(["ip", "netns", "del", n.netns], check=False)
        tb.run(["ip", "link", "del", n.veth], check=False)
    if _link_exists(BRIDGE):
        tb.run(["ip", "link", "del", BRIDGE], check=False)
    while tb.ok(["iptables", "-C", *IPTABLES_RULE]):
        tb.run(["iptables", "-D", *IPTABLES_RULE])
    tb.run(["ip", "route", "del", "unreachable", PRIVATE_NET], check=False)
    for marker in (FORMED_MARKER, CLUSTER_MARKER, ENGINES_MARKER):
        (tb.RUN / marker).unlink(missing_ok=True)
    paths = [CLUSTER, CLUSTER_RUN, SSH_CONFIG, KNOWN_HOSTS,
             *(tb.BED / "state" / n.sshd for n in every)]
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    if tb.FACTS.exists():
        facts = json.loads(tb.FACTS.read_text())
        dropped = [facts.pop(key, None) for key in ("cluster", "engines")]
        if any(part is not None for part in dropped):
            tb.FACTS.write_text(json.dumps(facts, indent=2) + "\n")


def is_up() -> bool:
    """Whether the three-node cluster is up (the engine managers share its bridge)."""
    return (tb.RUN / CLUSTER_MARKER).exists() and _link_exists(BRIDGE)


def status_rows() -> list[tuple[str, bool]]:
    rows = [("cluster bridge", _link_exists(BRIDGE))]
    states = ready_nodes() if _engine_answers(MANAGER) else {}
    for n in NODES:
        rows.append((f"cluster {n.name} dockerd", tb.read_pid(n.engine) is not None))
        rows.append((f"cluster {n.name} ready", states.get(n.hostname) == "ready"))
    for n in ENGINE_MANAGERS:
        rows.append((f"engine manager {n.kind} ({n.name})", _engine_answers(n)))
    return rows


def leftovers() -> list[str]:
    """What of the cluster still exists (for tests of `down`)."""
    every = (*NODES, *ENGINE_MANAGERS)
    found = [f"process {n.engine}" for n in every if tb.read_pid(n.engine) is not None]
    found += [f"netns {n.netns}" for n in every if n.netns in _netns_list()]
    found += [f"link {name}" for name in (BRIDGE, *(n.veth for n in every))
              if _link_exists(name)]
    if tb.ok(["iptables", "-C", *IPTABLES_RULE]):
        found.append("iptables rule")
    mounts = Path("/proc/mounts").read_text()
    found += [f"mount {line.split()[1]}" for line in mounts.splitlines()
              if str(CLUSTER_RUN) in line or "/run/netns/mlc-" in line]
    return found

