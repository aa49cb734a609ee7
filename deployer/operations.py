"""Desired state vs facts -> a plan: the steps a push takes, or none when nothing changed.

Pure code: no I/O. ``--check`` prints the same plan a run executes; tests feed facts in and
assert steps out.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from deployer.lock import LEASE_SECONDS
from deployer.options import DEFAULT_RESOLVE_IMAGE
from deployer.state import StackState

StepKind = Literal[
    "ship-image", "tag-image", "create-secret", "upload", "stack-deploy", "wait",
    "prune-secrets", "record",
]

#: Label put on the secrets the deployer creates, naming their stack and logical secret.
SECRET_STACK_LABEL = "io.mlops.stack"
SECRET_KEY_LABEL = "io.mlops.secret"

def sha256(data: str | bytes) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def secret_version(value: str) -> str:
    """The short content hash naming a secret version (``google_api_key_<version>``).

    A one-way hash of a high-entropy key: safe to show and to store, and a changed value gets a
    new name so services really roll to it.
    """
    return sha256("mlops-secret\0" + value)[:12]


@dataclass(frozen=True)
class ImageRef:
    """A service's image: the pinned reference deployed, the image ID it names where it was
    found (the local engine, else the manager) and its content key (the same on every engine
    and image store: see ``engine.identity``)."""

    service: str
    ref: str
    id: str
    key: str


@dataclass(frozen=True)
class SecretRef:
    """A secret the stack needs: its logical key, its versioned Swarm name, and the version."""

    key: str
    name: str
    version: str


@dataclass(frozen=True)
class Desired:
    """What a push wants on the manager."""

    stack: str
    stack_file: str
    values_hash: str
    images: Mapping[str, ImageRef] = field(default_factory=dict)
    secrets: Mapping[str, SecretRef] = field(default_factory=dict)
    #: Hash of everything the file is rendered from (see ``push.inputs_hash``).
    inputs_hash: str = ""

    @property
    def file_hash(self) -> str:
        return sha256(self.stack_file)

    def services(self) -> list[str]:
        return sorted(_services_of(self.stack_file))

    def meta(self) -> dict[str, Any]:
        """The fields of a revision's meta.json that decide "unchanged" (no secret values)."""
        return {
            "stack": self.stack,
            "file_sha256": self.file_hash,
            "values_hash": self.values_hash,
            "inputs_sha256": self.inputs_hash,
            "images": {s: {"ref": i.ref, "id": i.id} for s, i in sorted(self.images.items())},
            "secrets": {k: {"name": s.name, "version": s.version}
                        for k, s in sorted(self.secrets.items())},
        }


@dataclass(frozen=True)
class ManagerFacts:
    """What the manager's engine has (read only when a change is to be made)."""

    #: Content key -> the manager's own ID of an image with that content (to tag it).
    images: Mapping[str, str] = field(default_factory=dict)
    #: The refs that already name an image of the content the stack wants.
    image_tags: frozenset[str] = frozenset()
    secrets: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # name -> labels


#: What each step is doing, for an error that interrupts it ("... while shipping image X").
_DOING: dict[str, str] = {
    "ship-image": "shipping image {}", "tag-image": "tagging image {}",
    "create-secret": "creating secret {}", "upload": "uploading the revision to {}",
    "stack-deploy": "deploying stack {}", "wait": "waiting for stack {} to converge",
    "prune-secrets": "pruning old secrets of {}", "record": "recording the revision of {}",
}
#: Steps after which the stack itself may have changed on the manager.
_DEPLOYING = ("stack-deploy", "wait", "prune-secrets", "record")


@dataclass(frozen=True)
class Step:
    """One thing a push does. ``argv`` is shown with ``-v`` (never holds a secret value)."""

    kind: StepKind
    target: str
    detail: str = ""
    argv: tuple[str, ...] = ()

    @property
    def doing(self) -> str:
        return _DOING.get(self.kind, self.kind + " {}").format(self.target)

    @property
    def rerun_note(self) -> str:
        """What a rerun does after this step was interrupted (the manager or its link lost)."""
        if self.kind in _DEPLOYING:
            return ("the stack may be mid-update there, and the rerun converges it (a lock the "
                    f"interrupted run left frees itself {LEASE_SECONDS} s after its last "
                    "heartbeat, or rerun with --break-lock)")
        return "nothing was deployed yet, the stack runs what it ran before"

    @property
    def lost_fix(self) -> str:
        """What to do when the connection to the manager died during this step."""
        return ("check the network path to the manager (`ssh HOST true`), then rerun: "
                + self.rerun_note)


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...]
    revision: int | None
    reason: str = ""

    @property
    def changed(self) -> bool:
        return bool(self.steps)

    def of_kind(self, kind: StepKind) -> list[Step]:
        return [s for s in self.steps if s.kind == kind]


def live_missing(state: StackState, stack: str, services: Iterable[str]) -> list[str]:
    """Services expected in ``stack`` that the manager does not run (empty if unknown)."""
    if state.live_services is None:
        return []
    live = {name.removeprefix(f"{stack}_") for name in state.live_services}
    return sorted(set(services) - live)


def inputs_unchanged(
    state: StackState, stack: str, inputs_hash: str, services: Iterable[str]
) -> bool:
    """The fast no-op test: the deployed revision was rendered from the very same inputs
    (values, secret versions, image IDs, templates, deployer version) and all its services run.
    Rendering is deterministic, so this needs no render at all."""
    meta = state.meta
    return bool(
        inputs_hash
        and meta is not None
        and state.current is not None
        and meta.get("outcome", "deployed") == "deployed"
        and meta.get("inputs_sha256") == inputs_hash
        and not live_missing(state, stack, services)
    )


def unchanged_reason(desired: Desired, state: StackState) -> str | None:
    """``None`` if the deployed revision is exactly ``desired`` and live; else why not."""
    meta = state.meta
    if state.current is None or meta is None:
        return "no deployed revision"
    if meta.get("outcome", "deployed") != "deployed":
        return f"revision {state.current} is marked {meta.get('outcome')}"
    want = desired.meta()
    for key, what in (
        ("file_sha256", "rendered stack file"),
        ("images", "image IDs"),
        ("secrets", "secrets"),
    ):
        if meta.get(key) != want[key]:
            return f"{what} changed"
    missing = live_missing(state, desired.stack, desired.services())
    if missing:
        return f"service(s) missing on the manager: {', '.join(missing)}"
    return None


def deploy_argv(stack: str, path: str, resolve_image: str = DEFAULT_RESOLVE_IMAGE) -> list[str]:
    """``docker stack deploy`` of a file on the manager (``--prune`` removes dropped services)."""
    return [
        "docker", "stack", "deploy", "--prune", "--detach=true", "--resolve-image", resolve_image,
        "--compose-file", path, stack,
    ]


def plan_push(
    desired: Desired,
    state: StackState,
    manager: ManagerFacts | None,
    *,
    resolve_image: str = DEFAULT_RESOLVE_IMAGE,
    force: bool = False,
    reason: str | None = None,
) -> Plan:
    """The steps from ``state`` (+ ``manager`` facts) to ``desired``; no steps if unchanged.

    ``manager`` may be None when the caller already knows the push is a no-op (it is only read
    for a change).
    """
    if reason is None and not force:
        reason = unchanged_reason(desired, state)
    if not force and reason is None:
        return Plan((), state.current, "")
    manager = manager or ManagerFacts()
    steps: list[Step] = []
    users: dict[str, list[str]] = {}
    for service, image in sorted(desired.images.items()):
        users.setdefault(image.ref, []).append(service)
    by_ref = {image.ref: image for image in desired.images.values()}
    for ref, services in sorted(users.items()):
        image = by_ref[ref]
        detail = f"{_short_id(image.id)} for {', '.join(services)}"
        if "@sha256:" in ref:
            continue  # registry mode: pinned by digest, every node pulls it on deploy
        if image.key not in manager.images:
            steps.append(Step("ship-image", ref, detail))
        elif ref not in manager.image_tags:
            # By the manager's own ID of that content (its store may call it otherwise).
            steps.append(Step("tag-image", ref, detail,
                              ("docker", "tag", manager.images[image.key], ref)))
    for key, secret in sorted(desired.secrets.items()):
        if secret.name not in manager.secrets:
            # Created through the Engine API over the connection: no argv, no file holds it.
            steps.append(Step("create-secret", secret.name, key))
    revision = state.next_revision
    path = f"{state.revision_dir(revision)}/stack.yml"
    steps.append(Step("upload", path, f"revision {revision}"))
    steps.append(Step("stack-deploy", desired.stack, reason or "forced",
                      tuple(deploy_argv(desired.stack, path, resolve_image))))
    steps.append(Step("wait", desired.stack, ", ".join(desired.services())))
    stale = sorted(
        name for name, labels in manager.secrets.items()
        if labels.get(SECRET_STACK_LABEL) == desired.stack
        and name not in {s.name for s in desired.secrets.values()}
    )
    if stale:
        steps.append(Step("prune-secrets", desired.stack, ", ".join(stale)))
    steps.append(Step("record", desired.stack, f"current -> {revision}"))
    return Plan(tuple(steps), revision, reason or "forced")


def _short_id(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


# ---------------------------------------------------------------------------------------------
# Diffs between the deployed revision and the new one


def _services_of(stack_file: str) -> dict[str, Any]:
    try:
        # The C loader when available: stack files are parsed on the no-op path.
        data = yaml.load(stack_file, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
    except yaml.YAMLError:
        return {}
    services = data.get("services") if isinstance(data, dict) else None
    return dict(services) if isinstance(services, dict) else {}


@dataclass(frozen=True)
class Change:
    """One field that a push creates, updates or removes."""

    action: Literal["create", "update", "remove"]
    service: str
    path: str = ""
    old: Any = None
    new: Any = None

    def __str__(self) -> str:
        if self.action == "create":
            return f"+ {self.service}: create service"
        if self.action == "remove":
            return f"- {self.service}: remove service"
        if self.old is None:
            return f"~ {self.service}.{self.path}: (unset) -> {_short(self.new)}"
        if self.new is None:
            return f"~ {self.service}.{self.path}: {_short(self.old)} -> (unset)"
        return f"~ {self.service}.{self.path}: {_short(self.old)} -> {_short(self.new)}"


def _short(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    text = text.removesuffix("\n...").removesuffix(" ...")
    return text if len(text) <= 80 else text[:77] + "..."


def _sort_key(item: Any) -> str:
    return yaml.safe_dump(item, sort_keys=True)


def _field_changes(old: Any, new: Any, path: str) -> Iterable[tuple[str, Any, Any]]:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            sub = f"{path}.{key}" if path else str(key)
            yield from _field_changes(old.get(key), new.get(key), sub)
        return
    if isinstance(old, list) and isinstance(new, list):
        # Lists whose order carries no meaning in Swarm (ports, env, secrets...) compare sorted.
        if sorted(old, key=_sort_key) == sorted(new, key=_sort_key):
            return
    if old != new:
        yield path, old, new


def spec_changes(old_file: str | None, new_file: str) -> list[Change]:
    """Services created / removed, and field-by-field updates, from ``old_file`` to ``new_file``."""
    old = _services_of(old_file or "")
    new = _services_of(new_file)
    changes: list[Change] = []
    for name in sorted(set(old) | set(new)):
        if name not in old:
            changes.append(Change("create", name))
        elif name not in new:
            changes.append(Change("remove", name))
        else:
            changes.extend(Change("update", name, p, a, b)
                           for p, a, b in _field_changes(old[name], new[name], ""))
    return changes


def unified_diff(old_file: str | None, new_file: str, old_name: str, new_name: str) -> str:
    """A unified diff of two stack files (empty if equal)."""
    lines = difflib.unified_diff(
        (old_file or "").splitlines(keepends=True),
        new_file.splitlines(keepends=True),
        fromfile=old_name,
        tofile=new_name,
    )
    return "".join(lines)


def services_in(stack_file: str) -> Sequence[str]:
    """Service names declared in a stack file."""
    return sorted(_services_of(stack_file))
