"""The three model-side images, built FROM the bed's offline base with the deployer's build
context (extra CA certificates under certs/), run on the host engine (host network, ports
19520-19529) against the bed's S3: mlflow-server <- sklearn-model / cnn-image, each trained in
its container, healthy by the image's own HEALTHCHECK, answering /predict."""

from __future__ import annotations

import glob
import io
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
from model_fixtures import *  # noqa: F403  (pytest fixtures)
from PIL import Image
from svc_util import CLASSES, PALETTE, SERVICES, service_app, wait_for, write_colour_archive

from deployer import buildkit
from deployer.build_context import BuildContext, library_for, load_ca_certs

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MLFLOW_PORT, SKLEARN_PORT, CNN_PORT = 19520, 19521, 19522
# Extra CA certificates of this machine (a TLS-intercepting proxy's), as `deployer build
# --ca-cert` gets them; MLOPS_CA_CERTS (os.pathsep-separated) overrides the location.
CA_GLOB = "/usr/local/share/ca-certificates/*.crt"


def _ca_files() -> list[Path]:
    given = os.environ.get("MLOPS_CA_CERTS")
    paths = given.split(os.pathsep) if given else sorted(glob.glob(CA_GLOB))
    return [Path(p) for p in paths if p]


@pytest.fixture(scope="module")
def engine(bed: dict[str, Any]) -> Iterator[docker.DockerClient]:
    client = docker.DockerClient(base_url=bed["docker_host"], version="auto")
    yield client
    client.close()


@pytest.fixture(scope="module")
def build(engine: docker.DockerClient, bed: dict[str, Any]) -> Callable[[str], str]:
    """Build ``services/<name>`` as ``mlops/<name>:latest`` FROM the bed's base, as `deployer
    build` does (the same context, BuildKit where the CLI has buildx: its cache is shared with
    the other builds of the run); its image ID."""
    certs = load_ca_certs(_ca_files())

    def _build(service: str) -> str:
        context = BuildContext.scan(SERVICES / service, certs, library_for(SERVICES / service))
        tag = f"mlops/{service}:latest"
        iidfile = buildkit.iid_path()
        argv = buildkit.build_argv(tag, {"BASE_IMAGE": bed["base_image"]}, {}, iidfile,
                                   no_cache=False)
        last: list[str] = []
        try:
            with tempfile.TemporaryFile() as tar:
                context.write_tar(tar)
                code, image_id = buildkit.run_build(
                    argv, tar, lambda line: last.append(line) if len(last) < 400 else None)
        finally:
            iidfile.unlink(missing_ok=True)
        if code != 0 or image_id is None:
            pytest.fail(f"build of {service} failed ({code}):\n" + "\n".join(last[-30:]))
        return image_id

    return _build


@pytest.fixture(scope="module")
def containers(engine: docker.DockerClient) -> Iterator[list[Any]]:
    """Containers started by this module (removed afterwards, by ID)."""
    started: list[Any] = []
    yield started
    for c in started:
        try:
            c.remove(force=True, v=True)
        except docker.errors.NotFound:
            pass


def _secret_file(directory: Path, name: str, value: str) -> str:
    path = directory / name
    path.write_text(value + "\n")
    path.chmod(0o644)  # the images run as a non-root user
    return str(path)


def _wait_healthy(container: Any, timeout: float) -> str:
    def state() -> str:
        container.reload()
        if container.status != "running":
            return f"exited: {container.status}"
        return str(container.attrs["State"].get("Health", {}).get("Status", "none"))

    return str(wait_for(state, lambda s: s == "healthy" or s.startswith("exited"), timeout))


def _logs(container: Any) -> str:
    return container.logs(tail=60).decode(errors="replace")


def _wait_ready(base: str, timeout: float) -> dict[str, Any]:
    """/health until the model is served (healthy already covers training a first model)."""
    def probe() -> dict[str, Any]:
        try:
            body: dict[str, Any] = httpx.get(base + "/health", timeout=5).json()
            return body
        except httpx.HTTPError as exc:
            return {"status": f"unreachable: {exc}"}

    result: dict[str, Any] = wait_for(probe, lambda b: b.get("status") == "ready", timeout)
    return result


@pytest.fixture(scope="module")
def secrets_dir(bed: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("secrets")
    return {"ak": _secret_file(d, "s3_access_key", bed["s3"]["access_key"]),
            "sk": _secret_file(d, "s3_secret_key", bed["s3"]["secret_key"])}


def _s3_env(bed: dict[str, Any]) -> dict[str, str]:
    return {"MLFLOW_S3_ENDPOINT_URL": bed["s3"]["endpoint"],
            "AWS_DEFAULT_REGION": bed["s3"]["region"],
            "AWS_ACCESS_KEY_ID_FILE": "/run/secrets/s3_access_key",
            "AWS_SECRET_ACCESS_KEY_FILE": "/run/secrets/s3_secret_key"}


def _secret_mounts(secrets: dict[str, str]) -> dict[str, dict[str, str]]:
    return {secrets["ak"]: {"bind": "/run/secrets/s3_access_key", "mode": "ro"},
            secrets["sk"]: {"bind": "/run/secrets/s3_secret_key", "mode": "ro"}}


@pytest.fixture(scope="module")
def mlflow_url(engine: docker.DockerClient, build: Callable[[str], str], bed: dict[str, Any],
               containers: list[Any], secrets_dir: dict[str, str], run_tag: str) -> str:
    """The mlflow-server image running on 127.0.0.1:19520, secrets as Swarm would mount them."""
    image = build("mlflow-server")
    env = {**_s3_env(bed), "MLFLOW_HOST": "127.0.0.1", "MLFLOW_PORT": str(MLFLOW_PORT),
           "MLFLOW_ARTIFACTS_DESTINATION": f"s3://{bed['s3']['bucket']}/t-image-{run_tag}"}
    c = engine.containers.run(image, detach=True, network_mode="host", init=True,
                              environment=env, volumes=_secret_mounts(secrets_dir),
                              name=f"t-svc-mlflow-{run_tag}")
    containers.append(c)
    status = _wait_healthy(c, 120)
    assert status == "healthy", _logs(c)
    logs = _logs(c)
    assert "mlflow-server: starting mlflow server" in logs
    assert bed["s3"]["secret_key"] not in logs
    return f"http://127.0.0.1:{MLFLOW_PORT}"


def test_sklearn_image_trains_and_serves(engine: docker.DockerClient, build: Callable[[str], str],
                                         bed: dict[str, Any], containers: list[Any],
                                         secrets_dir: dict[str, str], mlflow_url: str,
                                         run_tag: str) -> None:
    image = build("sklearn-model")
    name = f"t-img-titanic-{run_tag}"
    env = {**_s3_env(bed), "MLFLOW_TRACKING_URI": mlflow_url, "PORT": str(SKLEARN_PORT),
           "MODEL_NAME": name, "MLFLOW_EXPERIMENT_NAME": name}
    c = engine.containers.run(image, detach=True, network_mode="host", init=True,
                              environment=env, volumes=_secret_mounts(secrets_dir),
                              name=f"t-svc-sklearn-{run_tag}")
    containers.append(c)
    status = _wait_healthy(c, 240)
    assert status == "healthy", _logs(c)
    base = f"http://127.0.0.1:{SKLEARN_PORT}"
    assert _wait_ready(base, 180)["status"] == "ready", _logs(c)
    info = httpx.get(base + "/model", timeout=10).json()
    assert info["name"] == name and info["version"] == "1" and info["metrics"]["accuracy"] > 0.75
    resp = httpx.post(base + "/predict", timeout=10, json=[
        {"pclass": 1, "sex": "female", "age": 29, "embarked": "S"},
        {"pclass": 3, "sex": "male", "age": 40, "fare": 7.9}])
    assert resp.status_code == 200, resp.text
    assert [p["survived"] for p in resp.json()["predictions"]] == [True, False]
    bad = httpx.post(base + "/predict", timeout=10, json={"pclass": 9, "sex": "male"})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "pclass"]
    assert c.attrs["Config"]["User"] == "app"


def test_cnn_image_trains_and_serves(engine: docker.DockerClient, build: Callable[[str], str],
                                     bed: dict[str, Any], containers: list[Any],
                                     secrets_dir: dict[str, str], mlflow_url: str, run_tag: str,
                                     tmp_path_factory: pytest.TempPathFactory) -> None:
    with service_app("cnn-image", "cifar") as mods:
        parent = write_colour_archive(mods["cifar"], tmp_path_factory.mktemp("cifar"), 60)
    for p in [parent, *parent.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    image = build("cnn-image")
    name = f"t-img-cifar-{run_tag}"
    env = {**_s3_env(bed), "MLFLOW_TRACKING_URI": mlflow_url, "PORT": str(CNN_PORT),
           "MODEL_NAME": name, "MLFLOW_EXPERIMENT_NAME": name, "CIFAR10_DIR": "/data",
           "EPOCHS": "6", "BATCH_SIZE": "32", "LEARNING_RATE": "0.003"}
    volumes = {**_secret_mounts(secrets_dir), str(parent): {"bind": "/data", "mode": "ro"}}
    c = engine.containers.run(image, detach=True, network_mode="host", init=True,
                              environment=env, volumes=volumes, name=f"t-svc-cnn-{run_tag}")
    containers.append(c)
    status = _wait_healthy(c, 300)
    assert status == "healthy", _logs(c)
    base = f"http://127.0.0.1:{CNN_PORT}"
    assert _wait_ready(base, 240)["status"] == "ready", _logs(c)
    assert "epoch 6/6" in c.logs().decode(errors="replace")
    info = httpx.get(base + "/model", timeout=10).json()
    assert info["name"] == name and info["class_names"] == CLASSES
    buf = io.BytesIO()
    Image.new("RGB", (300, 200), tuple(PALETTE[2].tolist())).save(buf, format="PNG")
    resp = httpx.post(base + "/predict", params={"top_k": 5}, timeout=30,
                      files={"file": ("bird.png", buf.getvalue(), "image/png")})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert len(body["top_k"]) == 5
    assert sum(body["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
    bad = httpx.post(base + "/predict", timeout=10,
                     files={"file": ("x.txt", b"plain text", "text/plain")})
    assert bad.status_code == 422 and "could not decode" in bad.json()["detail"][0]["msg"]
