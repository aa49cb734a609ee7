"""sklearn-model service: data checks, settings (*_FILE), and train -> register -> serve against
the bed's real MLflow and S3 (in-process FastAPI TestClient)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from model_fixtures import *  # noqa: F403  (pytest fixtures)
from sklearn.model_selection import train_test_split
from svc_util import SERVICES, python_env, s3_keys_ending, service_app, wait_for

SERVICE = "sklearn-model"
MODULES = ("config", "data", "model", "flavour", "main")


@pytest.fixture(scope="module")
def sk() -> Iterator[dict[str, Any]]:
    """The service's modules (``sk["main"].create_app`` ...)."""
    with service_app(SERVICE, *MODULES) as mods:
        yield mods


# ---- pure code: data set and settings ------------------------------------------------------

def test_csv_with_missing_column_names_it(sk: dict[str, Any], titanic_csv: Path,
                                          tmp_path: Path) -> None:
    bad = tmp_path / "train.csv"
    pd.read_csv(titanic_csv).drop(columns=["Fare"]).to_csv(bad, index=False)
    with pytest.raises(sk["data"].DatasetError, match=r"missing column\(s\) Fare"):
        sk["data"].load_titanic(bad)


def test_csv_with_bad_target_names_the_line(sk: dict[str, Any], titanic_csv: Path,
                                            tmp_path: Path) -> None:
    frame = pd.read_csv(titanic_csv)
    frame.loc[4, "Survived"] = 7
    bad = tmp_path / "train.csv"
    frame.to_csv(bad, index=False)
    with pytest.raises(sk["data"].DatasetError, match=r"line 6: Survived must be 0 or 1, got 7"):
        sk["data"].load_titanic(bad)


def test_missing_csv_says_which_setting(sk: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(sk["data"].DatasetError, match="no such file.*TITANIC_CSV"):
        sk["data"].load_titanic(tmp_path / "nope.csv")


def test_title_from_the_name_or_inferred(sk: dict[str, Any]) -> None:
    title = sk["data"].title_of
    assert title("Braund, Mr. Owen Harris", "male", 22) == "Mr"
    assert title("Palsson, Master. Gosta Leonard", "male", 2) == "Master"
    assert title("Nasser, Mrs. Nicholas (Adele Achem)", "female", 14) == "Mrs"
    assert title("Rothes, the Countess. of (Lucy Noel Martha Dyer-Edwards)", "female",
                 33) == "Rare"
    assert title("Aubart, Mme. Leontine Pauline", "female", 24) == "Mrs"
    assert title(None, "male", 8) == "Master" and title(None, "male", None) == "Mr"
    assert title(None, "female", 30) == "Mrs" and title(None, "female", float("nan")) == "Miss"
    assert title("no title here", None, None) is None


def test_frame_derives_family_size_and_keeps_old_columns(sk: dict[str, Any]) -> None:
    frame = sk["data"].features_frame([{"Pclass": 3, "Sex": "male", "SibSp": 1, "Parch": 2,
                                        "Name": "Goodwin, Master. Sidney Leonard"},
                                       {"Pclass": 1, "Sex": "female"}])
    assert frame["FamilySize"].tolist() == [4.0, 1.0]
    assert frame["Title"].tolist() == ["Master", "Miss"]
    # SibSp/Parch stay: versions registered before the derived features read them.
    assert {"SibSp", "Parch", "Age", "Fare", "Pclass", "Sex", "Embarked"} <= set(frame.columns)


@pytest.mark.slow
def test_cross_validated_accuracy_reaches_084(sk: dict[str, Any], titanic_csv: Path) -> None:
    x, y = sk["data"].load_titanic(titanic_csv)
    cv = sk["model"].cross_validate(x, y, sk["model"].Hyperparams())
    # 0.826 +- 0.030 before the title and family size; seen 0.842 +- 0.023 after.
    assert cv["cv_accuracy_mean"] >= 0.84, cv


def test_real_csv_shape(sk: dict[str, Any], titanic_csv: Path) -> None:
    x, y = sk["data"].load_titanic(titanic_csv)
    assert x.shape == (891, 9)  # 7 columns of the CSV + Title and FamilySize
    assert int(y.sum()) == 342  # survivors in Kaggle's train.csv


def test_credentials_from_files(sk: dict[str, Any], tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ak").write_text("AKFILE\n")
    (tmp_path / "sk").write_text("SKFILE\n")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID_FILE", str(tmp_path / "ak"))
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY_FILE", str(tmp_path / "sk"))
    settings = sk["config"].Settings()
    assert settings.aws_access_key_id.get_secret_value() == "AKFILE"
    assert settings.aws_secret_access_key.get_secret_value() == "SKFILE"
    assert "SKFILE" not in repr(settings)


def test_credentials_plain_and_file_conflict(sk: dict[str, Any], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ak").write_text("x")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "plain")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID_FILE", str(tmp_path / "ak"))
    with pytest.raises(ValueError, match="both AWS_ACCESS_KEY_ID and AWS_ACCESS_KEY_ID_FILE"):
        sk["config"].Settings()


def test_credentials_file_unreadable(sk: dict[str, Any], tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY_FILE", str(tmp_path / "missing"))
    with pytest.raises(ValueError, match=r"AWS_SECRET_ACCESS_KEY_FILE=.*missing: cannot read"):
        sk["config"].Settings()


# ---- against the bed's MLflow + S3 -----------------------------------------------------------

@pytest.fixture(scope="module")
def trained(bed_environ: dict[str, str], titanic_csv: Path, run_tag: str) -> dict[str, str]:
    """`python -m sklearn_model.train` (the real CLI, as a process) registers a fresh model +
    alias."""
    name = f"t-titanic-{run_tag}"
    env = python_env({**bed_environ, "TITANIC_CSV": str(titanic_csv), "MODEL_NAME": name,
                      "MLFLOW_EXPERIMENT_NAME": f"t-titanic-{run_tag}", "N_ESTIMATORS": "150"})
    proc = subprocess.run([sys.executable, "-m", "sklearn_model.train"], cwd=SERVICES / SERVICE,
                          env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"registered {name} version 1 as @champion" in proc.stdout
    return {"name": name, "experiment": f"t-titanic-{run_tag}"}


@pytest.fixture(scope="module")
def served(sk: dict[str, Any], trained: dict[str, str], tmp_path_factory: pytest.TempPathFactory,
           titanic_csv: Path) -> Iterator[tuple[TestClient, Any]]:
    """The API, loading the registered champion (training disabled: it must come from MLflow)."""
    settings = sk["config"].Settings(model_name=trained["name"], train_if_missing=False,
                                     model_dir=tmp_path_factory.mktemp("models"),
                                     titanic_csv=titanic_csv)
    with TestClient(sk["main"].create_app(settings)) as client:
        health = wait_for(lambda: client.get("/health"), lambda r: r.status_code == 200, 120)
        assert health.status_code == 200, health.text
        yield client, settings


@pytest.mark.e2e
@pytest.mark.slow
def test_api_serves_the_registered_champion(served: tuple[TestClient, Any],
                                            trained: dict[str, str]) -> None:
    client, _ = served
    body = client.get("/health").json()
    assert body["status"] == "ready"
    assert body["model"] == {"name": trained["name"], "version": "1"}
    info = client.get("/model").json()
    assert info["name"] == trained["name"] and info["version"] == "1"
    assert info["alias"] == "champion" and info["source"] == "registry"
    assert set(info["metrics"]) == {"accuracy", "f1", "roc_auc", "cv_accuracy_mean",
                                    "cv_accuracy_std"}
    assert info["metrics"]["accuracy"] > 0.75
    # Stratified 5-fold CV of the served pipeline (title + family size), logged by training.
    assert info["metrics"]["cv_accuracy_mean"] >= 0.83
    assert 0 < info["metrics"]["cv_accuracy_std"] < 0.06


@pytest.mark.e2e
@pytest.mark.slow
def test_predictions_on_held_out_rows(served: tuple[TestClient, Any], titanic_csv: Path) -> None:
    client, settings = served
    frame = pd.read_csv(titanic_csv)
    # The same split the training run held out (same seed, same stratification).
    _, held_out = train_test_split(frame, test_size=settings.test_size,
                                   random_state=settings.random_state,
                                   stratify=frame["Survived"])
    passengers = [
        {"pclass": int(r.Pclass), "sex": r.Sex,
         "age": None if pd.isna(r.Age) else float(r.Age), "sibsp": int(r.SibSp),
         "parch": int(r.Parch), "fare": None if pd.isna(r.Fare) else float(r.Fare),
         "embarked": None if pd.isna(r.Embarked) else r.Embarked, "name": r.Name}
        for r in held_out.itertuples()
    ]
    resp = client.post("/predict", json=passengers)
    assert resp.status_code == 200, resp.text
    preds = resp.json()["predictions"]
    # Today's requests (no name) still answer, the title inferred from sex and age.
    unnamed = client.post("/predict", json=[{k: v for k, v in p.items() if k != "name"}
                                            for p in passengers])
    assert unnamed.status_code == 200, unnamed.text
    assert len(unnamed.json()["predictions"]) == len(held_out)
    assert len(preds) == len(held_out)
    assert all(0.0 <= p["survival_probability"] <= 1.0 for p in preds)
    assert all(p["survived"] == (p["survival_probability"] >= 0.5) for p in preds)
    accuracy = sum(p["survived"] == bool(s) for p, s in zip(preds, held_out["Survived"],
                                                             strict=True)) / len(preds)
    assert accuracy > 0.75
    # One passenger as an object; women in first class mostly survived, men in third did not.
    one = client.post("/predict", json={"pclass": 1, "sex": "female", "age": 30}).json()
    assert one["predictions"][0]["survived"] is True
    other = client.post("/predict", json={"pclass": 3, "sex": "male", "age": 30}).json()
    assert other["predictions"][0]["survived"] is False


@pytest.mark.e2e
@pytest.mark.slow
def test_answers_are_the_registered_pipelines_own(sk: dict[str, Any],
                                                  served: tuple[TestClient, Any],
                                                  trained: dict[str, str],
                                                  titanic_csv: Path) -> None:
    """/predict (its numpy fast path) says what scikit-learn says with the version it cached:
    the pipeline on the feature frame, rounded as the API rounds."""
    import mlflow.sklearn

    client, settings = served
    pipeline = mlflow.sklearn.load_model(str(settings.model_dir / trained["name"] / "1" / "model"))
    frame = pd.read_csv(titanic_csv).head(300)
    bodies = [{"pclass": int(r.Pclass), "sex": r.Sex, "sibsp": int(r.SibSp), "parch": int(r.Parch),
               "age": None if pd.isna(r.Age) else float(r.Age),
               "fare": None if pd.isna(r.Fare) else float(r.Fare),
               "embarked": None if pd.isna(r.Embarked) else r.Embarked,
               **({"name": r.Name} if r.Index % 2 else {})} for r in frame.itertuples()]
    records = [{"Pclass": b["pclass"], "Sex": b["sex"], "Age": b["age"], "SibSp": b["sibsp"],
                "Parch": b["parch"], "Fare": b["fare"], "Embarked": b["embarked"],
                "Name": b.get("name")} for b in bodies]
    expected = sk["model"].survival_probability(pipeline, sk["data"].features_frame(records))
    answers = [client.post("/predict", json=bodies).json()["predictions"],
               [client.post("/predict", json=b).json()["predictions"][0] for b in bodies[:40]]]
    for got in answers:
        assert [p["survival_probability"] for p in got] == [
            round(float(p), 6) for p in expected[:len(got)]]


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.parametrize(("body", "loc", "msg"), [
    ({"pclass": 4, "sex": "male"}, ["body", "pclass"], "Input should be 1, 2 or 3"),
    ({"pclass": 1, "sex": "robot"}, ["body", "sex"], "Input should be 'male' or 'female'"),
    ({"pclass": 1, "sex": "male", "age": -3}, ["body", "age"], "greater than or equal to 0"),
    ({"pclass": 1, "sex": "male", "agee": 3}, ["body", "agee"], "Extra inputs are not permitted"),
    ({"sex": "male"}, ["body", "pclass"], "Field required"),
    ([{"pclass": 1, "sex": "male"}, {"pclass": "first", "sex": "male"}], ["body", 1, "pclass"],
     "Input should be 1, 2 or 3"),
    ([], ["body"], "at least 1 item"),
    ("hello", ["body"], "expected a passenger object or a list of passenger objects"),
])
def test_bad_input_is_422_with_the_field(served: tuple[TestClient, Any], body: Any,
                                         loc: list[Any], msg: str) -> None:
    client, _ = served
    resp = client.post("/predict", json=body)
    assert resp.status_code == 422
    errors = resp.json()["detail"]
    assert any(e["loc"] == loc and msg in e["msg"] for e in errors), errors


@pytest.mark.e2e
@pytest.mark.slow
def test_model_artifact_is_in_the_s3_bucket(served: tuple[TestClient, Any], trained: dict[str, str],
                                            bed: dict[str, Any], s3_client: Any) -> None:
    from mlflow.tracking import MlflowClient

    _, settings = served
    mlflow_client = MlflowClient(bed["mlflow"]["tracking_uri"])
    mv = mlflow_client.get_model_version(trained["name"], "1")
    assert mv.source.startswith("models:/m-")  # MLflow 3: the version points at a logged model
    location = mlflow_client.get_logged_model(mv.source.removeprefix("models:/")).artifact_location
    assert location.startswith("mlflow-artifacts:/")  # proxied: the server writes to S3
    suffix = location.removeprefix("mlflow-artifacts:/").strip("/") + "/model.skops"
    keys = s3_keys_ending(s3_client, bed["s3"]["bucket"], suffix)
    assert len(keys) == 1, suffix
    stored = s3_client.get_object(Bucket=bed["s3"]["bucket"], Key=keys[0])["Body"].read()
    # The API's cache holds exactly those bytes: it loaded the model from the bucket.
    cached = settings.model_dir / trained["name"] / "1" / "model" / "model.skops"
    assert cached.read_bytes() == stored


@pytest.mark.e2e
@pytest.mark.slow
def test_trains_when_nothing_is_registered(sk: dict[str, Any], bed_environ: dict[str, str],
                                           titanic_csv: Path, run_tag: str,
                                           tmp_path: Path) -> None:
    name = f"t-titanic-auto-{run_tag}"
    settings = sk["config"].Settings(model_name=name, mlflow_experiment_name=name,
                                     model_dir=tmp_path, titanic_csv=titanic_csv,
                                     n_estimators=50)
    with TestClient(sk["main"].create_app(settings)) as client:
        assert client.get("/health").json()["status"] in {"starting", "training", "ready"}
        # Training a first model counts as healthy: Swarm must not restart it meanwhile.
        health = wait_for(lambda: client.get("/health"),
                          lambda r: r.json()["status"] != "starting", 60)
        assert health.status_code == 200, health.text
        health = wait_for(lambda: client.get("/health"),
                          lambda r: r.json()["status"] == "ready", 180)
        assert health.status_code == 200, health.text
        info = client.get("/model").json()
    assert info["name"] == name and info["version"] == "1" and info["metrics"]["accuracy"] > 0.7
    from mlflow.tracking import MlflowClient

    mv = MlflowClient(bed_environ["MLFLOW_TRACKING_URI"]).get_model_version_by_alias(name,
                                                                                     "champion")
    assert mv.version == "1"


@pytest.mark.e2e
@pytest.mark.slow
def test_no_model_and_no_training_waits_healthy_then_loads_it(
    sk: dict[str, Any], trained: dict[str, str], bed_environ: dict[str, str], run_tag: str,
    tmp_path: Path,
) -> None:
    """Nothing registered under the alias and training disabled: healthy for Swarm (a restart
    cannot help), /predict says how to register one, and the model is served once registered."""
    from mlflow.tracking import MlflowClient

    alias = f"later{run_tag}"
    settings = sk["config"].Settings(model_name=trained["name"], model_alias=alias,
                                     train_if_missing=False, model_dir=tmp_path,
                                     model_poll_seconds=0.5)
    with TestClient(sk["main"].create_app(settings)) as client:
        health = wait_for(lambda: client.get("/health"),
                          lambda r: r.json()["status"] == "waiting-for-model", 60)
        assert health.status_code == 200, health.text
        body = health.json()
        assert f"no {trained['name']}@{alias} registered" in body["detail"]
        assert "TRAIN_IF_MISSING is false" in body["detail"]
        assert "python -m sklearn_model.train" in body["fix"] and body["model"] is None
        resp = client.post("/predict", json={"pclass": 1, "sex": "male"})
        assert resp.status_code == 503
        detail = resp.json()["detail"]
        assert "no model loaded yet (waiting-for-model)" in detail
        assert f"To fix: train and register {trained['name']}@{alias}" in detail
        # Register it (point the alias at the trained version): served without a restart.
        MlflowClient(bed_environ["MLFLOW_TRACKING_URI"]).set_registered_model_alias(
            trained["name"], alias, "1")
        health = wait_for(lambda: client.get("/health"),
                          lambda r: r.json()["status"] == "ready", 60)
        assert health.json()["model"] == {"name": trained["name"], "version": "1"}
        resp = client.post("/predict", json={"pclass": 1, "sex": "female"})
        assert resp.status_code == 200, resp.text


@pytest.mark.e2e
@pytest.mark.slow
def test_missing_training_data_waits_healthy(sk: dict[str, Any], bed_environ: dict[str, str],
                                             run_tag: str, tmp_path: Path) -> None:
    settings = sk["config"].Settings(model_name=f"t-absent-{run_tag}", train_if_missing=True,
                                     titanic_csv=tmp_path / "none.csv", model_dir=tmp_path,
                                     model_poll_seconds=0.5)
    with TestClient(sk["main"].create_app(settings)) as client:
        health = wait_for(lambda: client.get("/health"),
                          lambda r: r.json()["status"] == "waiting-for-model", 60)
        assert health.status_code == 200
        assert "training one failed" in health.json()["detail"]
        assert "none.csv: no such file" in health.json()["detail"]
        assert client.post("/predict", json={"pclass": 1, "sex": "male"}).status_code == 503


@pytest.mark.e2e
@pytest.mark.slow
def test_mlflow_down_reports_starting_then_serves_cache(
    sk: dict[str, Any], served: tuple[TestClient, Any], trained: dict[str, str],
    bed_environ: dict[str, str],
) -> None:
    _, good = served  # its MODEL_DIR holds a cached version 1
    down = "http://127.0.0.1:19599"  # nothing listens there (our port range)
    waiting = sk["config"].Settings(mlflow_tracking_uri=down, model_name=trained["name"],
                                    model_dir=good.model_dir / "empty", startup_wait_seconds=0,
                                    startup_backoff_max=0.5)
    with TestClient(sk["main"].create_app(waiting)) as client:
        health = wait_for(lambda: client.get("/health"),
                          lambda r: "waiting for MLflow" in r.json()["detail"], 30)
        assert health.status_code == 503
        assert health.json()["status"] == "starting"
        assert down in health.json()["detail"]
    cached = sk["config"].Settings(mlflow_tracking_uri=down, model_name=trained["name"],
                                   model_dir=good.model_dir, startup_wait_seconds=0)
    with TestClient(sk["main"].create_app(cached)) as client:
        health = wait_for(lambda: client.get("/health"), lambda r: r.status_code == 200, 60)
        assert health.status_code == 200, health.text
        assert client.get("/model").json()["source"] == "cache"
        assert client.post("/predict", json={"pclass": 2, "sex": "female"}).status_code == 200
