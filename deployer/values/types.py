"""Scalar types of the values model (ports, durations, image references, names) and the
strict base every values model derives from."""

from __future__ import annotations

import ipaddress
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
)

# ---------------------------------------------------------------------------------------------
# Scalar types
# ---------------------------------------------------------------------------------------------

Port = Annotated[int, Field(ge=1, le=65535, description="A TCP port number (1-65535).")]
Replicas = Annotated[int, Field(ge=0, le=100, description="Number of tasks (0-100).")]
# Go duration strings as Docker accepts them: "500ms", "10s", "1m30s".
Duration = Annotated[
    str,
    StringConstraints(pattern=r"^([0-9]+(ns|us|ms|s|m|h))+$"),
    Field(description='A duration such as "10s", "500ms" or "1m30s".'),
]
Memory = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9]+([bkmgBKMG])?$"),
    Field(description='A memory size such as "512M" or "2G".'),
]
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
EnvValue = str | int | float | bool
# A Docker image reference: [registry[:port]/]path[:tag][@digest], lower-case repository.
ImageRef = Annotated[
    str,
    StringConstraints(
        pattern=r"^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-]+[a-z0-9]+)*)*"
        r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$"
    ),
    Field(description='An image reference such as "mlops/llm-connector:latest".'),
]
StackName = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,49}$"),
    Field(description="Lower-case letters, digits, '-' and '_' (Compose project / Swarm stack)."),
]


def _ip_address(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise ValueError(
            f"{text!r} is not an IP address (e.g. 127.0.0.1 for this machine only, 0.0.0.0 for "
            "every interface)"
        ) from None


IpAddress = Annotated[str, AfterValidator(_ip_address)]
BucketName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]
NonEmpty = Annotated[str, StringConstraints(min_length=1)]

#: The well-known development credentials of MinIO; refused for production unless allowed.
DEFAULT_S3_CREDENTIALS = ("minioadmin", "minioadmin")
DEFAULT_POSTGRES_PASSWORD = "mlflow"


class _Strict(BaseModel):
    """Base of every values model: unknown keys are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
