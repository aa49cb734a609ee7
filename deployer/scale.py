"""``scale SERVICE=N...``: parse and check the request against the live stack, and say when the
result drifts from the values the stack was pushed with.

Pure code: the action (``deployer.actions.services.scale``) reads the snapshot and runs the argv.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import yaml

from deployer.errors import ConfigError
from deployer.swarm import SwarmSnapshot


@dataclass(frozen=True)
class ScaleChange:
    """One service's replica count, before and as requested."""

    service: str
    old: int
    new: int
    #: The Swarm service name (``<stack>_<service>``); the short name when not given.
    name: str = ""

    @property
    def changed(self) -> bool:
        return self.old != self.new


def parse_requests(items: Sequence[str]) -> dict[str, int]:
    """``["web=3", "api=0"]`` -> ``{"web": 3, "api": 0}``; ``ConfigError`` on anything else."""
    out: dict[str, int] = {}
    for item in items:
        name, sep, count = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ConfigError(f"scale: {item!r}: expected SERVICE=N",
                              fix="e.g. `deployer scale llm-connector=2`")
        try:
            replicas = int(count)
        except ValueError:
            raise ConfigError(f"scale: {item!r}: N must be a whole number, got {count!r}") from None
        if replicas < 0:
            raise ConfigError(f"scale: {item!r}: N must be 0 or more")
        if name in out and out[name] != replicas:
            raise ConfigError(f"scale: {name} is given twice ({out[name]} and {replicas})")
        out[name] = replicas
    if not out:
        raise ConfigError("scale: name at least one SERVICE=N")
    return out


def plan_scale(snapshot: SwarmSnapshot, requests: Mapping[str, int]) -> list[ScaleChange]:
    """Check every requested name against the stack's services; the changes, in request order.

    Accepts the short name (``llm-connector``) or the full one (``mlops_llm-connector``).
    """
    changes: list[ScaleChange] = []
    known = ", ".join(s.short_name for s in snapshot.services) or "(none: is it deployed?)"
    for name, replicas in requests.items():
        service = snapshot.service(name)
        if service is None:
            raise ConfigError(f"scale: stack {snapshot.stack} has no service {name!r}",
                              fix=f"its services: {known}")
        if service.mode != "replicated":
            raise ConfigError(
                f"scale: {service.short_name} is a {service.mode} service; only replicated "
                "services have a replica count"
            )
        # The desired count of the spec, not the running one: a service short of replicas is
        # still "at N" as far as scaling goes.
        changes.append(
            ScaleChange(service.short_name, service.replicas_desired, replicas, service.name)
        )
    return changes


def scale_argv(changes: Sequence[ScaleChange]) -> list[str]:
    """One ``docker service scale`` for every change (no wait: we poll with progress)."""
    return ["docker", "service", "scale", "--detach",
            *(f"{c.name or c.service}={c.new}" for c in changes)]


def declared_replicas(stack_file: str | None) -> dict[str, int]:
    """``deploy.replicas`` of each service in a rendered stack file (what the values said)."""
    data = yaml.safe_load(stack_file or "") or {}
    out: dict[str, int] = {}
    for name, spec in (data.get("services") or {}).items():
        deploy = (spec or {}).get("deploy") or {}
        if deploy.get("mode", "replicated") == "replicated":
            out[str(name)] = int(deploy.get("replicas", 1))
    return out


def drift_notes(declared: Mapping[str, int], changes: Sequence[ScaleChange]) -> list[str]:
    """What to tell the user when the new counts differ from the pushed values (or no longer do).

    A push that changes anything redeploys the values' counts; these say how to keep the new one.
    """
    notes: list[str] = []
    for change in changes:
        want = declared.get(change.service)
        if want is None:
            continue
        if change.new != want:
            notes.append(
                f"{change.service}: live replicas now differ from values ({change.new} vs "
                f"{want}): add --set services.{change.service}.replicas={change.new} to keep it "
                "on the next push"
            )
        elif change.old != want:
            notes.append(f"{change.service}: back to the {want} replica(s) of the values")
    return notes
