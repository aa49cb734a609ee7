"""OCI-layout ``docker load`` archives, for targets on the containerd image store.

That store's ``docker load`` resolves every layer a classic ``manifest.json`` names, so a classic
archive must carry them all; from an OCI index it imports the blobs the archive holds and
unpacks only the layers whose snapshot (chain ID) is missing. A layer left out must then be in
the target's content store already as an uncompressed blob (digest = diff ID, as a ``docker
load`` stores it): the manifests written here name every layer so, with its exact size (a wrong
size loads, but breaks a later ``docker save`` there).

``oci_from_save`` rewrites a classic ``docker save`` stream (layer sizes from its headers);
``oci_archive`` writes one from a config, known sizes and the files of the missing layers (blobs
of the local registry, inflated). Both stream; nothing is buffered whole.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from deployer.errors import DeployError
from deployer.shipping.archive import (
    END,
    EXTENDED,
    RECORD,
    LayerFile,
    Reader,
    chain_ids,
    header,
    layer_member,
    pad,
    v1_layer_ids,
)

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'


@dataclass(frozen=True)
class OciImage:
    """One image of an OCI-layout archive: its name, config digest and layers (diff IDs)."""

    ref: str
    config: str
    diff_ids: tuple[str, ...]


def normalized_name(ref: str) -> str:
    """``ref`` as containerd names images: ``docker.io/library/x:latest`` for ``x``."""
    first, slash, rest = ref.partition("/")
    if not slash or not ("." in first or ":" in first or first == "localhost"):
        first, rest = "docker.io", ref
    if first in ("docker.io", "index.docker.io"):
        first = "docker.io"
        if "/" not in rest:
            rest = f"library/{rest}"
    name = f"{first}/{rest}"
    last = name.rpartition("/")[2]
    return name if ":" in last or "@" in last else f"{name}:latest"


def _tag(name: str) -> str:
    """The tag of a normalized name (``org.opencontainers.image.ref.name``)."""
    return name.rpartition("/")[2].rpartition(":")[2]


def blob_name(digest: str) -> str:
    return "blobs/sha256/" + digest.removeprefix("sha256:")


def _member(name: str, data: bytes) -> bytes:
    return header(name, len(data)) + data + pad(len(data))


def _image_members(image: OciImage, config: bytes, sizes: Mapping[str, int],
                   entries: list[dict[str, object]]) -> bytes:
    """The config and manifest blobs of ``image``; its index entry goes to ``entries``."""
    missing = [d for d in image.diff_ids if d not in sizes]
    if missing:
        raise DeployError(f"the size of layer {missing[0][:19]} of {image.ref} is not known")
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": image.config, "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER, "digest": d, "size": sizes[d]}
                   for d in image.diff_ids],
    }, separators=(",", ":")).encode()
    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    name = normalized_name(image.ref)
    entries.append({"mediaType": OCI_MANIFEST, "digest": digest, "size": len(manifest),
                    "annotations": {"io.containerd.image.name": name,
                                    "org.opencontainers.image.ref.name": _tag(name)}})
    return _member(blob_name(image.config), config) + _member(blob_name(digest), manifest)


def _index(entries: list[dict[str, object]]) -> bytes:
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
    return _member("oci-layout", LAYOUT) + _member("index.json", index.encode()) + END


def oci_archive(image: OciImage, config: bytes, sizes: Mapping[str, int],
                files: Mapping[str, LayerFile]) -> Iterator[bytes]:
    """The OCI-layout archive of ``image`` (``config``'s bytes; every layer's size) with the
    blobs of the layers in ``files`` (uncompressed tars, by diff ID)."""
    entries: list[dict[str, object]] = []
    for diff, layer in files.items():
        if sizes.get(diff, layer.size) != layer.size:
            raise DeployError(f"layer {diff[:19]} is {layer.size} bytes, {sizes[diff]} known")
        yield from layer_member(blob_name(diff), layer)
    yield _image_members(image, config, {**sizes, **{d: f.size for d, f in files.items()}},
                         entries)
    yield _index(entries)


def oci_from_save(save: Iterable[bytes], images: Sequence[OciImage], leave_out: Collection[str],
                  skipped: Callable[[int], None] | None = None,
                  sizes: dict[str, int] | None = None) -> Iterator[bytes]:
    """The classic ``docker save`` stream ``save`` of ``images``, rewritten as an OCI layout
    without the layers whose diff IDs ``leave_out`` names (``skipped`` gets each one's size;
    ``sizes`` every layer's). Layer folders are named back to diff IDs by their v1 names
    (``v1_layer_ids``); one that matches none raises ``DeployError``."""
    leave = set(leave_out)
    chains = {chain: diff for image in images
              for chain, diff in zip(chain_ids(image.diff_ids), image.diff_ids, strict=True)}
    reader = Reader(save)
    layer_json: dict[str, bytes] = {}
    folder_diff: dict[str, str] = {}
    found: dict[str, int] = {} if sizes is None else sizes
    configs: dict[str, bytes] = {}
    written: set[str] = set()

    def diff_of(folder: str) -> str:
        if folder not in folder_diff:
            body = layer_json.get(folder)
            named = [diff for chain, diff in chains.items()
                     if body is not None and folder in v1_layer_ids(body, chain)]
            if not named:
                raise DeployError(f"the image archive's layer folder {folder[:12]} matches none "
                                  "of the images' layers")
            folder_diff[folder] = named[0]
        return folder_diff[folder]

    while True:
        block = reader.read(RECORD)
        if len(block) < RECORD or block == b"\0" * RECORD:
            break
        info = tarfile.TarInfo.frombuf(block, tarfile.ENCODING, "surrogateescape")
        if info.type in EXTENDED:
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
            found[diff] = size
            if diff in leave or diff in written:
                for _ in reader.pieces(padded):
                    pass
                if diff in leave and skipped is not None:
                    skipped(size)
                continue
            written.add(diff)
            yield header(blob_name(diff), size)
            yield from reader.pieces(padded)
            continue
        if not folder and base.endswith(".json") and len(base) == 69 and size < 1 << 24:
            configs["sha256:" + base[:64]] = reader.read(padded)[:size]
            continue
        for _ in reader.pieces(padded):  # VERSION files, folders, manifest.json, repositories
            pass
    entries: list[dict[str, object]] = []
    for image in images:
        config = configs.get(image.config)
        if config is None:
            raise DeployError(f"the image archive lacks the config of {image.ref}")
        yield _image_members(image, config, found, entries)
    yield _index(entries)
