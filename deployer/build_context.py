"""A service's build context as the builder receives it: the files ``docker build`` would send
(``.dockerignore`` applied), the extra CA certificates under ``certs/``, the shared serving
library under ``mlops_serving/``, streamed as a tar we assemble ourselves; and the content hash
that names the image (``repo:<hash>``) so an unchanged context is never built again."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import stat
import tarfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from deployer import ship
from deployer.engine import objects
from deployer.errors import ConfigError

DOCKERFILE = "Dockerfile"

CERTS_DIR = "certs"

#: The services' shared library: a folder beside the service folders, sent under this name.
LIBRARY_DIR = "mlops_serving"

# What of the library is never sent (its own caches).
_LIBRARY_IGNORE = ("**/__pycache__", "**/*.pyc", "**/.mypy_cache", "**/.ruff_cache")

#: Bumped when the hashed inputs change meaning, so old tags are not trusted across versions.
_HASH_SCHEME = b"mlops-build-context/1\0"

_PEM_MARK = b"-----BEGIN CERTIFICATE-----"

@dataclass(frozen=True)
class CaCert:
    """An extra CA certificate to install in the images: its name under ``certs/`` and PEM."""

    name: str
    data: bytes

@dataclass(frozen=True)
class BuildContext:
    """The files of a build context as they are sent to the builder.

    ``files`` are paths relative to ``root`` (files, directories and symlinks) that
    ``.dockerignore`` lets through; ``extra`` are generated files (the CA certificates) added
    under ``certs/``; ``library_files`` are the paths of the shared library (relative to
    ``library``) added under ``mlops_serving/``.
    """

    root: Path
    files: tuple[str, ...]
    extra: tuple[CaCert, ...] = ()
    library: Path | None = None
    library_files: tuple[str, ...] = ()

    @classmethod
    def scan(cls, root: Path, extra: Sequence[CaCert] = (),
             library: Path | None = None) -> BuildContext:
        """List what ``root`` sends, honouring its ``.dockerignore`` as the docker CLI does,
        plus the shared ``library`` folder (without its caches) when given."""
        patterns: list[str] = []
        ignore = root / ".dockerignore"
        if ignore.is_file():
            for line in ignore.read_text().splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    patterns.append(line)
        files = objects.context_files(str(root), patterns, DOCKERFILE)
        names = {f"{CERTS_DIR}/{c.name}" for c in extra}
        # A generated certificate replaces a context file of the same name; the library
        # replaces a folder of its name.
        kept = tuple(f for f in files if f not in names
                     and not (library is not None and _under(f, LIBRARY_DIR)))
        lib_files: tuple[str, ...] = ()
        if library is not None:
            lib_files = tuple(objects.context_files(str(library), list(_LIBRARY_IGNORE),
                                                    DOCKERFILE))
        return cls(root, kept, tuple(extra), library, lib_files)

    def entries(self) -> Iterator[tuple[str, Path]]:
        """(name in the tar, path on disk) of every file, directory and symlink sent."""
        for rel in self.files:
            yield rel, self.root / rel
        if self.library is not None:
            yield LIBRARY_DIR, self.library
            for rel in self.library_files:
                yield f"{LIBRARY_DIR}/{rel}", self.library / rel

    def digest(self, base_image_id: str, build_args: Mapping[str, str]) -> str:
        """SHA-256 of everything the image is built from (content, modes, links, args, base).

        Modification times are left out on purpose: a fresh checkout of the same tree has the
        same hash, so its images are not rebuilt.
        """
        h = hashlib.sha256(_HASH_SCHEME)
        for rel, path in self.entries():
            st = path.lstat()
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                entry = f"l\0{rel}\0{os.readlink(path)}"
            elif stat.S_ISDIR(st.st_mode):
                entry = f"d\0{rel}\0{mode:o}"
            elif stat.S_ISREG(st.st_mode):
                entry = f"f\0{rel}\0{mode:o}\0{_file_sha256(path)}"
            else:
                continue  # sockets, fifos: the tar skips them too
            h.update(entry.encode() + b"\n")
        for cert in self.extra:
            h.update(f"c\0{cert.name}\0".encode() + hashlib.sha256(cert.data).digest() + b"\n")
        h.update(json.dumps(dict(sorted(build_args.items()))).encode() + b"\n")
        h.update(base_image_id.encode())
        return h.hexdigest()

    def write_tar(self, fileobj: IO[bytes],
                  dockerfile: Callable[[str], str] | None = None) -> None:
        """The context as an uncompressed tar: the listed files, the library, a ``certs/``
        directory (always, so ``COPY certs/ ...`` works without certificates) and the generated
        certificates. ``dockerfile`` rewrites the Dockerfile's text (for the legacy builder)."""
        # GNU format (long names, big files): buildx takes a stdin starting with a PAX header
        # for a Dockerfile ("unknown instruction: ././@PAXHEADER").
        with tarfile.open(fileobj=fileobj, mode="w", format=tarfile.GNU_FORMAT) as tar:
            for rel, path in self.entries():
                info = tar.gettarinfo(str(path), arcname=rel)
                if info is None:
                    continue
                if info.isfile() and rel == DOCKERFILE and dockerfile is not None:
                    data = dockerfile(path.read_text()).encode()
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
                elif info.isfile():
                    with path.open("rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
            if CERTS_DIR not in self.files:
                info = tarfile.TarInfo(CERTS_DIR)
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                info.mtime = int(time.time())
                tar.addfile(info)
            for cert in self.extra:
                info = tarfile.TarInfo(f"{CERTS_DIR}/{cert.name}")
                info.size = len(cert.data)
                info.mode = 0o644
                info.mtime = int(time.time())
                tar.addfile(info, io.BytesIO(cert.data))
        fileobj.seek(0)

def library_for(context: Path) -> Path | None:
    """The shared library beside the build context ``context`` (``../mlops_serving``), if any."""
    library = context.parent / LIBRARY_DIR
    return library if library.is_dir() else None

def _under(rel: str, folder: str) -> bool:
    return rel == folder or rel.startswith(f"{folder}/")

def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()

def content_tag(image: str, digest: str) -> str:
    """``<repo>:<first 12 hex of the content hash>`` for the values' image reference."""
    repo, _ = ship.split_ref(image)
    return f"{repo}:{digest[:12]}"

def load_ca_certs(paths: Iterable[Path]) -> tuple[CaCert, ...]:
    """Read ``--ca-cert`` files: each must be a readable PEM certificate. Names end in ``.crt``
    (``update-ca-certificates`` only reads those) and are made unique."""
    certs: list[CaCert] = []
    used: set[str] = set()
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"--ca-cert {path}: cannot read it ({exc.strerror or exc})",
                fix="pass a PEM certificate file, e.g. /usr/local/share/ca-certificates/NAME.crt",
            ) from exc
        if _PEM_MARK not in data:
            raise ConfigError(
                f"--ca-cert {path}: not a PEM certificate (no '{_PEM_MARK.decode()}' line)",
                fix="convert it with `openssl x509 -inform der -in FILE -out FILE.crt`, "
                "or pass the PEM file",
            )
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", path.name)
        stem = stem[: -len(".crt")] if stem.endswith(".crt") else stem
        name = f"{stem}.crt"
        n = 2
        while name in used:
            name = f"{stem}-{n}.crt"
            n += 1
        used.add(name)
        certs.append(CaCert(name, data))
    return tuple(certs)
