"""Files on a manager over the connection's SFTP session: no remote process per file (each
would cost a shell start on the manager, about 0.1 s)."""

from __future__ import annotations

import uuid
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import paramiko


def makedirs(sftp: paramiko.SFTPClient, directory: PurePosixPath) -> None:
    """``mkdir -p`` over SFTP (relative paths are relative to the home directory)."""
    if str(directory) in ("", ".", "/"):
        return
    try:
        sftp.stat(str(directory))
        return
    except FileNotFoundError:
        pass
    makedirs(sftp, directory.parent)
    try:
        sftp.mkdir(str(directory))
    except OSError:
        sftp.stat(str(directory))  # created meanwhile by a concurrent run: fine; else raise


def put(sftp: paramiko.SFTPClient, data: bytes, target: PurePosixPath, mode: int) -> None:
    """Write ``target`` atomically (a temp name beside it, then rename), parents created."""
    tmp = str(target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    makedirs(sftp, target.parent)
    try:
        # Narrow the mode before any content is written.
        with sftp.open(tmp, "wb") as handle:
            handle.chmod(mode)
            handle.write(data)
        sftp.posix_rename(tmp, str(target))
    except OSError:
        try:
            sftp.remove(tmp)
        except OSError:
            pass
        raise


def append(sftp: paramiko.SFTPClient, data: bytes, target: PurePosixPath) -> None:
    """Append ``data`` in one write (the server opens with O_APPEND: lines of concurrent
    writers do not interleave), parents and file created if missing."""
    makedirs(sftp, target.parent)
    with sftp.open(str(target), "ab") as handle:
        handle.write(data)
