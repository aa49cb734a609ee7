"""HTTP clients of the three backend APIs. Every failure becomes a BackendError with a message
a person can read in the UI (which service, what happened, what to do), never a stack trace.

The parsers accept the documented answers and a few close variants (field names differ between
model versions), so a backend upgrade does not break the page.
"""

from __future__ import annotations

import json
import logging
import mimetypes
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

logger = logging.getLogger(__name__)


class BackendError(Exception):
    """A backend call failed; ``str(error)`` is the message shown to the user."""

    def __init__(self, service: str, message: str) -> None:
        super().__init__(f"{service}: {message}")
        self.service = service
        self.message = message


@dataclass(frozen=True)
class ChatAnswer:
    """The LLM's text and the model that wrote it."""

    text: str
    model: str


@dataclass(frozen=True)
class SurvivalPrediction:
    """The Titanic model's answer for one passenger."""

    survived: bool
    probability: float
    model: str = ""  # "name version N" of the version that answered


@dataclass(frozen=True)
class ImagePrediction:
    """The image classifier's best label, its probability and the top-k (label, probability)."""

    label: str
    probability: float | None
    top_k: list[tuple[str, float]]
    model: str = ""  # "name version N" of the version that answered
    outputs: str = ""  # what the probabilities are, as the service says


def model_of(body: Any) -> str:
    """``name version N`` from an answer's ``model: {name, version}`` ('' when absent)."""
    model = body.get("model") if isinstance(body, Mapping) else None
    if not isinstance(model, Mapping) or not model.get("name"):
        return ""
    return f"{model['name']} version {model.get('version', '?')}"


async def _post(service: str, url: str, timeout_s: float, **kwargs: Any) -> Any:
    try:
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            resp = await client.post(url, **kwargs)
    except httpx.TimeoutException:
        raise BackendError(service, f"no answer within {timeout_s:g} s ({url}). "
                           "It may be overloaded: try again in a moment.") from None
    except httpx.ConnectError:
        raise BackendError(service, f"not reachable at {url}. Is the service running? "
                           "(check `deployer status`)") from None
    except httpx.HTTPError as exc:
        raise BackendError(service, f"request to {url} failed: {type(exc).__name__}") from None
    if resp.status_code >= 400:
        raise BackendError(service, _describe_error(resp))
    try:
        return resp.json()
    except ValueError:
        raise BackendError(service, f"answered {resp.status_code} with a body that is not "
                           "JSON") from None


def _describe_error(resp: httpx.Response) -> str:
    """'HTTP 503: <detail> — <fix>' from the JSON error shapes our APIs use (or raw text)."""
    head = f"HTTP {resp.status_code}"
    try:
        body = resp.json()
    except ValueError:
        text = resp.text.strip()
        return f"{head}: {text[:300]}" if text else head
    if isinstance(body, Mapping):
        err = body.get("error")
        if isinstance(err, Mapping):  # {"error": {"title", "detail", "fix"}}
            parts = [str(err.get(k)) for k in ("title", "detail") if err.get(k)]
            msg = f"{head}: {'. '.join(parts)}"
            return f"{msg} — {err['fix']}" if err.get("fix") else msg
        detail = body.get("detail")
        if isinstance(detail, str):
            return f"{head}: {detail}"
        if isinstance(detail, Sequence):  # FastAPI validation errors
            msgs = []
            for item in detail[:5]:
                if isinstance(item, Mapping):
                    loc = ".".join(str(p) for p in item.get("loc", []) if p != "body")
                    msgs.append(f"{loc}: {item.get('msg')}" if loc else str(item.get("msg")))
            return f"{head}: invalid input ({'; '.join(msgs)})"
        if isinstance(detail, Mapping):
            return f"{head}: {detail.get('message') or detail.get('detail') or detail}"
    return f"{head}: {str(body)[:300]}"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


async def chat(base_url: str, prompt: str, history: list[tuple[str, str]],
               timeout_s: float) -> ChatAnswer:
    """POST /chat on the llm-connector; ``history`` is (role "user"|"model", text) pairs."""
    payload = {"prompt": prompt, "history": [{"role": r, "text": t} for r, t in history if t]}
    body = await _post("LLM connector", f"{base_url}/chat", timeout_s, json=payload)
    text = body.get("text") if isinstance(body, Mapping) else None
    if not isinstance(text, str):
        raise BackendError("LLM connector", "answered without a text field")
    return ChatAnswer(text=text, model=str(body.get("model") or ""))


async def chat_stream(base_url: str, prompt: str, history: list[tuple[str, str]],
                      timeout_s: float, *, system: str | None = None,
                      temperature: float | None = None) -> AsyncIterator[ChatAnswer]:
    """POST /chat/stream on the llm-connector: the answer so far after each piece (the last
    one carries the model's name). Failures before or during the answer: BackendError."""
    service, url = "LLM connector", f"{base_url}/chat/stream"
    payload: dict[str, Any] = {"prompt": prompt,
                               "history": [{"role": r, "text": t} for r, t in history if t]}
    if system:
        payload["system"] = system
    if temperature is not None:
        payload["temperature"] = temperature
    text = ""
    try:
        async with httpx.AsyncClient(timeout=timeout_s) as client, \
                client.stream("POST", url, json=payload) as resp:
            if resp.status_code >= 400:
                await resp.aread()
                raise BackendError(service, _describe_error(resp))
            async for line in resp.aiter_lines():
                if not line.strip():
                    continue
                try:
                    event = json.loads(line)
                except ValueError:
                    raise BackendError(service, "streamed a line that is not JSON") from None
                if not isinstance(event, Mapping):
                    continue
                if isinstance(event.get("error"), Mapping):
                    err = event["error"]
                    raise BackendError(service, f"the answer broke off: {err.get('detail')}"
                                       + (f" — {err['fix']}" if err.get("fix") else ""))
                if isinstance(event.get("delta"), str):
                    text += event["delta"]
                    yield ChatAnswer(text=text, model="")
                if event.get("done"):
                    yield ChatAnswer(text=text, model=str(event.get("model") or ""))
                    return
    except httpx.TimeoutException:
        raise BackendError(service, f"no answer within {timeout_s:g} s ({url}). "
                           "It may be overloaded: try again in a moment.") from None
    except httpx.ConnectError:
        raise BackendError(service, f"not reachable at {url}. Is the service running? "
                           "(check `deployer status`)") from None
    except httpx.HTTPError as exc:
        raise BackendError(service, f"request to {url} failed: {type(exc).__name__}") from None
    raise BackendError(service, "the answer ended before it was complete")


def parse_survival(body: Any) -> SurvivalPrediction:
    """The first prediction of an sklearn-model /predict answer.

    Accepts ``{"predictions": [{...}]}`` or a bare ``{...}`` / ``[{...}]``, with the
    probability as ``survival_probability``, ``probability`` or ``proba``.
    """
    item: Any = body
    if isinstance(body, Mapping) and "predictions" in body:
        item = body["predictions"]
    if isinstance(item, list):
        item = item[0] if item else None
    if not isinstance(item, Mapping):
        raise BackendError("Titanic model", "answered without a prediction")
    prob = next((p for k in ("survival_probability", "probability", "proba")
                 if (p := _number(item.get(k))) is not None), None)
    if prob is None or not 0.0 <= prob <= 1.0:
        raise BackendError("Titanic model", "answered without a survival probability in [0, 1]")
    survived = item.get("survived")
    return SurvivalPrediction(
        survived=survived if isinstance(survived, bool) else prob >= 0.5, probability=prob,
        model=model_of(body),
    )


async def predict_survival(base_url: str, passenger: Mapping[str, Any],
                           timeout_s: float) -> SurvivalPrediction:
    """POST /predict on the sklearn-model with one passenger."""
    body = await _post("Titanic model", f"{base_url}/predict", timeout_s, json=dict(passenger))
    return parse_survival(body)


def parse_image(body: Any) -> ImagePrediction:
    """A cnn-image /predict answer: ``label`` (or ``class``/``prediction``) with ``probability``
    (or ``confidence``/``score``), and a top-k list under ``top_k``/``top``/``predictions``
    (items ``{"label"|"class", "probability"|"score"}`` or a ``{label: probability}`` map)."""
    if not isinstance(body, Mapping):
        raise BackendError("Image model", "answered without a prediction")
    raw_top: Any = next((body[k] for k in ("top_k", "top", "predictions", "probabilities")
                    if k in body), [])
    top: list[tuple[str, float]] = []
    if isinstance(raw_top, Mapping):
        top = [(str(k), p) for k, v in raw_top.items() if (p := _number(v)) is not None]
    elif isinstance(raw_top, list):
        for item in raw_top:
            if isinstance(item, Mapping):
                name = item.get("label", item.get("class"))
                prob = next((p for k in ("probability", "confidence", "score")
                             if (p := _number(item.get(k))) is not None), None)
                if name is not None and prob is not None:
                    top.append((str(name), prob))
    top.sort(key=lambda pair: pair[1], reverse=True)
    label = next((body[k] for k in ("label", "class", "prediction")
                  if isinstance(body.get(k), str)), None)
    if label is None and top:
        label = top[0][0]
    if label is None:
        raise BackendError("Image model", "answered without a label")
    prob = next((p for k in ("probability", "confidence", "score")
                 if (p := _number(body.get(k))) is not None), None)
    if prob is None:
        prob = dict(top).get(label)
    outputs = body.get("outputs")
    return ImagePrediction(label=label, probability=prob, top_k=top, model=model_of(body),
                           outputs=outputs if isinstance(outputs, str) else "")


async def classify_image(base_url: str, path: Path, timeout_s: float,
                         top_k: int = 5) -> ImagePrediction:
    """POST /predict?top_k= on the cnn-image with the image as multipart field ``file``."""
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    with path.open("rb") as handle:
        files = {"file": (path.name, handle.read(), mime)}
    body = await _post("Image model", f"{base_url}/predict", timeout_s, files=files,
                       params={"top_k": top_k})
    return parse_image(body)
