"""``docker load`` archives, written and filtered as streams (nothing buffered whole).

``load_archive`` writes the archive of one image: its config, the files of the layers the target
lacks (registry blobs, gzip: ``docker load`` inflates each layer file it reads) and the manifest.
A layer the target has needs no file: ``docker load`` looks a layer up by its chain ID before it
opens the layer's file. ``without_layers`` passes a ``docker save`` stream on without the layer
files a predicate names, and ``gzip_blocks`` compresses a stream on several cores (``docker
load`` inflates a gzip archive; a gzip of concatenated members is one gzip stream).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import tarfile
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from deployer.errors import DeployError

RECORD = 512
END = b"\0" * (2 * RECORD)
#: Input per gzip member: large enough that the per-member header and the lost dictionary at
#: each boundary cost well under 1 %, small enough to keep both cores busy on one layer.
BLOCK = 4 * 1024 * 1024
#: zlib level 1: about 4x the speed of the engine's default level for some 15 % more bytes.
LEVEL = 1
WORKERS = 2


def chain_ids(diff_ids: Sequence[str]) -> list[str]:
    """Each layer's chain ID (the layer store's key: the layer and all below it)."""
    chains: list[str] = []
    for diff_id in diff_ids:
        if not chains:
            chains.append(diff_id)
        else:
            text = f"{chains[-1]} {diff_id}".encode()
            chains.append("sha256:" + hashlib.sha256(text).hexdigest())
    return chains


def header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    return info.tobuf(tarfile.GNU_FORMAT)  # (GNU: sizes of 8 GiB and more too)


def pad(size: int) -> bytes:
    return b"\0" * (-size % RECORD)


@dataclass(frozen=True)
class LayerFile:
    """A layer file to send: ``size`` bytes from ``chunks()`` (opened only when written)."""

    size: int
    chunks: Callable[[], Iterable[bytes]]


def layer_member(name: str, layer: LayerFile) -> Iterator[bytes]:
    """The archive member ``name`` holding ``layer``'s bytes (checked against its size)."""
    yield header(name, layer.size)
    sent = 0
    for chunk in layer.chunks():
        sent += len(chunk)
        yield chunk
    if sent != layer.size:
        raise DeployError(f"layer file {name}: {sent} bytes read, {layer.size} expected")
    yield pad(layer.size)


def load_archive(config: bytes, tags: Sequence[str],
                 layers: Sequence[LayerFile | None]) -> Iterator[bytes]:
    """The ``docker load`` archive of the image ``config`` describes, tagged ``tags``;
    ``layers`` in the config's order, None for a layer the target has."""
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    names = [f"{index:03d}/layer.tar" for index in range(len(layers))]
    manifest = json.dumps([{"Config": config_name, "RepoTags": list(tags),
                            "Layers": names}]).encode()
    yield header(config_name, len(config)) + config + pad(len(config))
    for name, layer in zip(names, layers, strict=True):
        if layer is not None:
            yield from layer_member(name, layer)
    yield header("manifest.json", len(manifest)) + manifest + pad(len(manifest))
    yield END


class Reader:
    """Exact reads out of an iterable of chunks."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = bytearray()

    def read(self, size: int) -> bytes:
        while len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        out = bytes(self._buffer[:size])
        del self._buffer[:size]
        return out

    def pieces(self, size: int, step: int = 1024 * 1024) -> Iterator[bytes]:
        left = size
        while left > 0:
            piece = self.read(min(step, left))
            if not piece:
                raise DeployError("the image stream ended inside a file")
            left -= len(piece)
            yield piece


EXTENDED = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.GNUTYPE_LONGNAME,
             tarfile.GNUTYPE_LONGLINK, tarfile.SOLARIS_XHDTYPE)

#: ``skip(layer_dir, layer_json)``: whether the target has the layer that ``docker save`` wrote
#: as ``layer_dir/`` (its v1 ``json`` file comes before its ``layer.tar``).
Skip = Callable[[str, bytes], bool]


def without_layers(save: Iterable[bytes], skip: Skip,
                   skipped: Callable[[int], None] | None = None,
                   leave_blobs: Collection[str] = (),
                   sizes: dict[str, int] | None = None) -> Iterator[bytes]:
    """The ``docker save`` stream ``save``, without the ``layer.tar`` files ``skip`` names
    (``skipped`` gets each one's size). Other members pass unchanged.

    An OCI-layout save (Docker 25 and later) names layers ``blobs/sha256/<digest>``, uncompressed
    on the classic store (the digest is then the diff ID), often compressed on the containerd
    store: a blob whose digest ``leave_blobs`` names is left out, the rest passes (a compressed
    layer cannot be told by its digest, so it is sent). ``sizes`` gets the size of each blob in
    ``leave_blobs``' form (diff ID -> size, for every ``sha256:`` blob seen)."""
    leave = set(leave_blobs)
    reader = Reader(save)
    layer_json: dict[str, bytes] = {}
    while True:
        block = reader.read(RECORD)
        if len(block) < RECORD or block == b"\0" * RECORD:
            yield block + reader.read(1 << 30) if block else b""
            return
        info = tarfile.TarInfo.frombuf(block, tarfile.ENCODING, "surrogateescape")
        if info.type in EXTENDED:
            # A long name or a size beyond the header's field (a layer of 8 GiB and more)
            # follows: the rest passes as it is, nothing more left out.
            yield block
            while chunk := reader.read(1024 * 1024):
                yield chunk
            return
        size = info.size
        padded = size + (-size % RECORD)
        folder, _, base = info.name.rstrip("/").rpartition("/")
        if base == "json" and folder and size < 1 << 20:
            body = reader.read(padded)
            layer_json[folder] = body[:size]
            yield block + body
            continue
        blob = f"sha256:{base}" if folder == "blobs/sha256" else None
        if blob is not None and sizes is not None:
            sizes[blob] = size
        if (blob is not None and blob in leave) or (
                base == "layer.tar" and folder in layer_json and skip(folder, layer_json[folder])):
            for _ in reader.pieces(padded):
                pass
            if skipped is not None:
                skipped(size)
            continue
        yield block
        yield from reader.pieces(padded)


def _go_json(value: object) -> str:
    """``value`` as Go's encoding/json writes it (compact; <, > and & escaped)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                          ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return text


def is_oci_layout(first: bytes) -> bool:
    """Whether an image archive starting with the chunk ``first`` is an OCI layout (Docker 25+
    ``docker save``: ``blobs/``, ``index.json``, ``oci-layout`` before anything else)."""
    name = first[:100].split(b"\0", 1)[0]
    return name.startswith((b"blobs", b"index.json", b"oci-layout"))


def v1_layer_ids(layer_json: bytes, chain_id: str) -> set[str]:
    """The folder names ``docker save`` may give the layer ``chain_id`` whose v1 json is
    ``layer_json``: the engine's ``v1.CreateID`` (the json without its id and parent, plus
    ``layer_id`` and ``parent``, keys sorted), with and without ``os`` (an engine adds it to a
    lower layer's json after computing the name). A json it cannot have written gives names that
    match no folder, and the layer is simply sent."""
    config = json.loads(layer_json)
    config.pop("id", None)
    parent = config.pop("parent", None)
    config["layer_id"] = chain_id
    if parent:
        config["parent"] = f"sha256:{parent}"
    names = set()
    for fields in (config, {k: v for k, v in config.items() if k != "os"}):
        body = "{" + ",".join(f"{_go_json(key)}:{_go_json(fields[key])}"
                              for key in sorted(fields)) + "}"
        names.add(hashlib.sha256(body.encode()).hexdigest())
    return names


def gzip_blocks(chunks: Iterable[bytes], level: int = LEVEL,
                workers: int = WORKERS) -> Iterator[bytes]:
    """``chunks`` gzip-compressed, ``BLOCK`` bytes per member, ``workers`` members at a time
    (zlib leaves the interpreter lock while it compresses), in order."""
    with ThreadPoolExecutor(workers, thread_name_prefix="gzip") as pool:
        pending: deque[Future[bytes]] = deque()
        block = bytearray()

        def submit() -> None:
            pending.append(pool.submit(gzip.compress, bytes(block), level, mtime=0))
            block.clear()

        for chunk in chunks:
            block += chunk
            while len(block) >= BLOCK:
                rest = block[BLOCK:]
                del block[BLOCK:]
                submit()
                block += rest
                while len(pending) > 2 * workers:
                    yield pending.popleft().result()
        if block:
            submit()
        while pending:
            yield pending.popleft().result()

