"""``build``: the service images, from ``services/<name>`` build contexts, on the local engine.

Each build is skipped when nothing it depends on changed: the image is tagged
``<repo>:<content hash>``, where the hash covers every file sent to the builder (after
``.dockerignore``), the extra CA certificates, the build arguments and the base image's ID. If that
tag exists, the service is ``ok`` without running the builder at all. The image the values name
(``mlops/<name>:latest``) is then pointed at it, so ``push`` pins and ships the new image ID.

The context is streamed to the engine as a tar we assemble ourselves: the extra CA certificates are
added under ``certs/`` in that stream (the Dockerfiles install ``certs/*.crt``), and the services'
shared library (``<contexts>/mlops_serving``, when there is one) under ``mlops_serving/``, so the
repository is never modified. The legacy builder runs (the API's ``/build`` without BuildKit).
"""

from __future__ import annotations

import collections
import hashlib
import io
import json
import os
import re
import stat
import tarfile
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from deployer import ship
from deployer.engine import objects
from deployer.engine.client import docker_errors
from deployer.errors import BuildError, ConfigError, DockerError

if TYPE_CHECKING:
    import docker

    from deployer.output import Reporter
    from deployer.values import StackValues

__all__ = [
    "BuildContext",
    "BuildOptions",
    "BuildResult",
    "BuildTarget",
    "Builder",
    "build_targets",
    "content_tag",
    "library_for",
    "load_ca_certs",
]

HOST = "local"
DOCKERFILE = "Dockerfile"
CERTS_DIR = "certs"
#: The services' shared library: a folder beside the service folders, sent under this name.
LIBRARY_DIR = "mlops_serving"
# What of the library is never sent (its own caches).
_LIBRARY_IGNORE = ("**/__pycache__", "**/*.pyc", "**/.mypy_cache", "**/.ruff_cache")
#: Labels on every built image: which service, and the content hash it was built from.
SERVICE_LABEL = "io.mlops.service"
CONTEXT_LABEL = "io.mlops.build.context"
#: Bumped when the hashed inputs change meaning, so old tags are not trusted across versions.
_HASH_SCHEME = b"mlops-build-context/1\0"
#: Lines of builder output kept for an error message.
_TAIL = 15
_STEP_RE = re.compile(r"^Step \d+/\d+ : ")
# The legacy builder wraps a step's stderr in colour codes.
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# Builder bookkeeping lines, left out of the error's "last output".
_NOISE = (" ---> ", "Removing intermediate container", "Successfully built", "Successfully tagged")
_PEM_MARK = b"-----BEGIN CERTIFICATE-----"


@dataclass(frozen=True)
class BuildOptions:
    """What ``deployer build`` was asked for, beyond the values."""

    base_image: str | None = None  # overrides values build.base_image
    ca_certs: tuple[Path, ...] = ()
    no_cache: bool = False
    context_dir: Path | None = None  # overrides resources.services_dir()


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


@dataclass(frozen=True)
class CaCert:
    """An extra CA certificate to install in the images: its name under ``certs/`` and PEM."""

    name: str
    data: bytes


@dataclass(frozen=True)
class BuildContext:
    """The files of a build context as they are sent to the builder.

    ``files`` are paths relative to ``root`` (files, directories and symlinks) that
    ``.dockerignore`` lets through; ``extra`` are generated files (the CA certificates) added
    under ``certs/``; ``library_files`` are the paths of the shared library (relative to
    ``library``) added under ``mlops_serving/``.
    """

    root: Path
    files: tuple[str, ...]
    extra: tuple[CaCert, ...] = ()
    library: Path | None = None
    library_files: tuple[str, ...] = ()

    @classmethod
    def scan(cls, root: Path, extra: Sequence[CaCert] = (),
             library: Path | None = None) -> BuildContext:
        """List what ``root`` sends, honouring its ``.dockerignore`` as the docker CLI does,
        plus the shared ``library`` folder (without its caches) when given."""
        patterns: list[str] = []
        ignore = root / ".dockerignore"
        if ignore.is_file():
            for line in ignore.read_text().splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    patterns.append(line)
        files = objects.context_files(str(root), patterns, DOCKERFILE)
        names = {f"{CERTS_DIR}/{c.name}" for c in extra}
        # A generated certificate replaces a context file of the same name; the library
        # replaces a folder of its name.
        kept = tuple(f for f in files if f not in names
                     and not (library is not None and _under(f, LIBRARY_DIR)))
        lib_files: tuple[str, ...] = ()
        if library is not None:
            lib_files = tuple(objects.context_files(str(library), list(_LIBRARY_IGNORE),
                                                    DOCKERFILE))
        return cls(root, kept, tuple(extra), library, lib_files)

    def entries(self) -> Iterator[tuple[str, Path]]:
        """(name in the tar, path on disk) of every file, directory and symlink sent."""
        for rel in self.files:
            yield rel, self.root / rel
        if self.library is not None:
            yield LIBRARY_DIR, self.library
            for rel in self.library_files:
                yield f"{LIBRARY_DIR}/{rel}", self.library / rel

    def digest(self, base_image_id: str, build_args: Mapping[str, str]) -> str:
        """SHA-256 of everything the image is built from (content, modes, links, args, base).

        Modification times are left out on purpose: a fresh checkout of the same tree has the
        same hash, so its images are not rebuilt.
        """
        h = hashlib.sha256(_HASH_SCHEME)
        for rel, path in self.entries():
            st = path.lstat()
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                entry = f"l\0{rel}\0{os.readlink(path)}"
            elif stat.S_ISDIR(st.st_mode):
                entry = f"d\0{rel}\0{mode:o}"
            elif stat.S_ISREG(st.st_mode):
                entry = f"f\0{rel}\0{mode:o}\0{_file_sha256(path)}"
            else:
                continue  # sockets, fifos: the tar skips them too
            h.update(entry.encode() + b"\n")
        for cert in self.extra:
            h.update(f"c\0{cert.name}\0".encode() + hashlib.sha256(cert.data).digest() + b"\n")
        h.update(json.dumps(dict(sorted(build_args.items()))).encode() + b"\n")
        h.update(base_image_id.encode())
        return h.hexdigest()

    def write_tar(self, fileobj: IO[bytes]) -> None:
        """The context as an uncompressed tar: the listed files, the library, a ``certs/``
        directory (always, so ``COPY certs/ ...`` works without certificates) and the generated
        certificates."""
        with tarfile.open(fileobj=fileobj, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for rel, path in self.entries():
                info = tar.gettarinfo(str(path), arcname=rel)
                if info is None:
                    continue
                if info.isfile():
                    with path.open("rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
            if CERTS_DIR not in self.files:
                info = tarfile.TarInfo(CERTS_DIR)
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                info.mtime = int(time.time())
                tar.addfile(info)
            for cert in self.extra:
                info = tarfile.TarInfo(f"{CERTS_DIR}/{cert.name}")
                info.size = len(cert.data)
                info.mode = 0o644
                info.mtime = int(time.time())
                tar.addfile(info, io.BytesIO(cert.data))
        fileobj.seek(0)


def library_for(context: Path) -> Path | None:
    """The shared library beside the build context ``context`` (``../mlops_serving``), if any."""
    library = context.parent / LIBRARY_DIR
    return library if library.is_dir() else None


def _under(rel: str, folder: str) -> bool:
    return rel == folder or rel.startswith(f"{folder}/")


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def content_tag(image: str, digest: str) -> str:
    """``<repo>:<first 12 hex of the content hash>`` for the values' image reference."""
    repo, _ = ship.split_ref(image)
    return f"{repo}:{digest[:12]}"


def load_ca_certs(paths: Iterable[Path]) -> tuple[CaCert, ...]:
    """Read ``--ca-cert`` files: each must be a readable PEM certificate. Names end in ``.crt``
    (``update-ca-certificates`` only reads those) and are made unique."""
    certs: list[CaCert] = []
    used: set[str] = set()
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"--ca-cert {path}: cannot read it ({exc.strerror or exc})",
                fix="pass a PEM certificate file, e.g. /usr/local/share/ca-certificates/NAME.crt",
            ) from exc
        if _PEM_MARK not in data:
            raise ConfigError(
                f"--ca-cert {path}: not a PEM certificate (no '{_PEM_MARK.decode()}' line)",
                fix="convert it with `openssl x509 -inform der -in FILE -out FILE.crt`, "
                "or pass the PEM file",
            )
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", path.name)
        stem = stem[: -len(".crt")] if stem.endswith(".crt") else stem
        name = f"{stem}.crt"
        n = 2
        while name in used:
            name = f"{stem}-{n}.crt"
            n += 1
        used.add(name)
        certs.append(CaCert(name, data))
    return tuple(certs)


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
        argv = ["docker", "build", "--build-arg", f"BASE_IMAGE={base}", "-t", ref, "-t", image,
                *(["--no-cache"] if self.opts.no_cache else []), str(target.context)]
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
        with tempfile.TemporaryFile(prefix="mlops-build-") as fileobj:
            context.write_tar(fileobj)
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
