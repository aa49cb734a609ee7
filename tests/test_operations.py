"""The push plan from facts (pure: no engine, no manager): facts in, steps out."""

from __future__ import annotations

from typing import Any

import yaml

from deployer.operations import (
    SECRET_KEY_LABEL,
    SECRET_STACK_LABEL,
    Desired,
    ImageRef,
    ManagerFacts,
    SecretRef,
    plan_push,
    spec_changes,
)
from deployer.state import StackState

STACK = "dp3-ops"
IMAGE_V1 = ImageRef("api", "mlops/api:aaaaaaaaaaaa", "sha256:" + "a" * 64, "content:" + "1" * 64)
IMAGE_V2 = ImageRef("api", "mlops/api:bbbbbbbbbbbb", "sha256:" + "b" * 64, "content:" + "2" * 64)
KEY_V1 = SecretRef("google_api_key", "google_api_key_111111111111", "111111111111")
KEY_V2 = SecretRef("google_api_key", "google_api_key_222222222222", "222222222222")


def _file(services: dict[str, dict[str, Any]]) -> str:
    return yaml.safe_dump({"version": "3.9", "services": services}, sort_keys=True)


def _desired(
    image: ImageRef = IMAGE_V1, key: SecretRef = KEY_V1, services: tuple[str, ...] = ("api", "web")
) -> Desired:
    specs = {name: {"image": image.ref, "secrets": [key.key]} for name in services}
    return Desired(STACK, _file(specs), "values-hash", dict.fromkeys(services, image),
                   {key.key: key}, "inputs")


def _state(deployed: Desired | None, live: tuple[str, ...] | None = None) -> StackState:
    if deployed is None:
        return StackState(STACK, "/state", None, (), None, None, ())
    meta = {**deployed.meta(), "outcome": "deployed"}
    names = live if live is not None else tuple(f"{STACK}_{s}" for s in deployed.services())
    return StackState(STACK, "/state", 1, (1,), meta, None, names)


def _facts(*images: ImageRef, secrets: tuple[SecretRef, ...] = ()) -> ManagerFacts:
    return ManagerFacts(
        images={i.key: i.id for i in images},
        image_tags=frozenset(i.ref for i in images),
        secrets={s.name: {SECRET_STACK_LABEL: STACK, SECRET_KEY_LABEL: s.key} for s in secrets},
    )


def kinds(plan: Any) -> list[str]:
    return [step.kind for step in plan.steps]


def test_first_deploy_ships_creates_uploads_deploys_waits_records() -> None:
    plan = plan_push(_desired(), _state(None), _facts())
    assert kinds(plan) == ["ship-image", "create-secret", "upload", "stack-deploy", "wait",
                           "record"]
    assert plan.revision == 1 and plan.reason == "no deployed revision"
    ship = plan.of_kind("ship-image")[0]
    assert ship.target == IMAGE_V1.ref and "api, web" in ship.detail
    assert plan.of_kind("create-secret")[0].target == KEY_V1.name
    deploy = plan.of_kind("stack-deploy")[0]
    assert deploy.argv[:3] == ("docker", "stack", "deploy") and "--prune" in deploy.argv
    assert deploy.argv[-1] == STACK
    assert "/state/dp3-ops/revisions/1/stack.yml" in deploy.argv
    # No secret value anywhere in the plan: only names and versions.
    assert all("111111111111" not in " ".join(s.argv) for s in plan.steps)


def test_image_already_on_manager_is_not_shipped() -> None:
    plan = plan_push(_desired(), _state(None), _facts(IMAGE_V1, secrets=(KEY_V1,)))
    assert kinds(plan) == ["upload", "stack-deploy", "wait", "record"]


def test_unchanged_is_a_no_op() -> None:
    desired = _desired()
    plan = plan_push(desired, _state(desired), _facts(IMAGE_V1, secrets=(KEY_V1,)))
    assert not plan.changed and plan.steps == () and plan.revision == 1


def test_unchanged_file_but_a_service_missing_live_redeploys() -> None:
    desired = _desired()
    plan = plan_push(desired, _state(desired, live=(f"{STACK}_api",)),
                     _facts(IMAGE_V1, secrets=(KEY_V1,)))
    assert plan.changed and "web" in plan.reason
    assert plan.revision == 2


def test_image_changed_tags_or_ships_and_redeploys() -> None:
    old = _desired()
    new = _desired(image=IMAGE_V2)
    # The manager has the new image's content under another tag: only a tag is needed.
    # Its ID there is the manager's own (a containerd-store engine names an image by its
    # manifest digest): the tag is made by that ID, the comparison is by content.
    facts = ManagerFacts(images={IMAGE_V1.key: IMAGE_V1.id, IMAGE_V2.key: "sha256:" + "c" * 64},
                         image_tags=frozenset({IMAGE_V1.ref}),
                         secrets={KEY_V1.name: {SECRET_STACK_LABEL: STACK}})
    plan = plan_push(new, _state(old), facts)
    assert kinds(plan) == ["tag-image", "upload", "stack-deploy", "wait", "record"]
    assert plan.reason == "rendered stack file changed"
    assert plan.of_kind("tag-image")[0].target == IMAGE_V2.ref
    assert plan.of_kind("tag-image")[0].argv == ("docker", "tag", "sha256:" + "c" * 64,
                                                 IMAGE_V2.ref)
    # The same ID as the local one but other content (another image): not taken for it.
    facts = ManagerFacts(images={IMAGE_V1.key: IMAGE_V1.id}, image_tags=frozenset({IMAGE_V1.ref}),
                         secrets={KEY_V1.name: {SECRET_STACK_LABEL: STACK}})
    assert plan_push(new, _state(old), facts).of_kind("ship-image")[0].target == IMAGE_V2.ref
    # Not there at all: shipped.
    plan = plan_push(new, _state(old), _facts(IMAGE_V1, secrets=(KEY_V1,)))
    assert plan.of_kind("ship-image")[0].target == IMAGE_V2.ref
    changes = [str(c) for c in spec_changes(old.stack_file, new.stack_file)]
    assert f"~ api.image: {IMAGE_V1.ref} -> {IMAGE_V2.ref}" in changes


def test_secret_rotated_creates_the_new_version_and_prunes_the_old() -> None:
    old = _desired()
    new = _desired(key=KEY_V2)
    plan = plan_push(new, _state(old), _facts(IMAGE_V1, secrets=(KEY_V1,)))
    assert kinds(plan) == ["create-secret", "upload", "stack-deploy", "wait", "prune-secrets",
                           "record"]
    assert plan.of_kind("create-secret")[0].target == KEY_V2.name
    assert plan.of_kind("prune-secrets")[0].detail == KEY_V1.name
    # Pruned only after the wait: a failed deploy can still roll back onto the old secret.
    assert kinds(plan).index("prune-secrets") > kinds(plan).index("wait")


def test_other_stacks_secrets_are_never_pruned() -> None:
    facts = _facts(IMAGE_V1, secrets=(KEY_V1,))
    facts = ManagerFacts(facts.images, facts.image_tags,
                         {**facts.secrets, "other_key_1": {SECRET_STACK_LABEL: "someone-else"}})
    plan = plan_push(_desired(key=KEY_V2), _state(_desired()), facts)
    assert "other_key_1" not in plan.of_kind("prune-secrets")[0].detail


def test_service_removed_deploys_with_prune_and_lists_the_removal() -> None:
    old = _desired(services=("api", "web"))
    new = _desired(services=("api",))
    plan = plan_push(new, _state(old), _facts(IMAGE_V1, secrets=(KEY_V1,)))
    assert kinds(plan) == ["upload", "stack-deploy", "wait", "record"]
    assert "--prune" in plan.of_kind("stack-deploy")[0].argv
    assert plan.of_kind("wait")[0].detail == "api"
    assert [str(c) for c in spec_changes(old.stack_file, new.stack_file)] == [
        "- web: remove service"
    ]


def test_forced_push_of_unchanged_state_plans_a_new_revision() -> None:
    desired = _desired()
    plan = plan_push(desired, _state(desired), _facts(IMAGE_V1, secrets=(KEY_V1,)), force=True)
    assert plan.changed and plan.revision == 2 and plan.reason == "forced"
