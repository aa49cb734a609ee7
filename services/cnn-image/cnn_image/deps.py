"""This service's own dependency: its settings (the model ones are :mod:`mlops_serving.deps`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from cnn_image.config import Settings


def get_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]
