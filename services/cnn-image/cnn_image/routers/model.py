"""GET /model: the served registered-model version and its metrics."""

from __future__ import annotations

from fastapi import APIRouter
from mlops_serving.deps import LoadedDep

from cnn_image.flavour import class_names, outputs, provenance
from cnn_image.schemas import ModelResponse

router = APIRouter(tags=["model"])


@router.get("/model", response_model=ModelResponse)
def model_info(loaded: LoadedDep) -> ModelResponse:
    """Name, version, alias, run, classes, test metrics (none for a registered file: nothing
    measured), what the probabilities are, and a registered file's provenance."""
    i = loaded.info
    return ModelResponse(name=i.name, version=i.version, alias=i.alias, run_id=i.run_id,
                         metrics=i.metrics, source=i.source, class_names=class_names(i),
                         outputs=outputs(i), provenance=provenance(i))
