"""Bounding the shipping registry's disk: keep each repository's newest images, drop the rest.

Every build makes a new content-hash tag, and every layer a push ever sent stays in the local
registry's data dir, so without pruning it grows by each change's new layers for ever. Pruning
deletes the manifests of all but the newest ``keep`` tags of each repository (through the
registry's API, while it runs), then stops it and runs its own offline ``garbage-collect``, which
removes every blob no manifest references any more. Layers shared with a kept image stay. A
pruned image still ships: its layers are pushed again (the engine checks the registry before it
skips a layer), only slower.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import deployer.shipping.registry_blobs as registry_blobs
from deployer.errors import DeployError
from deployer.shipping.registry import LocalRegistry

MANIFEST_TYPES = ", ".join([
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
])


@dataclass(frozen=True)
class TaggedImage:
    repository: str
    tag: str
    digest: str  # the manifest's
    created: str  # the image config's ISO time ("" when unknown: oldest)


@dataclass
class PruneReport:
    kept: list[TaggedImage] = field(default_factory=list)
    deleted: list[TaggedImage] = field(default_factory=list)
    bytes_before: int = 0
    bytes_after: int = 0

    @property
    def freed(self) -> int:
        return max(0, self.bytes_before - self.bytes_after)


#: How long ship-cache waits for a run that is shipping from the same registry directory.
LOCK_WAIT = 5.0


def disk_usage(directory: Path) -> int:
    """Bytes of the regular files under ``directory`` (a file removed meanwhile counts 0)."""
    total = 0
    for path in directory.rglob("*") if directory.exists() else ():
        try:
            if path.is_file():
                total += path.stat().st_size
        except OSError:
            continue
    return total


class _Api:
    def __init__(self, address: str) -> None:
        self.address = address

    def request(self, method: str, path: str,
                accept: str = "application/json") -> tuple[dict[str, str], bytes]:
        with registry_blobs.open_path(self.address, path, 30, accept, method) as resp:
            try:
                return dict(resp.headers.items()), resp.read()
            except OSError as exc:
                raise DeployError(f"the local shipping registry broke off its answer to "
                                  f"{method} {path}: {exc}") from exc

    def json(self, path: str, accept: str = "application/json") -> Any:
        return json.loads(self.request("GET", path, accept)[1] or b"{}")


def list_images(registry: LocalRegistry) -> list[TaggedImage]:
    """Every tag of every repository in the running registry, with its creation time."""
    api = _Api(registry.address)
    images: list[TaggedImage] = []
    for repo in _repositories(api):
        for tag in api.json(f"{repo}/tags/list").get("tags") or []:
            headers, body = api.request("GET", f"{repo}/manifests/{tag}", MANIFEST_TYPES)
            digest = headers.get("Docker-Content-Digest", "")
            config = (json.loads(body).get("config") or {}).get("digest")
            created = str(api.json(f"{repo}/blobs/{config}").get("created") or "") \
                if config else ""
            images.append(TaggedImage(repo, tag, digest, created))
    return images


def _repositories(api: _Api) -> list[str]:
    # The catalog comes in pages (the registry caps n at 1000).
    repos: list[str] = []
    while True:
        last = f"&last={repos[-1]}" if repos else ""
        page = api.json(f"_catalog?n=1000{last}").get("repositories") or []
        repos += page
        if len(page) < 1000:
            return repos


def choose(images: list[TaggedImage], keep: int) -> tuple[list[TaggedImage], list[TaggedImage]]:
    """(kept, deleted): per repository the newest ``keep`` tags stay; a manifest that a kept
    tag also names is never deleted."""
    kept: list[TaggedImage] = []
    by_repo: dict[str, list[TaggedImage]] = {}
    for image in images:
        by_repo.setdefault(image.repository, []).append(image)
    candidates: list[TaggedImage] = []
    for repo_images in by_repo.values():
        newest = sorted(repo_images, key=lambda i: (i.created, i.tag), reverse=True)
        kept += newest[:keep]
        candidates += newest[keep:]
    kept_digests = {(i.repository, i.digest) for i in kept}
    deleted = [i for i in candidates if (i.repository, i.digest) not in kept_digests]
    kept += [i for i in candidates if (i.repository, i.digest) in kept_digests]
    return kept, deleted


def prune(registry: LocalRegistry, keep: int, *, dry_run: bool = False) -> PruneReport:
    """Prune ``registry`` (started here, stopped again): see the module's docstring. The
    directory's lock is held throughout, sizing and garbage-collect included."""
    if keep < 1:
        raise DeployError(f"--keep must be at least 1, not {keep}",
                          fix="keep at least the newest image of each repository")
    data = registry.dir / "data"
    registry.start(wait_lock=LOCK_WAIT)
    try:
        report = PruneReport(bytes_before=disk_usage(data))
        report.kept, report.deleted = choose(list_images(registry), keep)
        if not dry_run:
            api = _Api(registry.address)
            for digest in sorted({(i.repository, i.digest) for i in report.deleted}):
                api.request("DELETE", f"{digest[0]}/manifests/{digest[1]}")
    finally:
        registry.stop(keep_lock=True)
    try:
        if not dry_run and report.deleted:
            _garbage_collect(registry)
            registry_blobs.forget(registry.dir)  # it may name freed blobs
        report.bytes_after = disk_usage(data) if not dry_run else report.bytes_before
    finally:
        registry.unlock()
    return report


def _garbage_collect(registry: LocalRegistry) -> None:
    # Offline, as distribution requires (a push during it could lose blobs): the registry is
    # stopped, and the directory's lock, still held, keeps other runs from starting one.
    proc = subprocess.run([registry.binary(), "garbage-collect", "--delete-untagged",
                           str(registry.dir / "config.yml")],
                          capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode != 0:
        raise DeployError(f"the shipping registry's garbage-collect failed: "
                          f"{(proc.stderr or proc.stdout).strip()[-500:]}",
                          fix=f"see {registry.dir}; removing that folder is safe (the next "
                          "push uploads the layers again)")
