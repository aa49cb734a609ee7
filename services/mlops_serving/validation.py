"""422 answers to malformed requests that are always valid JSON.

FastAPI's own handler echoes each validation error's ``input``. Python's JSON reader takes the
non-JSON literals ``NaN``/``Infinity`` (and ``1e400`` becomes infinity), and a body sent as
another media type reaches validation as raw bytes: echoing those made the 422 itself fail to
serialise, so the client's mistake came back as a 500 with no word about it. Here the echo is
made JSON-safe (non-finite numbers as text, bytes as their size, long text cut) and the shape
stays FastAPI's ``{"detail": [{"type", "loc", "msg", "input"}]}`` that clients already parse.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

#: Longest echoed text: a 100 kB prompt need not come back to say it was wrong.
MAX_ECHO_CHARS = 200
_KEYS = ("type", "loc", "msg", "input", "ctx")


def json_safe(value: Any) -> Any:
    """``value`` with everything strict JSON cannot carry replaced by a short description."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "nan", "inf", "-inf"
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        if len(value) > MAX_ECHO_CHARS:
            return f"{value[:MAX_ECHO_CHARS]}... ({len(value)} characters)"
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value)} bytes>"
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v) for v in value]
    return str(value)  # e.g. an exception object in ``ctx``


async def validation_error_handler(_: Request, exc: Exception) -> JSONResponse:
    """The 422 of a ``RequestValidationError``, with JSON-safe inputs."""
    assert isinstance(exc, RequestValidationError)
    errors = [{key: json_safe(err[key]) for key in _KEYS if key in err} for err in exc.errors()]
    return JSONResponse(status_code=422, content={"detail": errors})


def install(app: FastAPI) -> None:
    """Answer ``app``'s request validation errors with :func:`validation_error_handler`."""
    app.add_exception_handler(RequestValidationError, validation_error_handler)
