"""Waiting for a condition on an engine: the one polling loop of the deployer's waits."""

from __future__ import annotations

import time
from collections.abc import Callable

from deployer.errors import DeployError


def poll_until(what: str, done: Callable[[], bool], timeout: float, *, fix: str,
               interval: float = 0.5) -> None:
    """Call ``done`` until it holds; ``DeployError`` saying ``what`` (and ``fix``) after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() >= deadline:
            raise DeployError(f"{what} within {timeout:g} s", fix=fix)
        time.sleep(interval)
