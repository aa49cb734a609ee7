"""Bad values input, table-driven: every case exits non-zero through the real CLI, names the
file (or --set argument), the key path and, where a line exists, the line; and writes nothing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from deployer.cli import main


@dataclass(frozen=True)
class Case:
    id: str
    #: Contents of one values file passed with -f (None: no file); bytes for raw encodings.
    file: str | bytes | None = None
    sets: tuple[str, ...] = ()
    #: Substrings the error output must contain. "{file}" is replaced by the file's path.
    expect: tuple[str, ...] = ()
    extra_args: tuple[str, ...] = ()
    #: Use this path for -f instead of writing `file` (missing file, directory).
    path_kind: str = "file"


CASES = [
    # --- typos and unknown keys --------------------------------------------------------------
    Case("typo-image", "services:\n  minio:\n    iamge: x\n",
         expect=("{file}:3", "services.minio.iamge", "unknown key 'iamge'",
                 "did you mean 'image'")),
    Case("typo-top-level", "servics:\n  minio: {}\n",
         expect=("{file}:1", "servics", "unknown key", "did you mean 'services'")),
    Case("typo-nested-resources", "services:\n  cnn-image:\n    resources:\n      limit: {}\n",
         expect=("{file}:4", "services.cnn-image.resources.limit", "did you mean 'limits'")),
    Case("unknown-service-in-file", "services:\n  gradio:\n    replicas: 2\n",
         expect=("{file}:2", "services.gradio", "unknown key 'gradio'", "gradio-frontend")),
    Case("typo-swarm-key", "swarm:\n  endpoint: dnsrr\n",
         expect=("{file}:2", "swarm.endpoint", "endpoint_mode")),
    # --- wrong types and ranges --------------------------------------------------------------
    Case("replicas-string", "services:\n  minio:\n    replicas: two\n",
         expect=("{file}:3", "services.minio.replicas", "valid integer", "'two'")),
    Case("replicas-negative", "services:\n  llm-connector:\n    replicas: -1\n",
         expect=("{file}:3", "services.llm-connector.replicas", "greater than or equal to 0")),
    Case("replicas-float", "services:\n  llm-connector:\n    replicas: 1.5\n",
         expect=("{file}:3", "services.llm-connector.replicas", "integer")),
    Case("replicas-bool", "services:\n  llm-connector:\n    replicas: yes\n",
         expect=("{file}:3", "services.llm-connector.replicas", "integer")),
    Case("replicas-too-many", "services:\n  llm-connector:\n    replicas: 1000\n",
         expect=("{file}:3", "services.llm-connector.replicas", "less than or equal to 100")),
    Case("port-zero", "services:\n  sklearn-model:\n    port: 0\n",
         expect=("{file}:3", "services.sklearn-model.port", "greater than or equal to 1")),
    Case("port-too-big", "services:\n  sklearn-model:\n    port: 70000\n",
         expect=("{file}:3", "services.sklearn-model.port", "less than or equal to 65535")),
    Case("port-with-letters", "services:\n  sklearn-model:\n    port: 80a\n",
         expect=("{file}:3", "services.sklearn-model.port", "'80a'")),
    Case("published-port-too-big", "services:\n  minio:\n    published_console_port: 99999\n",
         expect=("{file}:3", "services.minio.published_console_port", "65535")),
    Case("cpus-negative", "services:\n  minio:\n    resources:\n      limits: {cpus: -1}\n",
         expect=("{file}:4", "services.minio.resources.limits.cpus", "greater than 0")),
    Case("memory-garbage", "services:\n  minio:\n    resources:\n      limits: {memory: lots}\n",
         expect=("{file}:4", "services.minio.resources.limits.memory", "'lots'")),
    Case("duration-not-a-duration", "services:\n  minio:\n    healthcheck:\n      interval: soon\n",
         expect=("{file}:4", "services.minio.healthcheck.interval", "'soon'")),
    Case("duration-bare-number", "swarm:\n  update_config:\n    monitor: 30\n",
         expect=("{file}:3", "swarm.update_config.monitor", "string")),
    Case("healthcheck-path-relative", "services:\n  minio:\n    healthcheck: {path: health}\n",
         expect=("{file}:3", "services.minio.healthcheck.path", "'health'")),
    Case("image-with-space", "services:\n  cnn-image:\n    image: my image\n",
         expect=("{file}:3", "services.cnn-image.image", "'my image'")),
    Case("image-uppercase", "services:\n  cnn-image:\n    image: MLops/Cnn:1\n",
         expect=("{file}:3", "services.cnn-image.image")),
    Case("stack-name-uppercase", "stack:\n  name: MLOps\n",
         expect=("{file}:2", "stack.name", "'MLOps'")),
    Case("bucket-name-invalid", "s3:\n  bucket: My_Bucket\n",
         expect=("{file}:2", "s3.bucket", "'My_Bucket'")),
    Case("env-value-list", "services:\n  minio:\n    env:\n      FOO: [1, 2]\n",
         expect=("{file}:4", "services.minio.env.FOO")),
    Case("env-name-invalid", "services:\n  minio:\n    env:\n      1BAD: x\n",
         expect=("{file}:4", "services.minio.env")),
    Case("section-nulled", "services: null\n",
         expect=("{file}:1", "services", "valid dictionary")),
    Case("failure-ratio-above-one", "swarm:\n  update_config:\n    max_failure_ratio: 2\n",
         expect=("{file}:3", "swarm.update_config.max_failure_ratio", "less than or equal to 1")),
    # --- enumerations ------------------------------------------------------------------------
    Case("s3-backend-unknown", "s3:\n  backend: ceph\n",
         expect=("{file}:2", "s3.backend", "'minio' or 'seaweedfs'", "'ceph'")),
    Case("backend-store-unknown", "mlflow:\n  backend_store: mysql\n",
         expect=("{file}:2", "mlflow.backend_store", "'sqlite' or 'postgres'")),
    Case("endpoint-mode-unknown", "swarm:\n  endpoint_mode: roundrobin\n",
         expect=("{file}:2", "swarm.endpoint_mode", "'vip' or 'dnsrr'")),
    Case("environment-unknown", "stack:\n  environment: prod\n",
         expect=("{file}:2", "stack.environment", "'production'")),
    # --- combinations ------------------------------------------------------------------------
    Case("two-services-one-port",
         "services:\n  llm-connector:\n    published_port: 8001\n",
         expect=("{file}:3", "services.llm-connector.published_port", "8001",
                 "services.sklearn-model.port")),
    Case("console-port-clash", "services:\n  minio:\n    published_console_port: 7860\n",
         expect=("{file}:3", "services.minio.published_console_port", "7860",
                 "services.gradio-frontend")),
    Case("dnsrr-with-ingress", "swarm:\n  endpoint_mode: dnsrr\n  publish_mode: ingress\n",
         expect=("{file}:2", "swarm.endpoint_mode", "dnsrr", "ingress", "publish_mode=host")),
    Case("start-first-with-host-ports",
         "swarm:\n  publish_mode: host\n  update_config: {order: start-first}\n",
         expect=("{file}:3", "swarm.update_config.order", "start-first", "host")),
    Case("production-default-s3-credentials", "stack:\n  environment: production\n",
         expect=("s3.secret_key", "default credentials", "{file}:2",
                 "--allow-default-credentials")),
    Case("production-default-postgres-password",
         "stack:\n  environment: production\ns3:\n  access_key: prod\n"
         "  secret_key: a-long-production-secret\nmlflow:\n  backend_store: postgres\n",
         expect=("mlflow.postgres_password", "default credentials", "{file}:2")),
    # --- files -------------------------------------------------------------------------------
    Case("missing-file", None, path_kind="missing", expect=("{file}", "file not found")),
    Case("directory-as-file", None, path_kind="dir", expect=("{file}", "directory")),
    Case("empty-file", "", expect=("{file}", "file is empty")),
    Case("comments-only-file", "# nothing here\n\n", expect=("{file}", "file is empty")),
    Case("not-utf8", b"stack:\n  name: \xff\xfe\n", expect=("{file}", "UTF-8")),
    Case("yaml-bad-indentation", "stack:\n  name: x\n   environment: production\n",
         expect=("{file}:3", "YAML syntax error")),
    Case("yaml-tab-indent", "stack:\n\tname: x\n", expect=("{file}:2", "YAML syntax error")),
    Case("yaml-unclosed-quote", "stack:\n  name: \"mlops\n  environment: x\n",
         expect=("{file}:", "YAML syntax error")),
    Case("yaml-unclosed-bracket", "services:\n  minio:\n    command: [a, b\n",
         expect=("{file}:", "YAML syntax error")),
    Case("top-level-list", "- stack\n- services\n",
         expect=("{file}:1", "top level must be a mapping", "a list")),
    Case("top-level-scalar", "mlops\n", expect=("{file}:1", "top level must be a mapping")),
    Case("duplicate-key", "stack:\n  name: a\n  name: b\n",
         expect=("{file}:3", "stack.name", "duplicate key", "line 2")),
    Case("several-documents", "stack: {name: a}\n---\nstack: {name: b}\n",
         expect=("{file}:3", "several YAML documents")),
    Case("merge-key", "base: &b {replicas: 2}\nservices:\n  minio:\n    <<: *b\n",
         expect=("{file}:4", "merge keys")),
    # --- --set -------------------------------------------------------------------------------
    Case("set-without-equals", sets=("services.minio.replicas",),
         expect=("--set services.minio.replicas", "expected KEY=VALUE")),
    Case("set-empty-key", sets=("=3",), expect=("--set =3", "key before '=' is empty")),
    Case("set-empty-segment", sets=("services..replicas=1",),
         expect=("--set services..replicas=1", "malformed key segment")),
    Case("set-bad-characters", sets=("services.minio.rep licas=1",),
         expect=("services.minio.rep licas", "malformed key segment")),
    Case("set-unknown-service", sets=("services.gradio.replicas=2",),
         expect=("--set services.gradio.replicas=2", "unknown service 'gradio'",
                 "gradio-frontend, llm-connector, sklearn-model, cnn-image, mlflow-server, minio")),
    Case("set-unknown-job", sets=("jobs.init-bucket.image=x",),
         expect=("unknown job 'init-bucket'", "bucket-init")),
    Case("set-unknown-key", sets=("stack.nmae=x",),
         expect=("--set stack.nmae=x", "stack.nmae", "did you mean 'name'")),
    Case("set-negative-replicas", sets=("services.minio.replicas=-1",),
         expect=("--set services.minio.replicas=-1", "services.minio.replicas",
                 "greater than or equal to 0")),
    Case("set-quoted-number-is-a-string", sets=("services.minio.replicas='3'",),
         expect=("services.minio.replicas", "valid integer", "'3'")),
    Case("set-invalid-yaml-value", sets=("services.minio.command=[a, b",),
         expect=("--set services.minio.command=[a, b", "not valid YAML")),
    Case("set-port-clash", sets=("services.minio.console_port=7860",),
         expect=("--set services.minio.console_port=7860", "7860", "published twice")),
    Case("set-dnsrr-only", sets=("swarm.endpoint_mode=dnsrr",),
         expect=("--set swarm.endpoint_mode=dnsrr", "swarm.endpoint_mode", "publish_mode=host")),
    Case("set-production-default-credentials", sets=("stack.environment=production",),
         expect=("s3.secret_key", "--set stack.environment=production",
                 "--allow-default-credentials")),
    Case("set-scalar-over-section", sets=("services=none",),
         expect=("--set services=none", "services", "valid dictionary")),
]


def _ids() -> list[str]:
    return [c.id for c in CASES]


def test_at_least_forty_cases() -> None:
    assert len(CASES) >= 40
    assert len(set(_ids())) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=_ids())
def test_bad_input_is_refused(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "out"
    argv = ["render", "--target", "all", "-o", str(out_dir)]
    path: Path | None = None
    if case.path_kind == "missing":
        path = tmp_path / "does-not-exist.yaml"
    elif case.path_kind == "dir":
        path = tmp_path / "a-directory"
        path.mkdir()
    elif case.file is not None:
        path = tmp_path / f"{case.id}.yaml"
        if isinstance(case.file, bytes):
            path.write_bytes(case.file)
        else:
            path.write_text(case.file)
    if path is not None:
        argv += ["-f", str(path)]
    for raw in case.sets:
        argv += ["--set", raw]
    argv += list(case.extra_args)

    code = main(argv)

    err = capsys.readouterr().err
    assert code != 0, f"accepted bad input; stderr: {err!r}"
    assert code == 2  # ConfigError / ValuesError: bad input
    for want in case.expect:
        want = want.replace("{file}", str(path))
        assert want in err, f"{want!r} missing from:\n{err}"
    assert not out_dir.exists(), "nothing may be written on bad input"


def test_allow_default_credentials_overrides_the_production_refusal(tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    code = main(["render", "--target", "swarm", "-o", str(out_dir),
                 "--set", "stack.environment=production", "--allow-default-credentials"])
    assert code == 0
    assert (out_dir / "swarm-stack.yml").is_file()


def test_failed_render_leaves_existing_files_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Swarm renders fine but Compose cannot publish one host port from 2 replicas: with
    # --target all, no file may be replaced (not even the swarm file, which validated).
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    for name in ("docker-compose.yml", "swarm-stack.yml", ".env.example"):
        (out_dir / name).write_text("old\n")
    code = main(["render", "--target", "all", "-o", str(out_dir),
                 "--set", "services.llm-connector.replicas=2"])
    err = capsys.readouterr().err
    assert code != 0
    assert "docker-compose.yml" in err and "services.llm-connector" in err
    assert "services.llm-connector.publish=false" in err
    assert sorted(p.name for p in out_dir.iterdir()) == [
        ".env.example", "docker-compose.yml", "swarm-stack.yml"]
    assert all((out_dir / n).read_text() == "old\n" for n in
               ("docker-compose.yml", "swarm-stack.yml", ".env.example"))


def test_output_path_that_is_a_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "out"
    target.write_text("not a dir")
    assert main(["render", "--target", "env", "-o", str(target)]) == 2
    assert "not a directory" in capsys.readouterr().err
    assert target.read_text() == "not a dir"


def test_every_problem_is_listed_not_only_the_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "v.yaml"
    path.write_text("services:\n  minio:\n    replicas: -1\n  cnn-image:\n    port: 0\n")
    assert main(["render", "--stdout", "-f", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:3: services.minio.replicas" in err
    assert f"{path}:5: services.cnn-image.port" in err
