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


def _header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    return info.tobuf(tarfile.GNU_FORMAT)  # (GNU: sizes of 8 GiB and more too)


def _pad(size: int) -> bytes:
    return b"\0" * (-size % RECORD)


@dataclass(frozen=True)
class LayerFile:
    """A layer file to send: ``size`` bytes from ``chunks()`` (opened only when written)."""

    size: int
    chunks: Callable[[], Iterable[bytes]]


def load_archive(config: bytes, tags: Sequence[str],
                 layers: Sequence[LayerFile | None]) -> Iterator[bytes]:
    """The ``docker load`` archive of the image ``config`` describes, tagged ``tags``;
    ``layers`` in the config's order, None for a layer the target has."""
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    names = [f"{index:03d}/layer.tar" for index in range(len(layers))]
    manifest = json.dumps([{"Config": config_name, "RepoTags": list(tags),
                            "Layers": names}]).encode()
    yield _header(config_name, len(config)) + config + _pad(len(config))
    for name, layer in zip(names, layers, strict=True):
        if layer is None:
            continue
        yield _header(name, layer.size)
        sent = 0
        for chunk in layer.chunks():
            sent += len(chunk)
            yield chunk
        if sent != layer.size:
            raise DeployError(f"layer file {name}: {sent} bytes read, {layer.size} expected")
        yield _pad(layer.size)
    yield _header("manifest.json", len(manifest)) + manifest + _pad(len(manifest))
    yield END


class _Reader:
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


_EXTENDED = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.GNUTYPE_LONGNAME,
             tarfile.GNUTYPE_LONGLINK, tarfile.SOLARIS_XHDTYPE)

#: ``skip(layer_dir, layer_json)``: whether the target has the layer that ``docker save`` wrote
#: as ``layer_dir/`` (its v1 ``json`` file comes before its ``layer.tar``).
Skip = Callable[[str, bytes], bool]


def without_layers(save: Iterable[bytes], skip: Skip,
                   skipped: Callable[[int], None] | None = None) -> Iterator[bytes]:
    """The ``docker save`` stream ``save``, without the ``layer.tar`` files ``skip`` names
    (``skipped`` gets each one's size). Other members pass unchanged."""
    reader = _Reader(save)
    layer_json: dict[str, bytes] = {}
    while True:
        block = reader.read(RECORD)
        if len(block) < RECORD or block == b"\0" * RECORD:
            yield block + reader.read(1 << 30) if block else b""
            return
        info = tarfile.TarInfo.frombuf(block, tarfile.ENCODING, "surrogateescape")
        if info.type in _EXTENDED:
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
        if base == "layer.tar" and folder in layer_json and skip(folder, layer_json[folder]):
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


# -- OCI layout, for targets on the containerd image store -------------------------------------

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


@dataclass(frozen=True)
class OciImage:
    """One image of an OCI-layout archive: its name, config digest and layers (diff IDs)."""

    ref: str
    config: str
    diff_ids: tuple[str, ...]


def normalized_name(ref: str) -> str:
    """``ref`` as containerd names images (``docker.io/library/x:t`` for ``x:t``)."""
    first, slash, rest = ref.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return ref
    if not slash:
        return f"docker.io/library/{ref}"
    return f"docker.io/{ref}"


def _blob_name(digest: str) -> str:
    return "blobs/sha256/" + digest.removeprefix("sha256:")


def _member(name: str, data: bytes) -> bytes:
    return _header(name, len(data)) + data + _pad(len(data))


def oci_from_save(save: Iterable[bytes], images: Sequence[OciImage], leave_out: Collection[str],
                  skipped: Callable[[int], None] | None = None) -> Iterator[bytes]:
    """The classic ``docker save`` stream ``save`` of ``images``, rewritten as an OCI layout
    (``oci-layout``, ``index.json``, ``blobs/sha256/``: the form the containerd image store
    loads without every layer file), without the layers whose diff IDs ``leave_out`` names.

    The containerd store's ``docker load`` resolves every layer a ``manifest.json`` names, so a
    classic archive must carry them all; from an OCI index it imports what the archive holds and
    unpacks only layers whose snapshot (chain ID) is missing. A layer left out must then be in
    the target's content store already, as an uncompressed blob (digest = diff ID): the
    manifests name every layer so, with its exact size (read from the save's headers: a wrong
    size would break a later ``docker save`` there). Layer folders are named back to diff IDs by
    their v1 names (``v1_layer_ids``); one that matches none raises ``DeployError``."""
    leave = set(leave_out)
    chains = {chain: diff for image in images
              for chain, diff in zip(chain_ids(image.diff_ids), image.diff_ids, strict=True)}
    reader = _Reader(save)
    layer_json: dict[str, bytes] = {}
    folder_diff: dict[str, str] = {}
    sizes: dict[str, int] = {}
    configs: dict[str, bytes] = {}
    written: set[str] = set()

    def diff_of(folder: str) -> str:
        if folder not in folder_diff:
            body = layer_json.get(folder)
            found = [diff for chain, diff in chains.items()
                     if body is not None and folder in v1_layer_ids(body, chain)]
            if not found:
                raise DeployError(f"the image archive's layer folder {folder[:12]} matches none "
                                  "of the images' layers")
            folder_diff[folder] = found[0]
        return folder_diff[folder]

    while True:
        block = reader.read(RECORD)
        if len(block) < RECORD or block == b"\0" * RECORD:
            break
        info = tarfile.TarInfo.frombuf(block, tarfile.ENCODING, "surrogateescape")
        if info.type in _EXTENDED:
            raise DeployError("the image archive has extended tar headers (a file of 8 GiB or "
                              "more, or a long name): not rewritten as an OCI layout")
        size = info.size if info.isreg() else 0
        padded = size + (-size % RECORD)
        folder, _, base = info.name.rstrip("/").rpartition("/")
        if base == "json" and folder and size < 1 << 20:
            layer_json[folder] = reader.read(padded)[:size]
            continue
        if base == "layer.tar" and folder:
            diff = diff_of(folder)
            if info.issym() or info.islnk():
                continue  # the same diff ID's file, written (or left out) under another folder
            sizes[diff] = size
            if diff in leave or diff in written:
                for _ in reader.pieces(padded):
                    pass
                if diff in leave and skipped is not None:
                    skipped(size)
                continue
            written.add(diff)
            yield _header(_blob_name(diff), size)
            yield from reader.pieces(padded)
            continue
        if not folder and base.endswith(".json") and len(base) == 69 and size < 1 << 24:
            configs["sha256:" + base[:64]] = reader.read(padded)[:size]
            continue
        for _ in reader.pieces(padded):  # VERSION files, folders, manifest.json, repositories
            pass
    entries = []
    for image in images:
        config = configs.get(image.config)
        if config is None:
            raise DeployError(f"the image archive lacks the config of {image.ref}")
        missing = [d for d in image.diff_ids if d not in sizes]
        if missing:
            raise DeployError(f"the image archive lacks layer {missing[0][:19]} of {image.ref}")
        yield _member(_blob_name(image.config), config)
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": image.config, "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER, "digest": d, "size": sizes[d]}
                       for d in image.diff_ids],
        }, separators=(",", ":")).encode()
        digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
        yield _member(_blob_name(digest), manifest)
        name = normalized_name(image.ref)
        entries.append({"mediaType": OCI_MANIFEST, "digest": digest, "size": len(manifest),
                        "annotations": {"io.containerd.image.name": name,
                                        "org.opencontainers.image.ref.name":
                                            name.rpartition(":")[2]}})
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
    yield _member("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    yield _member("index.json", index.encode())
    yield END
