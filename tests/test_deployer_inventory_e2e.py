"""An inventory with both bed managers: `--limit bed-remote` acts only there, with that host's
values overlay; day-two commands follow the same selection."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml
from test_deployer_manage import STANDIN_VALUES, Dp3Stack, run

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def remote(bed: dict[str, Any], tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[Dp3Stack]:
    monkeypatch.setenv("GOOGLE_API_KEY", "dp3-inventory-key")
    made = Dp3Stack(bed, "remote", tmp_path, 20400)
    try:
        yield made
    finally:
        made.cleanup()


def test_limit_deploys_only_to_the_remote_manager_with_its_overlay(
    remote: Dp3Stack, bed: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    overlay = "remote-only-" + uuid.uuid4().hex[:6]
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(yaml.safe_dump({
        # Common values for every host: the stand-in stack under the test's stack name.
        "vars": {"values_files": [str(STANDIN_VALUES), str(remote.values)]},
        "hosts": {
            "bed-loopback": {},
            "bed-remote": {"values": {"services": {"llm-connector": {"env": {
                "VERSION": overlay}}}}},
        },
        "groups": {"managers": {"hosts": ["bed-loopback", "bed-remote"]}},
    }))
    target = ["-i", str(inventory), "--limit", "bed-remote", "--ssh-config", bed["ssh_config"]]

    code, out = run(["push", *target], capsys)
    assert code == 0, out
    assert "[bed-remote" in out and "[bed-loopback" not in out, out
    # The remote engine runs it, with the host's overlay in the live spec.
    assert f"VERSION={overlay}" in remote.env("llm-connector")
    assert remote.services()["llm-connector"]["ServiceStatus"]["RunningTasks"] == 1
    # The loopback engine has nothing of this stack.
    local = docker.APIClient(base_url=bed["managers"]["loopback"]["docker_host"])
    label = f"com.docker.stack.namespace={remote.name}"
    assert not local.services(filters={"label": label})

    # Day-two commands take the same selection; the stack name comes from the host's values.
    code, out = run(["scale", "gradio-frontend=2", *target], capsys)
    assert code == 0 and "[bed-remote" in out and "[bed-loopback" not in out, out
    assert remote.services()["gradio-frontend"]["ServiceStatus"]["RunningTasks"] == 2
    code, out = run(["history", *target], capsys)
    assert code == 0 and f"stack {remote.name}: 1 revision(s), current: 1" in out, out
    code, out = run(["logs", "llm-connector", "--tail", "5", *target], capsys)
    assert code == 0 and out.strip(), out
    # logs reads one host: the whole inventory is refused with the fix.
    code, out = run(["logs", "-i", str(inventory), "--ssh-config", bed["ssh_config"]], capsys)
    assert code == 2 and "--limit" in out, out
    assert not local.services(filters={"label": label})
