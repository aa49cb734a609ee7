"""The service images, built FROM the bed's offline base on the bed's engine, run and probed.

Each image is built from a temporary copy of its build context with the host's extra CA
certificates in ``certs/`` (the image's own mechanism for TLS-intercepting proxies), run with
host networking on loopback ports of this suite's range, and exercised over HTTP / S3.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from fake_gemini import FakeGeminiServer
from svcutil import docker_cli, free_port, wait_http

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

KEY = "AIzaIMAGE-test-key-93e1"


@pytest.fixture
def run(bed: dict[str, Any]) -> Iterator[Callable[..., str]]:
    """Starts containers (host network); removes exactly those afterwards."""
    started: list[str] = []

    def _run(image: str, env: dict[str, str], *, volumes: dict[str, str] | None = None,
             args: tuple[str, ...] = ()) -> str:
        name = f"svctest-{uuid.uuid4().hex[:10]}"
        argv = ["run", "-d", "--name", name, "--network", "host", "--init"]
        for key, value in env.items():
            argv += ["-e", f"{key}={value}"]
        for host_path, target in (volumes or {}).items():
            argv += ["-v", f"{host_path}:{target}:ro"]
        docker_cli(bed, *argv, image, *args)
        started.append(name)
        return name

    yield _run
    for name in started:
        docker_cli(bed, "rm", "-f", name, check=False)


def _logs(bed: dict[str, Any], name: str) -> str:
    proc = docker_cli(bed, "logs", name, check=False)
    return proc.stdout + proc.stderr


def _wait(bed: dict[str, Any], name: str, url: str, timeout_s: float = 120) -> httpx.Response:
    try:
        return wait_http(url, timeout_s)
    except RuntimeError as exc:
        raise AssertionError(f"{exc}\ncontainer log:\n{_logs(bed, name)[-3000:]}") from None


def _user(bed: dict[str, Any], name: str) -> str:
    return docker_cli(bed, "exec", name, "id", "-u").stdout.strip()


def test_llm_connector_image(bed: dict[str, Any], service_image: Callable[[str], str],
                             run: Callable[..., str], tmp_path: Path) -> None:
    image = service_image("llm-connector")
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "google_api_key").write_text(KEY)
    os.chmod(secrets, 0o755)
    os.chmod(secrets / "google_api_key", 0o644)  # readable by the image's non-root user
    with FakeGeminiServer(free_port(), api_key=KEY) as gemini:
        port = free_port()
        name = run(image, {"HOST": "127.0.0.1", "PORT": str(port),
                           "GOOGLE_API_KEY_FILE": "/run/secrets/google_api_key",
                           "GOOGLE_API_BASE_URL": gemini.url, "GOOGLE_MODEL": "gemini-img",
                           "RETRY_ATTEMPTS": "1"},
                   volumes={str(secrets): "/run/secrets"})
        health = _wait(bed, name, f"http://127.0.0.1:{port}/health").json()
        assert health["api_key_configured"] is True and health["api_key_source"] == "file"
        resp = httpx.post(f"http://127.0.0.1:{port}/chat", json={"prompt": "from a container"},
                          timeout=60)
        assert resp.status_code == 200, resp.text
        assert "reniatnoc a morf" in resp.json()["text"]
        [req] = gemini.take()
        assert req.path == "/v1/models/gemini-img:generateContent"
        assert req.headers["x-goog-api-key"] == KEY
    assert _user(bed, name) != "0"
    assert KEY not in _logs(bed, name)


def test_gradio_frontend_image(bed: dict[str, Any], service_image: Callable[[str], str],
                               run: Callable[..., str]) -> None:
    image = service_image("gradio-frontend")
    port = free_port()
    down = free_port()
    name = run(image, {"HOST": "127.0.0.1", "PORT": str(port),
                       "LLM_CONNECTOR_URL": f"http://127.0.0.1:{down}",
                       "SKLEARN_MODEL_URL": f"http://127.0.0.1:{down}",
                       "CNN_IMAGE_URL": f"http://127.0.0.1:{down}"})
    health = _wait(bed, name, f"http://127.0.0.1:{port}/health").json()
    assert health["status"] == "ok"
    assert httpx.get(f"http://127.0.0.1:{port}/", timeout=30).status_code == 200
    config = httpx.get(f"http://127.0.0.1:{port}/config", timeout=30).json()
    assert config["title"] == "MLOps stack"
    labels = {c.get("props", {}).get("label") for c in config["components"]}
    assert {"Gemini", "Ticket class", "Image", "Top classes"} <= labels
    # uploads land in the non-root user's GRADIO_TEMP_DIR (the image tab needs this)
    upload = httpx.post(f"http://127.0.0.1:{port}/gradio_api/upload", timeout=30,
                        files={"files": ("a.png", b"\x89PNG\r\n\x1a\n", "image/png")})
    assert upload.status_code == 200, upload.text
    [stored] = upload.json()
    assert stored.startswith("/home/app/gradio-tmp/")
    # the telemetry switches are baked into the image
    env = docker_cli(bed, "exec", name, "env").stdout
    assert "GRADIO_ANALYTICS_ENABLED=False" in env and "HF_HUB_DISABLE_TELEMETRY=1" in env
    assert _user(bed, name) != "0"


@pytest.fixture
def s3_secrets(tmp_path: Path) -> tuple[Path, str, str]:
    access, secret = f"ak{uuid.uuid4().hex[:10]}", f"sk{uuid.uuid4().hex}"
    secrets = tmp_path / "s3secrets"
    secrets.mkdir()
    (secrets / "s3_access_key").write_text(access + "\n")
    (secrets / "s3_secret_key").write_text(secret + "\n")
    for path in (secrets, *secrets.iterdir()):
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    return secrets, access, secret


def _s3_ports() -> dict[str, str]:
    return {"S3_BIND": "127.0.0.1", "S3_PORT": str(free_port()),
            "MASTER_PORT": str(free_port()), "VOLUME_PORT": str(free_port()),
            "FILER_PORT": str(free_port())}


def test_s3_image_with_file_credentials(bed: dict[str, Any], service_image: Callable[[str], str],
                                        run: Callable[..., str],
                                        s3_secrets: tuple[Path, str, str]) -> None:
    """As Swarm renders it: AWS_*_FILE under /run/secrets; bucket created; put/get works."""
    image = service_image("minio")
    secrets, access, secret = s3_secrets
    ports = _s3_ports()
    name = run(image, {**ports, "S3_BUCKET": "mlflow",
                       "AWS_ACCESS_KEY_ID_FILE": "/run/secrets/s3_access_key",
                       "AWS_SECRET_ACCESS_KEY_FILE": "/run/secrets/s3_secret_key"},
               volumes={str(secrets): "/run/secrets"})
    endpoint = f"http://127.0.0.1:{ports['S3_PORT']}"
    _wait(bed, name, endpoint + "/healthz")
    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=access,
                      aws_secret_access_key=secret, region_name="us-east-1")
    deadline = time.monotonic() + 60  # the bucket is created right after /healthz answers
    while "ready:" not in _logs(bed, name) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert "mlflow" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    body = json.dumps({"run": uuid.uuid4().hex}).encode()
    s3.put_object(Bucket="mlflow", Key="artifacts/1/meta.json", Body=body)
    assert s3.get_object(Bucket="mlflow", Key="artifacts/1/meta.json")["Body"].read() == body
    wrong = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=access,
                         aws_secret_access_key="not-the-secret", region_name="us-east-1")
    with pytest.raises(Exception, match="SignatureDoesNotMatch|AccessDenied|InvalidAccessKey"):
        wrong.list_buckets()
    # the rendered SeaweedFS healthcheck's probe works in the image
    probe = docker_cli(bed, "exec", name, "wget", "-q", "-O", "/dev/null", endpoint + "/healthz",
                    check=False)
    assert probe.returncode == 0, probe.stderr
    logs = _logs(bed, name)
    assert secret not in logs and "bucket mlflow created" in logs
    assert _user(bed, name) != "0"


def test_s3_image_minio_style_env_and_bad_config(bed: dict[str, Any],
                                                 service_image: Callable[[str], str],
                                                 run: Callable[..., str],
                                                 s3_secrets: tuple[Path, str, str]) -> None:
    """MINIO_ROOT_* with bare *_FILE names (MinIO's /run/secrets lookup); missing creds fail."""
    image = service_image("minio")
    secrets, access, secret = s3_secrets
    ports = _s3_ports()
    name = run(image, {**ports, "S3_BUCKET": "models,data-1",
                       "MINIO_ROOT_USER_FILE": "s3_access_key",
                       "MINIO_ROOT_PASSWORD_FILE": "s3_secret_key"},
               volumes={str(secrets): "/run/secrets"})
    endpoint = f"http://127.0.0.1:{ports['S3_PORT']}"
    _wait(bed, name, endpoint + "/healthz")
    deadline = time.monotonic() + 60
    while "ready:" not in _logs(bed, name) and time.monotonic() < deadline:
        time.sleep(0.5)
    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=access,
                      aws_secret_access_key=secret, region_name="us-east-1")
    assert {"models", "data-1"} <= {b["Name"] for b in s3.list_buckets()["Buckets"]}

    bad = run(image, {**_s3_ports(), "AWS_ACCESS_KEY_ID": "only-the-id"})
    deadline = time.monotonic() + 60
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        state = json.loads(docker_cli(bed, "inspect", "--format", "{{json .State}}", bad).stdout)
        if not state["Running"]:
            break
        time.sleep(0.5)
    assert state["ExitCode"] == 2
    assert "AWS_SECRET_ACCESS_KEY (or AWS_SECRET_ACCESS_KEY_FILE) is not set" in _logs(bed, bad)
