"""Retry with capped exponential backoff (tenacity), interruptible by a stop event.

Swarm ignores ``depends_on``: a service starts whether or not MLflow and S3 are up yet, so it
retries reaching them rather than failing (and being restarted in a loop).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import tenacity


def backoff(
    stop: threading.Event,
    max_delay: float,
    retry_on: Callable[[BaseException], bool],
    on_retry: Callable[[BaseException, float], None],
) -> tenacity.Retrying:
    """A retrier: waits 1, 2, 4 ... s (capped at ``max_delay``) between attempts whose
    exception ``retry_on`` accepts, calls ``on_retry(exception, next_delay)`` before each wait,
    and gives up (``tenacity.RetryError``) once ``stop`` is set. Other exceptions propagate.
    """

    def before_sleep(state: tenacity.RetryCallState) -> None:
        assert state.outcome is not None  # tenacity sleeps only after a failed attempt
        exc = state.outcome.exception()
        assert exc is not None
        delay = state.next_action.sleep if state.next_action is not None else 0.0
        on_retry(exc, delay)

    def sleep(seconds: float) -> None:
        # Event.wait instead of time.sleep: a stopping service does not sit out the delay.
        stop.wait(seconds)

    return tenacity.Retrying(
        retry=tenacity.retry_if_exception(retry_on),
        wait=tenacity.wait_exponential(multiplier=1, min=0, max=max_delay),
        stop=lambda _state: stop.is_set(),
        sleep=sleep,
        before_sleep=before_sleep,
    )
