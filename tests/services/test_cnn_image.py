"""cnn-image service: the CIFAR-10 pickle loader, and train -> register -> serve against the
bed's real MLflow and S3 on a small generated archive in the official format (no download)."""

from __future__ import annotations

import io
import pickle
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from model_fixtures import *  # noqa: F403  (pytest fixtures)
from PIL import Image
from svc_util import (
    CLASSES,
    PALETTE,
    SERVICES,
    python_env,
    s3_keys_ending,
    service_app,
    wait_for,
    write_colour_archive,
)

SERVICE = "cnn-image"
MODULES = ("config", "cifar", "model", "flavour", "main")
PER_BATCH = 60  # 5 x 60 = 300 training images, 100 test images


@pytest.fixture(scope="module")
def cnn() -> Iterator[dict[str, Any]]:
    """The service's modules (``cnn["main"].create_app`` ...)."""
    with service_app(SERVICE, *MODULES) as mods:
        yield mods


@pytest.fixture(scope="module")
def archive(cnn: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A parent folder holding ``cifar-10-batches-py`` written in the official pickle format."""
    return write_colour_archive(cnn["cifar"], tmp_path_factory.mktemp("cifar"), PER_BATCH)


def png(colour: list[int], size: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, tuple(colour)).save(buf, format="PNG")
    return buf.getvalue()


# ---- pure code: the archive format -----------------------------------------------------------

def test_loader_reads_the_official_layout(cnn: dict[str, Any], archive: Path) -> None:
    data = cnn["cifar"].load_cifar10(archive)
    assert data.x_train.shape == (5 * PER_BATCH, 32, 32, 3) and data.x_train.dtype == np.uint8
    assert data.x_test.shape == (100, 32, 32, 3)
    assert data.class_names == CLASSES
    # Channel order survives the channel-major rows: class 0's colour is mostly red.
    reds = data.x_train[data.y_train == 0].mean(axis=(0, 1, 2))
    assert reds[0] > 200 and reds[1] < 60 and reds[2] < 110


def test_loader_row_layout_is_channel_major(cnn: dict[str, Any], tmp_path: Path) -> None:
    # Built by hand as the official files are: 1024 red, then 1024 green, then 1024 blue.
    row = np.concatenate([np.full(1024, 10), np.full(1024, 20), np.full(1024, 30)])
    batch = {b"data": row[None].astype(np.uint8), b"labels": [3]}
    (tmp_path / "b").write_bytes(pickle.dumps(batch, protocol=2))
    images, labels = cnn["cifar"].load_batch(tmp_path / "b")
    assert images.shape == (1, 32, 32, 3) and labels.tolist() == [3]
    assert images[0, 5, 7].tolist() == [10, 20, 30]


def test_missing_batch_is_named(cnn: dict[str, Any], archive: Path, tmp_path: Path) -> None:
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    for f in (archive / "cifar-10-batches-py").iterdir():
        if f.name != "data_batch_3":
            (root / f.name).write_bytes(f.read_bytes())
    with pytest.raises(cnn["cifar"].DatasetError, match=r"data_batch_3: missing"):
        cnn["cifar"].load_cifar10(tmp_path)


def test_pickle_with_code_is_refused(cnn: dict[str, Any], tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self) -> tuple[Any, ...]:
            return (print, ("pwned",))

    (tmp_path / "b").write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}, protocol=2))
    with pytest.raises(cnn["cifar"].DatasetError,
                       match=r"refusing to load (__builtin__|builtins).print"):
        cnn["cifar"].load_batch(tmp_path / "b")


def test_wrong_row_length_is_explained(cnn: dict[str, Any], tmp_path: Path) -> None:
    batch = {b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}
    (tmp_path / "b").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(cnn["cifar"].DatasetError, match=r"shape \(2, 100\), expected \(N, 3072\)"):
        cnn["cifar"].load_batch(tmp_path / "b")


def test_any_image_size_becomes_one_input(cnn: dict[str, Any]) -> None:
    x = cnn["model"].image_to_input(png([1, 2, 3], (640, 480)))
    assert x.shape == (1, 32, 32, 3) and x.dtype == np.float32
    assert x[0, 0, 0].tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(cnn["model"].ImageError, match="could not decode"):
        cnn["model"].image_to_input(b"not an image")


# ---- against the bed's MLflow + S3 -----------------------------------------------------------

@pytest.fixture(scope="module")
def trained(bed_environ: dict[str, str], archive: Path, run_tag: str) -> dict[str, str]:
    """`python -m cnn_image.train` (the real CLI, as a process) registers a fresh model +
    alias."""
    name = f"t-cifar-{run_tag}"
    env = python_env({**bed_environ, "CIFAR10_DIR": str(archive), "MODEL_NAME": name,
                      "MLFLOW_EXPERIMENT_NAME": name, "EPOCHS": "6", "BATCH_SIZE": "32",
                      "LEARNING_RATE": "0.003", "TF_CPP_MIN_LOG_LEVEL": "2"})
    proc = subprocess.run([sys.executable, "-m", "cnn_image.train"], cwd=SERVICES / SERVICE,
                          env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"registered {name} version 1 as @champion" in proc.stdout
    return {"name": name, "log": proc.stderr}


@pytest.fixture(scope="module")
def served(cnn: dict[str, Any], trained: dict[str, str],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Any]]:
    """The API, loading the registered champion (training disabled: it must come from MLflow)."""
    settings = cnn["config"].Settings(model_name=trained["name"], train_if_missing=False,
                                      model_dir=tmp_path_factory.mktemp("models"))
    with TestClient(cnn["main"].create_app(settings)) as client:
        health = wait_for(lambda: client.get("/health"), lambda r: r.status_code == 200, 180)
        assert health.status_code == 200, health.text
        yield client, settings


@pytest.mark.e2e
@pytest.mark.slow
def test_training_logs_every_epoch(trained: dict[str, str], bed: dict[str, Any]) -> None:
    from mlflow.tracking import MlflowClient

    for epoch in range(1, 7):
        assert f"epoch {epoch}/6:" in trained["log"]
    client = MlflowClient(bed["mlflow"]["tracking_uri"])
    mv = client.get_model_version_by_alias(trained["name"], "champion")
    history = client.get_metric_history(mv.run_id, "accuracy")
    assert sorted(m.step for m in history) == list(range(6))
    run = client.get_run(mv.run_id)
    assert run.data.params["epochs"] == "6" and run.data.params["n_train"] == "300"
    # Ten well-separated colours: far above the 10 % of guessing.
    assert run.data.metrics["test_accuracy"] > 0.5


@pytest.mark.e2e
@pytest.mark.slow
def test_api_serves_the_registered_champion(served: tuple[TestClient, Any],
                                            trained: dict[str, str]) -> None:
    client, _ = served
    assert client.get("/health").json()["model"] == {"name": trained["name"], "version": "1"}
    info = client.get("/model").json()
    assert info["version"] == "1" and info["alias"] == "champion"
    assert info["class_names"] == CLASSES
    assert info["metrics"]["test_accuracy"] > 0.5


@pytest.mark.e2e
@pytest.mark.slow
def test_predict_any_size_image(served: tuple[TestClient, Any]) -> None:
    client, _ = served
    right = 0
    for label, colour in enumerate(PALETTE.tolist()):
        resp = client.post("/predict", params={"top_k": 4},
                           files={"file": ("x.png", png(colour, (200, 120)), "image/png")})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert len(body["top_k"]) == 4
        assert body["class"] == body["top_k"][0]["class"]
        probs = [s["probability"] for s in body["top_k"]]
        assert probs == sorted(probs, reverse=True)
        assert set(body["probabilities"]) == set(CLASSES)
        assert sum(body["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
        right += body["class"] == CLASSES[label]
    assert right >= 8  # the colours it was trained on, at a size it never saw


@pytest.mark.e2e
@pytest.mark.slow
def test_jpeg_and_greyscale_are_accepted(served: tuple[TestClient, Any]) -> None:
    client, _ = served
    buf = io.BytesIO()
    Image.new("L", (17, 900), 128).save(buf, format="JPEG")
    resp = client.post("/predict", files={"file": ("g.jpg", buf.getvalue(), "image/jpeg")})
    assert resp.status_code == 200, resp.text
    assert len(resp.json()["top_k"]) == 3  # the default k


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.parametrize(("kwargs", "loc", "msg"), [
    ({"files": {"file": ("a.txt", b"hello", "text/plain")}}, ["body", "file"],
     "a.txt: could not decode the upload as an image"),
    ({"files": {"file": ("e.png", b"", "image/png")}}, ["body", "file"], "file is empty"),
    ({"data": {"nofile": "x"}}, ["body", "file"], "Field required"),
    ({"files": {"file": ("x.png", png([0, 0, 0], (8, 8)), "image/png")},
      "params": {"top_k": 0}}, ["query", "top_k"], "greater than or equal to 1"),
])
def test_bad_input_is_422(served: tuple[TestClient, Any], kwargs: dict[str, Any],
                          loc: list[Any], msg: str) -> None:
    client, _ = served
    resp = client.post("/predict", **kwargs)
    assert resp.status_code == 422
    errors = resp.json()["detail"]
    assert any(e["loc"] == loc and msg in e["msg"] for e in errors), errors


@pytest.mark.e2e
@pytest.mark.slow
def test_model_artifacts_are_in_the_s3_bucket(served: tuple[TestClient, Any],
                                              trained: dict[str, str], bed: dict[str, Any],
                                              s3_client: Any) -> None:
    from mlflow.tracking import MlflowClient

    _, settings = served
    client = MlflowClient(bed["mlflow"]["tracking_uri"])
    mv = client.get_model_version(trained["name"], "1")
    location = client.get_logged_model(mv.source.removeprefix("models:/")).artifact_location
    prefix = location.removeprefix("mlflow-artifacts:/").strip("/")
    keys = s3_keys_ending(s3_client, bed["s3"]["bucket"], prefix + "/MLmodel")
    assert len(keys) == 1
    cache = settings.model_dir / trained["name"] / "1" / "model"
    stored_files = [p for p in cache.rglob("*") if p.is_file()]
    weights = [p for p in stored_files if p.suffix in {".keras", ".h5"}]
    assert weights, stored_files
    rel = weights[0].relative_to(cache).as_posix()
    key = s3_keys_ending(s3_client, bed["s3"]["bucket"], f"{prefix}/{rel}")
    assert len(key) == 1, rel
    body = s3_client.get_object(Bucket=bed["s3"]["bucket"], Key=key[0])["Body"].read()
    assert body == weights[0].read_bytes()


@pytest.mark.e2e
@pytest.mark.slow
def test_no_data_waits_healthy_then_loads_the_registered_champion(
    cnn: dict[str, Any], trained: dict[str, str], bed: dict[str, Any], run_tag: str,
    tmp_path: Path,
) -> None:
    """No champion and no data to train one: healthy for Swarm (status waiting-for-model, with
    the reason), /predict 503 with the fix, and the champion is served once it is registered
    (no restart)."""
    from mlflow.tracking import MlflowClient

    empty = tmp_path / "no-cifar"
    empty.mkdir()
    alias = f"later{run_tag}"
    settings = cnn["config"].Settings(model_name=trained["name"], model_alias=alias,
                                      train_if_missing=True, cifar10_dir=empty,
                                      model_dir=tmp_path / "models", model_poll_seconds=0.5)
    with TestClient(cnn["main"].create_app(settings)) as client:
        health = wait_for(lambda: client.get("/health"),
                          lambda r: r.json()["status"] == "waiting-for-model", 60)
        assert health.status_code == 200, health.text
        body = health.json()
        assert f"no {trained['name']}@{alias} registered, and training one failed" \
            in body["detail"]
        assert str(empty) in body["detail"]
        assert "CIFAR10_DIR" in body["fix"] and "python -m cnn_image.train" in body["fix"]
        resp = client.post("/predict", files={"file": ("x.png", png([0, 0, 0], (8, 8)),
                                                       "image/png")})
        assert resp.status_code == 503
        assert f"To fix: train and register {trained['name']}@{alias}" in resp.json()["detail"]
        MlflowClient(bed["mlflow"]["tracking_uri"]).set_registered_model_alias(
            trained["name"], alias, "1")
        health = wait_for(lambda: client.get("/health"),
                          lambda r: r.json()["status"] == "ready", 120)
        assert health.json()["model"] == {"name": trained["name"], "version": "1"}
        resp = client.post("/predict", files={"file": ("x.png", png(PALETTE[0].tolist(), (8, 8)),
                                                       "image/png")})
        assert resp.status_code == 200, resp.text

