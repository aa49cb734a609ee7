"""A local registry that stops answering ends the layer route instead of hanging the push: the
registry (a real docker-registry process) is frozen with SIGSTOP just as the archive of the
image's layers starts towards bed-remote; after the (shortened) stall limit the shipper gives
the route up, says why, ships the whole image with docker save | docker load instead, and leaves
no temporary tag or registry process behind."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from deployer.connectors import connect
from deployer.engine.client import local_client
from deployer.inventory import adhoc_host
from deployer.output import Reporter
from deployer.shipping import Shipper, transfer
from deployer.shipping.registry import DIR_ENV

pytestmark = [pytest.mark.e2e]

STALL = 5.0


class _Watch(io.StringIO):
    """The shipper's output; freezes the registry when the layers' archive starts."""

    def __init__(self, registry_pidfile: Path) -> None:
        super().__init__()
        self.pidfile = registry_pidfile
        self.frozen: int | None = None

    def write(self, text: str) -> int:
        if "$ docker load  # on " in text and self.frozen is None:
            self.frozen = int(self.pidfile.read_text())
            os.kill(self.frozen, signal.SIGSTOP)
            # Thawed once the stall limit has passed (so the stop the shipper then sends it
            # is handled at once rather than after its SIGKILL grace).
            threading.Timer(STALL + 1.5, os.kill, (self.frozen, signal.SIGCONT)).start()
        return super().write(text)


@pytest.fixture
def image(bed: dict[str, Any], tmp_path: Path) -> Iterator[tuple[str, str]]:
    ref = f"dp-stall/app:{uuid.uuid4().hex[:8]}"
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "blob").write_bytes(os.urandom(8_000_000))
    (ctx / "Dockerfile").write_text(f"FROM {bed['standin_image']}\nCOPY blob /opt/blob\n")
    subprocess.run(["docker", "-H", bed["docker_host"], "build", "-q", "-t", ref, str(ctx)],
                   check=True, capture_output=True, env={**os.environ, "DOCKER_BUILDKIT": "0"})
    api = docker.APIClient(base_url=bed["docker_host"])
    image_id = str(api.inspect_image(ref)["Id"])
    yield ref, image_id
    remote = docker.APIClient(base_url=bed["managers"]["remote"]["docker_host"])
    for client in (api, remote):
        try:
            client.remove_image(image_id, force=True)
        except docker.errors.APIError:
            pass
        client.close()


def test_a_stalled_registry_is_given_up_and_the_image_ships_whole(
    bed: dict[str, Any], image: tuple[str, str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ref, image_id = image
    registry = tmp_path / "registry"
    monkeypatch.setenv(DIR_ENV, str(registry))
    monkeypatch.setattr(transfer, "STALL_SECONDS", STALL)
    watch = _Watch(registry / "registry.pid")
    local = local_client()
    try:
        with connect(adhoc_host("bed-remote", ssh_config=bed["ssh_config"]).ssh) as conn, \
                Shipper(local, conn, Reporter(verbose=1, stream=watch)) as shipper:
            report = shipper.ship(image_id, ref)
    finally:
        local.close()
    out = watch.getvalue()
    assert watch.frozen is not None, out
    assert report.method == "save-load", out
    assert "the local registry did not serve" in report.reason, report
    assert "waited up to 5 s" in report.reason or "after 5 s" in report.reason, report
    assert "shipping whole images" in out, out
    remote = docker.APIClient(base_url=bed["managers"]["remote"]["docker_host"])
    try:
        assert remote.inspect_image(ref)["Id"] == image_id
        temp = [t for i in docker.APIClient(base_url=bed["docker_host"]).images()
                for t in i.get("RepoTags") or () if t.startswith("127.0.0.1:") and "dp-stall/" in t]
        assert temp == []
    finally:
        remote.close()
    assert not (registry / "registry.pid").exists()
    with pytest.raises(ProcessLookupError):
        os.kill(watch.frozen, 0)
