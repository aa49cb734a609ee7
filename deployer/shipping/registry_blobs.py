"""Reading images back out of the local registry, and what it holds by layer.

After ``docker push`` into the local registry, the image's manifest names each layer's blob (the
engine's gzip of it) in the config's order; those blobs are what goes into a target's
``docker load`` archive. ``LayerIndex`` remembers, across runs, which layers (diff IDs) have a
blob there: an image most of whose missing layers have none ships from a ``docker save`` of its
own instead (``deployer.shipping.transfer``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deployer.errors import DeployError

MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_FILE = "layer-index.json"
#: Diff ID -> the layer's uncompressed tar size (an OCI manifest names every layer with it).
SIZES_FILE = "layer-sizes.json"
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
    """Diff ID -> blob digest of the layers pushed into the registry at ``directory``, and
    diff ID -> uncompressed size of the layers seen (in a save, or inflated from a blob)."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / INDEX_FILE
        self.sizes_path = directory / SIZES_FILE
        self._lock = threading.Lock()
        self._known: dict[str, str] = self._read()
        self._added: dict[str, str] = {}
        self._sizes: dict[str, int] = {k: int(v) for k, v in _read_json(self.sizes_path).items()
                                       if str(v).isdigit()}
        self._sizes_added: dict[str, int] = {}

    def _read(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in _read_json(self.path).items()}

    def has(self, diff_id: str) -> bool:
        with self._lock:
            return diff_id in self._known

    def size(self, diff_id: str) -> int | None:
        with self._lock:
            return self._sizes.get(diff_id)

    def record_sizes(self, sizes: dict[str, int]) -> None:
        with self._lock:
            self._sizes.update(sizes)
            self._sizes_added.update(sizes)

    def record(self, diff_ids: Sequence[str], pushed: Manifest) -> None:
        if len(diff_ids) != len(pushed.layers):
            return  # not a manifest of this image's layers: nothing to learn from it
        with self._lock:
            for diff_id, layer in zip(diff_ids, pushed.layers, strict=True):
                self._known[diff_id] = self._added[diff_id] = layer.digest

    def save(self) -> None:
        """Merge what this session learnt into the files (another session may have written)."""
        with self._lock:
            added, self._added = self._added, {}
            sizes, self._sizes_added = self._sizes_added, {}
        if added:
            _write_json(self.path, {**self._read(), **added})
        if sizes:
            _write_json(self.sizes_path, {**_read_json(self.sizes_path), **sizes})


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    with contextlib.suppress(OSError):  # a cache: losing an update costs speed only
        tmp.write_text(json.dumps(data, indent=0, sort_keys=True))
        os.replace(tmp, path)


def inflated(address: str, repository: str, blob: Blob, diff_id: str,
             timeout: float) -> tuple[int, Path]:
    """The layer ``diff_id`` inflated from its gzip ``blob`` into a temporary file (its size
    must head an archive member before the bytes): (size, path); the caller removes the file.
    Checked against the diff ID (the digest of the uncompressed tar)."""
    inflate = zlib.decompressobj(wbits=31)
    digest = hashlib.sha256()
    handle = tempfile.NamedTemporaryFile(prefix="mlops-layer-", suffix=".tar", delete=False)
    size = 0
    try:
        with handle:
            for chunk in blob_chunks(address, repository, blob.digest, timeout):
                data = inflate.decompress(chunk)
                while inflate.eof and inflate.unused_data:  # a multi-member gzip
                    rest = inflate.unused_data
                    inflate = zlib.decompressobj(wbits=31)
                    data += inflate.decompress(rest)
                digest.update(data)
                handle.write(data)
                size += len(data)
            tail = inflate.flush()
            digest.update(tail)
            handle.write(tail)
            size += len(tail)
        if "sha256:" + digest.hexdigest() != diff_id:
            raise DeployError(f"the local registry's blob {blob.digest[:19]} does not inflate "
                              f"to layer {diff_id[:19]}")
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise
    return size, Path(handle.name)


def forget(directory: Path) -> None:
    """Drop the index (after a garbage collection freed blobs it may name)."""
    with contextlib.suppress(FileNotFoundError):
        (directory / INDEX_FILE).unlink()
