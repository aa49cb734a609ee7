"""How model values look on screen: colours by state, ages, ports. Pure functions."""

from __future__ import annotations

from datetime import timedelta

from rich.text import Text

from deployer.swarm import ServiceState, TaskState

HEALTH_STYLES = {
    "healthy": "green",
    "complete": "green",
    "idle": "dim",
    "starting": "yellow",
    "degraded": "yellow",
    "unhealthy": "bold red",
    "failing": "bold red",
    "failed": "bold red",
}

TASK_STATE_STYLES = {
    "running": "green",
    "complete": "green",
    "starting": "yellow",
    "preparing": "yellow",
    "pending": "yellow",
    "assigned": "yellow",
    "accepted": "yellow",
    "ready": "yellow",
    "new": "yellow",
    "shutdown": "dim",
    "failed": "bold red",
    "rejected": "bold red",
    "orphaned": "red",
}

UPDATE_STYLES = {
    "updating": "yellow",
    "rollback_started": "bold yellow",
    "paused": "bold red",
    "rollback_paused": "bold red",
    "rollback_completed": "magenta",
    "completed": "green",
}


def format_age(age: timedelta) -> str:
    """``42s``, ``5m``, ``3h``, ``2d``: the short ages ``docker service ps`` readers expect."""
    seconds = int(age.total_seconds())
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def replicas_cell(service: ServiceState) -> Text:
    """Replica counts coloured: green when all run, yellow when short, red when none run."""
    if service.is_job:
        style = HEALTH_STYLES.get(service.health, "")
    elif service.replicas_running >= service.replicas_desired:
        style = "green" if service.replicas_desired else "dim"
    elif service.replicas_running == 0:
        style = "bold red"
    else:
        style = "yellow"
    return Text(service.replicas_text, style=style)


def health_cell(service: ServiceState) -> Text:
    """The health word, coloured."""
    return Text(service.health, style=HEALTH_STYLES.get(service.health, ""))


def update_cell(service: ServiceState) -> Text:
    """The update/rollback state (blank when the service was never updated)."""
    if not service.update_state:
        return Text("")
    return Text(
        service.update_state.replace("_", " "), style=UPDATE_STYLES.get(service.update_state, "")
    )


def ports_cell(service: ServiceState) -> str:
    """Published ports, comma separated."""
    return ", ".join(str(p) for p in service.ports)


def task_state_cell(task: TaskState) -> Text:
    """``state`` or ``state → desired`` when Swarm wants something else, coloured by state."""
    text = Text(task.state, style=TASK_STATE_STYLES.get(task.state, ""))
    if task.desired_state != task.state and not (
        task.state == "running" and task.desired_state == "running"
    ):
        text.append(f" → {task.desired_state}", style="dim")
    return text
