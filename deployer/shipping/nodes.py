"""Images on every node of a cluster that may run a task: Swarm does not move images, and a node
without one rejects its task with "No such image".

Which node needs which image follows the rendered stack file's placement (``node.role``,
``node.hostname``, ``node.id``, ``node.labels.*`` constraints; anything else is assumed to
match: shipping to one node too many costs bytes, one too few costs a failed deploy). Only ready,
active nodes count. Each worker is reached through the manager as an SSH jump host (the same
user, keys and host-key policy per hop, as ``ssh -J``), in parallel; one local registry serves
them all, so every layer is compressed once and each node pulls only the layers it lacks.
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml

from deployer.engine.objects import ImageIdentity, identity_of
from deployer.errors import DeployError, MlopsError
from deployer.swarm import NodeState

if TYPE_CHECKING:
    import docker

    from deployer.connectors.base import Connector
    from deployer.connectors.ssh_target import SSHTarget
    from deployer.events import Events
    from deployer.shipping.progress import LayerStats
    from deployer.shipping.registry import LocalRegistry

_CONSTRAINT = re.compile(r"^\s*(?P<key>[\w.\-]+)\s*(?P<op>==|!=)\s*(?P<value>.+?)\s*$")


@dataclass(frozen=True)
class NodeImages:
    """One node and the images (ref -> the local engine's identity of it) its tasks may need."""

    node: NodeState
    images: Mapping[str, ImageIdentity]


def matches(node: NodeState, constraint: str) -> bool:
    """Whether ``node`` satisfies one Swarm placement constraint (unknown attributes match)."""
    found = _CONSTRAINT.match(constraint)
    if found is None:
        return True
    key, op, value = found.group("key"), found.group("op"), found.group("value")
    if key == "node.role":
        actual: str | None = node.role
    elif key == "node.hostname":
        actual = node.hostname
    elif key == "node.id":
        actual = node.id
    elif key.startswith("node.labels."):
        actual = node.labels.get(key.removeprefix("node.labels."))
    else:
        return True  # engine labels, platform: not read here
    return (actual == value) == (op == "==")


def service_images(stack_file: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Service -> (image ref, placement constraints) of the services that run tasks."""
    # libyaml's loader: the pure-Python one takes 0.1 s on a six-service stack file.
    data = yaml.load(stack_file, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
    out: dict[str, tuple[str, tuple[str, ...]]] = {}
    for name, spec in (data.get("services") or {}).items():
        spec = spec or {}
        deploy = spec.get("deploy") or {}
        if deploy.get("mode", "replicated") == "replicated" and deploy.get("replicas", 1) == 0:
            continue
        constraints = tuple(str(c) for c in (deploy.get("placement") or {}).get("constraints")
                            or ())
        if spec.get("image"):
            out[str(name)] = (str(spec["image"]), constraints)
    return out


def plan_nodes(nodes: Sequence[NodeState], self_id: str, stack_file: str,
               image_ids: Mapping[str, ImageIdentity]) -> list[NodeImages]:
    """For each other ready, active node: the images of the services it may run (pure)."""
    wanted = service_images(stack_file)
    plans = []
    for node in nodes:
        if node.id == self_id or node.state != "ready" or node.availability != "active":
            continue
        images = {ref: image_ids[ref] for ref, constraints in wanted.values()
                  if ref in image_ids and all(matches(node, c) for c in constraints)}
        if images:
            plans.append(NodeImages(node, images))
    return plans


def node_target(manager: SSHTarget, node: NodeState) -> SSHTarget:
    """How to reach ``node``: its Swarm address through the manager as the last jump host."""
    via = dataclasses.replace(manager, jump=())
    return dataclasses.replace(manager, hostname=node.address, alias=node.hostname,
                               jump=(*manager.jump, via))


Connect = Callable[[NodeState], "Connector"]


@dataclass
class NodeCheck:
    """One node, its open connection and the images it lacks (or why it could not be asked)."""

    plan: NodeImages
    conn: Connector | None
    missing: dict[str, str]
    error: str | None = None


def images_on(conn: Connector, refs: Sequence[str]) -> dict[str, str]:
    """Which of ``refs`` name an image of which content key on ``conn``'s engine: one `docker
    image inspect` (an API client would first start `docker system dial-stdio` there and
    negotiate a version, twice the round trips for an answer most pushes only need to be "all
    there")."""
    result = conn.run(["docker", "image", "inspect", *refs], check=False)
    found: dict[str, str] = {}
    try:
        documents = json.loads(result.stdout or "[]")
    except json.JSONDecodeError:
        documents = []
    for info in documents if isinstance(documents, list) else ():
        there = identity_of(info)
        found.update({ref: there.key for ref in refs if ref in there.tags})
    if not found and result.returncode != 0 and "No such" not in result.stderr:
        raise DeployError(f"{conn.host}: docker image inspect failed: "
                          f"{result.stderr.strip() or result.returncode}")
    return found


def check_nodes(plans: Sequence[NodeImages], connect: Connect) -> list[NodeCheck]:
    """Connect to every planned node at once and ask its engine which images it lacks. The
    connections stay open for the shipping (``NodeShipping.deliver`` closes them)."""
    if not plans:
        return []

    def check(plan: NodeImages) -> NodeCheck:
        try:
            conn = connect(plan.node)
        except MlopsError as exc:
            return NodeCheck(plan, None, {}, exc.message)
        try:
            present = images_on(conn, sorted(plan.images))
            missing = {ref: i.id for ref, i in plan.images.items() if present.get(ref) != i.key}
        except MlopsError as exc:
            conn.close()
            return NodeCheck(plan, None, {}, exc.message)
        return NodeCheck(plan, conn, missing)

    with ThreadPoolExecutor(len(plans), thread_name_prefix="check-node") as pool:
        return list(pool.map(check, plans))


class NodeShipping:
    """Ships the images each node lacks, every node at once, from one local registry."""

    def __init__(self, local: docker.DockerClient, events: Events,
                 registry: LocalRegistry | None, connect: Connect | None = None) -> None:
        self.local = local
        self.events = events
        self.connect = connect
        self.registry = registry

    def run(self, plans: Sequence[NodeImages]) -> list[str]:
        """Check and ship; returns the nodes that could not be given their images (with the
        reason reported as a failed step)."""
        assert self.connect is not None, "run() connects to the nodes itself"
        return self.deliver(check_nodes(plans, self.connect))

    def deliver(self, checks: Sequence[NodeCheck]) -> list[str]:
        """Report each node, ship what the nodes lack, close their connections."""
        try:
            for check in checks:
                name = check.plan.node.hostname
                if check.error is not None:
                    self.events.step(name, "failed", "ship-images", name, check.error)
                elif not check.missing:
                    self.events.step(name, "ok", "ship-images", name,
                                     f"all {len(check.plan.images)} image(s) present")
            lacking = [c for c in checks if c.conn is not None and c.missing]
            if not lacking:
                return [c.plan.node.hostname for c in checks if c.error is not None]
            pushed = self._push_once({(i, r) for c in lacking for r, i in c.missing.items()})
            with ThreadPoolExecutor(len(lacking), thread_name_prefix="ship-node") as pool:
                results = dict(zip((c.plan.node.hostname for c in lacking),
                                   pool.map(lambda c: self._node(c, pushed), lacking),
                                   strict=True))
            return [c.plan.node.hostname for c in checks
                    if c.error is not None or not results.get(c.plan.node.hostname, True)]
        finally:
            close_checks(checks)

    def _push_once(self, images: set[tuple[str, str]]) -> dict[tuple[str, str], LayerStats]:
        from deployer.shipping.local_push import push_local
        from deployer.shipping.push_queue import run_all
        from deployer.shipping.target_layers import ordered_layers

        registry = self.registry
        if registry is None:
            return {}
        return run_all(
            lambda image_id, ref: push_local(self.local, self.events, image_id, ref, registry),
            lambda image_id: frozenset(ordered_layers(self.local, image_id)),
            sorted(images))

    def _node(self, check: NodeCheck, pushed: Mapping[tuple[str, str], Any]) -> bool:
        from deployer.shipping.transfer import Shipper

        name = check.plan.node.hostname
        assert check.conn is not None
        try:
            with Shipper(self.local, check.conn, self.events, registry=self.registry,
                         pushed=pushed, layers=self.registry is not None) as shipper:
                # Without the shared registry (not installed): whole images, as to a manager.
                for ref, image_id in sorted(check.missing.items()):
                    report = shipper.ship(image_id, ref)
                    self.events.step(name, "changed", "ship-image", ref, report.describe())
            return True
        except MlopsError as exc:
            self.events.step(name, "failed", "ship-images", name, exc.message)
            return False


def close_checks(checks: Sequence[NodeCheck]) -> None:
    for check in checks:
        conn, check.conn = check.conn, None
        if conn is not None:
            conn.close()


class NodeSurvey:
    """Which other node lacks which image, found in the background: started once the stack file
    is known, it connects to the nodes (through the manager's own connection) while the manager's
    secrets and configs are made, so a deploy whose nodes have everything waits for nothing."""

    def __init__(self, manager: Connector, stack_file: str,
                 image_ids: Mapping[str, ImageIdentity]) -> None:
        self.manager = manager
        self.plans: list[NodeImages] = []
        self._error: MlopsError | None = None
        self._checks: list[NodeCheck] = []
        self._thread = threading.Thread(target=self._run, args=(stack_file, image_ids),
                                        name="node-survey", daemon=True)
        self._thread.start()

    def _run(self, stack_file: str, image_ids: Mapping[str, ImageIdentity]) -> None:
        from deployer.connectors import connect
        from deployer.engine.client import docker_errors
        from deployer.swarm import read_nodes

        try:
            api = self.manager.docker_client().api
            with docker_errors(self.manager.host):
                nodes = read_nodes(api)
                self_id = str((api.info().get("Swarm") or {}).get("NodeID") or "")
            self.plans = plan_nodes(nodes, self_id, stack_file, image_ids)
            target = getattr(self.manager, "target", None)
            if target is not None:
                self._checks = check_nodes(
                    self.plans, lambda node: connect(node_target(target, node),
                                                     via=self.manager))
        except MlopsError as exc:
            self._error = exc

    def result(self) -> tuple[list[NodeImages], list[NodeCheck]]:
        """The plans and each node's check (raises what reading the nodes raised)."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self.plans, self._checks

    def close(self) -> None:
        """Close the connections the survey opened (after ``result``, or instead of it)."""
        self._thread.join()
        close_checks(self._checks)


def distribute(local: docker.DockerClient, survey: NodeSurvey, events: Events) -> list[str]:
    """Give every other node of the surveyed swarm the images its tasks may need (only the
    layers it lacks); returns the nodes left without them. Nothing on a one-node swarm, or
    when the manager is not reached over SSH (then the workers cannot be either)."""
    from deployer.shipping.registry import LocalRegistry, RegistryUnavailable

    plans, checks = survey.result()
    if not plans:
        return []
    manager = survey.manager
    if getattr(manager, "target", None) is None:
        events.info(f"{len(plans)} other node(s) may run tasks, but {manager.host} is not "
                    "reached over SSH, so neither are they: give them the images yourself "
                    "(or use a registry: values registry:)")
        return [p.node.hostname for p in plans]
    registry: LocalRegistry | None = None
    if any(c.missing for c in checks):
        # Only now: the registry process (and the pushes into it) cost nothing when every
        # node has its images already.
        try:
            registry = LocalRegistry()
            registry.start()
        except RegistryUnavailable as exc:
            events.info(f"shipping whole images to the nodes: {exc.render()}")
            registry = None
    try:
        return NodeShipping(local, events, registry).deliver(checks)
    finally:
        if registry is not None:
            registry.stop()
