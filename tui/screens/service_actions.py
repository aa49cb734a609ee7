"""The main screen's service actions: scale (dialog and +/-), restart, roll back, remove, each
through the backend (the deployer's actions: lock, audit) in a worker, and their toasts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import on, work

from deployer.swarm import ServiceState
from tui.messages import (
    ServiceRemoved,
    ServiceRestarted,
    ServiceRolledBack,
    ServiceScaled,
)
from tui.screens.dialogs import ScaleDialog
from tui.screens.stack_screen import StackScreen

if TYPE_CHECKING:
    pass


class ServiceActions(StackScreen):
    """Actions on the selected service."""

    # -- actions ------------------------------------------------------------------------------

    def action_scale(self) -> None:
        """Ask for a replica count and scale the selected service."""
        svc = self._require_service()
        if svc is None:
            return
        if svc.mode != "replicated":
            self.notify(
                f"{svc.short_name} is {svc.mode}: only replicated services scale",
                severity="warning",
            )
            return

        def done(replicas: int | None) -> None:
            if replicas is not None:
                self._scale_targets[svc.id] = replicas
                self.scale_service(svc, replicas)

        self.app.push_screen(ScaleDialog(svc.short_name, svc.replicas_desired), done)

    def action_scale_by(self, delta: int) -> None:
        """Add or remove one replica of the selected service."""
        svc = self._require_service()
        if svc is None:
            return
        if svc.mode != "replicated":
            self.notify(
                f"{svc.short_name} is {svc.mode}: only replicated services scale",
                severity="warning",
            )
            return
        current = self._scale_targets.get(svc.id, svc.replicas_desired)
        target = max(current + delta, 0)
        if target == current:
            return
        self._scale_targets[svc.id] = target
        self.scale_service(svc, target)

    @work(thread=True, group="action", exit_on_error=False)
    def scale_service(self, svc: ServiceState, replicas: int) -> None:
        """Worker: scale a service."""
        self.backend.scale(svc, replicas)
        self.post_message(ServiceScaled(svc.short_name, replicas))

    def action_restart(self) -> None:
        """Restart every task of the selected service (forced update), after confirmation."""
        svc = self._require_service()
        if svc is not None:
            self._confirm(
                f"Restart every task of {svc.short_name}?",
                "Restart",
                lambda: self.restart_service(svc),
            )

    @work(thread=True, group="action", exit_on_error=False)
    def restart_service(self, svc: ServiceState) -> None:
        """Worker: force an update of a service."""
        self.backend.restart(svc)
        self.post_message(ServiceRestarted(svc.short_name))

    def action_rollback(self) -> None:
        """Roll the selected service back to its previous spec, after confirmation."""
        svc = self._require_service()
        if svc is not None:
            self._confirm(
                f"Roll {svc.short_name} back to its previous spec?",
                "Roll back",
                lambda: self.rollback_service(svc),
            )

    @work(thread=True, group="action", exit_on_error=False)
    def rollback_service(self, svc: ServiceState) -> None:
        """Worker: roll a service back."""
        self.backend.rollback(svc)
        self.post_message(ServiceRolledBack(svc.short_name))

    def action_remove(self) -> None:
        """Remove the selected service, after confirmation."""
        svc = self._require_service()
        if svc is not None:
            self._confirm(
                f"Remove service {svc.name}? Its tasks stop; volumes are kept.",
                "Remove",
                lambda: self.remove_service(svc),
            )

    @work(thread=True, group="action", exit_on_error=False)
    def remove_service(self, svc: ServiceState) -> None:
        """Worker: remove a service."""
        self.backend.remove(svc)
        self.post_message(ServiceRemoved(svc.short_name))

    @on(ServiceScaled)
    def _scaled(self, message: ServiceScaled) -> None:
        self.notify(f"{message.service} scaled to {message.replicas}", title="scale")
        self.action_refresh()

    @on(ServiceRestarted)
    def _restarted(self, message: ServiceRestarted) -> None:
        self.notify(f"{message.service}: restart requested", title="restart")
        self.action_refresh()

    @on(ServiceRolledBack)
    def _rolled_back(self, message: ServiceRolledBack) -> None:
        self.notify(f"{message.service}: rollback requested", title="rollback")
        self.action_refresh()

    @on(ServiceRemoved)
    def _removed(self, message: ServiceRemoved) -> None:
        self.notify(f"{message.service} removed", title="remove")
        self.action_refresh()

    def forget_scale_targets(self) -> None:
        """A scale failed: count from the engine's numbers again."""
        self._scale_targets.clear()
