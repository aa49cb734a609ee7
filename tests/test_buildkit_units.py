"""The BuildKit/legacy builder helpers (deployer.buildkit): pure units."""

from __future__ import annotations

from pathlib import Path

from deployer.buildkit import build_argv, legacy_dockerfile

DOCKERFILE = """ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN --mount=type=cache,target=/root/.cache/pip,sharing=locked \\
    sh /tmp/build/image-setup.sh /tmp/build
run --mount=type=cache,target=/a --mount=type=secret,id=x set -eu; echo two
RUN echo --mount=type=cache stays in an argument
"""


def test_the_legacy_builder_gets_the_runs_without_their_mounts() -> None:
    text = legacy_dockerfile(DOCKERFILE)
    assert "RUN \\\n    sh /tmp/build/image-setup.sh /tmp/build" in text
    assert "run set -eu; echo two" in text
    assert "RUN echo --mount=type=cache stays in an argument" in text
    assert text.count("--mount") == 1
    assert legacy_dockerfile(text) == text


def test_the_buildkit_argv_reads_the_context_from_stdin() -> None:
    argv = build_argv("mlops/x:abc", {"BASE_IMAGE": "b:1"}, {"io.mlops.service": "x"},
                      Path("/tmp/iid"), no_cache=True)
    assert argv[:3] == ["docker", "buildx", "build"] and argv[-1] == "-"
    assert argv[argv.index("--iidfile") + 1] == "/tmp/iid"
    assert ["--build-arg", "BASE_IMAGE=b:1"] == argv[argv.index("--build-arg"):][:2]
    assert ["--label", "io.mlops.service=x"] == argv[argv.index("--label"):][:2]
    assert "--no-cache" in argv and "-t" in argv
