"""GET /health: 200 once a model is loaded (what the Compose/Swarm healthcheck probes)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from app.deps import StateDep
from app.schemas import HealthResponse, ModelRef

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthResponse,
            responses={503: {"model": HealthResponse, "description": "no model loaded yet"}})
def health(state: StateDep, response: Response) -> HealthResponse:
    """``ready`` with the served version, else 503 with the loader's status and reason."""
    snap = state.get()
    if snap.model is None:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return HealthResponse(status=snap.status, detail=snap.detail)
    info = snap.model.info
    return HealthResponse(status="ready", detail=snap.detail,
                          model=ModelRef(name=info.name, version=info.version))
