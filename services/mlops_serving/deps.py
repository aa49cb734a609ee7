"""FastAPI dependencies of the model services, as ``Annotated`` aliases for the routers.

Coroutines, though they never wait: FastAPI runs a plain-function dependency in a worker
thread, and two such hand-offs per request were a measurable share of a sub-millisecond
/predict. Nothing here blocks (the state's lock is held only to swap a reference)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status

from mlops_serving.loader import ModelState
from mlops_serving.registry import LoadedModel


async def get_state(request: Request) -> ModelState:
    """The model loader's state."""
    state: ModelState = request.app.state.model_state
    return state


async def get_loaded(state: Annotated[ModelState, Depends(get_state)]) -> LoadedModel[Any]:
    """The served model, or 503 while there is none (with the loader's reason and the fix)."""
    snap = state.get()
    if snap.model is None:
        detail = f"no model loaded yet ({snap.status}): {snap.detail}"
        if snap.fix:
            detail += f". To fix: {snap.fix}"
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=detail)
    return snap.model


StateDep = Annotated[ModelState, Depends(get_state)]
LoadedDep = Annotated[LoadedModel[Any], Depends(get_loaded)]
