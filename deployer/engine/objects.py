"""The object rules, written once: secrets and configs created when missing (their names are
content hashes, so "already there" means "same content"), pruned when no longer wanted, removed
with the stack; images and task containers looked up and cleaned; the build context's
``.dockerignore`` rules (the SDK's own matcher, so a build sends what ``docker build`` would).

Secret values go through the Engine API only: never a file, never an argv, on either side.
Every function maps the SDK's errors to the project's (``docker_errors``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import docker.errors

from deployer.engine.client import docker_errors
from deployer.engine.identity import content_key
from deployer.polling import poll_until

if TYPE_CHECKING:
    import docker

ObjectKind = Literal["secret", "config"]

#: The HTTP status of "already exists": another run created it meanwhile (same content).
_CONFLICT = 409


def create(client: docker.DockerClient, host: str, kind: ObjectKind, name: str, data: bytes,
           labels: Mapping[str, str]) -> None:
    """Create the secret or config ``name`` unless it exists (a conflict is fine: same name,
    same content)."""
    api = client.api
    make = api.create_secret if kind == "secret" else api.create_config
    with docker_errors(host):
        try:
            make(name, data, labels=dict(labels))
        except docker.errors.APIError as exc:
            if exc.status_code != _CONFLICT:
                raise


def create_all(client: docker.DockerClient, host: str, kind: ObjectKind,
               items: Sequence[tuple[str, bytes, Mapping[str, str]]]) -> None:
    """``create`` each ``(name, data, labels)``, up to four at once (each is one API round
    trip, which over SSH is most of its cost); the first failure is raised."""
    if len(items) <= 1:
        for name, data, labels in items:
            create(client, host, kind, name, data, labels)
        return
    with ThreadPoolExecutor(min(4, len(items)), thread_name_prefix=f"create-{kind}") as pool:
        for future in [pool.submit(create, client, host, kind, *item) for item in items]:
            future.result()


def names(client: docker.DockerClient, host: str, kind: ObjectKind,
          label: str | None = None) -> set[str]:
    """Names of the engine's secrets or configs (with ``label``: only those carrying it)."""
    filters = {"label": label} if label else None
    with docker_errors(host):
        found = (client.api.secrets if kind == "secret" else client.api.configs)(filters=filters)
    return {item["Spec"]["Name"] for item in found}


def prune(client: docker.DockerClient, host: str, kind: ObjectKind, label: str,
          keep: Collection[str]) -> list[str]:
    """Remove the ``label``-ed secrets/configs not in ``keep``; returns the names removed. One
    still in use (by a task being replaced) stays: the next prune gets it."""
    removed = []
    api = client.api
    remove = api.remove_secret if kind == "secret" else api.remove_config
    for name in sorted(names(client, host, kind, label) - set(keep)):
        with docker_errors(host):
            try:
                remove(name)
            except docker.errors.APIError:
                continue
        removed.append(name)
    return removed


def remove_all(client: docker.DockerClient, host: str, kind: str, wanted: Collection[str],
               timeout: float) -> list[str]:
    """Remove secrets, configs or volumes by name; returns the names kept because in use.

    Secrets and configs are content-named, so another stack pushed with the same content uses
    the very same object: once our services are gone, "in use" means someone else's, and it is
    kept. A volume is in use until the last container of the stack has stopped: retried.
    """
    api = client.api
    remove: Callable[[str], object] = {
        "secret": api.remove_secret, "config": api.remove_config,
        "volume": api.remove_volume,
    }[kind]
    left = list(wanted)
    kept: list[str] = []

    def attempt() -> bool:
        for name in list(left):
            with docker_errors(host):
                try:
                    remove(name)
                except docker.errors.NotFound:
                    pass
                except docker.errors.APIError as exc:
                    if "in use" not in str(exc.explanation or exc):
                        raise
                    if kind == "volume":
                        continue
                    kept.append(name)
            left.remove(name)
        return not left

    poll_until(f"{kind}(s) {', '.join(left)} still in use", attempt, timeout,
               fix="check `docker service ls` / `docker ps` on the manager and rerun "
               "`deployer remove` (it continues where it stopped)")
    return kept


def remove_stopped_containers(client: docker.DockerClient, host: str, label: str) -> int:
    """Remove the stopped containers carrying ``label``; returns how many were removed."""
    api = client.api
    filters = {"label": label, "status": ["exited", "created", "dead"]}
    removed = 0
    with docker_errors(host):
        for container in api.containers(all=True, filters=filters):
            try:
                api.remove_container(container["Id"])
            except docker.errors.NotFound:
                continue  # Swarm's own cleanup got there first
            removed += 1
    return removed


def image_id(client: docker.DockerClient, ref: str, host: str) -> str | None:
    """The ID of image ``ref`` on the engine of ``client``, or None if absent."""
    return api_image_id(client.api, ref, host)


@dataclass(frozen=True)
class ImageIdentity:
    """An image on one engine: that engine's ID for it (store-defined) and its content key
    (``identity.content_key``: the same on every engine)."""

    id: str
    key: str
    tags: tuple[str, ...] = ()
    layers: tuple[str, ...] = ()  # diff IDs, bottom first


def image_identity(client: docker.DockerClient, ref: str, host: str) -> ImageIdentity | None:
    """The identity of image ``ref`` (a name or an ID) on the engine of ``client``, or None."""
    with docker_errors(host):
        try:
            info = client.api.inspect_image(ref)
        except docker.errors.ImageNotFound:
            return None
    return identity_of(info)


def identity_of(info: Mapping[str, object]) -> ImageIdentity:
    """The identity an inspect document (the API's or the docker CLI's) describes."""
    tags = info.get("RepoTags") or ()
    rootfs = info.get("RootFS") or {}
    assert isinstance(tags, list | tuple) and isinstance(rootfs, Mapping)
    return ImageIdentity(str(info["Id"]), content_key(info), tuple(str(t) for t in tags),
                         tuple(str(layer) for layer in rootfs.get("Layers") or ()))


def image_listed(client: docker.DockerClient, ref: str, host: str) -> bool:
    """Whether ``docker images`` lists ``ref``: the containerd store lists only images whose
    every blob its content store holds (one it could run may still be left out)."""
    with docker_errors(host):
        return bool(client.api.images(filters={"reference": ref}))


def image_store(client: docker.DockerClient, host: str) -> str:
    """``containerd`` for an engine on the containerd image store (``docker info``'s driver
    status names its snapshotter), else ``classic``."""
    with docker_errors(host):
        info = client.api.info()
    status = {str(k): str(v) for k, v in (info.get("DriverStatus") or ())}
    return "containerd" if "snapshotter" in status.get("driver-type", "") else "classic"


def api_image_id(api: docker.APIClient, ref: str, host: str) -> str | None:
    """``image_id`` over a low-level client."""
    with docker_errors(host):
        try:
            return str(api.inspect_image(ref)["Id"])
        except docker.errors.ImageNotFound:
            return None


def untag(api: docker.APIClient, ref: str) -> None:
    """Drop the tag ``ref`` (never the layers another tag still uses); gone already is fine."""
    with contextlib.suppress(docker.errors.APIError):
        api.remove_image(ref, noprune=True)


def context_files(root: str, patterns: list[str], dockerfile: str) -> list[str]:
    """The files of a build context ``docker build`` would send, ``.dockerignore`` applied."""
    from docker.utils.build import exclude_paths

    return sorted(str(p) for p in exclude_paths(root, patterns, dockerfile=dockerfile))


def save_stream(client: docker.DockerClient, refs: Sequence[str],
                chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
    """``docker save REF...``: one archive of several images, each shared layer once (the
    SDK's ``get_image`` takes one image; this is the same endpoint with several names)."""
    api = client.api
    url = f"{api.base_url}/v{api.api_version}/images/get"
    with docker_errors("local"):
        response = api.get(url, params=[("names", ref) for ref in refs], stream=True)
        try:
            if response.status_code != 200:
                raise docker.errors.APIError(
                    f"docker save: {response.status_code} {response.text.strip()}")
            yield from response.iter_content(chunk_size)
        finally:
            response.close()


@dataclass(frozen=True)
class ImageLayers:
    layers: tuple[str, ...]  # diff IDs, bottom first
    size: int  # uncompressed bytes


def image_layer_lists(client: docker.DockerClient, host: str) -> list[ImageLayers]:
    """The layers and size of every image on the engine of ``client`` (one inspect each)."""
    found: list[ImageLayers] = []
    with docker_errors(host):
        for summary in client.api.images():
            try:
                info = client.api.inspect_image(summary["Id"])
            except docker.errors.NotFound:
                continue  # removed since the listing
            found.append(ImageLayers(tuple(info.get("RootFS", {}).get("Layers") or ()),
                                     int(info.get("Size") or 0)))
    return found
