"""`deployer ship-cache`: the local shipping registry (a real docker-registry process, real
pushes from the bed's engine) keeps each repository's newest images on prune and frees the
layers only pruned images used; a pruned image still ships."""

from __future__ import annotations

import io
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from deployer.cli import main
from deployer.engine.client import local_client
from deployer.output import Reporter
from deployer.shipping.local_push import push_local
from deployer.shipping.registry import DIR_ENV, LocalRegistry
from deployer.shipping.registry_gc import disk_usage, list_images

pytestmark = [pytest.mark.e2e]

LAYER_MB = 4  # random bytes: they do not compress, so each image adds about this much


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "ship-registry"
    monkeypatch.setenv(DIR_ENV, str(directory))
    return directory


@pytest.fixture
def built(bed: dict[str, Any], tmp_path: Path) -> Iterator[list[tuple[str, str]]]:
    """(ref, image id) of images built here (the stand-in plus random bytes), removed after."""
    images: list[tuple[str, str]] = []
    yield images
    api = docker.APIClient(base_url=bed["docker_host"])
    for ref, _ in images:
        try:
            api.remove_image(ref)
        except docker.errors.APIError:
            pass
    api.close()


def build(bed: dict[str, Any], tmp: Path, ref: str) -> tuple[str, str]:
    ctx = tmp / uuid.uuid4().hex[:8]
    ctx.mkdir()
    (ctx / "blob").write_bytes(os.urandom(LAYER_MB * 1_000_000))
    (ctx / "Dockerfile").write_text(f"FROM {bed['standin_image']}\nCOPY blob /opt/blob\n")
    subprocess.run(["docker", "-H", bed["docker_host"], "build", "-q", "-t", ref, str(ctx)],
                   check=True, capture_output=True, env={**os.environ, "DOCKER_BUILDKIT": "0"})
    api = docker.APIClient(base_url=bed["docker_host"])
    try:
        return ref, str(api.inspect_image(ref)["Id"])
    finally:
        api.close()


def push_all(images: list[tuple[str, str]]) -> list[int]:
    """Push each into the cache's registry; the layers each push moved."""
    local = local_client()
    registry = LocalRegistry()
    registry.start()
    try:
        events = Reporter(stream=io.StringIO())
        return [len(push_local(local, events, image_id, ref, registry).moved)
                for ref, image_id in images]
    finally:
        registry.stop()
        local.close()


def tags() -> dict[str, set[str]]:
    registry = LocalRegistry()
    registry.start()
    try:
        found: dict[str, set[str]] = {}
        for image in list_images(registry):
            found.setdefault(image.repository, set()).add(image.tag)
        return found
    finally:
        registry.stop()


def test_prune_keeps_the_newest_per_repository_and_frees_the_rest(
    bed: dict[str, Any], cache: Path, built: list[tuple[str, str]], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    repo, other = f"dp-cache-{uuid.uuid4().hex[:6]}/app", f"dp-cache-{uuid.uuid4().hex[:6]}/db"
    for ref in (f"{repo}:one", f"{repo}:two", f"{repo}:three", f"{other}:only"):
        built.append(build(bed, tmp_path, ref))
    push_all(built)
    assert tags() == {repo: {"one", "two", "three"}, other: {"only"}}

    assert main(["ship-cache"]) == 0
    assert "4 image(s) in 2 repositories" in capsys.readouterr().out

    before = disk_usage(cache / "data")
    assert main(["ship-cache", "prune", "--keep", "1", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"would delete {repo}:one" in out and f"would delete {repo}:two" in out, out
    assert disk_usage(cache / "data") == before and len(tags()[repo]) == 3

    assert main(["ship-cache", "prune", "--keep", "1"]) == 0
    out = capsys.readouterr().out
    assert "kept 2 image(s), deleted 2" in out, out
    assert tags() == {repo: {"three"}, other: {"only"}}
    freed = before - disk_usage(cache / "data")
    # The two pruned images' own layers went; the stand-in base, shared with kept ones, stayed.
    assert 2 * LAYER_MB * 900_000 < freed < 3 * LAYER_MB * 1_000_000, (before, freed)
    assert list((cache / "data").rglob("data"))  # blobs of the kept images remain
    # A pruned image still ships: its own layer is pushed again, the base found in place.
    assert push_all([built[0]]) == [1]
    assert tags()[repo] == {"one", "three"}


def test_keep_below_one_is_refused_before_anything_is_touched(
    cache: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["ship-cache", "prune", "--keep", "0"]) != 0
    err = capsys.readouterr().err
    assert "--keep must be at least 1, not 0" in err, err
    assert not (cache / "data").exists()


def test_prune_while_a_run_ships_from_the_same_folder_says_so(
    cache: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    shipping = LocalRegistry()  # another run's session: it holds the folder's lock
    cache.mkdir(parents=True)
    shipping.lock()
    try:
        assert main(["ship-cache", "prune"]) != 0
        err = capsys.readouterr().err
        assert f"another run is shipping images from {cache}" in err, err
        assert "wait for it to finish" in err, err
    finally:
        shipping.unlock()
