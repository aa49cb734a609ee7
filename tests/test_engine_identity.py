"""The content key (deployer.engine.identity) and the OCI-layout names (shipping.archive): pure
units, fed inspect documents shaped as each engine and store writes them."""

from __future__ import annotations

import copy
from typing import Any

from deployer.engine.identity import content_key, short
from deployer.shipping.oci_archive import normalized_name
from deployer.shipping.report import ShipReport

#: As the classic store's Engine API writes it (a legacy build: Config.Image is the parent ID).
CLASSIC: dict[str, Any] = {
    "Id": "sha256:" + "a" * 64,
    "RepoTags": ["mlops/app:1"],
    "Created": "2026-12-06T02:40:00.123456789Z",
    "Os": "linux",
    "Architecture": "amd64",
    "RootFS": {"Type": "layers", "Layers": ["sha256:" + "1" * 64, "sha256:" + "2" * 64]},
    "Config": {"Hostname": "", "User": "", "AttachStdin": False, "Tty": False,
               "Env": ["PATH=/usr/bin"], "Cmd": None, "Image": "sha256:" + "f" * 64,
               "Entrypoint": ["python3", "/app.py"], "Labels": {"a": "b"}, "OnBuild": None,
               "Healthcheck": {"Test": ["CMD", "true"], "Interval": 2000000000}},
}


def containerd_view(doc: dict[str, Any]) -> dict[str, Any]:
    """The same image as the containerd store reports it: another ID (the manifest digest),
    no parent image, empty fields left out."""
    other = copy.deepcopy(doc)
    other["Id"] = "sha256:" + "c" * 64
    config = other["Config"]
    for name in ("Hostname", "User", "AttachStdin", "Tty", "Cmd", "Image", "OnBuild"):
        config.pop(name)
    return other


def test_one_image_has_one_key_on_either_store() -> None:
    assert content_key(CLASSIC) == content_key(containerd_view(CLASSIC))
    assert content_key(CLASSIC).startswith("content:")
    assert short(content_key(CLASSIC)) == content_key(CLASSIC)[8:20]


def test_other_content_has_another_key() -> None:
    for change in (lambda d: d["RootFS"]["Layers"].append("sha256:" + "3" * 64),
                   lambda d: d.update(Created="2026-12-06T02:40:01Z"),
                   lambda d: d["Config"]["Env"].append("MODE=prod"),
                   lambda d: d["Config"]["Healthcheck"].update(Interval=1)):
        other = copy.deepcopy(CLASSIC)
        change(other)
        assert content_key(other) != content_key(CLASSIC)


def test_names_as_containerd_writes_them() -> None:
    assert normalized_name("mlops-standin:latest") == "docker.io/library/mlops-standin:latest"
    assert normalized_name("mlops/app:1") == "docker.io/mlops/app:1"
    assert normalized_name("10.0.0.1:5000/x/y:t") == "10.0.0.1:5000/x/y:t"
    assert normalized_name("localhost/x:t") == "localhost/x:t"
    assert normalized_name("registry.example/x:t") == "registry.example/x:t"
    # Docker Hub's own prefix without library/, and a ref without a tag (Docker's "latest").
    assert normalized_name("docker.io/x:t") == "docker.io/library/x:t"
    assert normalized_name("x") == "docker.io/library/x:latest"
    assert normalized_name("localhost:5000/a") == "localhost:5000/a:latest"


def test_a_failed_attempt_is_counted_in_the_report() -> None:
    report = ShipReport("a:b", "save-load", 0, 0, 3_000_000, "why", wasted=1_000_000)
    assert "of it a failed layer archive" in report.describe()
    assert "failed" not in ShipReport("a:b", "save-load", 0, 0, 3_000_000, "why").describe()
