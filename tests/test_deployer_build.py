"""`deployer build` / `rebuild`: build contexts, content hashes, CA certificates, failures (pure),
and real builds on the bed's engine from tiny contexts FROM the bed's base image; a rebuilt image
rolls out through push to the loopback manager."""

from __future__ import annotations

import datetime
import io
import json
import os
import shutil
import subprocess
import tarfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
import yaml

from deployer.build import build_targets
from deployer.build_context import BuildContext, CaCert, content_tag, load_ca_certs
from deployer.cli import main
from deployer.errors import ConfigError
from deployer.values import load_values

REPO = Path(__file__).resolve().parent.parent
STANDIN_DIR = REPO / "tests" / "standin"
STANDIN_VALUES = REPO / "tests" / "data" / "values.standin.yaml"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _pem(tmp: Path, name: str = "proxy-ca.crt") -> Path:
    """A real self-signed CA certificate (update-ca-certificates must accept it)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"dp2 test CA {uuid.uuid4()}")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = tmp / name
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


# ---------------------------------------------------------------------------------------------
# Pure: context listing, hashing, tar, certificates, target selection
# ---------------------------------------------------------------------------------------------


def _context(tmp: Path) -> Path:
    root = tmp / "svc"
    (root / "app").mkdir(parents=True)
    (root / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nCOPY app/ /app/\n")
    (root / "app" / "main.py").write_text("print('v1')\n")
    (root / "notes.md").write_text("not sent\n")
    (root / ".dockerignore").write_text("# only the app\n*\n!app/\n**/__pycache__\n")
    (root / "app" / "__pycache__").mkdir()
    (root / "app" / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"junk")
    return root


def test_context_honours_dockerignore(tmp_path: Path) -> None:
    ctx = BuildContext.scan(_context(tmp_path))
    assert "Dockerfile" in ctx.files and "app/main.py" in ctx.files
    assert "notes.md" not in ctx.files
    assert not any("__pycache__" in f for f in ctx.files)


def test_digest_covers_what_is_sent_and_nothing_else(tmp_path: Path) -> None:
    root = _context(tmp_path)
    args = {"BASE_IMAGE": "mlops-base:bookworm"}
    first = BuildContext.scan(root).digest("sha256:base1", args)
    assert BuildContext.scan(root).digest("sha256:base1", args) == first
    # Files the builder never sees, and modification times, do not count.
    (root / "notes.md").write_text("changed\n")
    os.utime(root / "app" / "main.py", (1, 1))
    assert BuildContext.scan(root).digest("sha256:base1", args) == first
    # The base image, the build arguments, extra certificates, content and modes do.
    assert BuildContext.scan(root).digest("sha256:base2", args) != first
    assert BuildContext.scan(root).digest("sha256:base1", {"BASE_IMAGE": "x"}) != first
    with_cert = BuildContext.scan(root, [CaCert("a.crt", b"pem")])
    assert with_cert.digest("sha256:base1", args) != first
    (root / "app" / "main.py").chmod(0o755)
    assert BuildContext.scan(root).digest("sha256:base1", args) != first
    (root / "app" / "main.py").chmod(0o644)
    assert BuildContext.scan(root).digest("sha256:base1", args) == first
    (root / "app" / "main.py").write_text("print('v2')\n")
    assert BuildContext.scan(root).digest("sha256:base1", args) != first


def test_tar_adds_certs_without_touching_the_context(tmp_path: Path) -> None:
    root = _context(tmp_path)
    before = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    buffer = io.BytesIO()
    BuildContext.scan(root, [CaCert("proxy.crt", b"PEM DATA")]).write_tar(buffer)
    with tarfile.open(fileobj=buffer) as tar:
        names = tar.getnames()
        cert = tar.extractfile("certs/proxy.crt")
        assert cert is not None and cert.read() == b"PEM DATA"
    assert "certs" in names and "app/main.py" in names and "notes.md" not in names
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == before
    # Without certificates the folder is still there: `COPY certs/ ...` must not fail.
    buffer = io.BytesIO()
    BuildContext.scan(root).write_tar(buffer)
    with tarfile.open(fileobj=buffer) as tar:
        assert tar.getmember("certs").isdir()


def test_ca_cert_files_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--ca-cert .*absent\.crt: cannot read it"):
        load_ca_certs([tmp_path / "absent.crt"])
    junk = tmp_path / "junk.pem"
    junk.write_text("hello\n")
    with pytest.raises(ConfigError, match=r"junk\.pem: not a PEM certificate") as info:
        load_ca_certs([junk])
    assert "openssl" in (info.value.fix or "")
    one = _pem(tmp_path, "corp.pem")
    (tmp_path / "b").mkdir()
    two = _pem(tmp_path / "b", "corp.pem")
    certs = load_ca_certs([one, two])
    assert [c.name for c in certs] == ["corp.pem.crt", "corp.pem-2.crt"]
    assert load_ca_certs([_pem(tmp_path, "x.crt")])[0].name == "x.crt"


def test_targets_select_built_services_with_contexts(tmp_path: Path) -> None:
    values = load_values([STANDIN_VALUES], ["services.llm-connector.build=true",
                                            "services.cnn-image.build=true"])
    (tmp_path / "llm-connector").mkdir()
    (tmp_path / "llm-connector" / "Dockerfile").write_text("FROM scratch\n")
    targets = {t.service: t for t in build_targets(values, [], tmp_path)}
    assert targets["llm-connector"].skip is None
    assert "no build context" in (targets["cnn-image"].skip or "")
    assert "build: false" in (targets["minio"].skip or "")
    assert "postgres" not in targets  # not rendered with the sqlite backend store
    only = build_targets(values, ["llm-connector"], tmp_path)
    assert [t.service for t in only] == ["llm-connector"]
    with pytest.raises(ConfigError, match="unknown service.*nope") as info:
        build_targets(values, ["nope"], tmp_path)
    assert "llm-connector" in (info.value.fix or "")


def test_content_tag() -> None:
    assert content_tag("mlops/x:latest", "ab" * 32) == "mlops/x:abababababab"
    assert content_tag("reg:5000/mlops/x", "cd" * 32) == "reg:5000/mlops/x:cdcdcdcdcdcd"


# ---------------------------------------------------------------------------------------------
# Real builds on the bed's engine
# ---------------------------------------------------------------------------------------------


class Images:
    """A throwaway image namespace ``dp2-<id>/...``; every tag in it is removed afterwards."""

    def __init__(self, api: docker.APIClient) -> None:
        self.api = api
        self.prefix = f"dp2-{uuid.uuid4().hex[:8]}"

    def ref(self, service: str) -> str:
        return f"{self.prefix}/{service}:latest"

    def image_id(self, ref: str) -> str | None:
        try:
            return str(self.api.inspect_image(ref)["Id"])
        except docker.errors.ImageNotFound:
            return None

    def cleanup(self) -> None:
        for image in self.api.images():
            for tag in image.get("RepoTags") or ():
                if tag.startswith(f"{self.prefix}/"):
                    try:
                        self.api.remove_image(tag, force=True)
                    except docker.errors.APIError:
                        pass


@pytest.fixture
def images(docker_api: docker.APIClient) -> Iterator[Images]:
    imgs = Images(docker_api)
    yield imgs
    imgs.cleanup()


def _standin_context(root: Path, service: str, version: str) -> Path:
    """The stand-in server as a build context FROM $BASE_IMAGE, answering ``version``."""
    ctx = root / service
    ctx.mkdir(parents=True, exist_ok=True)
    shutil.copy(STANDIN_DIR / "standin.py", ctx / "standin.py")
    dockerfile = (STANDIN_DIR / "Dockerfile").read_text()
    (ctx / "Dockerfile").write_text(dockerfile + f"ENV VERSION={version}\n")
    return ctx


#: What each builder prints: a step's line, and a failed RUN's exit code.
BUILDER_OUTPUT = {
    "legacy": {"step": "Step 1/", "failing": "failing step: Step 3/",
               "exit": "returned a non-zero code: 3"},
    "buildkit": {"step": "[1/2] FROM", "failing": "failing step: [2/2] RUN",
                 "exit": "exit code: 3"},
}


def _build_argv(bed: dict[str, Any], images: Images, contexts: Path, *extra: str,
                builder: str = "auto") -> list[str]:
    return ["build", "--builder", builder, "-f", str(STANDIN_VALUES),
            "--set", "services.llm-connector.build=true",
            "--set", f"services.llm-connector.image={images.ref('llm-connector')}",
            "--base-image", bed["base_image"], "--context-dir", str(contexts), *extra]


@pytest.mark.e2e
@pytest.mark.parametrize("builder", ["legacy", "buildkit"])
def test_build_skips_unchanged_and_rebuilds_changed(
    bed: dict[str, Any], images: Images, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    builder: str,
) -> None:
    step = BUILDER_OUTPUT[builder]["step"]
    contexts = tmp_path / "services"
    ctx = _standin_context(contexts, "llm-connector", "v1")
    ref = images.ref("llm-connector")

    code, out = run(_build_argv(bed, images, contexts, builder=builder), capsys)
    assert code == 0, out
    assert f"llm-connector: {step}" in out and "changed: [local] build llm-connector" in out
    assert "skipped: [local] build sklearn-model  (values say build: false" in out
    first = images.image_id(ref)
    assert first is not None
    labels = images.api.inspect_image(ref)["Config"]["Labels"]
    digest = labels["io.mlops.build.context"]
    assert images.image_id(content_tag(ref, digest)) == first

    # Unchanged: ok, and the builder does not even run.
    code, out = run(_build_argv(bed, images, contexts, "llm-connector", builder=builder), capsys)
    assert code == 0, out
    assert "ok: [local] build llm-connector" in out and step not in out
    assert images.image_id(ref) == first

    # Changed context: a new image, :latest moves to it.
    (ctx / "Dockerfile").write_text((ctx / "Dockerfile").read_text().replace("v1", "v2"))
    code, out = run(_build_argv(bed, images, contexts, "llm-connector", builder=builder), capsys)
    assert code == 0, out
    assert "changed: [local] build llm-connector" in out and step in out
    second = images.image_id(ref)
    assert second not in (None, first)

    # Back to the first content: its tag still exists, so no build, just the tag moves back.
    (ctx / "Dockerfile").write_text((ctx / "Dockerfile").read_text().replace("v2", "v1"))
    code, out = run(_build_argv(bed, images, contexts, "llm-connector", builder=builder), capsys)
    assert code == 0, out
    assert "changed: [local] build llm-connector" in out and "already built" in out
    assert step not in out
    assert images.image_id(ref) == first


@pytest.mark.e2e
def test_build_installs_extra_ca_certificates(
    bed: dict[str, Any], images: Images, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    docker_api: docker.APIClient,
) -> None:
    contexts = tmp_path / "services"
    ctx = contexts / "llm-connector"
    ctx.mkdir(parents=True)
    # The services' mechanism: COPY the certs/ folder, install *.crt into the system store.
    (ctx / "Dockerfile").write_text(
        "ARG BASE_IMAGE=python:3.11-slim\nFROM ${BASE_IMAGE}\n"
        "COPY certs/ /usr/local/share/ca-certificates/mlops-extra/\n"
        "RUN update-ca-certificates\n"
    )
    cert = _pem(tmp_path)
    before = sorted(p.name for p in ctx.rglob("*"))
    code, out = run(_build_argv(bed, images, contexts, "llm-connector", "--ca-cert", str(cert),
                                "-v"), capsys)
    assert code == 0, out
    assert "1 added" in out, out  # update-ca-certificates saw our certificate
    assert sorted(p.name for p in ctx.rglob("*")) == before  # the context was not modified
    container = docker_api.create_container(
        images.ref("llm-connector"),
        ["sh", "-c", "cat /usr/local/share/ca-certificates/mlops-extra/proxy-ca.crt"],
    )
    try:
        docker_api.start(container)
        docker_api.wait(container, timeout=30)
        shown = docker_api.logs(container).decode()
    finally:
        docker_api.remove_container(container, force=True)
    assert shown.strip() == cert.read_text().strip()

    # Without certificates the same Dockerfile still builds (an empty certs/ is sent).
    code, out = run(_build_argv(bed, images, contexts, "llm-connector"), capsys)
    assert code == 0, out
    assert "0 added" in out or "changed: [local] build llm-connector" in out


@pytest.mark.e2e
@pytest.mark.parametrize("builder", ["legacy", "buildkit"])
def test_build_failure_names_service_step_output_and_fix(
    bed: dict[str, Any], images: Images, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    builder: str,
) -> None:
    expected = BUILDER_OUTPUT[builder]
    contexts = tmp_path / "services"
    ctx = contexts / "llm-connector"
    ctx.mkdir(parents=True)
    (ctx / "Dockerfile").write_text(
        "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n"
        "RUN echo preparing && echo 'no such package: frobnicate' >&2 && exit 3\n"
    )
    code, out = run(_build_argv(bed, images, contexts, builder=builder), capsys)
    assert code == 2, out
    assert "failed: [local] build llm-connector" in out
    assert expected["failing"] in out and "RUN echo preparing" in out
    assert "no such package: frobnicate" in out  # the last lines of output
    assert expected["exit"] in out
    assert f"fix: fix the failing step in {ctx / 'Dockerfile'}" in out
    assert "\x1b[" not in out
    assert images.image_id(images.ref("llm-connector")) is None

    # A base image the engine lacks and cannot pull (a closed loopback registry port).
    (ctx / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n")
    argv = _build_argv(bed, images, contexts)
    argv[argv.index("--base-image") + 1] = "127.0.0.1:1/dp2/none:x"
    code, out = run(argv, capsys)
    assert code == 2, out
    assert "base image 127.0.0.1:1/dp2/none:x is not on the local engine" in out
    assert "--base-image" in out

    # rebuild pushes nothing when a build failed.
    (ctx / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN exit 1\n")
    argv = _build_argv(bed, images, contexts)
    argv[0] = "rebuild"
    code, out = run(argv, capsys)
    assert code == 2 and "not pushing: a build failed" in out, out


# ---------------------------------------------------------------------------------------------
# build + push: a rebuilt image really rolls out
# ---------------------------------------------------------------------------------------------


class Stack:
    """A ``dp2-*`` stack on the loopback manager, removed with its secrets, configs, state."""

    def __init__(self, bed: dict[str, Any], tmp: Path, base_port: int) -> None:
        self.bed = bed
        manager = bed["managers"]["loopback"]
        self.alias = manager["alias"]
        self.state_root = Path(manager["state_dir"])
        self.name = f"dp2-{uuid.uuid4().hex[:6]}"
        self.api = docker.APIClient(base_url=manager["docker_host"])
        self.port = base_port + 1
        services: dict[str, Any] = {}
        for offset, name in enumerate(
            ["gradio-frontend", "llm-connector", "sklearn-model", "cnn-image", "mlflow-server"]
        ):
            services[name] = {"published_port": base_port + offset}
            if name != "llm-connector":
                services[name]["replicas"] = 0
        services["minio"] = {"published_port": base_port + 5,
                             "published_console_port": base_port + 6}
        self.values = tmp / f"{self.name}.yaml"
        self.values.write_text(yaml.safe_dump({"stack": {"name": self.name},
                                               "services": services}))

    def cleanup(self) -> None:
        subprocess.run(["docker", "-H", self.bed["docker_host"], "stack", "rm", self.name],
                       capture_output=True, check=False)
        label = f"com.docker.stack.namespace={self.name}"
        for _ in range(60):
            if not self.api.containers(filters={"label": label}):
                break
            time.sleep(0.5)
        # Swarm leaves the exited containers of a completed job (bucket-init) behind.
        for container in self.api.containers(all=True, filters={"label": label}):
            try:
                self.api.remove_container(container["Id"], force=True)
            except docker.errors.APIError:
                pass
        for secret in self.api.secrets(filters={"label": f"io.mlops.stack={self.name}"}):
            try:
                self.api.remove_secret(secret["ID"])
            except docker.errors.APIError:
                pass
        for config in self.api.configs(filters={"label": f"io.mlops.stack={self.name}"}):
            try:
                self.api.remove_config(config["ID"])
            except docker.errors.APIError:
                pass
        shutil.rmtree(self.state_root / self.name, ignore_errors=True)


@pytest.fixture
def stack(
    bed: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Stack]:
    monkeypatch.setenv("GOOGLE_API_KEY", "dp2-" + uuid.uuid4().hex)
    s = Stack(bed, tmp_path, 20510)
    yield s
    s.cleanup()


def _served_version(port: int) -> str:
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/which", timeout=3) as resp:
                return str(json.loads(resp.read())["version"])
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@pytest.mark.e2e
@pytest.mark.slow
def test_rebuilt_image_rolls_out(
    bed: dict[str, Any], images: Images, stack: Stack, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    contexts = tmp_path / "services"
    ctx = _standin_context(contexts, "llm-connector", "v1")
    ref = images.ref("llm-connector")
    argv = ["rebuild", "llm-connector", "-f", str(STANDIN_VALUES), "-f", str(stack.values),
            "--set", "services.llm-connector.build=true",
            "--set", f"services.llm-connector.image={ref}",
            "--base-image", bed["base_image"], "--context-dir", str(contexts),
            "--host", stack.alias, "--ssh-config", bed["ssh_config"], "--timeout", "120"]
    service = f"{stack.name}_llm-connector"

    code, out = run(argv, capsys)
    assert code == 0, out
    assert "changed: [local] build llm-connector" in out and "stack-deploy" in out
    first = images.image_id(ref)
    assert first is not None
    spec_image = stack.api.inspect_service(service)["Spec"]["TaskTemplate"]["ContainerSpec"]
    assert spec_image["Image"].startswith(f"{images.prefix}/llm-connector:{first[7:19]}")
    assert _served_version(stack.port) == "v1"

    # Nothing changed: build ok, push ok (no deploy).
    code, out = run(argv, capsys)
    assert code == 0, out
    assert "ok: [local] build llm-connector" in out and "stack-deploy" not in out

    # A changed context: a new image ID, pinned by a new tag, rolled out and serving.
    (ctx / "Dockerfile").write_text((ctx / "Dockerfile").read_text().replace("v1", "v2"))
    code, out = run(argv, capsys)
    assert code == 0, out
    assert "changed: [local] build llm-connector" in out and "stack-deploy" in out
    second = images.image_id(ref)
    assert second not in (None, first)
    assert second is not None
    spec = stack.api.inspect_service(service)["Spec"]["TaskTemplate"]["ContainerSpec"]
    assert spec["Image"].startswith(f"{images.prefix}/llm-connector:{second[7:19]}")
    status = stack.api.services(filters={"name": service}, status=True)[0]["ServiceStatus"]
    assert status["RunningTasks"] == status["DesiredTasks"] == 1
    assert _served_version(stack.port) == "v2"


@pytest.mark.e2e
@pytest.mark.slow
def test_repeated_noop_push_on_one_connection_runs_no_remote_command(
    bed: dict[str, Any], stack: Stack
) -> None:
    from deployer.connectors import connect
    from deployer.inventory import adhoc_host
    from deployer.output import Reporter
    from deployer.push import Pusher
    from deployer.push_inputs import PushOptions

    values = load_values([STANDIN_VALUES, stack.values], [])
    host = adhoc_host(stack.alias, ssh_config=bed["ssh_config"])
    log = io.StringIO()
    with connect(host.ssh) as conn:
        pusher = Pusher(conn, Reporter(stream=log), PushOptions(timeout=120))
        assert pusher.push(values).changed, log.getvalue()
        commands: list[list[str]] = []
        real_run = conn.run

        def recording_run(argv: list[str], **kwargs: Any) -> Any:
            commands.append(argv)
            return real_run(argv, **kwargs)

        conn.run = recording_run  # type: ignore[method-assign]
        assert not pusher.push(values).changed
        assert commands == []  # state over SFTP, live services over the open API channel
        assert log.getvalue().rstrip().splitlines()[-1].startswith("ok: ")
        # A change is still seen (and planned with the full state read).
        changed = load_values([STANDIN_VALUES, stack.values],
                              ["services.llm-connector.env.VERSION=v9"])
        plan = Pusher(conn, Reporter(stream=log), PushOptions(check=True)).push(changed)
        assert plan.changed and commands
