"""The local registry's push queue: two pushes at once, never two holding the same layer the
registry may lack (the engine would compress it twice), the given order otherwise kept."""

from __future__ import annotations

import threading
import time
from concurrent.futures import CancelledError

import pytest

from deployer.shipping.progress import LayerStats
from deployer.shipping.push_queue import PushQueue, run_all

WAIT = 10.0  # seconds: a bound for a broken queue, never reached when it works


class Recorder:
    """A push that records which images are in flight together and can be held open."""

    def __init__(self, layers: dict[str, frozenset[str]]) -> None:
        self.layers = layers
        self.lock = threading.Lock()
        self.in_flight: set[str] = set()
        self.together: list[frozenset[str]] = []
        self.started: dict[str, threading.Event] = {i: threading.Event() for i in layers}
        self.release: dict[str, threading.Event] = {i: threading.Event() for i in layers}
        self.fail: set[str] = set()

    def push(self, image_id: str, ref: str) -> LayerStats:
        with self.lock:
            self.in_flight.add(image_id)
            self.together.append(frozenset(self.in_flight))
        self.started[image_id].set()
        assert self.release[image_id].wait(WAIT), f"{image_id} never released"
        with self.lock:
            self.in_flight.discard(image_id)
        if image_id in self.fail:
            raise RuntimeError(f"push of {ref} failed")
        return LayerStats(moved=set(self.layers[image_id]))


def test_images_sharing_an_unpushed_base_wait_then_the_rest_run_two_at_a_time() -> None:
    base = {"b1", "b2"}
    layers = {"a": frozenset(base | {"a1"}), "b": frozenset(base | {"b3"}),
              "c": frozenset(base | {"c1"})}
    rec = Recorder(layers)
    queue = PushQueue(rec.push, layers.__getitem__)
    try:
        futures = {i: queue.submit(i, f"repo/{i}:1") for i in ("a", "b", "c")}
        assert rec.started["a"].wait(WAIT)
        # b and c share a's base, which the registry may lack: neither starts yet.
        assert not rec.started["b"].wait(0.3) and not rec.started["c"].is_set()
        rec.release["a"].set()
        # a's layers are in the registry now: b and c only share those, so both run.
        assert rec.started["b"].wait(WAIT) and rec.started["c"].wait(WAIT)
        assert frozenset({"b", "c"}) in rec.together
        rec.release["b"].set()
        rec.release["c"].set()
        assert {i: f.result(WAIT).moved for i, f in futures.items()} == {
            i: set(v) for i, v in layers.items()}
        assert all(len(group) <= 2 for group in rec.together)
        assert not any({"a", "b"} <= group or {"a", "c"} <= group for group in rec.together)
    finally:
        for event in rec.release.values():
            event.set()
        queue.close()


def test_a_failed_push_raises_and_leaves_its_layers_unknown() -> None:
    layers = {"a": frozenset({"x", "a1"}), "b": frozenset({"x", "b1"}),
              "c": frozenset({"x", "c1"})}
    rec = Recorder(layers)
    rec.fail.add("a")
    rec.release["a"].set()
    queue = PushQueue(rec.push, layers.__getitem__)
    try:
        with pytest.raises(RuntimeError, match="push of repo/a:1 failed"):
            queue.submit("a", "repo/a:1").result(WAIT)
        # x may still be missing from the registry: b and c, which share it, go one by one.
        later = [queue.submit(i, f"repo/{i}:1") for i in ("b", "c")]
        assert rec.started["b"].wait(WAIT)
        assert not rec.started["c"].wait(0.3)
        rec.release["b"].set()
        assert rec.started["c"].wait(WAIT)
        rec.release["c"].set()
        assert [f.result(WAIT).moved for f in later] == [set(layers["b"]), set(layers["c"])]
        assert frozenset({"b", "c"}) not in rec.together
    finally:
        for event in rec.release.values():
            event.set()
        queue.close()


def test_run_all_stops_at_the_first_failure() -> None:
    layers = {"a": frozenset({"a1"})}
    rec = Recorder(layers)
    rec.fail.add("a")
    rec.release["a"].set()
    with pytest.raises(RuntimeError, match="push of repo/a:1 failed"):
        run_all(rec.push, layers.__getitem__, [("a", "repo/a:1")])


def test_the_same_image_is_pushed_once() -> None:
    layers = {"a": frozenset({"a1"})}
    rec = Recorder(layers)
    rec.release["a"].set()
    queue = PushQueue(rec.push, layers.__getitem__)
    try:
        first = queue.submit("a", "repo/a:1")
        assert queue.submit("a", "repo/a:1") is first
        first.result(WAIT)
        assert len(rec.together) == 1
    finally:
        queue.close()


def test_close_cancels_a_push_waiting_for_a_layer() -> None:
    layers = {"a": frozenset({"x", "a1"}), "b": frozenset({"x", "b1"})}
    rec = Recorder(layers)
    queue = PushQueue(rec.push, layers.__getitem__)
    first = queue.submit("a", "repo/a:1")
    waiting = queue.submit("b", "repo/b:1")
    assert rec.started["a"].wait(WAIT)
    closer = threading.Thread(target=queue.close)
    closer.start()
    deadline = time.monotonic() + WAIT
    while not queue._closing and time.monotonic() < deadline:  # close() has begun
        time.sleep(0.01)
    rec.release["a"].set()  # the push under way ends; the waiting one must not start
    closer.join(WAIT)
    assert not closer.is_alive()
    assert first.result(WAIT).moved == set(layers["a"])
    assert waiting.cancelled() or isinstance(waiting.exception(WAIT), CancelledError)
    assert not rec.started["b"].is_set()
