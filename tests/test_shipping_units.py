"""Pure parts of deployer.shipping: progress streams in, layer and byte counts out; names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from deployer.shipping.local_push import repository_path
from deployer.shipping.progress import StreamError, follow, human
from deployer.shipping.registry import config_text
from deployer.shipping.report import ShipReport

# Recorded from docker 20.10 (pull of an image whose base the engine had, one new layer).
PULL: list[dict[str, Any]] = [
    {"status": "Pulling from dp-ship/app", "id": "x-b"},
    {"status": "Already exists", "progressDetail": {}, "id": "1b1c009d96f1"},
    {"status": "Already exists", "progressDetail": {}, "id": "e63840dfb784"},
    {"status": "Pulling fs layer", "progressDetail": {}, "id": "5d9e1a2b3c4d"},
    {"status": "Downloading", "progressDetail": {"current": 120, "total": 211},
     "id": "5d9e1a2b3c4d"},
    {"status": "Download complete", "progressDetail": {}, "id": "5d9e1a2b3c4d"},
    {"status": "Extracting", "progressDetail": {"current": 211, "total": 211},
     "id": "5d9e1a2b3c4d"},
    {"status": "Pull complete", "progressDetail": {}, "id": "5d9e1a2b3c4d"},
    {"status": "Digest: sha256:" + "ab" * 32},
    {"status": "Status: Downloaded newer image for 127.0.0.1:4000/dp-ship/app:x-b"},
]
PUSH: list[dict[str, Any]] = [
    {"status": "The push refers to repository [127.0.0.1:4000/dp-ship/app]"},
    {"status": "Preparing", "progressDetail": {}, "id": "5d9e1a2b3c4d"},
    {"status": "Pushing", "progressDetail": {"current": 512, "total": 1024},
     "id": "5d9e1a2b3c4d"},
    {"status": "Layer already exists", "progressDetail": {}, "id": "1b1c009d96f1"},
    {"status": "Mounted from dp-ship/other", "progressDetail": {}, "id": "e63840dfb784"},
    {"status": "Pushed", "progressDetail": {}, "id": "5d9e1a2b3c4d"},
    {"status": "x-b: digest: sha256:" + "cd" * 32 + " size: 945"},
    {"progressDetail": {}, "aux": {"Tag": "x-b", "Digest": "sha256:" + "cd" * 32, "Size": 945}},
]


def test_pull_counts_only_the_new_layer() -> None:
    stats = follow(PULL, pull=True)
    assert stats.moved == {"5d9e1a2b3c4d"}
    assert stats.present == {"1b1c009d96f1", "e63840dfb784"}
    assert stats.layers == 3 and stats.total_bytes == 211
    assert stats.digest == "sha256:" + "ab" * 32


def test_push_counts_pushed_vs_existing_and_mounted() -> None:
    stats = follow(PUSH, pull=False)
    assert stats.moved == {"5d9e1a2b3c4d"} and len(stats.present) == 2
    assert stats.total_bytes == 1024
    assert stats.digest == "sha256:" + "cd" * 32


def test_up_to_date_pull_moves_nothing() -> None:
    stats = follow([{"status": "Pulling from dp-ship/app", "id": "x"},
                    {"status": "Digest: sha256:" + "ab" * 32},
                    {"status": "Status: Image is up to date for 127.0.0.1:4000/dp-ship/app:x"}],
                   pull=True)
    assert stats.moved == set() and stats.total_bytes == 0


def test_an_error_in_the_stream_raises_the_engines_message() -> None:
    events: list[dict[str, Any]] = [{"status": "Preparing", "id": "a"},
              {"errorDetail": {"message": "unauthorized: authentication required"},
               "error": "unauthorized: authentication required"}]
    with pytest.raises(StreamError, match="unauthorized: authentication required"):
        follow(events, pull=False)


@pytest.mark.parametrize(("repo", "path"), [
    ("mlops/cnn-image", "mlops/cnn-image"),
    ("mlops-standin", "mlops-standin"),
    ("ghcr.io/team/app", "team/app"),
    ("localhost/app", "app"),
    ("10.0.0.5:5000/team/app", "team/app"),
])
def test_repository_path_drops_a_registry_host(repo: str, path: str) -> None:
    assert repository_path(repo) == path


def test_registry_config_listens_on_loopback_only(tmp_path: Path) -> None:
    text = config_text(tmp_path, 41234)
    assert "addr: 127.0.0.1:41234" in text and f"rootdirectory: {tmp_path}" in text
    assert "0.0.0.0" not in text


def test_report_describes_layers_and_bytes() -> None:
    assert ShipReport("a:b", "layers", 3, 1, 6245, "").describe() == (
        "1 of 3 layers sent, 6.2 kB over SSH")
    assert "docker save | docker load, 2.1 GB" in ShipReport(
        "a:b", "save-load", 0, 0, 2_090_000_000, "why").describe()
    assert human(999) == "999 B" and human(1_500_000) == "1.5 MB"


def test_missing_bytes_counts_what_no_target_image_shares() -> None:
    from deployer.shipping.estimate import missing_bytes

    base, app = ["sha256:a", "sha256:b"], ["sha256:a", "sha256:b", "sha256:c"]
    # The target has the base (a prefix of ours): only the app layer's bytes are missing.
    assert missing_bytes(app, 300, [(base, 271), (["sha256:x"], 999)]) == 29
    # Nothing shared: the whole image; the same image: nothing.
    assert missing_bytes(app, 300, [(["sha256:x"], 999)]) == 300
    assert missing_bytes(app, 300, [(app, 300), (base, 271)]) == 0
    # A target image with more layers than ours is no prefix.
    assert missing_bytes(base, 271, [(app, 300)]) == 271


def test_a_save_leaves_out_the_layers_the_target_has_unless_a_missing_one_shares_the_file() -> None:
    from deployer.shipping.archive import chain_ids
    from deployer.shipping.target_layers import TargetLayers

    base, app = ["sha256:a", "sha256:b"], ["sha256:a", "sha256:b", "sha256:c"]
    target = TargetLayers([base])
    assert target.missing(app) == [2]
    assert target.left_out_of_save([app]) == set(chain_ids(base))
    # A missing layer with the diff ID of a present one ("b" again, at another depth): docker
    # save writes that file once and links the other folder to it, so it must stay in.
    other = ["sha256:x", "sha256:b"]
    assert target.missing(other) == [0, 1]
    assert target.left_out_of_save([app, other]) == {chain_ids(base)[0]}
    target.add(other)
    assert target.missing(other) == [] and target.left_out_of_save([other]) == set(chain_ids(other))


def test_prune_choice_keeps_the_newest_per_repository_and_any_manifest_a_kept_tag_names() -> None:
    from deployer.shipping.registry_gc import TaggedImage, choose

    images = [TaggedImage("a", "old", "sha256:1", "2026-01-01T00:00:00Z"),
              TaggedImage("a", "alias", "sha256:3", "2026-01-02T00:00:00Z"),
              TaggedImage("a", "new", "sha256:3", "2026-01-03T00:00:00Z"),
              TaggedImage("a", "mid", "sha256:2", "2026-01-02T12:00:00Z"),
              TaggedImage("b", "only", "sha256:1", "")]
    kept, deleted = choose(images, keep=1)
    assert {(i.repository, i.tag) for i in kept} == {("a", "new"), ("a", "alias"), ("b", "only")}
    assert [(i.repository, i.tag) for i in deleted] == [("a", "mid"), ("a", "old")]
