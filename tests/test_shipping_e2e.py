"""Layer-level image shipping on the test bed: the local engine -> the namespace manager over
real SSH, through a real registry process, as docker load archives of the layers the manager
lacks. Assertions are on bytes (the namespace link's counter and the archive's), never on
time."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml

from deployer.cli import main
from deployer.connectors import connect
from deployer.connectors.ssh import SSHTarget
from deployer.engine.client import local_client
from deployer.inventory import adhoc_host
from deployer.output import Reporter
from deployer.shipping import Shipper
from deployer.shipping.registry import DIR_ENV

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent
#: Kept between test runs like a user's registry dir: the stand-in's layers are pushed once.
REGISTRY_DIR = REPO / ".testbed" / "ship-registry"
NETNS, NS_IF = "mlopsbed", "mlb1"
REPO_PREFIX = "dp-ship"


def link_rx() -> int:
    """Bytes received by the namespace manager's end of its link (everything sent to it)."""
    out = subprocess.run(["ip", "-n", NETNS, "-s", "-j", "link", "show", NS_IF],
                         capture_output=True, text=True, check=True).stdout
    return int(json.loads(out)[0]["stats64"]["rx"]["bytes"])


def build_extra(tmp: Path, ref: str, content: str) -> str:
    """The bed's stand-in image plus one tiny layer (a code-only change); returns its ID."""
    ctx = tmp / f"ctx-{uuid.uuid4().hex[:6]}"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM mlops-standin:latest\nCOPY app.txt /opt/app.txt\n")
    (ctx / "app.txt").write_text(content)
    # The legacy builder: BuildKit would look the stand-in up in a registry (none is reachable).
    subprocess.run(["docker", "build", "-q", "-t", ref, str(ctx)], check=True,
                   capture_output=True, env={**os.environ, "DOCKER_BUILDKIT": "0"})
    return str(docker.APIClient().inspect_image(ref)["Id"])


def build(ctx: Path, ref: str) -> None:
    subprocess.run(["docker", "build", "-q", "-t", ref, str(ctx)], check=True,
                   capture_output=True, env={**os.environ, "DOCKER_BUILDKIT": "0"})


def registry_processes() -> list[int]:
    """PIDs of registry processes serving our test registry dir."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"docker-registry" in cmd and str(REGISTRY_DIR).encode() in cmd:
            pids.append(int(proc.name))
    return pids


@pytest.fixture(scope="module")
def remote(bed: dict[str, Any]) -> dict[str, Any]:
    manager: dict[str, Any] = bed["managers"]["remote"]
    return manager


@pytest.fixture(autouse=True)
def registry_dir(monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(DIR_ENV, str(REGISTRY_DIR))
    return REGISTRY_DIR


@pytest.fixture(scope="module")
def cleanup_images(remote: dict[str, Any]) -> Iterator[list[str]]:
    """Refs the tests create: removed from both engines afterwards."""
    refs: list[str] = []
    yield refs
    for host in ("unix:///var/run/docker.sock", remote["docker_host"]):
        api = docker.APIClient(base_url=host)
        for image in api.images():
            for tag in image.get("RepoTags") or ():
                if tag.split("/", 1)[0] == REPO_PREFIX or f"/{REPO_PREFIX}/" in tag:
                    try:
                        api.remove_image(tag, noprune=False)
                    except docker.errors.APIError:
                        pass


def ship(ssh_config: str, image_id: str, ref: str, out: list[str]) -> Any:
    host = adhoc_host("bed-remote", ssh_config=ssh_config)
    local = local_client()
    events = Reporter(verbose=1, stream=_Lines(out))
    try:
        with connect(host.ssh) as conn, Shipper(local, conn, events) as shipper:
            return shipper.ship(image_id, ref)
    finally:
        local.close()


class _Lines(io.StringIO):
    """A text stream that also appends what is written to ``out`` (read while still open)."""

    def __init__(self, out: list[str]) -> None:
        super().__init__()
        self.out = out

    def write(self, text: str) -> int:
        self.out.append(text)
        return super().write(text)


def test_only_missing_layers_cross_the_wire(
    bed: dict[str, Any], remote: dict[str, Any], tmp_path: Path, cleanup_images: list[str]
) -> None:
    api = docker.APIClient(base_url=remote["docker_host"])
    tag = uuid.uuid4().hex[:8]
    first = f"{REPO_PREFIX}/app:{tag}-a"
    first_id = build_extra(tmp_path, first, f"version 1 {tag}\n")
    out: list[str] = []
    report = ship(bed["ssh_config"], first_id, first, out)
    assert report.method == "layers", "".join(out)
    assert api.inspect_image(first)["Id"] == first_id
    # The temporary 127.0.0.1:PORT/... tag of the push into the local registry is gone.
    assert not [t for i in docker.APIClient().images() for t in (i.get("RepoTags") or ())
                if t.startswith("127.0.0.1:") and f"/{REPO_PREFIX}/" in t]

    # (1) The same image again: no layer moves, only the manifest (a few kB) crosses.
    before = link_rx()
    again = ship(bed["ssh_config"], first_id, first, out)
    wire = link_rx() - before
    assert again.method == "layers" and again.moved == 0, "".join(out)
    assert again.bytes < 16_000, again
    assert wire < 200_000, wire  # the SSH session itself included

    # (2) A code-only change (one new small layer on a ~270 MB image): only that layer moves.
    second = f"{REPO_PREFIX}/app:{tag}-b"
    second_id = build_extra(tmp_path, second, f"version 2 {tag}\n")
    size = int(docker.APIClient().inspect_image(second)["Size"])
    before = link_rx()
    changed = ship(bed["ssh_config"], second_id, second, out)
    wire = link_rx() - before
    assert changed.method == "layers" and changed.moved == 1, "".join(out)
    assert changed.layers >= 2
    assert changed.bytes < 64_000, changed
    assert wire < 300_000 and wire * 100 < size, (wire, size)
    assert api.inspect_image(second)["Id"] == second_id
    # -v shows the equivalent commands.
    text = "".join(out)
    assert "$ docker push 127.0.0.1:" in text and "$ docker load  # on bed-remote" in text

    # Nothing left running: no registry process, nothing listening on the target for us.
    assert registry_processes() == []
    assert not (REGISTRY_DIR / "registry.pid").exists()


STANDIN_VALUES = Path(__file__).parent / "data" / "values.standin.yaml"


def _values(tmp: Path, stack: str, image: str, base_port: int) -> Path:
    # One running service on the user's image; the others scaled to 0 on the stand-in.
    services: dict[str, Any] = {}
    for offset, name in enumerate(
        ["gradio-frontend", "llm-connector", "sklearn-model", "cnn-image", "mlflow-server"]
    ):
        services[name] = {"published_port": base_port + offset, "replicas": 0}
    services["llm-connector"] = {"published_port": base_port + 1, "image": image}
    services["minio"] = {"published_port": base_port + 5,
                         "published_console_port": base_port + 6}
    path = tmp / f"{stack}.yaml"
    path.write_text(yaml.safe_dump({"stack": {"name": stack}, "services": services}))
    return path


def _remove_stack(remote: dict[str, Any], stack: str) -> None:
    api = docker.APIClient(base_url=remote["docker_host"])
    subprocess.run(["docker", "-H", remote["docker_host"], "stack", "rm", stack],
                   capture_output=True, check=False)
    label = f"com.docker.stack.namespace={stack}"
    deadline = time.monotonic() + 60
    while api.containers(all=True, filters={"label": label}) and time.monotonic() < deadline:
        for container in api.containers(all=True, filters={"label": label,
                                                            "status": "exited"}):
            try:
                api.remove_container(container["Id"])
            except docker.errors.APIError:
                pass
        time.sleep(0.5)
    for secret in api.secrets(filters={"label": f"io.mlops.stack={stack}"}):
        try:
            api.remove_secret(secret["ID"])
        except docker.errors.APIError:
            pass
    for config in api.configs(filters={"label": f"io.mlops.stack={stack}"}):
        try:
            api.remove_config(config["ID"])
        except docker.errors.APIError:
            pass
    shutil.rmtree(Path(remote["state_dir"]) / stack, ignore_errors=True)


def test_push_ships_an_image_the_user_built_and_tagged(
    bed: dict[str, Any], remote: dict[str, Any], tmp_path: Path,
    cleanup_images: list[str], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # `docker build -t repo:tag` by the user, not `deployer build`: there is no pinned
    # repo:<id> tag anywhere until the push makes one (the bug: "vanished from the local
    # engine during the push").
    monkeypatch.setenv("GOOGLE_API_KEY", "dp-ship-" + uuid.uuid4().hex)
    stack = f"dp-ship-{uuid.uuid4().hex[:6]}"
    ref = f"{REPO_PREFIX}/user:{uuid.uuid4().hex[:8]}"
    image_id = build_extra(tmp_path, ref, f"user build {ref}\n")
    values = _values(tmp_path, stack, ref, 20300)
    argv = ["push", "-f", str(STANDIN_VALUES), "-f", str(values), "--host", "bed-remote",
            "--ssh-config", bed["ssh_config"], "-v"]
    try:
        # --check: which image would ship and roughly how much (the target has the stand-in
        # base, so only the one small layer), nothing deployed.
        assert main([*argv, "--check"]) == 0
        out = capsys.readouterr().out
        pinned = f"{REPO_PREFIX}/user:{image_id.removeprefix('sha256:')[:12]}"
        assert f"would change: [bed-remote (root@10.250.0.2:22)] ship-image {pinned}" in out, out
        estimate = re.search(rf"{re.escape(pinned)}: ~([0-9.]+) (B|kB|MB) of layers", out)
        assert estimate is not None and estimate.group(2) in ("B", "kB"), out
        assert not (Path(remote["state_dir"]) / stack).exists()
        code = main(argv)
        out = capsys.readouterr().out
        assert code == 0, out
        assert f"ship-image {REPO_PREFIX}/user:{image_id.removeprefix('sha256:')[:12]}" in out
        assert "layers sent" in out, out
        api = docker.APIClient(base_url=remote["docker_host"])
        services = api.services(filters={"label": f"com.docker.stack.namespace={stack}"})
        llm = next(s for s in services if s["Spec"]["Name"] == f"{stack}_llm-connector")
        pinned = llm["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
        assert api.inspect_image(pinned)["Id"] == image_id
        assert registry_processes() == []
        # A second push is a no-op: nothing ships.
        assert main(argv) == 0
        assert "ship-image" not in capsys.readouterr().out
    finally:
        _remove_stack(remote, stack)


@pytest.fixture
def no_forward_sshd(bed: dict[str, Any], tmp_path: Path) -> Iterator[SSHTarget]:
    """A second loopback sshd (same engine, same keys) with ``AllowTcpForwarding no``."""
    ssh_dir = Path(bed["ssh_config"]).parent
    port = 2299
    config = tmp_path / "sshd.conf"
    base = (ssh_dir / "sshd_loopback.conf").read_text().splitlines()
    lines = [line for line in base if not line.startswith(("Port ", "PidFile "))]
    config.write_text("\n".join([f"Port {port}", f"PidFile {tmp_path / 'sshd.pid'}",
                                 "AllowTcpForwarding no", *lines, ""]))
    proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True,
                              text=True).stdout.strip():
                break
            time.sleep(0.1)
        yield SSHTarget("127.0.0.1", port, "root", (str(ssh_dir / "client_key"),),
                        (str(tmp_path / "known_hosts"),), accept_new_host_key=True)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_layers_ship_where_sshd_allows_no_forwarding(
    no_forward_sshd: SSHTarget, tmp_path: Path, cleanup_images: list[str]
) -> None:
    # The archive rides the SSH session's own channel: no port forward, nothing listening.
    # (This sshd fronts the local engine itself, which has every layer: only the config moves.)
    ref = f"{REPO_PREFIX}/noforward:{uuid.uuid4().hex[:8]}"
    image_id = build_extra(tmp_path, ref, "no forwarding\n")
    out: list[str] = []
    local = local_client()
    try:
        with connect(no_forward_sshd) as conn, \
                Shipper(local, conn, Reporter(stream=_Lines(out))) as shipper:
            report = shipper.ship(image_id, ref)
    finally:
        local.close()
    text = "".join(out)
    assert report.method == "layers" and report.moved == 0 and report.layers >= 2, text
    assert report.bytes < 64_000, report
    assert "docker save | docker load" not in text and "shipping whole images" not in text
    assert registry_processes() == []


def test_a_first_ship_sends_a_compressed_save_without_the_layers_the_target_has(
    bed: dict[str, Any], remote: dict[str, Any], tmp_path: Path, cleanup_images: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An empty local registry: every missing layer lacks a blob there, so the image goes from
    # one docker save, minus the stand-in's layers bed-remote has, then fills the registry.
    registry = tmp_path / "registry"
    monkeypatch.setenv(DIR_ENV, str(registry))
    tag = uuid.uuid4().hex[:8]
    ref = f"{REPO_PREFIX}/first:{tag}"
    ctx = tmp_path / "first-ctx"
    ctx.mkdir()
    (ctx / "deps.bin").write_bytes(os.urandom(3_000_000))
    (ctx / "Dockerfile").write_text(f"FROM {bed['standin_image']}\nCOPY deps.bin /opt/deps.bin\n"
                                    f"RUN echo {tag} > /opt/app.txt\n")
    build(ctx, ref)
    image_id = str(docker.APIClient().inspect_image(ref)["Id"])
    size = int(docker.APIClient().inspect_image(ref)["Size"])
    out: list[str] = []
    before = link_rx()
    report = ship(bed["ssh_config"], image_id, ref, out)
    wire = link_rx() - before
    text = "".join(out)
    assert report.method == "layers" and report.moved == 2, text
    assert f"$ docker save {ref} | gzip -1 | ssh bed-remote" in text, text
    # The 3 MB of random bytes and the small layer, not the ~270 MB stand-in below them.
    assert 3_000_000 < report.bytes < 3_400_000, report
    assert wire < 3_700_000 and wire * 50 < size, (wire, size)
    api = docker.APIClient(base_url=remote["docker_host"])
    assert api.inspect_image(ref)["Id"] == image_id
    # The session pushed it into the local registry on closing: the next change ships from
    # there, one layer.
    index = json.loads((registry / "layer-index.json").read_text())
    assert set(docker.APIClient().inspect_image(ref)["RootFS"]["Layers"]) <= set(index)
    second = f"{REPO_PREFIX}/first:{tag}-b"
    (ctx / "Dockerfile").write_text(f"FROM {ref}\nRUN echo changed > /opt/app.txt\n")
    build(ctx, second)
    second_id = str(docker.APIClient().inspect_image(second)["Id"])
    changed = ship(bed["ssh_config"], second_id, second, out)
    text = "".join(out)
    assert changed.method == "layers" and changed.moved == 1, text
    assert changed.bytes < 64_000 and "$ docker load  # on bed-remote" in text, changed
    assert api.inspect_image(second)["Id"] == second_id
    assert registry_processes() == []


def test_rollback_to_a_revision_whose_image_the_manager_lost_ships_it_by_layers(
    bed: dict[str, Any], remote: dict[str, Any], tmp_path: Path,
    cleanup_images: list[str], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", "dp-ship-" + uuid.uuid4().hex)
    stack = f"dp-rb-{uuid.uuid4().hex[:6]}"
    first, second = (f"{REPO_PREFIX}/rb:{uuid.uuid4().hex[:8]}" for _ in range(2))
    first_id = build_extra(tmp_path, first, f"revision one {first}\n")
    second_id = build_extra(tmp_path, second, f"revision two {second}\n")
    common = ["-f", str(STANDIN_VALUES), "--host", "bed-remote", "--ssh-config", bed["ssh_config"]]
    api = docker.APIClient(base_url=remote["docker_host"])
    try:
        for ref in (first, second):
            values = _values(tmp_path, stack, ref, 20320)
            code = main(["push", *common, "-f", str(values), "--timeout", "120"])
            assert code == 0, capsys.readouterr().out
        capsys.readouterr()
        # The manager lost revision 1's image (pruned, say): only its tag matters to a lookup.
        pinned = f"{REPO_PREFIX}/rb:{first_id.removeprefix('sha256:')[:12]}"
        api.remove_image(pinned, force=True)
        code = main(["rollback", *common, "-f", str(values), "--to-revision", "1",
                     "--timeout", "120"])
        out = capsys.readouterr().out
        assert code == 0, out
        # Shipped as push ships: by layers, not a whole-image save/load.
        assert f"changed: [bed-remote (root@10.250.0.2:22)] ship-image {pinned}" in out, out
        assert "layers sent" in out and "docker save" not in out, out
        assert api.inspect_image(pinned)["Id"] == first_id
        services = api.services(filters={"label": f"com.docker.stack.namespace={stack}"})
        llm = next(s for s in services if s["Spec"]["Name"] == f"{stack}_llm-connector")
        assert llm["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"] == pinned
        assert second_id != first_id and registry_processes() == []
    finally:
        _remove_stack(remote, stack)
