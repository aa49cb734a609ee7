"""Entrypoint of the S3 store image (SeaweedFS): credentials -> identities -> weed -> bucket.

The stack's S3 service is named ``minio``; this image is its SeaweedFS backend. At start it:

1. reads the S3 credentials from ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` or
   ``MINIO_ROOT_USER``/``MINIO_ROOT_PASSWORD``, each also as ``<NAME>_FILE`` (a path; a bare name
   is looked up under /run/secrets, as MinIO does);
2. writes SeaweedFS's identities file (mode 0600, in a private temp dir, never logged);
3. runs ``weed server`` with master, volume, filer and the S3 gateway (S3 on ``S3_PORT``,
   default 9000; the master UI on ``MASTER_PORT``, default 9001) and no telemetry;
4. once the gateway answers ``/healthz``, creates the buckets in ``S3_BUCKET`` (comma-separated)
   if missing;
5. forwards SIGTERM/SIGINT to weed and SIGKILLs it after ``STOP_GRACE_S`` (weed ignores SIGTERM
   for a long time), exiting with weed's code.

Given arguments (a Compose/Swarm ``command``), it runs those instead, unchanged.
Standard library only (and the library's standard-library secrets module, copied next to
it): it runs before (and independently of) anything in the venv.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import FrameType

from mlops_serving.secrets import SecretFileError, read_secret

SECRETS_DIR = Path("/run/secrets")  # a module attribute, so tests can point it elsewhere
PREFIX = "s3store:"


class ConfigError(Exception):
    """Bad or missing configuration; the message says which variable and what to do."""


def log(message: str) -> None:
    """One line on stderr (the container log)."""
    print(f"{PREFIX} {message}", file=sys.stderr, flush=True)


def _read_secret(env: Mapping[str, str], name: str) -> str | None:
    """``name`` from the environment, else from the file named by ``<name>_FILE`` (the rules
    every service image shares: :func:`mlops_serving.secrets.read_secret`)."""
    try:
        return read_secret(env, name, SECRETS_DIR)
    except SecretFileError as exc:
        raise ConfigError(str(exc)) from None


def credentials(env: Mapping[str, str]) -> tuple[str, str]:
    """(access key, secret key) from the AWS_* names, else the MINIO_ROOT_* names."""
    for user_var, secret_var in (("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
                                 ("MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD")):
        user = _read_secret(env, user_var)
        secret = _read_secret(env, secret_var)
        if user and secret:
            return user, secret
        if user or secret:
            missing = secret_var if user else user_var
            raise ConfigError(f"{missing} (or {missing}_FILE) is not set, but "
                              f"{user_var if user else secret_var} is: set both")
    raise ConfigError("no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                      "(or MINIO_ROOT_USER and MINIO_ROOT_PASSWORD), or their *_FILE variants")


def identities(access_key: str, secret_key: str) -> dict[str, object]:
    """SeaweedFS's S3 identities document: one admin identity with these keys."""
    return {"identities": [{
        "name": "admin",
        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
    }]}


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip() or str(default)
    if not raw.isdigit() or not 0 < int(raw) < 55536:  # gRPC ports are +10000
        raise ConfigError(f"{name}={raw!r}: expected a port number below 55536")
    return int(raw)


def weed_argv(env: Mapping[str, str], config_path: Path) -> list[str]:
    """The ``weed server`` command line for this environment."""
    data_dir = env.get("DATA_DIR", "/data")
    return [
        env.get("WEED_BIN") or shutil.which("weed") or "weed", "server",
        f"-dir={data_dir}",
        # Components reach each other inside the container; clients use only the S3 port.
        "-ip=127.0.0.1",
        f"-ip.bind={env.get('S3_BIND', '0.0.0.0')}",
        "-master.telemetry=false",
        f"-master.port={_port(env, 'MASTER_PORT', 9001)}",
        f"-master.volumeSizeLimitMB={env.get('VOLUME_SIZE_LIMIT_MB', '64')}",
        f"-volume.port={_port(env, 'VOLUME_PORT', 8080)}",
        f"-volume.max={env.get('VOLUME_MAX', '8')}",
        "-filer", f"-filer.port={_port(env, 'FILER_PORT', 8888)}",
        "-s3", f"-s3.port={_port(env, 'S3_PORT', 9000)}",
        "-s3.port.iceberg=0", "-s3.port.lance=0",
        f"-s3.config={config_path}",
    ]


def buckets(env: Mapping[str, str]) -> list[str]:
    """Bucket names from S3_BUCKET (comma-separated), validated like S3 does."""
    names = [b.strip() for b in env.get("S3_BUCKET", "").split(",") if b.strip()]
    for name in names:
        ok = 3 <= len(name) <= 63 and all(c.islower() or c.isdigit() or c in ".-" for c in name)
        if not ok or not name[0].isalnum() or not name[-1].isalnum():
            raise ConfigError(f"S3_BUCKET: {name!r} is not a valid bucket name "
                              "(3-63 lower-case letters, digits, dots, hyphens)")
    return names


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Polls ``url`` until 200, failing early if weed exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"weed exited with {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer within {timeout_s:g} s")


def create_bucket(weed: str, master_port: int, name: str, attempts: int = 30) -> bool:
    """Creates ``name`` through ``weed shell`` unless it exists; True if it was created."""
    last = ""
    for _ in range(attempts):
        proc = subprocess.run(
            [weed, "shell", f"-master=127.0.0.1:{master_port}"],
            input=f"s3.bucket.create -name {name}\n", capture_output=True, text=True,
            timeout=60,
        )
        out = proc.stdout + proc.stderr
        if "already exists" in out:
            return False
        if f"created bucket {name}" in out:
            return True
        last = out.strip().splitlines()[-1] if out.strip() else f"exit {proc.returncode}"
        time.sleep(1)  # the filer may still be registering with the master
    raise RuntimeError(f"could not create bucket {name}: {last}")


def run_default(env: Mapping[str, str]) -> int:
    """Configure, start weed, create buckets, then supervise weed until it ends."""
    access_key, secret_key = credentials(env)
    wanted = buckets(env)
    private = Path(tempfile.mkdtemp(prefix="s3store-"))  # mode 0700
    config = private / "identities.json"
    argv = weed_argv(env, config)  # validates the ports before anything is written or started
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(identities(access_key, secret_key), handle)
    Path(env.get("DATA_DIR", "/data")).mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(argv)
    grace = float(env.get("STOP_GRACE_S", "5"))

    def stop(signum: int, _frame: FrameType | None) -> None:
        if proc.poll() is None:
            proc.send_signal(signum)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                proc.kill()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    s3_port = _port(env, "S3_PORT", 9000)
    try:
        wait_ready(f"http://127.0.0.1:{s3_port}/healthz", proc,
                   float(env.get("STARTUP_TIMEOUT_S", "120")))
        for name in wanted:
            created = create_bucket(argv[0], _port(env, "MASTER_PORT", 9001), name)
            log(f"bucket {name} {'created' if created else 'exists'}")
    except RuntimeError as exc:
        log(f"error: {exc}")
        proc.kill()
        proc.wait()
        return 1
    finally:
        config.unlink(missing_ok=True)  # weed has read it at start; do not leave it on disk
    log(f"ready: S3 on port {s3_port}")
    return proc.wait()


def main(argv: list[str]) -> int:
    """Entry point: run the given command, or the default S3 store."""
    if argv:
        os.execvp(argv[0], argv)
    try:
        return run_default(os.environ)
    except ConfigError as exc:
        log(f"configuration error: {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
