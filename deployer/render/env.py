"""Each service's environment per target: the wiring between services (MLflow, S3, the
model APIs), S3 credentials as plain variables (Compose) or ``*_FILE`` secrets (Swarm), the S3
store's own settings, and the ``.env.example`` lines."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from deployer.render.targets import SECRETS_DIR, Target
from deployer.values import (
    DEFAULT_S3_CREDENTIALS,
    MinioService,
    StackValues,
)


def _s3_endpoint(values: StackValues) -> str:
    return f"http://minio:{values.services.minio.port}"


def _common_env(values: StackValues, target: Target, *, s3_credentials: bool) -> dict[str, str]:
    env = {
        "MLFLOW_TRACKING_URI": f"http://mlflow-server:{values.services.mlflow_server.port}",
        "MLFLOW_S3_ENDPOINT_URL": _s3_endpoint(values),
        "AWS_DEFAULT_REGION": values.s3.region,
    }
    if s3_credentials:
        env.update(_s3_credential_env(values, target))
    return env


def _s3_credential_env(values: StackValues, target: Target) -> dict[str, str]:
    if target == "swarm":
        return {
            "AWS_ACCESS_KEY_ID_FILE": f"{SECRETS_DIR}/s3_access_key",
            "AWS_SECRET_ACCESS_KEY_FILE": f"{SECRETS_DIR}/s3_secret_key",
        }
    # Compose (development): taken from .env / the shell, defaulting to the values. A secret
    # that is not the public development default is never written into the file.
    secret = values.s3.secret_key
    secret_default = (
        f"${{AWS_SECRET_ACCESS_KEY:-{secret}}}"
        if secret == DEFAULT_S3_CREDENTIALS[1]
        else "${AWS_SECRET_ACCESS_KEY:?set AWS_SECRET_ACCESS_KEY in .env}"
    )
    return {
        "AWS_ACCESS_KEY_ID": f"${{AWS_ACCESS_KEY_ID:-{_dollar(values.s3.access_key)}}}",
        "AWS_SECRET_ACCESS_KEY": secret_default,
    }


def _wiring_env(values: StackValues, name: str, target: Target) -> dict[str, str]:
    """Environment the stack itself provides a service (user ``env`` is applied on top)."""
    swarm = target == "swarm"
    s = values.services
    if name == "gradio-frontend":
        return {
            "LLM_CONNECTOR_URL": f"http://llm-connector:{s.llm_connector.port}",
            "SKLEARN_MODEL_URL": f"http://sklearn-model:{s.sklearn_model.port}",
            "CNN_IMAGE_URL": f"http://cnn-image:{s.cnn_image.port}",
        }
    if name == "llm-connector":
        env = {"GOOGLE_MODEL": values.llm.google_model}
        if swarm:
            env["GOOGLE_API_KEY_FILE"] = f"{SECRETS_DIR}/google_api_key"
        else:
            env["GOOGLE_API_KEY"] = "${GOOGLE_API_KEY:-}"
        return env
    if name in ("sklearn-model", "cnn-image"):
        return {**_common_env(values, target, s3_credentials=True), "MODEL_DIR": "/models"}
    if name == "mlflow-server":
        env = _common_env(values, target, s3_credentials=True)
        env.pop("MLFLOW_TRACKING_URI")
        m = values.mlflow
        if m.backend_store == "postgres":
            base = f"postgresql://{m.postgres_user}"
            where = f"@postgres:{s.postgres.port}/{m.postgres_db}"
            if swarm:
                env["MLFLOW_BACKEND_STORE_URI"] = base + where
                env["MLFLOW_BACKEND_STORE_PASSWORD_FILE"] = f"{SECRETS_DIR}/postgres_password"
            else:
                env["MLFLOW_BACKEND_STORE_URI"] = f"{base}:{_dollar(m.postgres_password)}{where}"
        else:
            env["MLFLOW_BACKEND_STORE_URI"] = "sqlite:////mlflow/mlflow.db"
        prefix = m.artifacts_prefix.strip("/")
        dest = f"s3://{values.s3.bucket}" + (f"/{prefix}" if prefix else "")
        env["MLFLOW_ARTIFACTS_DESTINATION"] = dest
        env["MLFLOW_HOST"] = "0.0.0.0"
        env["MLFLOW_PORT"] = str(s.mlflow_server.port)
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
        return env
    if name == "minio":
        return _s3_store_env(values, target)
    if name == "postgres":
        m = values.mlflow
        env = {"POSTGRES_DB": m.postgres_db, "POSTGRES_USER": m.postgres_user}
        if swarm:
            env["POSTGRES_PASSWORD_FILE"] = f"{SECRETS_DIR}/postgres_password"
        else:
            env["POSTGRES_PASSWORD"] = _dollar(m.postgres_password)
        return env
    return {}


def _s3_store_env(values: StackValues, target: Target) -> dict[str, str]:
    swarm = target == "swarm"
    if values.s3.backend == "minio":
        env = {"MINIO_SITE_REGION": values.s3.region}
        if swarm:
            # MinIO resolves *_FILE names under /run/secrets.
            env["MINIO_ROOT_USER_FILE"] = "s3_access_key"
            env["MINIO_ROOT_PASSWORD_FILE"] = "s3_secret_key"
        else:
            creds = _s3_credential_env(values, target)
            env["MINIO_ROOT_USER"] = creds["AWS_ACCESS_KEY_ID"]
            env["MINIO_ROOT_PASSWORD"] = creds["AWS_SECRET_ACCESS_KEY"]
        return env
    # SeaweedFS: its start script (see _s3_store_command) builds the S3 identity from these.
    if swarm:
        return {
            "AWS_ACCESS_KEY_ID_FILE": f"{SECRETS_DIR}/s3_access_key",
            "AWS_SECRET_ACCESS_KEY_FILE": f"{SECRETS_DIR}/s3_secret_key",
        }
    return _s3_credential_env(values, target)


def _s3_store_command(values: StackValues, svc: MinioService) -> list[str]:
    if values.s3.backend == "minio":
        return ["server", "/data", "--address", f":{svc.port}",
                "--console-address", f":{svc.console_port}"]
    # SeaweedFS takes S3 identities from a JSON file: write it from the credentials at start.
    script = (
        'ak="${AWS_ACCESS_KEY_ID:-$(cat "$AWS_ACCESS_KEY_ID_FILE")}"; '
        'sk="${AWS_SECRET_ACCESS_KEY:-$(cat "$AWS_SECRET_ACCESS_KEY_FILE")}"; '
        "printf '{\"identities\":[{\"name\":\"admin\",\"credentials\":[{\"accessKey\":\"%s\","
        "\"secretKey\":\"%s\"}],\"actions\":[\"Admin\",\"Read\",\"List\",\"Tagging\",\"Write\"]}]}'"
        ' "$ak" "$sk" > /tmp/s3.json && '
        "exec weed server -dir=/data -ip.bind=0.0.0.0 -master.telemetry=false "
        f"-master.port={svc.console_port} -volume.max=0 -filer -s3 -s3.port={svc.port} "
        "-s3.config=/tmp/s3.json"
    )
    return ["sh", "-c", script]


def _env_block(wiring: Mapping[str, str], user: Mapping[str, Any]) -> dict[str, str]:
    env = dict(wiring)
    for key, value in user.items():
        # YAML booleans become the strings containers expect; `$` is literal (not interpolated).
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        env[key] = _dollar(text)
    return dict(sorted(env.items()))


def _env_example(values: StackValues) -> list[tuple[str, str, str]]:
    """(name, value, comment) rows of .env.example, for running Compose or the services."""
    s = values.services
    secret = values.s3.secret_key if values.s3.secret_key == DEFAULT_S3_CREDENTIALS[1] else ""
    mlflow_port = s.mlflow_server.host_port or s.mlflow_server.port
    s3_port = s.minio.host_port or s.minio.port
    return [
        ("GOOGLE_API_KEY", "", "Gemini API key (required by llm-connector; never commit it)"),
        ("GOOGLE_MODEL", values.llm.google_model, "Gemini model used by llm-connector"),
        ("MLFLOW_TRACKING_URI", f"http://localhost:{mlflow_port}", "MLflow from the host"),
        ("MLFLOW_S3_ENDPOINT_URL", f"http://localhost:{s3_port}", "S3 store from the host"),
        ("AWS_ACCESS_KEY_ID", values.s3.access_key, "S3 access key"),
        ("AWS_SECRET_ACCESS_KEY", secret,
         "S3 secret key" + ("" if secret else " (set it; not rendered from the values)")),
        ("AWS_DEFAULT_REGION", values.s3.region, "S3 region"),
    ]


def _dollar(text: str) -> str:
    """Escape ``$`` for Compose/stack interpolation, keeping our own ``${VAR...}`` references."""
    # Our generated references (${AWS_...}, ${GOOGLE_API_KEY...}) are intentional; everything
    # else a user typed is literal. Callers apply this only to user text and scripts.
    return text.replace("$", "$$")
