"""Values loading: defaults, layering order, typed --set, hashing, schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from deployer.cli import main
from deployer.errors import ValuesError
from deployer.values import (
    StackValues,
    default_values_file,
    json_schema,
    known_service_names,
    load_values,
    parse_set,
    values_hash,
)

REPO = Path(__file__).resolve().parent.parent
SIX = ["gradio-frontend", "llm-connector", "sklearn-model", "cnn-image", "mlflow-server", "minio"]


def test_defaults_declare_the_six_services_with_their_ports() -> None:
    v = load_values()
    assert v.service_names() == SIX
    ports = {name: svc.port for name, svc in v.active_services().items()}
    assert ports == {"gradio-frontend": 7860, "llm-connector": 8000, "sklearn-model": 8001,
                     "cnn-image": 8002, "mlflow-server": 5000, "minio": 9000}
    assert v.services.minio.console_port == 9001
    assert v.stack.name == "mlops"
    assert (v.swarm.endpoint_mode, v.swarm.publish_mode) == ("vip", "ingress")
    assert (v.s3.backend, v.mlflow.backend_store) == ("minio", "sqlite")
    assert v.job_names() == ["bucket-init"]


def test_postgres_backend_adds_the_postgres_service() -> None:
    v = load_values(sets=["mlflow.backend_store=postgres"])
    assert v.service_names() == [*SIX, "postgres"]


def test_later_layers_win_and_mappings_merge(tmp_path: Path) -> None:
    a = tmp_path / "a.yaml"
    b = tmp_path / "b.yaml"
    a.write_text("services:\n  minio:\n    replicas: 2\n    env: {A: '1', B: '1'}\n")
    b.write_text("services:\n  minio:\n    env: {B: '2'}\n")
    v = load_values([a, b], ["services.minio.env.C=3"])
    assert v.services.minio.replicas == 2            # from a, untouched by b
    assert dict(v.services.minio.env) == {"A": "1", "B": "2", "C": 3}
    v2 = load_values([a, b], ["services.minio.replicas=0"])
    assert v2.services.minio.replicas == 0           # --set beats every file


def test_lists_replace_instead_of_merging(tmp_path: Path) -> None:
    a = tmp_path / "a.yaml"
    a.write_text("services:\n  minio:\n    placement: {constraints: [node.labels.a==1, "
                 "node.labels.b==2]}\n")
    v = load_values([a], ["services.minio.placement.constraints=[node.labels.c==3]"])
    assert v.services.minio.placement.constraints == ["node.labels.c==3"]


@pytest.mark.parametrize(
    ("raw", "key", "value"),
    [
        ("services.minio.replicas=3", ("services", "minio", "replicas"), 3),
        ("swarm.update_config.max_failure_ratio=0.5",
         ("swarm", "update_config", "max_failure_ratio"), 0.5),
        ("services.minio.publish=false", ("services", "minio", "publish"), False),
        ("services.minio.published_port=null", ("services", "minio", "published_port"), None),
        ("services.minio.command=[a, 'b c']", ("services", "minio", "command"), ["a", "b c"]),
        ("services.minio.env.X=a=b", ("services", "minio", "env", "X"), "a=b"),
        ("stack.name=", ("stack", "name"), ""),
        ("services.minio.env.Y='007'", ("services", "minio", "env", "Y"), "007"),
    ],
)
def test_set_values_are_typed_as_yaml(raw: str, key: tuple[str, ...], value: object) -> None:
    assert parse_set(raw) == (key, value)


def test_set_accepts_every_known_service_name() -> None:
    for name in known_service_names():
        parse_set(f"services.{name}.replicas=1")


def test_unknown_service_error_lists_the_known_ones() -> None:
    with pytest.raises(ValuesError) as info:
        parse_set("services.mlflow.replicas=1")
    assert info.value.key == "services.mlflow.replicas"
    assert "mlflow-server" in info.value.message
    assert info.value.fix == "did you mean 'mlflow-server'?"


def test_error_carries_structured_source_key_and_line(tmp_path: Path) -> None:
    f = tmp_path / "v.yaml"
    f.write_text("# comment\nstack:\n  name: ok\nservices:\n  cnn-image:\n    port: -5\n")
    with pytest.raises(ValuesError) as info:
        load_values([f])
    assert (info.value.source, info.value.key, info.value.line) == (
        str(f), "services.cnn-image.port", 6)


def test_hash_is_stable_and_independent_of_key_order(tmp_path: Path) -> None:
    a = tmp_path / "a.yaml"
    b = tmp_path / "b.yaml"
    a.write_text("s3: {bucket: abc, region: eu-west-1}\nstack: {name: x}\n")
    b.write_text("stack: {name: x}\ns3: {region: eu-west-1, bucket: abc}\n")
    ha, hb = values_hash(load_values([a])), values_hash(load_values([b]))
    assert ha == hb
    assert len(ha) == 64 and int(ha, 16) >= 0
    assert values_hash(load_values([a], ["s3.bucket=abd"])) != ha


def test_values_are_immutable() -> None:
    v = load_values()
    with pytest.raises(Exception):  # noqa: B017 - pydantic raises its ValidationError
        v.stack.name = "other"  # type: ignore[misc]


def test_shipped_overlays_load() -> None:
    load_values([REPO / "templates" / "values.dev.yaml"])
    load_values([REPO / "tests" / "data" / "values.standin.yaml"])
    prod = load_values([REPO / "templates" / "values.prod.yaml"],
                       ["s3.access_key=k", "s3.secret_key=production-secret",
                        "mlflow.postgres_password=pg-production-secret"])
    assert prod.stack.environment == "production"
    assert "postgres" in prod.service_names()


def test_schema_validates_the_shipped_values_and_rejects_typos() -> None:
    schema = json_schema()
    validator = jsonschema.Draft202012Validator(schema)
    defaults = yaml.safe_load(default_values_file().read_text())
    assert list(validator.iter_errors(defaults)) == []
    defaults["services"]["minio"]["iamge"] = "x"
    assert any("iamge" in e.message for e in validator.iter_errors(defaults))


def test_schema_command_prints_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "mlops-stack values"
    assert schema["additionalProperties"] is False
    services = schema["$defs"]["Services"]["properties"]
    assert set(SIX) <= set(services)
    assert schema == json.loads(json.dumps(StackValues.model_json_schema(by_alias=True)))


def test_schema_command_writes_a_file(tmp_path: Path) -> None:
    out = tmp_path / "schema.json"
    assert main(["schema", "-o", str(out)]) == 0
    assert json.loads(out.read_text())["title"] == "mlops-stack values"
