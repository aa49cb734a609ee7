"""Small FastAPI apps speaking the sklearn-model and cnn-image APIs, for the frontend tests.

The real model services need a trained model from MLflow (sklearn-model) or TensorFlow
(cnn-image); the frontend tests only need their HTTP contract, so these answer it with
deterministic arithmetic the tests can recompute, and record what they received.
"""

from __future__ import annotations

import io
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import uvicorn
from fastapi import FastAPI, File, HTTPException, UploadFile
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer",
           "dog", "frog", "horse", "ship", "truck"]


class Passenger(BaseModel):
    """sklearn-model's request body (services/sklearn-model/sklearn_model/schemas.py)."""

    model_config = ConfigDict(extra="forbid")

    pclass: Literal[1, 2, 3]
    sex: Literal["male", "female"]
    age: float | None = Field(default=None, ge=0, le=120)
    sibsp: int = Field(default=0, ge=0, le=20)
    parch: int = Field(default=0, ge=0, le=20)
    fare: float | None = Field(default=None, ge=0)
    embarked: Literal["C", "Q", "S"] | None = None
    name: str | None = Field(default=None, max_length=200)  # read only for the title


def survival_probability(p: Passenger) -> float:
    """A fixed logistic formula (the tests recompute it from the form values)."""
    z = (1.2 * (p.sex == "female") - 0.8 * (p.pclass - 2) - 0.02 * ((p.age or 30) - 30)
         - 0.3 * p.sibsp - 0.1 * p.parch + 0.004 * (p.fare or 0)
         + 0.2 * (p.embarked == "C"))
    return round(1 / (1 + math.exp(-z)), 6)


def image_scores(data: bytes) -> list[tuple[str, float]]:
    """CIFAR-10 'probabilities' from the image's mean colour (softmax), best first."""
    img = Image.open(io.BytesIO(data)).convert("RGB").resize((32, 32))
    pixels = list(img.get_flattened_data())
    r, g, b = (sum(px[i] for px in pixels) / len(pixels) / 255 for i in range(3))
    logits = [3 * r, 2 * r + g, g, r + b, 2 * g, r, 3 * g, r + g, 3 * b, 2 * b + r]
    exp = [math.exp(x) for x in logits]
    total = sum(exp)
    scores = [(name, round(e / total, 6)) for name, e in zip(CIFAR10, exp, strict=True)]
    return sorted(scores, key=lambda pair: pair[1], reverse=True)


def sklearn_app(received: list[dict[str, Any]]) -> FastAPI:
    """The sklearn-model contract: POST /predict one passenger -> predictions[0]."""
    app = FastAPI()

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ready", "detail": "stand-in"}

    @app.post("/predict")
    def predict(passenger: Passenger) -> dict[str, Any]:
        received.append(passenger.model_dump())
        prob = survival_probability(passenger)
        return {"model": {"name": "titanic-rf", "version": "standin"},
                "predictions": [{"survival_probability": prob, "survived": prob >= 0.5,
                                 "label": "survived" if prob >= 0.5 else "died"}]}

    return app


def cnn_app(received: list[dict[str, Any]]) -> FastAPI:
    """The cnn-image contract: POST /predict multipart ``file`` (?top_k=) -> class, top_k."""
    app = FastAPI()

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ready"}

    @app.post("/predict")
    async def predict(file: UploadFile = File(...), top_k: int = 3) -> dict[str, Any]:  # noqa: B008
        data = await file.read()
        try:
            scores = image_scores(data)
        except Exception:
            raise HTTPException(status_code=422, detail="not an image") from None
        received.append({"filename": file.filename, "content_type": file.content_type,
                         "size": len(data), "top_k": top_k})
        # cnn-image's answer (services/cnn-image/cnn_image/schemas.py, serialized by alias)
        return {"model": {"name": "cifar10-cnn", "version": "standin"},
                "class": scores[0][0],
                "top_k": [{"class": n, "probability": p} for n, p in scores[:top_k]],
                "probabilities": dict(scores),
                "outputs": "softmax over the stand-in's colour scores"}

    return app


@contextmanager
def serve(app: FastAPI, port: int) -> Iterator[str]:
    """Runs ``app`` with uvicorn on 127.0.0.1:``port`` in a thread; yields its base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"stand-in on port {port} did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
