"""The engine kinds of the test bed: which dockerd runs a namespace node, and with which store.

Kinds:

* ``20.10``: the machine's own engine (Debian bookworm's docker.io), classic image store;
* ``26.1``: Debian trixie's dockerd 26.1 + containerd 1.7, classic store (overlay2);
* ``26.1-containerd``: the same with the containerd image store (``containerd-snapshotter``,
  the default of Docker 29's fresh installs): image IDs are manifest digests there, and
  ``docker load`` wants every layer an archive names.

Trixie's packages come from the Debian archive the machine already uses, fetched with apt under
a private sources list, state and cache (nothing installed system-wide), and unpacked under
``.testbed/engines/``. Trixie's runc needs a newer glibc than bookworm's, so bookworm's runc
(installed with docker.io) is linked in, and tini-static as docker-init (trixie's link dangles).
Each such dockerd gets a private PATH with these binaries first; it starts its own containerd.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import testbed as tb

KINDS = ("20.10", "26.1", "26.1-containerd")
MODERN = "26.1"
#: Packages fetched from trixie (59 MB of .debs).
PACKAGES = ("docker.io", "containerd", "docker-buildx")
ROOT = tb.BED / "engines" / "trixie"
BIN = ROOT / "bin"
#: Bookworm's binaries the trixie engine uses instead of its own (see the module's doc).
HOST_LINKS = {"runc": "/usr/sbin/runc", "docker-init": "/usr/bin/tini-static"}
#: The trixie binaries the private PATH holds.
TRIXIE_BINARIES = ("usr/sbin/dockerd", "usr/sbin/docker-proxy", "usr/bin/containerd",
                   "usr/bin/containerd-shim-runc-v2", "usr/bin/ctr")
BUILDX = ROOT / "files" / "usr" / "libexec" / "docker" / "cli-plugins" / "docker-buildx"


def daemon_config(kind: str) -> dict[str, object]:
    """The daemon.json of an engine of ``kind``."""
    if kind not in KINDS:
        raise tb.BedError(f"unknown engine kind {kind!r}; kinds: {', '.join(KINDS)}")
    if kind.endswith("-containerd"):
        return {"features": {"containerd-snapshotter": True}}
    return {}


def engine_path(kind: str) -> str:
    """PATH for a dockerd of ``kind`` (the trixie binaries first for the modern kinds)."""
    path = os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    if kind == "20.10":
        return path
    ensure_trixie_engine()
    return f"{BIN}:{path}"


def ensure_trixie_engine() -> None:
    """Fetch and unpack trixie's engine once (idempotent: skipped when the bin folder is
    complete)."""
    wanted = [BIN / Path(rel).name for rel in TRIXIE_BINARIES] + [BIN / n for n in HOST_LINKS]
    if all(path.exists() for path in wanted) and BUILDX.exists():
        return
    for binary in HOST_LINKS.values():
        if not Path(binary).exists():
            raise tb.BedError(f"{binary} is missing (the trixie engine uses bookworm's).\n  fix: "
                              "apt-get install -y docker.io tini")
    tb.say(f"fetching Debian trixie's {', '.join(PACKAGES)} (dockerd {MODERN})")
    apt = ROOT / "apt"
    lists, archives, debs = apt / "lists", apt / "archives", ROOT / "debs"
    for folder in (lists / "partial", archives / "partial", debs):
        folder.mkdir(parents=True, exist_ok=True)
    sources = apt / "sources.list"
    sources.write_text(f"deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
                       f"{tb.debian_mirror()} trixie main\n")
    options = ["-o", f"Dir::Etc::sourcelist={sources}", "-o", "Dir::Etc::sourceparts=-",
               "-o", f"Dir::State::lists={lists}", "-o", f"Dir::Cache::archives={archives}",
               "-o", "APT::Sandbox::User=root"]
    tb.run(["apt-get", *options, "update", "-qq"], timeout=300)
    tb.run(["apt-get", *options, "download", *PACKAGES], cwd=debs, timeout=600)
    files = ROOT / "files"
    shutil.rmtree(files, ignore_errors=True)
    for deb in sorted(debs.glob("*.deb")):
        tb.run(["dpkg-deb", "-x", str(deb), str(files)])
    BIN.mkdir(parents=True, exist_ok=True)
    for rel in TRIXIE_BINARIES:
        target = BIN / Path(rel).name
        target.unlink(missing_ok=True)
        target.symlink_to(files / rel)
    for name, binary in HOST_LINKS.items():
        (BIN / name).unlink(missing_ok=True)
        (BIN / name).symlink_to(binary)
    shutil.rmtree(debs, ignore_errors=True)


def ensure_buildx_plugin() -> None:
    """The docker CLI's buildx plugin (BuildKit builds): trixie's docker-buildx linked into the
    CLI's plugin folder (``$DOCKER_CONFIG/cli-plugins``), unless the CLI has a working one."""
    if tb.ok(["docker", "buildx", "version"]):
        return
    ensure_trixie_engine()
    plugins = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "cli-plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    link = plugins / "docker-buildx"
    link.unlink(missing_ok=True)  # a dangling link (a removed checkout's)
    link.symlink_to(BUILDX)
    if not tb.ok(["docker", "buildx", "version"]):
        raise tb.BedError(f"docker buildx does not run from {link}")
    tb.say(f"linked docker-buildx (BuildKit builds) into {plugins}")
