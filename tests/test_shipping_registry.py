"""Registry mode against a real registry (the bed's: Debian's docker-registry with htpasswd basic
auth and TLS from a self-signed CA both engines trust): images pushed there (only missing
layers), the stack file pinned by digest, the namespace manager pulling with the deploy's auth.
Wrong credentials and an untrusted certificate fail with the registry named and the fix, and
deploy nothing."""

from __future__ import annotations

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
from test_shipping_e2e import REPO_PREFIX, _remove_stack, build_extra

from deployer.cli import main

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

STANDIN_VALUES = Path(__file__).parent / "data" / "values.standin.yaml"
BAD_PORT = 5444


def _values(tmp: Path, stack: str, image: str, registry: dict[str, Any], base_port: int) -> Path:
    services: dict[str, Any] = {}
    for offset, name in enumerate(
        ["gradio-frontend", "llm-connector", "sklearn-model", "cnn-image", "mlflow-server"]
    ):
        services[name] = {"published_port": base_port + offset, "replicas": 0}
    services["llm-connector"] = {"published_port": base_port + 1, "image": image}
    services["minio"] = {"published_port": base_port + 5,
                         "published_console_port": base_port + 6}
    path = tmp / f"{stack}-{uuid.uuid4().hex[:4]}.yaml"
    path.write_text(yaml.safe_dump({"stack": {"name": stack}, "services": services,
                                    "registry": registry}))
    return path


@pytest.fixture
def stack(bed: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("GOOGLE_API_KEY", "dp-reg-" + uuid.uuid4().hex)
    monkeypatch.delenv("MLOPS_REGISTRY_USERNAME", raising=False)
    monkeypatch.delenv("MLOPS_REGISTRY_PASSWORD", raising=False)
    name = f"dp-reg-{uuid.uuid4().hex[:6]}"
    yield name
    _remove_stack(bed["managers"]["remote"], name)
    for host in (bed["docker_host"], bed["managers"]["remote"]["docker_host"]):
        api = docker.APIClient(base_url=host)
        for image in api.images():
            # Pulled by digest, an image has no tag, only a RepoDigest. Remove our names only,
            # never the image by its ID: a pushed image can be the very stand-in the other tests
            # use (same ID), and removing it by ID with force untagged it everywhere.
            names = [*(image.get("RepoTags") or ()), *(image.get("RepoDigests") or ())]
            for name in names:
                if f"{REPO_PREFIX}/reg" not in name:
                    continue
                try:
                    api.remove_image(name)
                except docker.errors.APIError:
                    pass


def push(bed: dict[str, Any], values: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["push", "-f", str(STANDIN_VALUES), "-f", str(values), "--host", "bed-remote",
                 "--ssh-config", bed["ssh_config"], "-v"])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def state(bed: dict[str, Any], stack: str) -> tuple[str, dict[str, int]]:
    remote = bed["managers"]["remote"]
    current = (Path(remote["state_dir"]) / stack / "current").read_text().strip()
    api = docker.APIClient(base_url=remote["docker_host"])
    versions = {s["Spec"]["Name"]: int(s["Version"]["Index"]) for s in
                api.services(filters={"label": f"com.docker.stack.namespace={stack}"})}
    return current, versions


def test_registry_mode_with_auth_and_tls_deploys_and_refuses_bad_logins(
    bed: dict[str, Any], stack: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reg = bed["registry"]
    registry = {"url": reg["url"], "username": reg["username"],
                "password_file": reg["password_file"]}
    password = Path(reg["password_file"]).read_text().strip()
    ref = f"{REPO_PREFIX}/reg:{uuid.uuid4().hex[:8]}"
    image_id = build_extra(tmp_path, ref, f"registry mode {ref}\n")
    remote = docker.APIClient(base_url=bed["managers"]["remote"]["docker_host"])
    with pytest.raises(docker.errors.ImageNotFound):
        remote.inspect_image(image_id)  # the manager can only get it from the registry

    code, out = push(bed, _values(tmp_path, stack, ref, registry, 20400), capsys)
    assert code == 0, out
    assert password not in out
    assert f"$ docker push {reg['url']}/{REPO_PREFIX}/reg:" in out
    assert "ship-image" not in out  # nothing goes over SSH: the node pulls
    current, versions = state(bed, stack)
    stack_file = (Path(bed["managers"]["remote"]["state_dir"]) / stack / "revisions" / current
                  / "stack.yml").read_text()
    images = {svc["image"] for svc in yaml.safe_load(stack_file)["services"].values()}
    assert images and all(i.startswith(f"{reg['url']}/") and "@sha256:" in i for i in images)
    llm = next(s for s in remote.services(filters={
        "label": f"com.docker.stack.namespace={stack}"})
        if s["Spec"]["Name"] == f"{stack}_llm-connector")
    assert "@sha256:" in llm["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
    assert remote.inspect_image(image_id)["Id"] == image_id  # pulled by the node, with auth
    assert not list(Path("/dev/shm").glob("mlops-auth-*"))  # the deploy's login is gone

    # A code change pushed with a wrong password: refused, named, nothing deployed.
    changed = f"{REPO_PREFIX}/reg:{uuid.uuid4().hex[:8]}"
    build_extra(tmp_path, changed, f"changed {changed}\n")
    monkeypatch.setenv("MLOPS_REGISTRY_PASSWORD", "wrong-" + uuid.uuid4().hex)
    code, out = push(bed, _values(tmp_path, stack, changed, registry, 20400), capsys)
    assert code != 0
    assert f"registry {reg['url']}: the login was refused" in out, out
    assert "MLOPS_REGISTRY_PASSWORD" in out
    assert state(bed, stack) == (current, versions)
    monkeypatch.delenv("MLOPS_REGISTRY_PASSWORD")


@pytest.fixture
def untrusted_registry(tmp_path: Path, bed: dict[str, Any]) -> Iterator[str]:
    """A second registry with a self-signed certificate that no engine trusts."""
    addr = bed["registry"]["url"].split(":")[0]
    key, crt = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", f"/CN={addr}", "-addext", f"subjectAltName=IP:{addr}",
                    "-keyout", str(key), "-out", str(crt)], check=True, capture_output=True)
    config = tmp_path / "registry.yml"
    config.write_text(yaml.safe_dump({
        "version": 0.1, "log": {"level": "warn"},
        "storage": {"filesystem": {"rootdirectory": str(tmp_path / "data")}},
        "http": {"addr": f"{addr}:{BAD_PORT}", "tls": {"certificate": str(crt),
                                                       "key": str(key)}},
    }))
    proc = subprocess.Popen(["docker-registry", "serve", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if subprocess.run(["ss", "-Hltn", f"sport = :{BAD_PORT}"], capture_output=True,
                              text=True).stdout.strip():
                break
            time.sleep(0.1)
        yield f"{addr}:{BAD_PORT}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_untrusted_certificate_is_named_with_the_fix_and_deploys_nothing(
    bed: dict[str, Any], stack: str, tmp_path: Path, untrusted_registry: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ref = f"{REPO_PREFIX}/reg:{uuid.uuid4().hex[:8]}"
    build_extra(tmp_path, ref, "untrusted\n")
    code, out = push(bed, _values(tmp_path, stack, ref, {"url": untrusted_registry}, 20410),
                     capsys)
    assert code != 0
    assert f"registry {untrusted_registry}: its TLS certificate is not trusted" in out, out
    assert f"/etc/docker/certs.d/{untrusted_registry}/ca.crt" in out
    assert not (Path(bed["managers"]["remote"]["state_dir"]) / stack / "current").exists()
    remote = docker.APIClient(base_url=bed["managers"]["remote"]["docker_host"])
    assert not remote.services(filters={"label": f"com.docker.stack.namespace={stack}"})


def test_build_push_uploads_and_the_push_after_it_uploads_nothing(
    bed: dict[str, Any], stack: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    reg = bed["registry"]
    registry = {"url": reg["url"], "username": reg["username"],
                "password_file": reg["password_file"]}
    standin = Path(__file__).parent / "standin"
    ctx = tmp_path / "services" / "llm-connector"
    ctx.mkdir(parents=True)
    shutil.copy(standin / "standin.py", ctx / "standin.py")
    (ctx / "Dockerfile").write_text((standin / "Dockerfile").read_text()
                                    + f"ENV VERSION={uuid.uuid4().hex}\n")
    ref = f"{REPO_PREFIX}/reg-built:latest"
    values = _values(tmp_path, stack, ref, registry, 20420)
    build = ["build", "-f", str(STANDIN_VALUES), "-f", str(values),
             "--set", "services.llm-connector.build=true", "--base-image", bed["base_image"],
             "--context-dir", str(tmp_path / "services"), "llm-connector", "--push", "-v"]
    assert main(build) == 0
    out = capsys.readouterr().out
    assert f"push-image {reg['url']}/{REPO_PREFIX}/reg-built@sha256:" in out, out

    image_id = docker.APIClient().inspect_image(ref)["Id"]
    code, out = push(bed, values, capsys)
    assert code == 0, out
    pinned = f"{REPO_PREFIX}/reg-built:{image_id.removeprefix('sha256:')[:12]}"
    assert f"{reg['url']}/{pinned}: 0 of " in out, out  # build --push uploaded it all

    # Without a registry in the values: a clear error, nothing uploaded.
    no_registry = tmp_path / "plain.yaml"
    no_registry.write_text(yaml.safe_dump({"stack": {"name": stack}}))
    build[4] = str(no_registry)
    standin_before = docker.APIClient().inspect_image("mlops-standin:latest")["Id"]
    assert main(build) != 0
    captured = capsys.readouterr()
    assert "build --push needs a registry" in captured.out + captured.err
    # Refused before anything was built or tagged (the values name the stand-in's ref).
    assert docker.APIClient().inspect_image("mlops-standin:latest")["Id"] == standin_before
