"""BuildKit builds through the docker CLI's buildx plugin, and what the legacy builder needs.

The Engine API's ``/build`` (what the SDK speaks) is the legacy builder, deprecated; BuildKit
needs a session the SDK does not implement, so a build runs ``docker buildx build`` (argv, the
context tar we assemble on its stdin, the engine of the environment as for every local call).
BuildKit keeps ``RUN --mount=type=cache`` folders between builds: the Dockerfiles mount pip's
cache there, so a changed requirements file downloads only the wheels it adds.

Where the CLI has no buildx, the legacy builder runs (said once, with the fix) on a copy of each
Dockerfile without its ``--mount`` flags (it rejects them); the images' content-hash tags are the
same either way (they hash the inputs, not the builder).
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

#: A RUN instruction's ``--mount=...`` flags (BuildKit only).
_MOUNT_FLAG = re.compile(r"(?im)^(\s*RUN\s+)((?:--mount=\S+\s+)+)")
#: ``#12 [stage-0 3/7] RUN ...``: a step of BuildKit's plain progress output.
STEP = re.compile(r"^#\d+ \[[^\]]*\d+/\d+\] ")

LEGACY_FIX = ("install the docker CLI's buildx plugin (Debian/Ubuntu: the docker-buildx or "
              "docker-buildx-plugin package) to build with BuildKit")


@functools.cache
def buildx_version() -> str | None:
    """``docker buildx version``'s answer, or None when the CLI has no buildx (checked once)."""
    try:
        proc = subprocess.run(["docker", "buildx", "version"], capture_output=True, text=True,
                              timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else None


def legacy_dockerfile(text: str) -> str:
    """``text`` with its RUN instructions' ``--mount`` flags removed (the legacy builder's
    form: a cache mount is only a speed-up, the step does the same without it)."""
    return _MOUNT_FLAG.sub(r"\1", text)


def build_argv(ref: str, args: Mapping[str, str], labels: Mapping[str, str], iidfile: Path,
               *, no_cache: bool) -> list[str]:
    """``docker buildx build`` of the context tar on stdin, into the engine's image store."""
    argv = ["docker", "buildx", "build", "--progress=plain", "--iidfile", str(iidfile),
            "-t", ref]
    for key, value in sorted(args.items()):
        argv += ["--build-arg", f"{key}={value}"]
    for key, value in sorted(labels.items()):
        argv += ["--label", f"{key}={value}"]
    if no_cache:
        argv.append("--no-cache")
    return [*argv, "-"]


def run_build(argv: list[str], context: IO[bytes], on_line: Callable[[str], None]
              ) -> tuple[int, str | None]:
    """Run a ``build_argv`` build with ``context`` on its stdin; each output line goes to
    ``on_line``. Returns (exit code, image ID from the iidfile or None)."""
    iidfile = Path(argv[argv.index("--iidfile") + 1])
    proc = subprocess.Popen(argv, stdin=context, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, errors="replace",
                            env={**os.environ, "BUILDX_NO_DEFAULT_ATTESTATIONS": "1"})
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            on_line(line.rstrip("\n"))
    finally:
        code = proc.wait()
    try:
        image_id = iidfile.read_text().strip() or None
    except OSError:
        image_id = None
    return code, image_id


def iid_path() -> Path:
    """A fresh path for an ``--iidfile`` (the caller removes it)."""
    handle, name = tempfile.mkstemp(prefix="mlops-iid-")
    os.close(handle)
    Path(name).unlink()
    return Path(name)
