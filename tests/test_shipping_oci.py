"""OCI-layout load archives (shipping.oci_archive), the OCI branch of the save filter, the layer
sizes the index keeps and the inflation of registry blobs: pure, on archives built here."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deployer.errors import DeployError
from deployer.shipping import registry_blobs
from deployer.shipping.archive import (
    LayerFile,
    chain_ids,
    is_oci_layout,
    v1_layer_ids,
    without_layers,
)
from deployer.shipping.oci_archive import OciImage, normalized_name, oci_archive, oci_from_save
from deployer.shipping.registry_blobs import Blob, LayerIndex, inflated

Member = tuple[str, bytes | str | None]  # bytes: a file; str: a symlink's target; None: a folder
LAYER_MEDIA = "application/vnd.oci.image.layer.v1.tar"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _entry(name: str, data: bytes | str | None) -> bytes:
    info = tarfile.TarInfo(name)
    if data is None:
        info.type = tarfile.DIRTYPE
    elif isinstance(data, str):
        info.type, info.linkname = tarfile.SYMTYPE, data
    else:
        info.size = len(data)
        return info.tobuf(tarfile.USTAR_FORMAT) + data + b"\0" * (-len(data) % 512)
    return info.tobuf(tarfile.USTAR_FORMAT)


def _tar(members: list[Member]) -> bytes:
    return b"".join(_entry(n, d) for n, d in members) + b"\0" * 1024


def _chunks(data: bytes, size: int = 777) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


def _files(data: bytes) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar:
            handle = tar.extractfile(member)
            assert handle is not None and member.isfile()
            out[member.name] = handle.read()
    return out


def _image(ref: str, layers: list[bytes], created: str = "1970-01-01T00:00:00Z",
           ) -> tuple[OciImage, list[Member], list[str]]:
    """The classic-save members of an image (layer folders named as the engine names them)."""
    diffs = tuple(_digest(layer) for layer in layers)
    config = json.dumps({"architecture": "amd64", "os": "linux", "created": created,
                         "rootfs": {"type": "layers", "diff_ids": list(diffs)}}).encode()
    image = OciImage(ref, _digest(config), diffs)
    members: list[Member] = []
    folders: list[str] = []
    for layer, chain in zip(layers, chain_ids(diffs), strict=True):
        fields = {"created": created, "os": "linux"}
        if folders:
            fields["parent"] = folders[-1]
        folder = min(v1_layer_ids(json.dumps(fields).encode(), chain))
        members += [(folder + "/", None), (f"{folder}/VERSION", b"1.0"),
                    (f"{folder}/json", json.dumps({"id": folder, **fields}).encode()),
                    (f"{folder}/layer.tar", layer)]
        folders.append(folder)
    members.append((image.config[7:] + ".json", config))
    return image, members, folders


def _save(*images: tuple[OciImage, list[Member], list[str]]) -> bytes:
    members = {name: data for _, part, _ in images for name, data in part}  # shared once
    manifest = [{"Config": image.config[7:] + ".json", "RepoTags": [image.ref],
                 "Layers": [f"{f}/layer.tar" for f in folders]} for image, _, folders in images]
    return _tar([*members.items(), ("manifest.json", json.dumps(manifest).encode())])


LAYERS = [os.urandom(1500), os.urandom(2600), os.urandom(700)]


def test_a_classic_save_becomes_an_oci_layout_without_the_left_out_layers() -> None:
    image, members, _ = _image("mlops/app:v1", LAYERS)
    config = dict(members)[image.config[7:] + ".json"]
    assert isinstance(config, bytes)
    skipped: list[int] = []
    sizes: dict[str, int] = {}
    out = b"".join(oci_from_save(_chunks(_save((image, members, []))), [image],
                                 image.diff_ids[:2], skipped.append, sizes))
    files = _files(out)
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    [entry] = json.loads(files["index.json"])["manifests"]
    manifest_blob = "blobs/sha256/" + entry["digest"][7:]
    top = "blobs/sha256/" + image.diff_ids[2][7:]
    assert set(files) == {"oci-layout", "index.json", manifest_blob, top,
                          "blobs/sha256/" + image.config[7:]}
    assert files[top] == LAYERS[2]
    assert files["blobs/sha256/" + image.config[7:]] == config
    manifest_bytes = files[manifest_blob]
    assert _digest(manifest_bytes) == entry["digest"] and len(manifest_bytes) == entry["size"]
    assert entry["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert entry["annotations"] == {"io.containerd.image.name": "docker.io/mlops/app:v1",
                                    "org.opencontainers.image.ref.name": "v1"}
    manifest = json.loads(manifest_bytes)
    assert manifest["config"] == {"mediaType": "application/vnd.oci.image.config.v1+json",
                                  "digest": image.config, "size": len(config)}
    assert manifest["layers"] == [{"mediaType": LAYER_MEDIA, "digest": d, "size": len(b)}
                                  for d, b in zip(image.diff_ids, LAYERS, strict=True)]
    assert skipped == [1500, 2600]
    assert sizes == {d: len(b) for d, b in zip(image.diff_ids, LAYERS, strict=True)}


@pytest.mark.parametrize("second_copy", ["same folder", "file", "symlink"])
def test_a_shared_layer_is_written_once(second_copy: str) -> None:
    shared, top_a, top_b = os.urandom(900), os.urandom(400), os.urandom(300)
    a = _image("a:1", [shared, top_a])
    b = _image("reg.example/b:2", [shared, top_b],
               created="1970-01-01T00:00:00Z" if second_copy == "same folder" else "1971-01-01")
    if second_copy == "symlink":
        b[1][3] = (b[1][3][0], f"../{a[2][0]}/layer.tar")
    assert (a[2][0] == b[2][0]) == (second_copy == "same folder")
    out = b"".join(oci_from_save(_chunks(_save(a, b)), [a[0], b[0]], ()))
    assert out.count(shared) == 1
    files = _files(out)
    for data in (shared, top_a, top_b):
        assert files["blobs/sha256/" + _digest(data)[7:]] == data
    entries = json.loads(files["index.json"])["manifests"]
    assert [e["annotations"]["io.containerd.image.name"] for e in entries] == [
        "docker.io/library/a:1", "reg.example/b:2"]
    for entry, data in zip(entries, (top_a, top_b), strict=True):
        layers = json.loads(files["blobs/sha256/" + entry["digest"][7:]])["layers"]
        assert [(x["digest"], x["size"]) for x in layers] == [
            (_digest(shared), 900), (_digest(data), len(data))]


def test_a_save_that_does_not_match_the_images_is_refused() -> None:
    image, members, folders = _image("x:t", LAYERS)
    corrupt = [(n, b'{"created":"2000-01-01T00:00:00Z"}' if n == f"{folders[1]}/json" else d)
               for n, d in members]
    with pytest.raises(DeployError, match="matches none of the images' layers"):
        b"".join(oci_from_save(_chunks(_save((image, corrupt, folders))), [image], ()))
    no_config = [(n, d) for n, d in members if n != image.config[7:] + ".json"]
    with pytest.raises(DeployError, match="lacks the config of x:t"):
        b"".join(oci_from_save(_chunks(_save((image, no_config, folders))), [image], ()))


def test_oci_archive_writes_the_given_layers_and_names_them_all() -> None:
    diffs = tuple(_digest(layer) for layer in LAYERS)
    image = OciImage("localhost:5000/app:t", _digest(b"{}"), diffs)
    sizes = {diffs[0]: 1500, diffs[1]: 2600}
    top = {diffs[2]: LayerFile(700, lambda: _chunks(LAYERS[2], 100))}
    files = _files(b"".join(oci_archive(image, b"{}", sizes, top)))
    [entry] = json.loads(files["index.json"])["manifests"]
    assert entry["annotations"]["io.containerd.image.name"] == "localhost:5000/app:t"
    assert files["blobs/sha256/" + diffs[2][7:]] == LAYERS[2]
    assert files["blobs/sha256/" + image.config[7:]] == b"{}"
    assert sorted(files) == sorted(["oci-layout", "index.json", "blobs/sha256/" + diffs[2][7:],
                                    "blobs/sha256/" + image.config[7:],
                                    "blobs/sha256/" + entry["digest"][7:]])
    layers = json.loads(files["blobs/sha256/" + entry["digest"][7:]])["layers"]
    assert layers == [{"mediaType": LAYER_MEDIA, "digest": d, "size": s}
                      for d, s in zip(diffs, (1500, 2600, 700), strict=True)]
    with pytest.raises(DeployError, match="size of layer"):
        b"".join(oci_archive(image, b"{}", {diffs[0]: 1500}, top))
    short = {diffs[2]: LayerFile(700, lambda: [LAYERS[2][:500]])}
    with pytest.raises(DeployError, match="500 bytes read, 700 expected"):
        b"".join(oci_archive(image, b"{}", sizes, short))


def test_without_layers_leaves_out_an_oci_blob_by_its_digest() -> None:
    bottom, top, config = os.urandom(1200), os.urandom(600), b'{"rootfs":{}}'
    parts = [_entry(n, d) for n, d in [
        ("blobs/", None), ("blobs/sha256/", None),
        ("blobs/sha256/" + _digest(bottom)[7:], bottom),
        ("blobs/sha256/" + _digest(top)[7:], top),
        ("blobs/sha256/" + _digest(config)[7:], config),
        ("index.json", b'{"manifests":[]}'), ("manifest.json", b"[]"),
        ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')]]
    save = b"".join(parts) + b"\0" * 1024
    skipped: list[int] = []
    sizes: dict[str, int] = {}
    chunks = _chunks(save, 1000)
    out = b"".join(without_layers(chunks, lambda folder, js: True, skipped.append,
                                  {_digest(bottom)}, sizes))
    assert out == save.replace(parts[2], b"")
    assert skipped == [1200]
    assert sizes == {_digest(bottom): 1200, _digest(top): 600, _digest(config): len(config)}
    assert is_oci_layout(chunks[0])
    assert not is_oci_layout(_chunks(_save(_image("x:t", LAYERS)))[0])


def test_normalized_names_of_other_reference_forms() -> None:
    assert normalized_name("x:t") == "docker.io/library/x:t"
    assert normalized_name("a/b/c:t") == "docker.io/a/b/c:t"
    assert normalized_name("localhost:5000/a:t") == "localhost:5000/a:t"
    assert normalized_name("reg.example:443/a/b:t") == "reg.example:443/a/b:t"


def test_layer_sizes_persist_and_merge_across_sessions(tmp_path: Path) -> None:
    first = LayerIndex(tmp_path)
    assert first.size("sha256:a") is None
    first.record_sizes({"sha256:a": 10})
    assert first.size("sha256:a") == 10
    first.save()
    assert json.loads((tmp_path / "layer-sizes.json").read_text()) == {"sha256:a": 10}
    assert LayerIndex(tmp_path).size("sha256:a") == 10
    one, two = LayerIndex(tmp_path), LayerIndex(tmp_path)
    one.record_sizes({"sha256:b": 20})
    two.record_sizes({"sha256:c": 30})
    one.save()
    two.save()
    assert json.loads((tmp_path / "layer-sizes.json").read_text()) == {
        "sha256:a": 10, "sha256:b": 20, "sha256:c": 30}
    assert LayerIndex(tmp_path).size("sha256:b") == 20


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    """What the fake registry serves (``blob``, in ``step``-byte chunks); temp files go to
    tmp_path."""
    served: dict[str, Any] = {"blob": b"", "step": 1000}

    def chunks(address: str, repository: str, digest: str, timeout: float) -> Iterator[bytes]:
        yield from _chunks(served["blob"], served["step"])

    monkeypatch.setattr(registry_blobs, "blob_chunks", chunks)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return served


@pytest.mark.parametrize("step", [1, 64, 1 << 20])
def test_a_blob_is_inflated_and_checked(registry: dict[str, Any], tmp_path: Path,
                                        step: int) -> None:
    layer = os.urandom(5000) + b"text " * 2000
    registry["step"] = step
    for blob in (gzip.compress(layer), gzip.compress(layer[:3000]) + gzip.compress(layer[3000:])):
        registry["blob"] = blob
        size, path = inflated("r:5000", "repo", Blob("sha256:x", len(blob)), _digest(layer), 5)
        assert path.parent == tmp_path and (size, path.read_bytes()) == (len(layer), layer)
        path.unlink()


def test_a_blob_that_inflates_to_another_layer_leaves_no_file(registry: dict[str, Any],
                                                              tmp_path: Path) -> None:
    registry["blob"] = gzip.compress(b"a" * 3000) + gzip.compress(b"b" * 10)
    with pytest.raises(DeployError, match="does not inflate to layer"):
        inflated("r:5000", "repo", Blob("sha256:x", 1), _digest(b"a" * 3000), 5)
    assert list(tmp_path.iterdir()) == []
