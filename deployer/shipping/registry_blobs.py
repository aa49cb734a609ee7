"""Reading images back out of the local registry, and what it holds by layer.

After ``docker push`` into the local registry, the image's manifest names each layer's blob (the
engine's gzip of it) in the config's order; those blobs are what goes into a target's
``docker load`` archive. ``LayerIndex`` remembers, across runs, which layers (diff IDs) have a
blob there: an image most of whose missing layers have none ships from a ``docker save`` of its
own instead (``deployer.shipping.transfer``).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deployer.errors import DeployError

MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_FILE = "layer-index.json"
CHUNK = 1024 * 1024


class RegistryStalled(DeployError):
    """The local registry stopped answering, or answered an error, mid-read."""


@dataclass(frozen=True)
class Blob:
    digest: str
    size: int


@dataclass(frozen=True)
class Manifest:
    config: Blob
    layers: tuple[Blob, ...]


def open_path(address: str, path: str, timeout: float, accept: str = "*/*",
              method: str = "GET") -> Any:
    """The registry's answer to ``METHOD /v2/PATH`` (an open response: read, then close it).

    The one place that speaks HTTP to the local registry: shipping reads blobs through it and
    ``ship-cache prune`` lists and deletes manifests."""
    request = urllib.request.Request(f"http://{address}/v2/{path}", method=method,
                                     headers={"Accept": accept})
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except (urllib.error.URLError, OSError) as exc:
        raise RegistryStalled(f"the local registry did not serve {method} {path}: {exc} "
                              f"(waited up to {timeout:g} s)") from exc


def manifest(address: str, repository: str, tag: str, timeout: float = 30) -> Manifest:
    with open_path(address, f"{repository}/manifests/{tag}", timeout, MANIFEST_V2) as resp:
        try:
            body = json.loads(resp.read())
            return Manifest(
                Blob(str(body["config"]["digest"]), int(body["config"]["size"])),
                tuple(Blob(str(b["digest"]), int(b["size"])) for b in body["layers"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RegistryStalled(f"the local registry's manifest of {repository}:{tag} is "
                                  f"unreadable: {exc}") from exc


def blob(address: str, repository: str, digest: str, timeout: float = 30) -> bytes:
    return b"".join(blob_chunks(address, repository, digest, timeout))


def blob_chunks(address: str, repository: str, digest: str, timeout: float) -> Iterator[bytes]:
    """The blob's bytes; a read that waits longer than ``timeout`` raises ``RegistryStalled``
    (not an OSError: the SSH layer would take that for the connection's own failure)."""
    with open_path(address, f"{repository}/blobs/{digest}", timeout) as resp:
        while True:
            try:
                chunk = resp.read(CHUNK)
            except (OSError, ValueError) as exc:
                raise RegistryStalled(f"reading blob {digest[:19]} from the local registry: "
                                      f"{type(exc).__name__}: {exc or 'no data'} (after "
                                      f"{timeout:g} s without a byte)") from exc
            if not chunk:
                return
            yield chunk


class LayerIndex:
    """Diff ID -> blob digest of the layers pushed into the registry at ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / INDEX_FILE
        self._lock = threading.Lock()
        self._known: dict[str, str] = self._read()
        self._added: dict[str, str] = {}

    def _read(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def has(self, diff_id: str) -> bool:
        with self._lock:
            return diff_id in self._known

    def record(self, diff_ids: Sequence[str], pushed: Manifest) -> None:
        if len(diff_ids) != len(pushed.layers):
            return  # not a manifest of this image's layers: nothing to learn from it
        with self._lock:
            for diff_id, layer in zip(diff_ids, pushed.layers, strict=True):
                self._known[diff_id] = self._added[diff_id] = layer.digest

    def save(self) -> None:
        """Merge what this session learnt into the file (another session may have written)."""
        with self._lock:
            if not self._added:
                return
            merged = {**self._read(), **self._added}
            self._added = {}
        tmp = self.path.with_name(f".{INDEX_FILE}.{os.getpid()}.{threading.get_ident()}")
        with contextlib.suppress(OSError):  # a cache: losing an update costs speed only
            tmp.write_text(json.dumps(merged, indent=0, sort_keys=True))
            os.replace(tmp, self.path)


def forget(directory: Path) -> None:
    """Drop the index (after a garbage collection freed blobs it may name)."""
    with contextlib.suppress(FileNotFoundError):
        (directory / INDEX_FILE).unlink()
