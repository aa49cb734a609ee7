"""Errors a model service's own code raises for the shared loader (no heavy imports here)."""

from __future__ import annotations


class NoModelError(LookupError):
    """No usable model: nothing carries the alias, or a cached entry does not fit its metadata."""


class DatasetError(ValueError):
    """The training data is missing or unusable; the message says which file and why.

    Retrying the same training cannot help, so the loader stops trying to train (a model
    registered from elsewhere is still picked up)."""
