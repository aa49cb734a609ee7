"""Where the shipped templates and service build contexts are, installed or in a checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def _data_dir(name: str) -> Path:
    # A wheel carries the top-level folders inside the package (see pyproject's force-include);
    # a checkout or an editable install reads them from the repository root.
    installed = _PACKAGE_DIR / "_data" / name
    if installed.is_dir():
        return installed
    return _PACKAGE_DIR.parent / name


def templates_dir() -> Path:
    """The folder holding the Jinja2 templates and the default values file."""
    return _data_dir("templates")


def services_dir() -> Path:
    """The folder holding one build context per service."""
    return _data_dir("services")
