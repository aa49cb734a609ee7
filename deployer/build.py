"""``build``: the service images, from ``services/<name>`` build contexts, on the local engine.

Each build is skipped when nothing it depends on changed: the image is tagged
``<repo>:<content hash>``, where the hash covers every file sent to the builder (after
``.dockerignore``), the extra CA certificates, the build arguments and the base image's ID. If that
tag exists, the service is ``ok`` without running the builder at all. The image the values name
(``mlops/<name>:latest``) is then pointed at it, so ``push`` pins and ships the new image ID.

The context is streamed to the engine as a tar we assemble ourselves: the extra CA certificates are
added under ``certs/`` in that stream (the Dockerfiles install ``certs/*.crt``), and the services'
shared library (``<contexts>/mlops_serving``, when there is one) under ``mlops_serving/``, so the
repository is never modified. BuildKit builds it where the docker CLI has buildx (``docker buildx
build``, the tar on its stdin: see ``deployer.buildkit``); elsewhere the legacy builder (the
API's ``/build``) does, on the Dockerfile without its cache mounts, and the output says so.
"""

from __future__ import annotations

import collections
import re
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deployer import buildkit, ship
from deployer.build_context import (
    CERTS_DIR,
    DOCKERFILE,
    BuildContext,
    content_tag,
    library_for,
    load_ca_certs,
)
from deployer.engine import objects
from deployer.engine.client import docker_errors
from deployer.errors import BuildError, ConfigError, DockerError

if TYPE_CHECKING:
    import docker

    from deployer.output import Reporter
    from deployer.values import StackValues

__all__ = ["BuildOptions", "BuildResult", "BuildTarget", "Builder", "build_targets"]

HOST = "local"
#: Labels on every built image: which service, and the content hash it was built from.
SERVICE_LABEL = "io.mlops.service"
CONTEXT_LABEL = "io.mlops.build.context"
#: Lines of builder output kept for an error message.
_TAIL = 15
_STEP_RE = re.compile(r"^Step \d+/\d+ : ")
# The legacy builder wraps a step's stderr in colour codes.
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# Builder bookkeeping lines, left out of the error's "last output".
_NOISE = (" ---> ", "Removing intermediate container", "Successfully built", "Successfully tagged")
_BUILDKIT_NOISE = ("#0 building with", "------", "Dockerfile:")


@dataclass(frozen=True)
class BuildOptions:
    """What ``deployer build`` was asked for, beyond the values."""

    base_image: str | None = None  # overrides values build.base_image
    ca_certs: tuple[Path, ...] = ()
    no_cache: bool = False
    context_dir: Path | None = None  # overrides resources.services_dir()
    builder: str = "auto"  # auto | buildkit | legacy


@dataclass(frozen=True)
class BuildTarget:
    """One service to build: its image reference and build context, or why it is skipped."""

    service: str
    image: str | None
    context: Path
    skip: str | None = None  # the reason, when not built


@dataclass(frozen=True)
class BuildResult:
    """The outcome of one service's build."""

    service: str
    status: str  # ok | changed | skipped | failed
    image: str | None = None  # the values' reference (e.g. mlops/x:latest)
    content_ref: str | None = None  # <repo>:<content hash>
    image_id: str | None = None
    detail: str = ""
















def build_targets(
    values: StackValues, services: Sequence[str], context_dir: Path
) -> list[BuildTarget]:
    """Which services to build (all built ones when ``services`` is empty), in stack order.

    A service is built when its values say ``build: true`` and ``<context_dir>/<name>/Dockerfile``
    exists; otherwise it is listed with the reason it is skipped. Unknown names are an error.
    """
    active = values.active_services()
    known = list(values.services.by_name())
    unknown = [s for s in services if s not in known]
    if unknown:
        raise ConfigError(
            f"unknown service(s): {', '.join(unknown)}",
            fix=f"name some of: {', '.join(known)}",
        )
    wanted = list(dict.fromkeys(services)) if services else list(active)
    targets: list[BuildTarget] = []
    for name in wanted:
        svc = values.services.by_name()[name]
        context = context_dir / name
        skip = None
        if name not in active:
            skip = "not part of the stack with these values"
        elif not svc.build:
            skip = f"values say build: false (image {svc.image or 'of the S3 backend'})"
        elif svc.image is None:
            skip = f"services.{name}.image is not set"
        elif not (context / DOCKERFILE).is_file():
            skip = f"no build context: {context / DOCKERFILE} does not exist"
        targets.append(BuildTarget(name, svc.image, context, skip))
    return targets


@dataclass
class _Progress:
    """Builder output of one service: the current step and the last lines, for errors."""

    step: str = ""
    tail: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=_TAIL))
    output: list[str] = field(default_factory=list)
    error: str = ""
    image_id: str | None = None


class Builder:
    """Builds service images on the local engine (``client``), reporting through ``reporter``."""

    def __init__(
        self, client: docker.DockerClient, reporter: Reporter, options: BuildOptions
    ) -> None:
        self.client = client
        self.api = client.api
        self.out = reporter
        self.opts = options
        self._certs = load_ca_certs(options.ca_certs)
        self._base_ids: dict[str, str] = {}
        self._buildkit: bool | None = None  # decided at the first build that runs

    def _use_buildkit(self) -> bool:
        if self._buildkit is None:
            if self.opts.builder == "legacy":
                self._buildkit = False
                return False
            version = buildkit.buildx_version()
            if version is None and self.opts.builder == "buildkit":
                raise ConfigError("--builder buildkit: the docker CLI has no buildx plugin "
                                  "(`docker buildx version` failed)", fix=buildkit.LEGACY_FIX)
            self._buildkit = version is not None
            if version is None:
                self.out.info("no docker buildx: building with the legacy builder (deprecated; "
                              "without cache mounts a changed requirements file downloads "
                              f"every wheel again). fix: {buildkit.LEGACY_FIX}")
            else:
                self.out.info(f"building with BuildKit ({version})", level=1)
        return self._buildkit

    def build(self, values: StackValues, services: Sequence[str] = ()) -> list[BuildResult]:
        """Build ``services`` (default: every built service). A failed service is reported and
        the others still build; check the results (or the reporter's exit code)."""
        from deployer.resources import services_dir

        context_dir = self.opts.context_dir or services_dir()
        if not context_dir.is_dir():
            raise ConfigError(f"build contexts folder {context_dir} does not exist",
                              fix="pass --context-dir DIR holding <service>/Dockerfile")
        base = self.opts.base_image or values.build.base_image
        results: list[BuildResult] = []
        for target in build_targets(values, services, context_dir):
            if target.skip is not None:
                self.out.step(HOST, "skipped", "build", target.service, target.skip)
                results.append(BuildResult(target.service, "skipped", detail=target.skip))
                continue
            try:
                results.append(self._build_one(target, base))
            except BuildError as exc:
                self.out.step(HOST, "failed", "build", target.service, exc.step or "")
                self.out.text(exc.render())
                results.append(BuildResult(target.service, "failed", target.image,
                                           detail=exc.message))
        return results

    # -- one service ---------------------------------------------------------------------------

    def _build_one(self, target: BuildTarget, base: str) -> BuildResult:
        assert target.image is not None
        name, image = target.service, target.image
        args = {"BASE_IMAGE": base}
        base_id = self._base_image_id(base, name)
        context = BuildContext.scan(target.context, self._certs, library_for(target.context))
        digest = context.digest(base_id, args)
        ref = content_tag(image, digest)
        argv = ["docker", "buildx", "build", "--build-arg", f"BASE_IMAGE={base}", "-t", ref,
                "-t", image, *(["--no-cache"] if self.opts.no_cache else []),
                str(target.context)]
        if self._certs and CERTS_DIR not in _dockerfile_text(target.context):
            self.out.info(f"{name}: its Dockerfile does not use {CERTS_DIR}/: the extra CA "
                          "certificates have no effect")
        current = self._image_id(image)
        existing = None if self.opts.no_cache else self._image_id(ref)
        if existing is not None:
            if current == existing:
                self.out.step(HOST, "ok", "build", name, f"{ref} up to date")
                return BuildResult(name, "ok", image, ref, existing, "up to date")
            self._tag(existing, image)
            self.out.step(HOST, "changed", "build", name, f"{image} -> {ref} (already built)",
                          argv)
            return BuildResult(name, "changed", image, ref, existing, "tagged")
        started = time.monotonic()
        image_id = self._run_build(name, context, ref, args, digest)
        self._tag(image_id, image)
        took = time.monotonic() - started
        if current == image_id:
            # Same image as before (e.g. only an unused file changed: all steps cached).
            self.out.step(HOST, "ok", "build", name, f"{ref} same image, {took:.1f} s", argv)
            return BuildResult(name, "ok", image, ref, image_id, "same image")
        self.out.step(HOST, "changed", "build", name, f"{ref}, {took:.1f} s", argv)
        return BuildResult(name, "changed", image, ref, image_id, "built")

    def _run_build(
        self, name: str, context: BuildContext, ref: str, args: Mapping[str, str], digest: str
    ) -> str:
        progress = _Progress()
        if self._use_buildkit():
            return self._run_buildkit(name, context, ref, args, digest, progress)
        with tempfile.TemporaryFile(prefix="mlops-build-") as fileobj:
            context.write_tar(fileobj, buildkit.legacy_dockerfile)
            try:
                with docker_errors(HOST):
                    stream = self.api.build(
                        fileobj=fileobj, custom_context=True, tag=ref, buildargs=dict(args),
                        nocache=self.opts.no_cache, rm=True, forcerm=True, pull=False,
                        decode=True, labels={SERVICE_LABEL: name, CONTEXT_LABEL: digest},
                    )
                    for chunk in stream:
                        self._on_chunk(name, chunk, progress)
            except DockerError as exc:  # the engine refused the build (e.g. a Dockerfile error)
                progress.error = exc.message
        if progress.error:
            raise _failure(name, context.root, progress)
        image_id = progress.image_id or self._image_id(ref)
        if image_id is None:
            progress.error = f"the builder reported success but {ref} does not exist"
            raise _failure(name, context.root, progress)
        return image_id

    def _run_buildkit(self, name: str, context: BuildContext, ref: str,
                      args: Mapping[str, str], digest: str, progress: _Progress) -> str:
        iidfile = buildkit.iid_path()
        argv = buildkit.build_argv(ref, args, {SERVICE_LABEL: name, CONTEXT_LABEL: digest},
                                   iidfile, no_cache=self.opts.no_cache)
        try:
            with tempfile.TemporaryFile(prefix="mlops-build-") as fileobj:
                context.write_tar(fileobj)
                code, image_id = buildkit.run_build(
                    argv, fileobj, lambda line: self._on_buildkit_line(name, line, progress))
        finally:
            iidfile.unlink(missing_ok=True)
        if code != 0 or image_id is None:
            progress.error = progress.error or f"docker buildx build exited {code}"
            raise _failure(name, context.root, progress)
        return image_id

    def _on_buildkit_line(self, name: str, raw: str, progress: _Progress) -> None:
        line = _ANSI_RE.sub("", raw).rstrip()
        if not line:
            return
        if line.startswith("ERROR:") or re.match(r"^#\d+ ERROR: ", line):
            progress.error = line.split("ERROR:", 1)[1].strip()
        elif not line.startswith(_BUILDKIT_NOISE):
            progress.tail.append(line)
        if buildkit.STEP.match(line):
            progress.step = line.partition(" ")[2]  # without BuildKit's "#N " job number
            self.out.info(f"{name}: {_shorten(progress.step)}")
        else:
            self.out.info(f"{name}: {line}", level=1)

    def _on_chunk(self, name: str, chunk: Mapping[str, Any], progress: _Progress) -> None:
        if "error" in chunk:
            detail = chunk.get("errorDetail") or {}
            progress.error = str(detail.get("message") or chunk["error"]).strip()
            return
        aux = chunk.get("aux")
        if isinstance(aux, dict) and aux.get("ID"):
            progress.image_id = str(aux["ID"])
        text = chunk.get("stream")
        if not isinstance(text, str):
            return
        for raw in text.splitlines():
            line = _ANSI_RE.sub("", raw).rstrip()
            if not line:
                continue
            if not line.startswith(_NOISE):
                progress.tail.append(line)
            if _STEP_RE.match(line):
                progress.step = line
                self.out.info(f"{name}: {_shorten(line)}")
            else:
                self.out.info(f"{name}: {line}", level=1)

    # -- engine helpers ------------------------------------------------------------------------

    def _image_id(self, ref: str) -> str | None:
        return objects.api_image_id(self.api, ref, HOST)

    def _tag(self, image_id: str, ref: str) -> None:
        repo, tag = ship.split_ref(ref)
        with docker_errors(HOST):
            self.api.tag(image_id, repo, tag, force=True)

    def _base_image_id(self, base: str, service: str) -> str:
        """The base image's ID, pulling it once if the engine lacks it."""
        if base in self._base_ids:
            return self._base_ids[base]
        ident = self._image_id(base)
        if ident is None:
            ident = self._pull(base, service)
        self._base_ids[base] = ident
        return ident

    def _pull(self, base: str, service: str) -> str:
        repo, tag = ship.split_ref(base)
        error = ""
        try:
            with docker_errors(HOST):
                for chunk in self.api.pull(repo, tag=tag, stream=True, decode=True):
                    if "error" in chunk:
                        error = str(chunk["error"])
        except DockerError as exc:
            error = exc.message
        ident = None if error else self._image_id(base)
        if ident is None:
            raise BuildError(
                f"{service}: base image {base} is not on the local engine and could not be "
                f"pulled: {error or 'not found after the pull'}",
                service=service,
                fix="pass --base-image IMAGE naming an image the engine has (`docker images`), "
                "set build.base_image in the values, or `docker load` the base image",
            )
        self.out.step(HOST, "changed", "pull", base, f"base image of {service}")
        return ident


def _dockerfile_text(context: Path) -> str:
    try:
        return (context / DOCKERFILE).read_text(errors="replace")
    except OSError:
        return ""


def _shorten(line: str, width: int = 110) -> str:
    line = " ".join(line.split())
    return line if len(line) <= width else line[: width - 3] + "..."


def _failure(name: str, root: Path, progress: _Progress) -> BuildError:
    """The error for a failed build: service, failing step, last output lines, and a fix."""
    tail = list(progress.tail)
    text = "\n".join([*tail, progress.error])
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        fix = ("the build's network goes through a TLS-intercepting proxy: pass its CA "
               "certificate with --ca-cert FILE (e.g. --ca-cert "
               "/usr/local/share/ca-certificates/NAME.crt)")
    elif "pull access denied" in text or "manifest unknown" in text or (
        "not found" in text and "FROM" in progress.step
    ):
        fix = "the base image is missing: pass --base-image IMAGE that the engine has"
    else:
        fix = (f"fix the failing step in {root / DOCKERFILE} (rerun with -v for the whole "
               f"output), then `deployer build {name}`")
    lines = [f"{name}: {progress.error or 'the build failed'}"]
    if progress.step:
        lines.append(f"  failing step: {progress.step}")
    if tail:
        lines.append("  last output:")
        lines.extend(f"    {line}" for line in tail[-10:])
    return BuildError("\n".join(lines), service=name, step=progress.step, fix=fix)


def iter_built(results: Iterable[BuildResult]) -> Iterator[BuildResult]:
    """The results that produced or confirmed an image (ok or changed)."""
    return (r for r in results if r.status in ("ok", "changed"))
