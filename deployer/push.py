"""``push``: render -> compare with the deployed revision -> (ship images, create secrets and
configs, upload, ``docker stack deploy``, wait, prune, record) -> or just ``ok``.

The no-op path costs one remote command (``state.read_state``) and never calls
``docker stack deploy`` (a no-op deploy still bumps every service's version).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from deployer import __version__, facts, ship
from deployer.converge import ConvergeError, wait_converged
from deployer.engine import objects
from deployer.engine.client import docker_errors, step_cause
from deployer.errors import ConnectionLost, DeployError, MlopsError
from deployer.lock import DeployLock
from deployer.operations import (
    SECRET_KEY_LABEL,
    SECRET_STACK_LABEL,
    Desired,
    ImageRef,
    Plan,
    Step,
    inputs_unchanged,
    plan_push,
    spec_changes,
    unified_diff,
)
from deployer.options import GOOGLE_ENV, GOOGLE_KEY
from deployer.push_inputs import (
    MISSING_SECRET_PLACEHOLDER,
    Inputs,
    Prepared,
    PushOptions,
    prepare,
    resolve_inputs,
)
from deployer.rollback import redeploy, revision_argv
from deployer.state import (
    Revision,
    StackState,
    audit,
    now_iso,
    read_revision,
    read_state,
    read_state_quick,
    set_current,
    update_meta,
    who,
    write_revision,
)

if TYPE_CHECKING:
    import docker

    from deployer.connectors.base import Connector
    from deployer.events import Events
    from deployer.shipping import Shipper
    from deployer.shipping.estimate import Estimator
    from deployer.shipping.nodes import NodeSurvey
    from deployer.values import Registry, StackValues

class Pusher:
    """Runs one push against one host (connector), reporting through ``reporter``."""

    def __init__(
        self,
        conn: Connector,
        reporter: Events,
        options: PushOptions,
        *,
        local: docker.DockerClient | None = None,
    ) -> None:
        self.conn = conn
        self.host = conn.host
        self.out = reporter
        self.opts = options
        self.local = local
        self._shipper: Shipper | None = None
        self._estimator: Estimator | None = None
        self._registry: Registry | None = None
        self._pinned: list[str] = []
        self._survey: NodeSurvey | None = None

    # -- entry point ---------------------------------------------------------------------------

    def push(self, values: StackValues) -> Plan:
        """Push ``values``; returns the plan that was (or, with --check, would be) executed."""
        stack = values.stack.name
        inputs = resolve_inputs(values, self.conn.docker_client, self.local, self.host,
                                env_file=self.opts.env_file,
                                allow_missing=self.opts.allow_missing)
        if inputs.secret_values.get(GOOGLE_KEY) == MISSING_SECRET_PLACEHOLDER:
            self.out.info(f"{GOOGLE_ENV} is not set: {GOOGLE_KEY} is deployed blank, the "
                          "llm-connector answers 'Gemini API key not configured' until a push "
                          f"with {GOOGLE_ENV} set rotates it")
        if not self.opts.force:
            # On a connection that already read the state once (the dashboard, repeated
            # pushes): decide "unchanged" without starting any remote process.
            quick = read_state_quick(self.conn, stack, lambda: facts.service_versions(
                self.conn.docker_client(), stack, self.host))
            if quick is not None and inputs_unchanged(quick, stack, inputs.hash,
                                                      inputs.services):
                self.out.step(self.host, "ok", "push", stack,
                              f"revision {quick.current} unchanged")
                return Plan((), quick.current)
        state = facts.stack_state(self.conn, stack)
        if not self.opts.force and inputs_unchanged(state, stack, inputs.hash, inputs.services):
            self.out.step(self.host, "ok", "push", stack, f"revision {state.current} unchanged")
            return Plan((), state.current)
        inputs = self._publish(values, inputs)
        prepared = prepare(values, inputs)
        desired = prepared.desired
        plan = plan_push(desired, state, None, resolve_image=self.opts.resolve_image,
                         force=self.opts.force)
        if not plan.changed:
            if state.meta is not None and state.current is not None:
                # Same file from different inputs (e.g. a Compose-only value changed): remember
                # the inputs so the next check can skip rendering.
                update_meta(self.conn, state, state.current,
                            {**state.meta, "inputs_sha256": inputs.hash})
            self.out.step(self.host, "ok", "push", stack, f"revision {state.current} unchanged")
            return plan
        client = self.conn.docker_client()
        manager = facts.manager_facts(client, self.host, desired.images.values())
        plan = plan_push(desired, state, manager, resolve_image=self.opts.resolve_image,
                         force=self.opts.force)
        if self.opts.diff or self.opts.check:
            self._show_changes(state, desired)
        if self.opts.check:
            for step in plan.steps:
                self.out.step(self.host, "changed", step.kind, step.target, step.detail, step.argv)
                if step.kind == "ship-image":
                    self._ship_estimate(step.target, desired, client)
            return plan
        if self._registry is None and self.local is not None and plan.of_kind("stack-deploy"):
            from deployer.shipping.nodes import NodeSurvey

            # Which other nodes lack which image is found while the lock is taken and the
            # steps before the deploy run.
            self._survey = NodeSurvey(self.conn, desired.stack_file,
                                      {i.ref: objects.ImageIdentity(i.id, i.key)
                                       for i in desired.images.values()})
        lock: DeployLock | None = None
        try:
            lock = DeployLock(self.conn, state, break_lock=self.opts.break_lock,
                              read_state=True).acquire()
            if lock.stale:
                self.out.info(f"took over a stale lock of {lock.stale.describe()}")
                audit(self.conn, state, "break-lock", holder=lock.stale.holder,
                      since=lock.stale.since)
            # Re-read under the lock (by the lock's own process): another push may have
            # finished since the first read.
            state = lock.state or read_state(self.conn, stack, with_services=False)
            plan = plan_push(desired, state, manager, resolve_image=self.opts.resolve_image,
                             force=True, reason=plan.reason)
            self._execute(plan, prepared, state, client, lock)
        finally:
            self._end_shipping()
            survey, self._survey = self._survey, None
            if survey is not None:
                survey.close()
            if lock is not None:
                lock.release()
        return plan

    # -- --check / --diff ----------------------------------------------------------------------

    def _show_changes(self, state: StackState, desired: Desired) -> None:
        old = None
        if state.current is not None:
            revision = read_revision(self.conn, state, state.current)
            old = revision.stack_file if revision else None
        if self.opts.diff:
            text = unified_diff(old, desired.stack_file,
                                f"revision {state.current or 0}", "new")
            self.out.text(text or "(stack file unchanged)")
        if self.opts.check:
            for change in spec_changes(old, desired.stack_file):
                self.out.info(str(change))

    # -- execution -----------------------------------------------------------------------------

    def _execute(
        self, plan: Plan, prepared: Prepared, state: StackState, client: docker.DockerClient,
        lock: DeployLock,
    ) -> None:
        desired = prepared.desired
        assert plan.revision is not None
        revision = plan.revision
        meta: dict[str, Any] = {
            **desired.meta(), "revision": revision, "who": who(), "when": now_iso(),
            "deployer": __version__, "resolve_image": self.opts.resolve_image,
            "outcome": "deploying",
        }
        for step in plan.steps:
            if step.kind != "ship-image" and self._shipper is not None \
                    and not self._shipper.filling:
                self._end_shipping()  # ship steps come first: nothing stays up past them
            lock.check()
            try:
                self._step(step, plan, prepared, state, client, meta)
            except ConnectionLost:
                raise
            except MlopsError as exc:
                cause = step_cause(self.conn, exc, step.doing, step.lost_fix, step.rerun_note)
                if cause is not None:
                    raise cause from exc
                raise
            self.out.step(self.host, "changed", step.kind, step.target, step.detail, step.argv)
        # Images first shipped from a save are pushed into the local registry while the stack
        # converges (so the next change ships by layers): waited for here.
        self._end_shipping(wait=True)

    def _step(self, step: Step, plan: Plan, prepared: Prepared, state: StackState,
              client: docker.DockerClient, meta: dict[str, Any]) -> None:
        desired = prepared.desired
        revision = meta["revision"]
        if step.kind == "ship-image":
            self._ship(next(i for i in desired.images.values() if i.ref == step.target),
                       desired, plan)
        elif step.kind == "tag-image":
            repo, tag = ship.split_ref(step.target)
            with docker_errors(self.host):
                client.api.tag(step.argv[2], repo, tag)
        elif step.kind == "create-secret":
            self._create_secrets(client, plan, step, prepared)
        elif step.kind == "upload":
            self._create_configs(client, desired.stack, prepared)
            write_revision(self.conn, state, Revision(revision, desired.stack_file, meta))
        elif step.kind == "stack-deploy":
            if self._survey is not None:
                # The other nodes ship from the same local registry (its lock is one session's
                # at a time): the manager's session, and its registry fill, end first.
                self._end_shipping(wait=True)
            self._distribute()
            self._stack_deploy(list(step.argv))
        elif step.kind == "wait":
            try:
                self._wait(desired)
            except ConvergeError as exc:
                self.out.step(self.host, "failed", step.kind, step.target, str(exc.message),
                              step.argv)
                self._after_failure(exc, state, revision, meta)
                raise
        elif step.kind == "prune-secrets":
            self._prune(client, desired.stack, prepared)
        elif step.kind == "record":
            meta["outcome"] = "deployed"
            update_meta(self.conn, state, revision, meta)
            set_current(self.conn, state, revision)
            audit(self.conn, state, "push", revision=revision,
                  file_sha256=desired.file_hash, values_hash=desired.values_hash)

    def _ship(self, image: ImageRef, desired: Desired, plan: Plan) -> None:
        ref = image.ref
        if self.local is None:
            raise DeployError(f"{ref} is missing on {self.host} and no local engine has it")
        # Look the image up by its ID, not by the pinned tag: an image built and tagged by the
        # user (not by `deployer build`) has no `repo:<id>` tag until we create it here.
        if facts.image_id(self.local, image.id, "local") is None:
            raise DeployError(f"{ref} (image {image.id[:19]}) vanished from the local engine "
                              "during the push")
        from deployer.shipping import Shipper

        try:
            if self._shipper is None:
                self._shipper = Shipper(self.local, self.conn, self.out)
                # Every image of the plan is routed, and those shipping from the local registry
                # start going into it now: one is sent while the next is pushed.
                ids = {i.ref: i.id for i in desired.images.values()}
                self._shipper.prepare((ids[s.target], s.target)
                                      for s in plan.of_kind("ship-image"))
            shipped = self._shipper.ship(image.id, ref)
        except BaseException:
            self._end_shipping()
            raise
        self.out.info(f"{ref}: {shipped.describe()}")

    def _publish(self, values: StackValues, inputs: Inputs) -> Inputs:
        """Registry mode: push the images to the registry (only missing layers) and pin them by
        digest in the stack file; nodes pull them on deploy. Unchanged without a registry."""
        self._registry = values.registry
        if values.registry is None:
            return inputs
        if self.local is None:
            raise DeployError("registry mode pushes from the local engine, which is unreachable",
                              fix="run the deployer where the images are built")
        from deployer.shipping import registry_mode

        pinned = registry_mode.publish(
            self.local, values.registry,
            {s: (i.ref, i.id) for s, i in inputs.images.items()}, self.out,
            check=self.opts.check)
        images = {s: ImageRef(s, pinned[s], i.id, i.key) for s, i in inputs.images.items()}
        self._pinned = [ref for ref in pinned.values() if "@sha256:" in ref]
        return dataclasses.replace(inputs, images=images)

    def _distribute(self) -> None:
        """The cluster's other nodes get the images their tasks may need (registry mode: they
        pull from the registry themselves)."""
        survey, self._survey = self._survey, None
        if survey is None or self.local is None:
            return
        from deployer.shipping.nodes import distribute

        try:
            left = distribute(self.local, survey, self.out)
        finally:
            survey.close()
        if left:
            self.out.info(f"without the images: {', '.join(left)}; Swarm rejects tasks there "
                          "('No such image') and the wait names the node")

    def _stack_deploy(self, argv: list[str]) -> None:
        if self._registry is None:
            self.conn.run(argv)
            return
        from deployer.shipping import registry_mode

        registry_mode.prepull(self.conn.docker_client(), self._registry, self._pinned,
                              self.out, self.host)
        # The other nodes pull from the registry with the login passed through Swarm.
        with registry_mode.registry_auth(self.conn, self._registry) as prefix:
            self.conn.run([*prefix, *registry_mode.with_registry_auth(argv)])

    def _ship_estimate(self, ref: str, desired: Desired, client: docker.DockerClient) -> None:
        """--check: roughly how much shipping ``ref`` would move (layers the target lacks)."""
        if self.local is None:
            return
        from deployer.shipping.estimate import Estimator

        if self._estimator is None:
            self._estimator = Estimator(self.local, client, self.host)
        image_id = next(i.id for i in desired.images.values() if i.ref == ref)
        self.out.info(self._estimator.describe(image_id, ref))

    def _end_shipping(self, *, wait: bool = False) -> None:
        """Stop the shipping session's registry process, if one runs (``wait``: once its
        background pushes are done)."""
        shipper, self._shipper = self._shipper, None
        if shipper is not None:
            shipper.close(wait=wait)

    def _create_secrets(self, client: docker.DockerClient, plan: Plan, step: Step,
                        prepared: Prepared) -> None:
        """Every secret of the plan at its first step, side by side (an API round trip
        each). Through the Engine API on the SSH channel: the value is in no file and no argv,
        on either side (the CLI equivalent is `docker secret create NAME -` fed on stdin)."""
        steps = plan.of_kind("create-secret")
        stack = prepared.desired.stack
        keys = {s.name: b for b, s in prepared.desired.secrets.items()}
        objects.create_all(client, self.host, "secret", [] if step != steps[0] else [
            (each.target, prepared.secret_values[each.target].encode(),
             {SECRET_STACK_LABEL: stack, SECRET_KEY_LABEL: keys[each.target]})
            for each in steps])

    def _create_configs(self, client: docker.DockerClient, stack: str, prepared: Prepared) -> None:
        present = objects.names(client, self.host, "config")
        objects.create_all(client, self.host, "config", [
            (name, content.encode(), {SECRET_STACK_LABEL: stack})
            for name, content in prepared.configs.items() if name not in present])

    def _wait(self, desired: Desired) -> None:
        wait_converged(
            self.conn.docker_client().api,
            desired.stack,
            self.host,
            expected=desired.services(),
            timeout=self.opts.timeout,
            on_progress=lambda svc: self.out.progress(self.host, svc),
        )

    def _after_failure(
        self, exc: ConvergeError, state: StackState, revision: int, meta: dict[str, Any]
    ) -> None:
        failure = exc.failure
        meta["outcome"] = "failed"
        meta["failure"] = failure.describe() if failure else exc.message
        update_meta(self.conn, state, revision, meta)
        audit(self.conn, state, "push-failed", revision=revision, error=meta["failure"])
        if not self.opts.rollback or state.current is None:
            return
        previous = state.current
        # The same code path as `deployer rollback --to-revision N` (deployer.rollback).
        argv = revision_argv(state, previous, self.opts.resolve_image)
        try:
            previous_revision = read_revision(self.conn, state, previous)
            if previous_revision is None:
                raise ConvergeError(f"revision {previous} has no stack file on {self.host}",
                                    failure=None)
            redeploy(self.conn, state, previous_revision, argv, timeout=self.opts.timeout,
                     on_progress=lambda svc: self.out.progress(self.host, svc))
        except ConvergeError as again:
            self.out.step(self.host, "failed", "rollback", f"revision {previous}",
                          again.message, argv)
            audit(self.conn, state, "rollback-failed", revision=previous)
            return
        self.out.step(self.host, "changed", "rollback", f"revision {previous}",
                      f"revision {revision} failed", argv)
        audit(self.conn, state, "rollback", revision=previous, failed_revision=revision)
        exc.message += f"; rolled back to revision {previous}"
        exc.args = (exc.message,)

    def _prune(self, client: docker.DockerClient, stack: str, prepared: Prepared) -> None:
        # One still in use by a task being replaced stays: the next push prunes it.
        objects.prune(client, self.host, "secret", f"{SECRET_STACK_LABEL}={stack}",
                      keep=prepared.secret_values)
