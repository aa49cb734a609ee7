"""Leak scan: a stack pushed to the bed's namespace manager (bed-remote, over SSH) with a known
Gemini key and a known S3 secret key; neither may appear, in plain text or base64, in:

* the deployer's output with -v (push, status, history, logs);
* `docker inspect` of every service and container of the stack (env, labels, args, mounts);
* the services' logs;
* the manager's files: the stack's state folder (revisions, meta, audit log) and every file
  the manager's engine wrote during the run (containers' configs, the Swarm store);
* the audit log (in the state folder);
* the dashboard's recorded screens: mlops-tui (Textual's Pilot, over the same SSH connection a
  user's would be) on the stack's services, the tasks of the service holding the Gemini key,
  and that service's logs, each exported as the SVG a screenshot is (kept in
  .testbed/artifacts/) and scanned as text.

The stand-in image serves every service here, so the services' own logging of secrets is left
to the service tests (tests/services: the llm-connector's key never appears in its log);
this scan is about what the deployer and Swarm do with them.
"""

from __future__ import annotations

import asyncio
import base64
import html
import json
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml

from deployer.cli import main
from deployer.inventory import adhoc_host
from tui.app import make_app
from tui.backend import host_backend_factory
from tui.screens.logs import LogsScreen
from tui.widgets.tasks_table import TasksTable

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

STANDIN_VALUES = Path(__file__).parent / "data" / "values.standin.yaml"
ARTIFACTS = Path(__file__).resolve().parent.parent / ".testbed" / "artifacts"
GEMINI_KEY = "AIzaLEAKSCAN" + uuid.uuid4().hex
S3_SECRET = "s3LEAKSCAN" + uuid.uuid4().hex
#: Files larger than this are image layers or databases of their own: not read.
MAX_SCANNED_BYTES = 20 * 1024 * 1024


def _needles() -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for name, secret in (("gemini key", GEMINI_KEY), ("s3 secret key", S3_SECRET)):
        out[name] = secret.encode()
        out[f"{name} (base64)"] = base64.b64encode(secret.encode())[:24]
    return out


def _leaks(where: str, data: bytes) -> list[str]:
    return [f"{name} in {where}" for name, needle in _needles().items() if needle in data]


class LeakStack:
    def __init__(self, bed: dict[str, Any], tmp: Path) -> None:
        self.bed = bed
        self.manager = bed["managers"]["remote"]
        self.name = f"lk-{uuid.uuid4().hex[:6]}"
        services: dict[str, Any] = {}
        for offset, name in enumerate(["gradio-frontend", "llm-connector", "sklearn-model",
                                       "cnn-image", "mlflow-server"]):
            services[name] = {"published_port": 20420 + offset,
                              "replicas": 1 if name == "llm-connector" else 0}
        services["minio"] = {"published_port": 20425, "published_console_port": 20426}
        self.values = tmp / f"{self.name}.yaml"
        self.values.write_text(yaml.safe_dump({
            "stack": {"name": self.name}, "services": services,
            "s3": {"access_key": "leakscan", "secret_key": S3_SECRET},
        }))
        self.api = docker.APIClient(base_url=self.manager["docker_host"])

    def argv(self, command: str, *extra: str) -> list[str]:
        flag = "--values" if command == "logs" else "-f"  # `logs -f` is --follow
        return [command, *extra, flag, str(STANDIN_VALUES), flag, str(self.values), "--host",
                self.manager["alias"], "--ssh-config", self.bed["ssh_config"]]

    @property
    def state_dir(self) -> Path:
        return Path(self.manager["state_dir"]) / self.name

    def cleanup(self) -> None:
        main(self.argv("remove", "--volumes", "--yes"))
        label = f"com.docker.stack.namespace={self.name}"
        for container in self.api.containers(filters={"label": label}, all=True):
            self.api.remove_container(container["Id"], force=True)
        shutil.rmtree(self.state_dir, ignore_errors=True)


@pytest.fixture
def leak_stack(bed: dict[str, Any], tmp_path: Path,
               monkeypatch: pytest.MonkeyPatch) -> Iterator[LeakStack]:
    monkeypatch.setenv("GOOGLE_API_KEY", GEMINI_KEY)
    stack = LeakStack(bed, tmp_path)
    yield stack
    stack.cleanup()


def _files_since(root: Path, since: float) -> Iterator[Path]:
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            try:
                st = path.lstat()
            except OSError:
                continue
            if path.is_file() and not path.is_symlink() and st.st_mtime >= since and \
                    st.st_size <= MAX_SCANNED_BYTES:
                yield path


def test_no_secret_in_output_inspect_logs_or_manager_files(
    leak_stack: LeakStack, bed: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    stack = leak_stack
    started = time.time() - 1
    found: list[str] = []

    assert main(stack.argv("push", "-v", "--timeout", "120")) == 0, capsys.readouterr()
    for command, *extra in (("status",), ("history",), ("logs", "--tail", "50")):
        assert main(stack.argv(command, *extra, "-v")) == 0, capsys.readouterr()
    captured = capsys.readouterr()
    found += _leaks("deployer output (-v)", (captured.out + captured.err).encode())

    label = f"com.docker.stack.namespace={stack.name}"
    services = stack.api.services(filters={"label": label})
    containers = stack.api.containers(filters={"label": label}, all=True)
    assert services and containers
    for svc in services:
        found += _leaks(f"docker inspect of service {svc['Spec']['Name']}",
                        json.dumps(svc).encode())
        logs = subprocess.run(["docker", "-H", stack.manager["docker_host"], "service", "logs",
                               "--raw", svc["ID"]], capture_output=True, timeout=60)
        found += _leaks(f"logs of {svc['Spec']['Name']}", logs.stdout + logs.stderr)
    for container in containers:
        found += _leaks(f"docker inspect of container {container['Names'][0]}",
                        json.dumps(stack.api.inspect_container(container["Id"])).encode())
    # Secrets are files in the tasks (/run/secrets), their names in the env (*_FILE): check
    # that the scan looks where the values would be.
    env = json.dumps([stack.api.inspect_container(c["Id"])["Config"]["Env"]
                      for c in containers])
    assert "GOOGLE_API_KEY_FILE" in env or "AWS_SECRET_ACCESS_KEY_FILE" in env, env

    scanned = 0
    roots = [stack.state_dir, Path(bed["managers"]["remote"]["state_dir"]).parents[1] /
             "remote" / "data"]
    for root in roots:
        for path in _files_since(root, started):
            scanned += 1
            found += _leaks(f"manager file {path}", path.read_bytes())
    assert (stack.state_dir / "audit.log").is_file()
    assert scanned > 5, "the scan of the manager's files read (almost) nothing"
    print(f"leak scan: {len(services)} services, {len(containers)} containers, "
          f"{scanned} manager files scanned")
    for screen, svg in asyncio.run(_dashboard_screens(stack)).items():
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / f"leak-scan-tui-{screen}.svg").write_text(svg)
        found += _leaks(f"the dashboard's {screen} screen", (svg + _svg_text(svg)).encode())
    # The control: the matcher finds the secret where it is meant to be (the values file on
    # the deploying machine).
    assert _leaks("values", stack.values.read_bytes()) == ["s3 secret key in values"]
    assert not found, "\n".join(found)


# ---------------------------------------------------------------------------------------------
# The dashboard's screens


def _svg_text(svg: str) -> str:
    """The text a screenshot shows (tags dropped, entities decoded, Textual's no-break spaces
    as spaces): a secret split over styled spans is whole again."""
    return html.unescape(re.sub(r"<[^>]+>", "", svg)).replace("\xa0", " ")


async def _dashboard_screens(stack: LeakStack) -> dict[str, str]:
    """mlops-tui over SSH on the stack: the services, the llm-connector's tasks, its logs; each
    screen's SVG, checked to show what it should (so a scan of it can fail)."""
    from test_tui_e2e import main_screen, row_of, select, until

    host = adhoc_host(stack.manager["alias"], ssh_config=stack.bed["ssh_config"])
    app = make_app(host_backend_factory(host)(), stack=stack.name, refresh_seconds=0.5)
    screens: dict[str, str] = {}
    async with app.run_test(size=(150, 40)) as pilot:
        await until(pilot, lambda: (row_of(app, "llm-connector") or ["", "", ""])[2] == "1/1",
                    "llm-connector 1/1 on the services screen", timeout=90)
        screens["services"] = app.export_screenshot()
        await select(pilot, app, "llm-connector")
        tasks = main_screen(app).query_one(TasksTable)
        await until(pilot, lambda: tasks.row_count > 0, "the llm-connector's tasks")
        await pilot.pause(0.5)
        screens["tasks"] = app.export_screenshot()
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, LogsScreen), "the logs screen")
        await until(pilot, lambda: "listening on" in _svg_text(app.export_screenshot()),
                    "the llm-connector's log lines on screen", timeout=60)
        screens["logs"] = app.export_screenshot()
        await pilot.press("escape")
    text = {name: _svg_text(svg) for name, svg in screens.items()}
    assert "llm-connector" in text["services"] and "minio" in text["services"], text
    assert "llm-connector.1" in text["tasks"], text["tasks"]
    assert "llm-connector listening on" in text["logs"], text["logs"]
    return screens
