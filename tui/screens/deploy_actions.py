"""The main screen's deploy (and check) of the values it was started with, with progress on the
deploy screen, and the write-back of a drifting replica count to the values file."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import on, work
from textual.worker import WorkerState

from deployer.errors import MlopsError
from tui.deploy import DeployEvent, DeployRequest, DeployResult
from tui.drift import replica_drift
from tui.messages import (
    DeployFinished,
    DeployProgressed,
    ReplicasWritten,
)
from tui.screens.deploy import DeployScreen
from tui.screens.service_actions import ServiceActions
from tui.values_edit import (
    ReplicasEdit,
    apply_replicas_edit,
    plan_replicas_edit,
    set_overrides_replicas,
    target_file,
)

if TYPE_CHECKING:
    pass


class DeployActions(ServiceActions):
    """Deploying from the dashboard, and writing live counts back to the values."""

    def __init__(self) -> None:
        super().__init__()
        #: The last deploy run from here: what was asked, what it reported, how it ended.
        self.deploy_request: DeployRequest | None = None
        self.deploy_events: list[DeployEvent] = []
        self.deploy_result: DeployResult | None = None

    # -- deploy -------------------------------------------------------------------------------

    @property
    def deploying(self) -> bool:
        """A deploy (or check) started here is still running."""
        return any(
            w.group == "deploy" and w.state in (WorkerState.PENDING, WorkerState.RUNNING)
            for w in self.workers
        )

    def _deploy_request(self, *, check: bool) -> DeployRequest:
        app = self.mlops_app
        return DeployRequest(
            stack=app.stack,
            values_files=tuple(str(p) for p in app.values_files),
            sets=tuple(app.value_sets),
            check=check,
        )

    def action_deploy(self) -> None:
        """Push the stack with the deployer (the values the dashboard was started with), after
        confirmation; progress per service on the deploy screen."""
        if self.deploying:
            self._show_deploy()
            return
        request = self._deploy_request(check=False)
        files = ", ".join(request.values_files) or "the shipped defaults only"
        sets = f" and {len(request.sets)} --set" if request.sets else ""
        self._confirm(
            f"Deploy stack {request.stack or '?'} to {self.backend.host_label} from {files}"
            f"{sets}? Services whose spec changed are updated.",
            "Deploy",
            lambda: self._start_deploy(request),
        )

    def action_deploy_check(self) -> None:
        """Show what a deploy would do, changing nothing (the deployer's --check)."""
        if self.deploying:
            self._show_deploy()
            return
        self._start_deploy(self._deploy_request(check=True))

    def _start_deploy(self, request: DeployRequest) -> None:
        self.deploy_request = request
        self.deploy_events = []
        self.deploy_result = None
        self._show_deploy()
        self.deploy_stack(request)

    def _show_deploy(self) -> None:
        if self.deploy_request is None or isinstance(self.app.screen, DeployScreen):
            return
        self.app.push_screen(
            DeployScreen(
                self.deploy_request,
                self.backend.host_label,
                lambda: (self.deploy_events, self.deploy_result),
            )
        )

    def _sync_deploy_screen(self) -> None:
        for screen in self.app.screen_stack:
            if isinstance(screen, DeployScreen) and screen.is_mounted:
                screen.sync()

    @work(thread=True, exclusive=True, group="deploy", exit_on_error=False)
    def deploy_stack(self, request: DeployRequest) -> None:
        """Worker: the deployer's push (or check); every report becomes a message."""
        result = self.backend.deploy(request, lambda e: self.post_message(DeployProgressed(e)))
        self.post_message(DeployFinished(result))

    @on(DeployProgressed)
    def _deploy_progressed(self, message: DeployProgressed) -> None:
        self.deploy_events.append(message.event)
        self._sync_deploy_screen()

    @on(DeployFinished)
    def _deploy_finished(self, message: DeployFinished) -> None:
        result = message.result
        self.deploy_result = result
        self._sync_deploy_screen()
        title = f"deploy check: {result.outcome}" if result.check else f"deploy: {result.outcome}"
        severity = {"ok": "information", "changed": "information", "failed": "error"}[
            result.outcome
        ]
        self.notify(result.summary(), title=title, severity=severity,  # type: ignore[arg-type]
                    timeout=10 if result.outcome == "failed" else 6)
        self.action_refresh()

    # -- drift write-back ---------------------------------------------------------------------

    def action_write_replicas(self) -> None:
        """Write the selected service's live replica count to the values file (-f), after
        confirmation, when it differs from what the values declare."""
        svc = self._require_service()
        if svc is None:
            return
        app = self.mlops_app
        if not app.values_files:
            self.notify(
                "the dashboard was started without -f: there is no values file to write to "
                "(restart with -f VALUES.yaml)",
                title="write replicas",
                severity="error",
            )
            return
        declared = app.declared_replicas or {}
        if svc.short_name not in declared:
            self.notify(f"{svc.short_name} is not a service of the values files",
                        title="write replicas", severity="warning")
            return
        if svc.short_name not in replica_drift([svc], declared):
            self.notify(
                f"{svc.short_name}: the live count ({svc.replicas_desired}) already matches "
                "the values",
                title="write replicas",
            )
            return
        override = set_overrides_replicas(app.value_sets, svc.short_name)
        if override is not None:
            self.notify(
                f"--set {override} fixes the count: a file edit would not change it "
                "(restart without that --set)",
                title="write replicas",
                severity="error",
            )
            return
        try:
            edit = plan_replicas_edit(
                target_file(app.values_files, svc.short_name),
                svc.short_name,
                svc.replicas_desired,
            )
        except MlopsError as exc:
            self.notify(exc.render(), title="write replicas", severity="error")
            return
        self._confirm(
            f"Write the live count to the values file?\n{edit.describe()}\n"
            "(only that value changes; comments and layout are kept)",
            "Write",
            lambda: self.write_replicas(edit),
        )

    @work(thread=True, exclusive=True, group="values", exit_on_error=False)
    def write_replicas(self, edit: ReplicasEdit) -> None:
        """Worker: write the edit and load the values again (restored if they do not load)."""
        app = self.mlops_app
        declared = apply_replicas_edit(edit, app.values_files, app.value_sets)
        self.post_message(ReplicasWritten(edit, declared))

    @on(ReplicasWritten)
    def _replicas_written(self, message: ReplicasWritten) -> None:
        self.mlops_app.declared_replicas = message.declared
        self.notify(f"wrote {message.edit.describe()}", title="write replicas")
        self._render_services()
