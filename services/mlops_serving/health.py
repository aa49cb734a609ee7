"""GET /health of the model services: what the Compose/Swarm healthcheck probes.

200 while the service does what it should: serving a model, training a first one, or waiting
for one to be registered (a restart would not change that; the reason and the fix are in the
body). 503 only while MLflow/S3 have not been reached and no model is loaded.
"""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from mlops_serving.deps import StateDep
from mlops_serving.loader import HEALTHY
from mlops_serving.schemas import HealthResponse, ModelRef

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthResponse,
            responses={503: {"model": HealthResponse,
                             "description": "MLflow/S3 not reached yet, no model loaded"}})
async def health(state: StateDep, response: Response) -> HealthResponse:
    """The loader's status and reason, the served version if any, and the fix while waiting.

    A coroutine: it only reads a snapshot, and a plain function would cost a worker-thread
    hand-off per probe."""
    snap = state.get()
    if snap.status not in HEALTHY:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    model = None
    if snap.model is not None:
        model = ModelRef(name=snap.model.info.name, version=snap.model.info.version)
    return HealthResponse(status=snap.status, detail=snap.detail, model=model, fix=snap.fix)
