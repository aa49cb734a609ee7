"""Bodies every model service answers with the same shape."""

from __future__ import annotations

from pydantic import BaseModel


class ModelRef(BaseModel):
    """Which model version answered."""

    name: str
    version: str


class HealthResponse(BaseModel):
    """Loader status: ``ready``, ``training`` or ``waiting-for-model`` (HTTP 200), or
    ``starting`` (HTTP 503: MLflow/S3 not reached yet). ``fix`` says how to give the service a
    model while it waits for one."""

    status: str
    detail: str
    model: ModelRef | None = None
    fix: str | None = None


class ModelResponse(BaseModel):
    """The served model version and its held-out metrics (GET /model)."""

    name: str
    version: str
    alias: str
    run_id: str
    metrics: dict[str, float]
    source: str
