"""The external Swarm objects a stack needs, named by content: secrets ``<base>_<version>``
(the value never in a file) and configs ``<base>_<sha256(content)[:12]>`` (the bucket-init
script), created by the deployer before it deploys."""

from __future__ import annotations

import hashlib

from deployer.render.env import _s3_endpoint
from deployer.render.templating import _environment
from deployer.values import (
    StackValues,
)


def secret_name(base: str, version: str) -> str:
    """Swarm name of a secret: ``<base>_<version>`` (a new version means a new secret)."""
    return f"{base}_{version}"


def swarm_secret_bases(values: StackValues) -> list[str]:
    """Base names of the external secrets the Swarm file needs, in a stable order.

    ``google_api_key`` (from the environment / .env), ``s3_access_key`` and ``s3_secret_key``
    (``s3.*`` values), and ``postgres_password`` with the postgres backend store.
    """
    bases = ["google_api_key", "s3_access_key", "s3_secret_key"]
    if values.mlflow.backend_store == "postgres":
        bases.append("postgres_password")
    return bases


def swarm_secret_values(values: StackValues) -> dict[str, str]:
    """Secret contents that come from the values (all but google_api_key, which never does)."""
    out = {"s3_access_key": values.s3.access_key, "s3_secret_key": values.s3.secret_key}
    if values.mlflow.backend_store == "postgres":
        out["postgres_password"] = values.mlflow.postgres_password
    return out


def swarm_configs(values: StackValues) -> dict[str, str]:
    """Swarm configs the stack file references: content-hashed name -> content."""
    script = bucket_init_script(values)
    return {_config_name("bucket_init", script): script}


def bucket_init_script(values: StackValues) -> str:
    """The shell script the bucket-init job runs (with the ``mc`` client) to create the bucket.

    Credentials come from ``AWS_*`` or, in Swarm, from the ``AWS_*_FILE`` secret files.
    """
    return _environment().get_template("bucket-init.sh.j2").render(
        bucket=values.s3.bucket, endpoint=_s3_endpoint(values)
    )


def _config_name(base: str, content: str) -> str:
    return f"{base}_{hashlib.sha256(content.encode()).hexdigest()[:12]}"
