"""Response bodies of the API (the request is a multipart file upload)."""

from __future__ import annotations

from mlops_serving.schemas import HealthResponse, ModelRef
from pydantic import BaseModel, Field

__all__ = ["ClassScore", "HealthResponse", "ModelRef", "ModelResponse", "PredictResponse"]


class ClassScore(BaseModel):
    """One class and its probability."""

    label: str = Field(alias="class", serialization_alias="class")
    probability: float = Field(ge=0, le=1)

    model_config = {"populate_by_name": True}


class PredictResponse(BaseModel):
    """The most likely class, the top k, and the whole distribution (sums to 1)."""

    model: ModelRef
    label: str = Field(serialization_alias="class")
    top_k: list[ClassScore]
    probabilities: dict[str, float]


class ModelResponse(BaseModel):
    """The served model version, its classes and its test metrics."""

    name: str
    version: str
    alias: str
    run_id: str
    metrics: dict[str, float]
    source: str
    class_names: list[str]
