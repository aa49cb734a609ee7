"""Pure functions of the services (each service's code is importable side by side: its package
is named after it; the S3 store entrypoint is the module ``s3store``)."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
import s3store
from gradio_frontend import clients
from svcutil import PACKAGES, SERVICES

# --- S3 store entrypoint ----------------------------------------------------------------------

def test_credentials_from_env_file_and_minio_names(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ak").write_text("fromfile\n")
    (tmp_path / "sk").write_text("secretfromfile\n")
    assert s3store.credentials({"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"}) == (
        "a", "b")
    assert s3store.credentials({"AWS_ACCESS_KEY_ID_FILE": str(tmp_path / "ak"),
                                "AWS_SECRET_ACCESS_KEY_FILE": str(tmp_path / "sk")}) == (
        "fromfile", "secretfromfile")
    # MinIO's convention: a bare *_FILE name is looked up under the secrets directory.
    monkeypatch.setattr(s3store, "SECRETS_DIR", tmp_path)
    assert s3store.credentials({"MINIO_ROOT_USER_FILE": "ak",
                                "MINIO_ROOT_PASSWORD": "pw"}) == ("fromfile", "pw")


@pytest.mark.parametrize(("env", "message"), [
    ({}, "no S3 credentials"),
    ({"AWS_ACCESS_KEY_ID": "a"}, "AWS_SECRET_ACCESS_KEY (or AWS_SECRET_ACCESS_KEY_FILE)"),
    ({"MINIO_ROOT_PASSWORD": "p"}, "MINIO_ROOT_USER (or MINIO_ROOT_USER_FILE) is not set"),
    ({"AWS_ACCESS_KEY_ID_FILE": "/nonexistent/ak", "AWS_SECRET_ACCESS_KEY": "s"},
     "AWS_ACCESS_KEY_ID_FILE=/nonexistent/ak: cannot read"),
])
def test_credential_errors_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(s3store.ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        s3store.credentials(env)


def test_bucket_names_are_validated() -> None:
    assert s3store.buckets({"S3_BUCKET": " mlflow, data-1 ,"}) == ["mlflow", "data-1"]
    assert s3store.buckets({}) == []
    for bad in ("UPPER", "ab", "-lead", "trail.", "under_score"):
        with pytest.raises(s3store.ConfigError, match=f"S3_BUCKET: '{bad}'"):
            s3store.buckets({"S3_BUCKET": bad})


def test_weed_argv_ports_and_no_telemetry() -> None:
    argv = s3store.weed_argv({"S3_PORT": "19000", "MASTER_PORT": "19001", "WEED_BIN": "weed"},
                             Path("/tmp/x.json"))
    assert argv[:2] == ["weed", "server"]
    assert "-master.telemetry=false" in argv and "-s3.port=19000" in argv
    assert "-master.port=19001" in argv and "-s3.config=/tmp/x.json" in argv
    assert "-ip.bind=0.0.0.0" in argv  # reachable from other containers by default
    with pytest.raises(s3store.ConfigError, match="S3_PORT='http'"):
        s3store.weed_argv({"S3_PORT": "http"}, Path("/tmp/x.json"))


def test_identities_document() -> None:
    doc: Any = s3store.identities("ak", "sk")
    [ident] = doc["identities"]
    assert ident["credentials"] == [{"accessKey": "ak", "secretKey": "sk"}]
    assert {"Read", "Write", "List"} <= set(ident["actions"])


# --- frontend response parsing -------------------------------------------------------------

@pytest.mark.parametrize("body", [
    {"model": {"name": "titanic-rf", "version": "3"},
     "predictions": [{"survival_probability": 0.73, "survived": True, "label": "survived"}]},
    {"predictions": [{"probability": 0.73}]},
    [{"proba": 0.73, "survived": True}],
    {"survived": True, "probability": 0.73},
])
def test_survival_variants(body: Any) -> None:
    got = clients.parse_survival(body)
    assert got.probability == pytest.approx(0.73) and got.survived is True


@pytest.mark.parametrize("body", [{"predictions": []}, {"predictions": [{"probability": 1.7}]},
                                  "nope", {"predictions": [{"survived": True}]}])
def test_survival_rejects_unusable_answers(body: Any) -> None:
    with pytest.raises(clients.BackendError, match="Titanic model"):
        clients.parse_survival(body)


def test_image_variants() -> None:
    a = clients.parse_image({"label": "cat", "probability": 0.6,
                             "top_k": [{"label": "dog", "probability": 0.3},
                                       {"label": "cat", "probability": 0.6}]})
    assert (a.label, a.probability, a.top_k[0]) == ("cat", 0.6, ("cat", 0.6))
    b = clients.parse_image({"class": "ship", "confidence": 0.9,
                             "probabilities": {"ship": 0.9, "truck": 0.1}})
    assert (b.label, b.probability, [n for n, _ in b.top_k]) == ("ship", 0.9, ["ship", "truck"])
    c = clients.parse_image({"predictions": [{"class": "frog", "score": 0.5}]})
    assert (c.label, c.probability) == ("frog", 0.5)
    with pytest.raises(clients.BackendError, match="without a label"):
        clients.parse_image({"top_k": []})


def test_error_descriptions() -> None:
    def resp(status: int, **kw: Any) -> httpx.Response:
        return httpx.Response(status, **kw)

    ours = resp(503, json={"error": {"title": "Gemini API key not configured",
                                     "detail": "No key.", "fix": "Set GOOGLE_API_KEY."}})
    assert clients._describe_error(ours) == (
        "HTTP 503: Gemini API key not configured. No key. — Set GOOGLE_API_KEY.")
    fastapi_422 = resp(422, json={"detail": [{"loc": ["body", "age"],
                                              "msg": "Input should be <= 120"}]})
    assert clients._describe_error(fastapi_422) == (
        "HTTP 422: invalid input (age: Input should be <= 120)")
    assert clients._describe_error(resp(503, json={"status": "starting", "detail": "loading"})
                                   ) == "HTTP 503: loading"
    assert clients._describe_error(resp(500, text="boom")) == "HTTP 500: boom"


# --- the model stand-ins speak the real services' schemas ----------------------------------

def _schemas(service: str) -> ModuleType:
    path = SERVICES / service / PACKAGES[service] / "schemas.py"
    assert path.exists(), f"{path} is gone: update the frontend's client and its stand-ins"
    return importlib.import_module(f"{PACKAGES[service]}.schemas")


def test_sklearn_standin_matches_sklearn_model_schemas() -> None:
    from fastapi.testclient import TestClient
    from model_standins import Passenger, sklearn_app

    real = _schemas("sklearn-model")
    assert set(Passenger.model_fields) == set(real.Passenger.model_fields)
    passenger = {"pclass": 2, "sex": "male", "age": 40.0, "sibsp": 0, "parch": 1,
                 "fare": 13.0, "embarked": "Q"}
    real.Passenger.model_validate(passenger)  # what the frontend sends is valid there
    body = TestClient(sklearn_app([])).post("/predict", json=passenger).json()
    real.PredictResponse.model_validate(body)
    assert clients.parse_survival(body).probability == body["predictions"][0][
        "survival_probability"]


def test_cnn_standin_matches_cnn_image_schemas(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient
    from model_standins import cnn_app
    from PIL import Image

    real = _schemas("cnn-image")
    png = tmp_path / "g.png"
    Image.new("RGB", (10, 10), (10, 200, 10)).save(png)
    resp = TestClient(cnn_app([])).post("/predict", params={"top_k": 4},
                                        files={"file": ("g.png", png.read_bytes(), "image/png")})
    body = resp.json()
    # cnn-image serializes `label` as "class": rebuild its model and compare the wire form.
    fields = {k: v for k, v in body.items() if k != "class"}
    parsed = real.PredictResponse.model_validate({**fields, "label": body["class"]})
    assert parsed.model_dump(by_alias=True) == body
    got = clients.parse_image(body)
    assert got.label == parsed.label and len(got.top_k) == 4
    assert got.probability == body["probabilities"][parsed.label]
