"""mlflow-server image entrypoint: settings -> `mlflow server` argv/env (secrets never on the
command line), and the real server it starts, against the bed's S3."""

from __future__ import annotations

import fnmatch
import importlib.util
import os
import signal
import subprocess
import sys
import time
import types
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from model_fixtures import *  # noqa: F403  (pytest fixtures)
from svc_util import SERVICES, s3_keys_ending, wait_for
from svcutil import pythonpath

ENTRYPOINT = SERVICES / "mlflow-server" / "entrypoint.py"
PORT = 19510
VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def ep() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("mlflow_server_entrypoint", ENTRYPOINT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def base_env(tmp_path: Path) -> dict[str, str]:
    return {"MLFLOW_BACKEND_STORE_URI": f"sqlite:///{tmp_path}/mlflow.db",
            "MLFLOW_ARTIFACTS_DESTINATION": "s3://mlflow/artifacts",
            "AWS_ACCESS_KEY_ID": "ak", "AWS_SECRET_ACCESS_KEY": "sk"}


def test_command_line_holds_no_secret(ep: types.ModuleType, tmp_path: Path) -> None:
    (tmp_path / "ak").write_text("AK-FROM-FILE\n")
    (tmp_path / "sk").write_text("SK-FROM-FILE\n")
    (tmp_path / "pw").write_text("p@ss:w/rd\n")
    env = {"MLFLOW_BACKEND_STORE_URI": "postgresql://mlflow@postgres:5432/mlflow",
           "MLFLOW_BACKEND_STORE_PASSWORD_FILE": str(tmp_path / "pw"),
           "MLFLOW_ARTIFACTS_DESTINATION": "s3://mlflow/artifacts",
           "AWS_ACCESS_KEY_ID_FILE": str(tmp_path / "ak"),
           "AWS_SECRET_ACCESS_KEY_FILE": str(tmp_path / "sk"),
           "MLFLOW_PORT": "5000"}
    argv, out = ep.build(env)
    assert argv == ["mlflow", "server", "--host", "0.0.0.0", "--port", "5000",
                    "--artifacts-destination", "s3://mlflow/artifacts", "--workers", "1"]
    assert out["AWS_ACCESS_KEY_ID"] == "AK-FROM-FILE"
    assert out["AWS_SECRET_ACCESS_KEY"] == "SK-FROM-FILE"
    # The password is URL-quoted into the URI, which travels in the environment only.
    assert out["MLFLOW_BACKEND_STORE_URI"] == (
        "postgresql://mlflow:p%40ss%3Aw%2Frd@postgres:5432/mlflow")
    assert "MLFLOW_BACKEND_STORE_PASSWORD" not in out
    assert not any(k.endswith("_FILE") for k in out)
    line = ep.describe(argv, out)
    assert "p%40ss" not in line and "SK-FROM-FILE" not in line and ":***@postgres" in line


@pytest.mark.parametrize(("change", "message"), [
    ({"AWS_ACCESS_KEY_ID_FILE": "/nonexistent/ak"},
     "both AWS_ACCESS_KEY_ID and AWS_ACCESS_KEY_ID_FILE are set"),
    ({"AWS_SECRET_ACCESS_KEY": "", "AWS_SECRET_ACCESS_KEY_FILE": "/nonexistent/sk"},
     "AWS_SECRET_ACCESS_KEY_FILE=/nonexistent/sk: cannot read the file"),
    ({"AWS_SECRET_ACCESS_KEY": ""}, "AWS_SECRET_ACCESS_KEY not set (plain or as *_FILE)"),
    ({"MLFLOW_ARTIFACTS_DESTINATION": ""}, "MLFLOW_ARTIFACTS_DESTINATION is not set"),
    ({"MLFLOW_PORT": "50x"}, "MLFLOW_PORT='50x': expected a TCP port number"),
    ({"MLFLOW_BACKEND_STORE_URI": "sqlite:////nonexistent/dir/mlflow.db"},
     "directory /nonexistent/dir does not exist"),
    ({"MLFLOW_BACKEND_STORE_URI": "postgresql://u:old@db/x",
      "MLFLOW_BACKEND_STORE_PASSWORD": "new"}, "already has a password"),
    ({"MLFLOW_BACKEND_STORE_URI": "postgresql://db/x", "MLFLOW_BACKEND_STORE_PASSWORD": "pw"},
     "names no user"),
])
def test_bad_settings_are_named(ep: types.ModuleType, tmp_path: Path, change: dict[str, str],
                                message: str) -> None:
    env = {**base_env(tmp_path), **change}
    with pytest.raises(ep.ConfigError) as info:
        ep.build(env)
    assert message in str(info.value)


def test_stack_name_is_an_allowed_host(ep: types.ModuleType, tmp_path: Path) -> None:
    _, out = ep.build(base_env(tmp_path))
    patterns = out["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
    for host in ("mlflow-server:5000", "mlflow-server", "localhost:5000", "10.0.3.7:5000",
                 "172.20.0.5:5000"):
        assert any(fnmatch.fnmatch(host, p) for p in patterns), host
    assert not any(fnmatch.fnmatch("evil.example:5000", p) for p in patterns)
    given = ep.build({**base_env(tmp_path), "MLFLOW_SERVER_ALLOWED_HOSTS": "a.b"})[1]
    assert given["MLFLOW_SERVER_ALLOWED_HOSTS"] == "a.b"


def test_bad_settings_exit_2_without_starting(tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": pythonpath({}), **base_env(tmp_path),
           "MLFLOW_PORT": "nope"}
    proc = subprocess.run([sys.executable, str(ENTRYPOINT)], env=env, capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 2
    assert "configuration error: MLFLOW_PORT='nope'" in proc.stderr


# ---- the real server, started through the entrypoint, artifacts to the bed's S3 ---------------

@pytest.fixture(scope="module")
def server(bed: dict[str, Any], tmp_path_factory: pytest.TempPathFactory,
           run_tag: str) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("mlflow-server")
    s3 = bed["s3"]
    (tmp / "ak").write_text(s3["access_key"])
    (tmp / "sk").write_text(s3["secret_key"] + "\n")
    prefix = f"t-mlflow-server-{run_tag}"
    env = {"PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}", "HOME": str(tmp),
           "PYTHONPATH": pythonpath({}),
           "MLFLOW_BACKEND_STORE_URI": f"sqlite:///{tmp}/mlflow.db",
           "MLFLOW_ARTIFACTS_DESTINATION": f"s3://{s3['bucket']}/{prefix}",
           "MLFLOW_HOST": "127.0.0.1", "MLFLOW_PORT": str(PORT),
           "MLFLOW_S3_ENDPOINT_URL": s3["endpoint"], "AWS_DEFAULT_REGION": s3["region"],
           "AWS_ACCESS_KEY_ID_FILE": str(tmp / "ak"), "AWS_SECRET_ACCESS_KEY_FILE": str(tmp / "sk")}
    log = (tmp / "server.log").open("w")
    # Own session: the server forks uvicorn; the whole group is stopped by its id afterwards.
    proc = subprocess.Popen([sys.executable, str(ENTRYPOINT)], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{PORT}"
    try:
        ok = wait_for(lambda: _status(url + "/health"), lambda s: s == 200, 90)
        assert ok == 200, (tmp / "server.log").read_text()[-3000:]
        yield {"url": url, "pid": proc.pid, "prefix": prefix, "secret": s3["secret_key"],
               "log": tmp / "server.log"}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def _status(url: str, host: str | None = None) -> int:
    req = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


@pytest.mark.e2e
@pytest.mark.slow
def test_server_stores_artifacts_in_s3(server: dict[str, Any], bed: dict[str, Any],
                                       s3_client: Any, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(server["url"])
    exp = client.create_experiment(f"t-server-{time.monotonic_ns()}")
    run = client.create_run(exp)
    (tmp_path / "hello.txt").write_text("artifact through the proxy\n")
    client.log_artifact(run.info.run_id, str(tmp_path / "hello.txt"))
    keys = s3_keys_ending(s3_client, bed["s3"]["bucket"], f"{run.info.run_id}/artifacts/hello.txt")
    assert len(keys) == 1 and keys[0].startswith(server["prefix"] + "/")
    body = s3_client.get_object(Bucket=bed["s3"]["bucket"], Key=keys[0])["Body"].read()
    assert body == b"artifact through the proxy\n"


@pytest.mark.e2e
@pytest.mark.slow
def test_server_accepts_the_stack_host_name(server: dict[str, Any]) -> None:
    api = server["url"] + "/api/2.0/mlflow/experiments/search?max_results=1"
    assert _status(api, host=f"mlflow-server:{PORT}") == 200
    assert _status(api, host="evil.example") == 403


@pytest.mark.e2e
@pytest.mark.slow
def test_secrets_not_in_process_list_or_log(server: dict[str, Any]) -> None:
    cmdlines = []
    for proc_dir in Path("/proc").iterdir():
        if not proc_dir.name.isdigit():
            continue
        try:
            if os.getpgid(int(proc_dir.name)) != server["pid"]:
                continue
            cmdlines.append((proc_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except (OSError, ProcessLookupError):
            continue
    assert any("mlflow" in c and "server" in c for c in cmdlines), cmdlines
    assert not any(server["secret"] in c for c in cmdlines)
    text = server["log"].read_text()
    assert "mlflow-server: starting mlflow server" in text
    assert server["secret"] not in text
