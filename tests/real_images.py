"""The six real service images for end-to-end tests, built once by `deployer build`.

Every e2e test names the same image repositories (``mlops-e2e/<service>``) and the same build
inputs (the offline overlay, the bed's base image, this machine's CA certificates), so the
deployer's content-hash tags make every build after the first an ``ok`` without running the
builder (and Docker's layer cache covers the rest).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OFFLINE = REPO / "templates" / "values.offline.yaml"
CA_DIR = Path("/usr/local/share/ca-certificates")
SERVICES = ("gradio-frontend", "llm-connector", "sklearn-model", "cnn-image", "mlflow-server",
            "minio")
#: Own repositories: other tests may retag mlops/*:latest meanwhile.
IMAGES = {name: f"mlops-e2e/{name}:latest" for name in SERVICES}


def ca_cert_args() -> list[str]:
    """``--ca-cert FILE`` for each extra CA certificate of this machine (a TLS proxy's)."""
    return [arg for cert in sorted(CA_DIR.glob("*.crt")) for arg in ("--ca-cert", str(cert))]


def build_real_images(run_deployer: Callable[..., tuple[int, str]], base_image: str) -> str:
    """Run ``deployer build`` through ``run_deployer(command, *args, timeout=...)`` (which adds
    the test's values files, naming :data:`IMAGES`); returns its output."""
    code, out = run_deployer("build", "--base-image", base_image, *ca_cert_args(), timeout=1800)
    assert code == 0, out
    for name in SERVICES:
        assert f"build {name}" in out, out
    return out
