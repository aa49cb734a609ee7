"""FastAPI dependencies, as ``Annotated`` aliases for the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from app.config import Settings
from app.loader import ModelState
from app.registry import LoadedModel


def get_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


def get_state(request: Request) -> ModelState:
    """The model loader's state."""
    state: ModelState = request.app.state.model_state
    return state


def get_loaded(state: Annotated[ModelState, Depends(get_state)]) -> LoadedModel:
    """The served model, or 503 while there is none (with the loader's reason and the fix)."""
    snap = state.get()
    if snap.model is None:
        detail = f"no model loaded yet ({snap.status}): {snap.detail}"
        if snap.fix:
            detail += f". To fix: {snap.fix}"
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=detail)
    return snap.model


SettingsDep = Annotated[Settings, Depends(get_settings)]
StateDep = Annotated[ModelState, Depends(get_state)]
LoadedDep = Annotated[LoadedModel, Depends(get_loaded)]
