"""Pushes into the local registry, two at a time, never two compressing the same layer.

The engine gzips each layer it pushes on one core, so one push at a time leaves the second core
idle while a big layer compresses. Two pushes at once halve that, but only if they do not both
compress a layer the registry lacks: the engine does not share that work between two pushes of
different repositories (measured: a cold first ship took 1.9x as long when two images with the
same missing base compressed it twice). So a push waits while another one in flight holds one of
its layers that this session has not yet seen pushed; once an image is in the registry, its
layers are known there and images sharing only those run side by side.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor

from deployer.shipping.progress import LayerStats

#: Pushes at once: one per core of a small deploying machine.
WORKERS = 2

Push = Callable[[str, str], LayerStats]
Layers = Callable[[str], frozenset[str]]


class PushQueue:
    """``submit(image_id, ref)`` in the order wanted; each future ends with that push's stats."""

    def __init__(self, push: Push, layers_of: Layers, workers: int = WORKERS) -> None:
        self._push = push
        self._layers_of = layers_of
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="ship-push")
        self._changed = threading.Condition()
        self._in_flight: list[frozenset[str]] = []
        self._pushed: set[str] = set()  # layers in the registry as far as this session knows
        self._futures: dict[tuple[str, str], Future[LayerStats]] = {}
        self._closing = False

    def submit(self, image_id: str, ref: str) -> Future[LayerStats]:
        key = (image_id, ref)
        if key not in self._futures:
            self._futures[key] = self._pool.submit(self._run, image_id, ref)
        return self._futures[key]

    def submit_all(self, images: Iterable[tuple[str, str]]) -> None:
        for image_id, ref in images:
            self.submit(image_id, ref)

    def pop(self, image_id: str, ref: str) -> Future[LayerStats] | None:
        return self._futures.pop((image_id, ref), None)

    def close(self) -> None:
        """Cancel what has not started, including pushes waiting for a layer (a failed or
        interrupted session must not wait for them); wait for those under way."""
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._futures.clear()

    def _run(self, image_id: str, ref: str) -> LayerStats:
        layers = self._layers_of(image_id)
        with self._changed:
            self._changed.wait_for(lambda: self._closing or not self._overlaps(layers))
            if self._closing:
                raise CancelledError(f"push of {ref} cancelled: the shipping session closed")
            self._in_flight.append(layers)
        pushed = False
        try:
            stats = self._push(image_id, ref)
            pushed = True
            return stats
        finally:
            with self._changed:
                self._in_flight.remove(layers)
                if pushed:  # pushed or already there: in the registry either way
                    self._pushed |= layers
                self._changed.notify_all()

    def _overlaps(self, layers: frozenset[str]) -> bool:
        unknown = layers - self._pushed
        return any(unknown & other for other in self._in_flight)


def run_all(push: Push, layers_of: Layers,
            images: Iterable[tuple[str, str]]) -> dict[tuple[str, str], LayerStats]:
    """Push every image (in the given order, two at a time); raises the first failure."""
    queue = PushQueue(push, layers_of)
    try:
        ordered = list(images)
        queue.submit_all(ordered)
        return {key: queue.submit(*key).result() for key in ordered}
    finally:
        queue.close()
