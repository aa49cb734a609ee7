"""The test bed's "team registry": a real registry (Debian's ``docker-registry``, the CNCF
distribution) with htpasswd basic auth and TLS from a self-signed CA, for the deployer's
registry mode.

It listens on the host end of the namespace link (10.250.0.1:5443), so both the host's engine
(push) and the namespace manager's engine (pull) reach it; both trust its CA through
``/etc/docker/certs.d/10.250.0.1:5443/ca.crt`` (one file system; no engine restart). The
password is random, kept in a 0600 file under .testbed/registry/ (never in facts.json: that
names the file). Started by pidfile like every bed process; ``down`` stops it and removes the
CA from certs.d. Uses the helpers of scripts/testbed.py.
"""

from __future__ import annotations

import os
import secrets
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import testbed as tb

PACKAGES = {"docker-registry": "docker-registry", "htpasswd": "apache2-utils"}
ADDR, PORT = tb.HOST_ADDR, 5443
NAME = "registry_team"
DIR = tb.BED / "registry"
USER = "mlops-deploy"
CERTS_D = Path("/etc/docker/certs.d") / f"{ADDR}:{PORT}"


def ensure_tools() -> None:
    """``docker-registry`` (also what the deployer runs for layer shipping) and ``htpasswd``."""
    missing = sorted({pkg for binary, pkg in PACKAGES.items() if shutil.which(binary) is None})
    if not missing:
        return
    tb.say(f"installing Debian packages: {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    tb.run(["apt-get", "update", "-qq"], env=env)
    tb.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], env=env)


def _ensure_certs() -> None:
    ca_key, ca_crt = DIR / "ca.key", DIR / "ca.crt"
    key, crt = DIR / "server.key", DIR / "server.crt"
    if not ca_crt.exists():
        tb.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
                "-subj", "/CN=mlops test bed registry CA", "-keyout", str(ca_key),
                "-out", str(ca_crt)])
    if not crt.exists():
        csr = DIR / "server.csr"
        ext = DIR / "server.ext"
        ext.write_text(f"subjectAltName=IP:{ADDR}\nextendedKeyUsage=serverAuth\n")
        tb.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={ADDR}",
                "-keyout", str(key), "-out", str(csr)])
        tb.run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_crt),
                "-CAkey", str(ca_key), "-CAcreateserial", "-days", "3650",
                "-extfile", str(ext), "-out", str(crt)])
    for path in (ca_key, key):
        os.chmod(path, 0o600)
    CERTS_D.mkdir(parents=True, exist_ok=True)
    if not (CERTS_D / "ca.crt").exists() or (CERTS_D / "ca.crt").read_bytes() != (
        ca_crt.read_bytes()
    ):
        shutil.copyfile(ca_crt, CERTS_D / "ca.crt")


def _ensure_htpasswd() -> None:
    password_file = DIR / "password"
    if not password_file.exists():
        password_file.write_text(secrets.token_hex(16) + "\n")
        os.chmod(password_file, 0o600)
    htpasswd = DIR / "htpasswd"
    if htpasswd.exists() and htpasswd.stat().st_mtime >= password_file.stat().st_mtime:
        return
    # -i reads the password on stdin: it never appears in a process listing.
    proc = subprocess.run(["htpasswd", "-iBc", str(htpasswd), USER], capture_output=True,
                          text=True, input=password_file.read_text().strip() + "\n")
    if proc.returncode != 0:
        raise tb.BedError(f"htpasswd failed: {proc.stderr.strip()}")


def _config() -> Path:
    config = DIR / "config.yml"
    config.write_text("\n".join([
        "version: 0.1",
        "log: {level: warn, accesslog: {disabled: true}}",
        "storage:",
        f"  filesystem: {{rootdirectory: {DIR / 'data'}}}",
        "  delete: {enabled: true}",
        "auth:",
        f"  htpasswd: {{realm: mlops-bed, path: {DIR / 'htpasswd'}}}",
        "http:",
        f"  addr: {ADDR}:{PORT}",
        f"  tls: {{certificate: {DIR / 'server.crt'}, key: {DIR / 'server.key'}}}",
        "",
    ]))
    return config


def ready() -> bool:
    context = ssl.create_default_context(cafile=str(DIR / "ca.crt"))
    try:
        urllib.request.urlopen(f"https://{ADDR}:{PORT}/v2/", timeout=1, context=context)
    except urllib.error.HTTPError as exc:
        return exc.code == 401  # up, and asking for credentials
    except (urllib.error.URLError, OSError, ssl.SSLError):
        return False
    return True


def ensure() -> None:
    """Up (idempotent): tools, CA + server certificate, htpasswd, the process."""
    ensure_tools()
    DIR.mkdir(parents=True, exist_ok=True)
    _ensure_certs()
    _ensure_htpasswd()
    config = _config()
    if tb.read_pid(NAME) is not None and ready():
        return
    tb.stop(NAME, grace=5)
    tb.require_port_free(ADDR, PORT, "the test bed's registry")
    tb.spawn(NAME, [shutil.which("docker-registry") or "/usr/bin/docker-registry", "serve",
                    str(config)])
    tb.wait_for("the bed's registry", ready, timeout=20, log=tb.LOGS / f"{NAME}.log")


def down() -> None:
    """Stop the process (pidfile); the engines stop trusting its CA."""
    tb.stop(NAME, grace=5)
    if CERTS_D.exists():
        shutil.rmtree(CERTS_D, ignore_errors=True)


def facts() -> dict[str, Any]:
    return {"url": f"{ADDR}:{PORT}", "username": USER, "password_file": str(DIR / "password"),
            "ca": str(DIR / "ca.crt")}


def status_rows() -> list[tuple[str, bool]]:
    return [("registry (auth + TLS)", tb.read_pid(NAME) is not None and ready())]
