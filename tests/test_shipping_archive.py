"""The docker load archive writer, the docker save filter and the parallel gzip, on archives
built here (the bed tests send real ones to a real engine)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile

import pytest

from deployer.errors import DeployError
from deployer.shipping.archive import (
    BLOCK,
    LayerFile,
    chain_ids,
    gzip_blocks,
    load_archive,
    v1_layer_ids,
    without_layers,
)

# A lower layer's v1 json exactly as docker save (engine 20.10) wrote it, and its folder name:
# the engine's v1 ID of that layer's chain.
LOWER_JSON = (
    b'{"id":"113e9c9dc02c078e00588c859f9e027268e7165c8359a180c954baa693f64c33","created":'
    b'"1970-01-01T00:00:00Z","container_config":{"Hostname":"","Domainname":"","User":"",'
    b'"AttachStdin":false,"AttachStdout":false,"AttachStderr":false,"Tty":false,"OpenStdin":'
    b'false,"StdinOnce":false,"Env":null,"Cmd":null,"Image":"","Volumes":null,"WorkingDir":"",'
    b'"Entrypoint":null,"OnBuild":null,"Labels":null},"os":"linux"}')
LOWER_DIR = "113e9c9dc02c078e00588c859f9e027268e7165c8359a180c954baa693f64c33"


def _tar(members: list[tuple[str, bytes]], fmt: int = tarfile.USTAR_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _names(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]


def _chunks(data: bytes, size: int = 7_000) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


def test_chain_ids_follow_the_layer_store_rule() -> None:
    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    expected = "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()
    assert chain_ids([a, b]) == [a, expected]
    assert chain_ids([]) == []


def test_the_v1_folder_name_is_recomputed_from_the_chain_id() -> None:
    # The bottom layer of the bed's stand-in (its chain ID is its diff ID).
    chain = "sha256:1b1c009d96f1a7902a1f11962a39811379dc09e44dd1b2d50e9863fc1df16134"
    assert LOWER_DIR in v1_layer_ids(LOWER_JSON, chain)
    assert LOWER_DIR not in v1_layer_ids(LOWER_JSON, "sha256:" + "c" * 64)


def test_without_layers_drops_only_the_named_layer_files() -> None:
    members = [("aaa/VERSION", b"1.0"), ("aaa/json", b'{"id":"aaa"}'),
               ("aaa/layer.tar", os.urandom(3000)), ("bbb/VERSION", b"1.0"),
               ("bbb/json", b'{"id":"bbb"}'), ("bbb/layer.tar", os.urandom(5000)),
               ("cfg.json", b"{}"), ("manifest.json", b"[]")]
    data = _tar(members)
    skipped: list[int] = []
    out = b"".join(without_layers(_chunks(data), lambda folder, js: folder == "aaa",
                                  skipped.append))
    kept = _names(out)
    assert "aaa/layer.tar" not in kept and skipped == [3000]
    assert {n: d for n, d in members if n != "aaa/layer.tar"} == kept
    # Nothing left out: the same bytes.
    assert b"".join(without_layers(_chunks(data), lambda folder, js: False)) == data


def test_without_layers_passes_everything_after_an_extended_header() -> None:
    long_name = "x" * 120 + "/layer.tar"
    data = _tar([("aaa/json", b"{}"), (long_name, b"payload"), ("aaa/layer.tar", b"z" * 600)],
                fmt=tarfile.PAX_FORMAT)
    out = b"".join(without_layers(_chunks(data, 333), lambda folder, js: True))
    kept = _names(out)
    assert kept[long_name] == b"payload" and kept["aaa/layer.tar"] == b"z" * 600


def test_the_load_archive_names_its_config_and_layers() -> None:
    config = json.dumps({"rootfs": {"diff_ids": ["a", "b"]}}).encode()
    layer = os.urandom(1234)
    out = b"".join(load_archive(config, ["repo/app:v1"], [
        None, LayerFile(len(layer), lambda: _chunks(layer, 100))]))
    files = _names(out)
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.loads(files["manifest.json"])
    assert manifest == [{"Config": config_name, "RepoTags": ["repo/app:v1"],
                         "Layers": ["000/layer.tar", "001/layer.tar"]}]
    assert files[config_name] == config and files["001/layer.tar"] == layer
    assert "000/layer.tar" not in files  # a layer the target has needs no file


def test_a_layer_file_shorter_than_announced_is_an_error() -> None:
    stream = load_archive(b"{}", ["a:b"], [LayerFile(10, lambda: [b"12345"])])
    with pytest.raises(DeployError, match="5 bytes read, 10 expected"):
        b"".join(stream)


def test_gzip_blocks_is_one_gzip_stream_of_the_input() -> None:
    data = os.urandom(BLOCK // 2) + b"text " * (BLOCK // 2)  # more than two members
    out = b"".join(gzip_blocks(_chunks(data, 1 << 20)))
    assert gzip.decompress(out) == data
    assert len(out) < len(data)
    assert b"".join(gzip_blocks([])) == b""
