"""Values -> the text of docker-compose.yml, swarm-stack.yml and .env.example, validated.

Pure: nothing here writes anything except :func:`write_files`, and rendering reads only the
templates. Same values (and the same ``images`` / ``secret_versions``) give the same bytes: no
timestamps, sorted environment maps, fixed service order.

Secrets in Swarm (the value never appears in a rendered file): every secret is an *external*
Swarm secret named ``<base>_<version>`` (see :func:`secret_name`), created by the deployer over
stdin before ``docker stack deploy``. Services mount it at ``/run/secrets/<base>`` so the path is
stable across rotations, and get ``<VAR>_FILE=/run/secrets/<base>`` in their environment (the
``_FILE`` convention of the official postgres and MinIO images; our service images read it too).
Without ``secret_versions`` the version is :data:`UNSET_VERSION` ("unset"): such a file only
deploys if secrets of exactly those names exist, so the deployer always passes real versions.
Configs (the bucket-init script) are external too, named ``<base>_<sha256(content)[:12]>``; the
deployer creates them from :func:`swarm_configs`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import jinja2

from deployer.errors import RenderError
from deployer.render.checks import _check_env_file, _check_stack_file
from deployer.render.context import _check_arguments, _context
from deployer.render.targets import _TEMPLATES, FILENAMES, TARGETS, RenderedFile, Target
from deployer.render.templating import _environment
from deployer.values import (
    StackValues,
)


def render(
    values: StackValues,
    target: Target,
    *,
    secret_versions: Mapping[str, str] | None = None,
    images: Mapping[str, str] | None = None,
    build_root: str | None = None,
    docker_check: bool = True,
) -> RenderedFile:
    """Render and validate one target.

    ``images`` maps a service/job name to the image reference to use instead of the values'
    (the deployer pins content-hash tags). ``secret_versions`` maps a secret base name (see
    :func:`swarm_secret_bases`) to its content version. ``build_root`` is where the Compose
    build contexts ``<root>/<service>`` are, relative to the written Compose file
    (``build.context_root`` in the values wins; default ``services``). ``docker_check`` runs
    ``docker stack config`` on Swarm output when a docker CLI is on PATH.

    Raises RenderError when an argument is invalid or the output fails validation.
    """
    if target not in TARGETS:
        raise RenderError(f"unknown target {target!r}; expected one of {', '.join(TARGETS)}")
    images = dict(images or {})
    versions = dict(secret_versions or {})
    _check_arguments(values, images, versions)
    context = _context(values, target, images, versions, build_root)
    try:
        text = _environment().get_template(_TEMPLATES[target]).render(context)
    except jinja2.UndefinedError as exc:
        raise RenderError(
            f"{_TEMPLATES[target]}: {exc.message}", fix="a template refers to a missing value"
        ) from None
    filename = FILENAMES[target]
    if target == "env":
        _check_env_file(filename, text)
    else:
        _check_stack_file(values, target, filename, text, docker_check=docker_check)
    return RenderedFile(target=target, filename=filename, text=text)


def render_all(
    values: StackValues,
    *,
    secret_versions: Mapping[str, str] | None = None,
    images: Mapping[str, str] | None = None,
    build_root: str | None = None,
    docker_check: bool = True,
) -> dict[Target, RenderedFile]:
    """Render and validate every target (nothing is returned unless all pass)."""
    return {
        target: render(
            values, target, secret_versions=secret_versions, images=images,
            build_root=build_root, docker_check=docker_check,
        )
        for target in TARGETS
    }


def write_files(files: Iterable[RenderedFile], out_dir: Path) -> list[Path]:
    """Write already-validated files into ``out_dir`` atomically (temp file + rename).

    Each file is complete or absent, never partial; existing files are replaced only if all
    temp files could be written. Returns the written paths.
    """
    files = list(files)
    staged: list[tuple[Path, Path]] = []
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for f in files:
            fd, tmp_name = tempfile.mkstemp(prefix=f".{f.filename}.", suffix=".tmp", dir=out_dir)
            staged.append((Path(tmp_name), out_dir / f.filename))
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
                handle.write(f.text)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp_name, 0o644)
    except OSError as exc:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise RenderError(f"cannot write into {out_dir}: {exc.strerror}") from None
    for tmp, final in staged:
        os.replace(tmp, final)
    return [final for _, final in staged]
