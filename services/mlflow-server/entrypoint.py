"""Entrypoint of the mlflow-server image: settings from the environment -> ``mlflow server``.

Reads ``MLFLOW_BACKEND_STORE_URI``, ``MLFLOW_ARTIFACTS_DESTINATION``, ``MLFLOW_HOST``,
``MLFLOW_PORT``, ``MLFLOW_S3_ENDPOINT_URL`` and the credentials, either plain (Compose) or as
``<NAME>_FILE`` paths (Swarm secrets): ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` and
``MLFLOW_BACKEND_STORE_PASSWORD`` (inserted into a postgres URI that has none), read by the
rules every service image shares (``mlops_serving.secrets``, standard library only, copied
beside this file). Then it replaces itself (exec) with ``mlflow server ... --workers 1``, so the
server is the direct child of the container's init (``init: true``) and gets its signals.

Secrets never go on the command line (visible in any process list) nor into logs: they travel
in the environment of the exec'd process, where ``mlflow server`` reads them (the backend store
URI through click's ``MLFLOW_BACKEND_STORE_URI`` variable, S3 keys through boto3's).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from mlops_serving.secrets import SecretFileError, read_secrets

FILE_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_BACKEND_STORE_PASSWORD")
DEFAULT_BACKEND = "sqlite:////mlflow/mlflow.db"
SERVICE_NAME = "mlflow-server"  # the stack's DNS name for this service
# Host headers the server accepts: MLflow's own defaults (loopback + private networks) plus the
# service's stack name, which is how the other services call it (http://mlflow-server:5000).
_PRIVATE = ["10.*", "192.168.*", *[f"172.{i}.*" for i in range(16, 32)], "fc00:*", "fd00:*"]
_LOCAL = ["localhost", "127.0.0.1", "[::1]", "0.0.0.0"]


class ConfigError(ValueError):
    """A setting is missing or wrong; the message names the variable (never a secret value)."""


def resolve_files(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` with each ``<NAME>_FILE`` of :data:`FILE_VARS` read into ``NAME`` (and removed),
    by the rules every service image shares (:func:`mlops_serving.secrets.read_secret`)."""
    try:
        values = read_secrets(env, FILE_VARS)
    except SecretFileError as exc:
        raise ConfigError(str(exc)) from None
    out = {k: v for k, v in env.items() if k not in {f"{n}_FILE" for n in FILE_VARS}}
    out.update(values)
    return out


def backend_uri(env: Mapping[str, str]) -> str:
    """The backend store URI, with ``MLFLOW_BACKEND_STORE_PASSWORD`` put into a database URI
    that names a user but no password."""
    uri = env.get("MLFLOW_BACKEND_STORE_URI") or DEFAULT_BACKEND
    password = env.get("MLFLOW_BACKEND_STORE_PASSWORD")
    parts = urlsplit(uri)
    if parts.scheme.startswith("sqlite"):
        db = Path(parts.path[1:]) if parts.path.startswith("//") else None
        if db is not None and not db.parent.is_dir():
            raise ConfigError(f"MLFLOW_BACKEND_STORE_URI: directory {db.parent} does not exist "
                              "(mount a volume there)")
        return uri
    if not password:
        return uri
    if "@" not in parts.netloc:
        raise ConfigError("MLFLOW_BACKEND_STORE_PASSWORD is set but MLFLOW_BACKEND_STORE_URI "
                          "names no user (expected postgresql://USER@HOST:PORT/DB)")
    userinfo, host = parts.netloc.rsplit("@", 1)
    if ":" in userinfo:
        raise ConfigError("MLFLOW_BACKEND_STORE_URI already has a password: drop it or "
                          "MLFLOW_BACKEND_STORE_PASSWORD")
    netloc = f"{userinfo}:{quote(password, safe='')}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def port(env: Mapping[str, str]) -> str:
    """``MLFLOW_PORT`` (default 5000), checked."""
    value = env.get("MLFLOW_PORT", "5000")
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise ConfigError(f"MLFLOW_PORT={value!r}: expected a TCP port number (1-65535)")
    return value


def allowed_hosts(env: Mapping[str, str]) -> str:
    """``MLFLOW_SERVER_ALLOWED_HOSTS`` as given, else MLflow's defaults + the service name."""
    given = env.get("MLFLOW_SERVER_ALLOWED_HOSTS")
    if given:
        return given
    names = [*_LOCAL, SERVICE_NAME]
    hosts = [*names, *(f"{n}:*" for n in names if not n.startswith("[")), "[[]::1]:*", *_PRIVATE]
    return ",".join(hosts)


def build(env: Mapping[str, str]) -> tuple[list[str], dict[str, str]]:
    """The argv and environment of ``mlflow server`` (argv holds no secret)."""
    out = resolve_files(env)
    out["MLFLOW_BACKEND_STORE_URI"] = backend_uri(out)
    out.pop("MLFLOW_BACKEND_STORE_PASSWORD", None)
    dest = out.get("MLFLOW_ARTIFACTS_DESTINATION", "")
    if not dest:
        raise ConfigError("MLFLOW_ARTIFACTS_DESTINATION is not set (e.g. s3://mlflow/artifacts)")
    if dest.startswith("s3://"):
        missing = [n for n in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if not out.get(n)]
        if missing:
            raise ConfigError(f"{' and '.join(missing)} not set (plain or as *_FILE): needed for "
                              f"the artifact store {dest}")
    port_ = port(out)
    out["MLFLOW_SERVER_ALLOWED_HOSTS"] = allowed_hosts(out)
    # Job execution forks several extra consumer processes this stack does not use.
    out.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    argv = ["mlflow", "server", "--host", out.get("MLFLOW_HOST", "0.0.0.0"), "--port", port_,
            "--artifacts-destination", dest, "--workers", "1"]
    return argv, out


def describe(argv: list[str], env: Mapping[str, str]) -> str:
    """One log line: what runs where (the store URI without its password)."""
    parts = urlsplit(env["MLFLOW_BACKEND_STORE_URI"])
    store = env["MLFLOW_BACKEND_STORE_URI"]
    if parts.password:
        store = store.replace(f":{parts.password}@", ":***@", 1)
    s3 = env.get("MLFLOW_S3_ENDPOINT_URL", "AWS default")
    return f"{' '.join(argv)} (backend store {store}, S3 endpoint {s3})"


def main() -> None:
    """Build the command and exec it (never returns on success)."""
    try:
        argv, env = build(os.environ)
    except ConfigError as exc:
        print(f"mlflow-server: configuration error: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)
    print(f"mlflow-server: starting {describe(argv, env)}", file=sys.stderr, flush=True)
    os.execvpe(argv[0], argv, env)


if __name__ == "__main__":
    main()
