"""GET /model: the served registered-model version and its metrics."""

from __future__ import annotations

from fastapi import APIRouter
from mlops_serving.deps import LoadedDep

from sklearn_model.schemas import ModelResponse

router = APIRouter(tags=["model"])


@router.get("/model", response_model=ModelResponse)
def model_info(loaded: LoadedDep) -> ModelResponse:
    """Name, version, alias, training run and held-out metrics of the served model."""
    i = loaded.info
    return ModelResponse(name=i.name, version=i.version, alias=i.alias, run_id=i.run_id,
                         metrics=i.metrics, source=i.source)
