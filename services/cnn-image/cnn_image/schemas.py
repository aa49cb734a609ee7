"""Response bodies of the API (the request is a multipart file upload)."""

from __future__ import annotations

from mlops_serving.schemas import HealthResponse, ModelRef
from mlops_serving.schemas import ModelResponse as BaseModelResponse
from pydantic import BaseModel, Field

__all__ = ["ClassScore", "HealthResponse", "ModelRef", "ModelResponse", "PredictResponse"]


class ClassScore(BaseModel):
    """One class and its probability."""

    label: str = Field(alias="class", serialization_alias="class")
    probability: float = Field(ge=0, le=1)

    model_config = {"populate_by_name": True}


class PredictResponse(BaseModel):
    """The most likely class, the top k, and the whole distribution (sums to 1); which
    version answered and what its probabilities are."""

    model: ModelRef
    label: str = Field(serialization_alias="class")
    top_k: list[ClassScore]
    probabilities: dict[str, float]
    outputs: str = Field(description="What the probabilities are, e.g. a softmax over the "
                                     "served network's logits (not recalibrated on data)")


class ModelResponse(BaseModelResponse):
    """The served model version, its classes and its test metrics."""

    class_names: list[str]
    outputs: str = Field(description="What the probabilities of /predict are")
    provenance: dict[str, str] = Field(
        default_factory=dict,
        description="A registered file's source, SHA-256, licence and input scaling (empty "
                    "for a version trained by this service)")
