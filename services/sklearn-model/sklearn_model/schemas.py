"""Request and response bodies of the API."""

from __future__ import annotations

from typing import Any, Literal

from mlops_serving.schemas import HealthResponse, ModelRef, ModelResponse
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "MAX_BATCH", "HealthResponse", "ModelRef", "ModelResponse", "Passenger", "PredictResponse",
    "Prediction",
]

MAX_BATCH = 1000


class Passenger(BaseModel):
    """One passenger, in the Kaggle train.csv terms (lower-case names)."""

    # allow_inf_nan=False: NaN/Infinity (which Python's JSON reader accepts) are refused as
    # "not a finite number", not reported against a bound they happen to fail.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, json_schema_extra={
        "examples": [{"pclass": 3, "sex": "male", "age": 22, "sibsp": 1, "parch": 0,
                      "fare": 7.25, "embarked": "S"}]
    })

    pclass: Literal[1, 2, 3] = Field(description="Ticket class: 1, 2 or 3")
    sex: Literal["male", "female"]
    age: float | None = Field(default=None, ge=0, le=120, description="Years; null if unknown")
    sibsp: int = Field(default=0, ge=0, le=20, description="Siblings/spouses aboard")
    parch: int = Field(default=0, ge=0, le=20, description="Parents/children aboard")
    fare: float | None = Field(default=None, ge=0, le=10_000)
    embarked: Literal["C", "Q", "S"] | None = Field(
        default=None, description="Port: C = Cherbourg, Q = Queenstown, S = Southampton"
    )
    name: str | None = Field(
        default=None, max_length=200,
        description="As on the passenger list, 'Surname, Title. Given names' (e.g. 'Braund, "
                    "Mr. Owen Harris'): the model reads the title. Optional: without it the "
                    "title is inferred from sex and age")

    def as_record(self) -> dict[str, Any]:
        """The passenger keyed by the CSV column names the pipeline expects."""
        return {"Pclass": self.pclass, "Sex": self.sex, "Age": self.age, "SibSp": self.sibsp,
                "Parch": self.parch, "Fare": self.fare, "Embarked": self.embarked,
                "Name": self.name}


class Prediction(BaseModel):
    """The model's answer for one passenger."""

    survival_probability: float = Field(ge=0, le=1)
    survived: bool
    label: Literal["survived", "died"]


class PredictResponse(BaseModel):
    """Predictions in the order of the request."""

    model: ModelRef
    predictions: list[Prediction]
