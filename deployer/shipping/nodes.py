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
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml

from deployer.engine import objects
from deployer.errors import MlopsError
from deployer.swarm import NodeState

if TYPE_CHECKING:
    import docker

    from deployer.connectors.base import Connector
    from deployer.connectors.ssh import SSHTarget
    from deployer.events import Events
    from deployer.shipping.progress import LayerStats
    from deployer.shipping.registry import LocalRegistry

_CONSTRAINT = re.compile(r"^\s*(?P<key>[\w.\-]+)\s*(?P<op>==|!=)\s*(?P<value>.+?)\s*$")


@dataclass(frozen=True)
class NodeImages:
    """One node and the images (ref -> image id) its tasks may need."""

    node: NodeState
    images: Mapping[str, str]


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
    data = yaml.safe_load(stack_file) or {}
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
               image_ids: Mapping[str, str]) -> list[NodeImages]:
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


class NodeShipping:
    """Ships the images each node lacks, every node at once, from one local registry."""

    def __init__(self, local: docker.DockerClient, events: Events, connect: Connect,
                 registry: LocalRegistry | None) -> None:
        self.local = local
        self.events = events
        self.connect = connect
        self.registry = registry

    def run(self, plans: Sequence[NodeImages]) -> list[str]:
        """Ship; returns the nodes that could not be given their images (with the reason
        reported as a failed step)."""
        if not plans:
            return []
        pushed = self._push_once({(i, r) for p in plans for r, i in p.images.items()})
        with ThreadPoolExecutor(max(1, len(plans)), thread_name_prefix="ship-node") as pool:
            results = list(pool.map(lambda plan: self._node(plan, pushed), plans))
        return [p.node.hostname for p, ok in zip(plans, results, strict=True) if not ok]

    def _push_once(self, images: set[tuple[str, str]]) -> dict[tuple[str, str], LayerStats]:
        from deployer.shipping.push_queue import run_all
        from deployer.shipping.transfer import image_layers, push_local

        registry = self.registry
        if registry is None:
            return {}
        return run_all(
            lambda image_id, ref: push_local(self.local, self.events, image_id, ref, registry),
            lambda image_id: image_layers(self.local, image_id), sorted(images))

    def _node(self, plan: NodeImages, pushed: Mapping[tuple[str, str], Any]) -> bool:
        from deployer.shipping.transfer import Shipper

        name = plan.node.hostname
        try:
            conn = self.connect(plan.node)
        except MlopsError as exc:
            self.events.step(name, "failed", "ship-images", name, exc.message)
            return False
        try:
            client = conn.docker_client()
            missing = {ref: i for ref, i in plan.images.items()
                       if objects.image_id(client, ref, name) != i}
            if not missing:
                self.events.step(name, "ok", "ship-images", name,
                                 f"all {len(plan.images)} image(s) present")
                return True
            with Shipper(self.local, conn, self.events, registry=self.registry,
                         pushed=pushed, layers=self.registry is not None) as shipper:
                # Without the shared registry (not installed): whole images, as to a manager.
                for ref, image_id in sorted(missing.items()):
                    report = shipper.ship(image_id, ref)
                    self.events.step(name, "changed", "ship-image", ref, report.describe())
            return True
        except MlopsError as exc:
            self.events.step(name, "failed", "ship-images", name, exc.message)
            return False
        finally:
            conn.close()


def distribute(local: docker.DockerClient, manager: Connector, stack_file: str,
               image_ids: Mapping[str, str], events: Events) -> list[str]:
    """Give every other node of ``manager``'s swarm the images its tasks may need (only the
    layers it lacks); returns the nodes left without them. Nothing on a one-node swarm, or
    when the manager is not reached over SSH (then the workers cannot be either)."""
    from deployer.connectors import connect
    from deployer.engine.client import docker_errors
    from deployer.shipping.registry import LocalRegistry, RegistryUnavailable
    from deployer.swarm import read_nodes

    api = manager.docker_client().api
    with docker_errors(manager.host):
        nodes = read_nodes(api)
        self_id = str((api.info().get("Swarm") or {}).get("NodeID") or "")
    plans = plan_nodes(nodes, self_id, stack_file, image_ids)
    target = getattr(manager, "target", None)
    if not plans:
        return []
    if target is None:
        events.info(f"{len(plans)} other node(s) may run tasks, but {manager.host} is not "
                    "reached over SSH, so neither are they: give them the images yourself "
                    "(or use a registry: values registry:)")
        return [p.node.hostname for p in plans]
    registry: LocalRegistry | None = LocalRegistry()
    try:
        assert registry is not None
        registry.start()
    except RegistryUnavailable as exc:
        events.info(f"shipping whole images to the nodes: {exc.render()}")
        registry = None
    try:
        shipping = NodeShipping(local, events, lambda node: connect(node_target(target, node)),
                                registry)
        return shipping.run(plans)
    finally:
        if registry is not None:
            registry.stop()
