"""`deployer compose`: which compose CLI is chosen (facts in, CLI out), the argv of each action,
and the real docker CLI on a PATH and plugin folder without any compose (an empty
DOCKER_CONFIG hides the venv's compose plugin; tests/test_compose_e2e.py runs the real one)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

from deployer.cli import main
from deployer.compose import (
    ComposeCli,
    ComposeOptions,
    ComposeProbe,
    choose,
    compose_argv,
    parse_version,
    probe,
)
from deployer.errors import ComposeError

PLUGIN = ComposeCli(("/usr/bin/docker", "compose"), "2.24.5", "plugin")
STANDALONE = ComposeCli(("/usr/local/bin/docker-compose",), "2.20.0", "standalone")
FILE = Path("/srv/compose/mlops/docker-compose.yml")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2.24.5", (2, 24, 5)),
        ("v2.27.1-desktop.1", (2, 27, 1)),
        ("docker-compose version 1.29.2, build unknown", (1, 29, 2)),
        ("", None),
        ("garbage", None),
    ],
)
def test_parse_version(text: str, expected: tuple[int, ...] | None) -> None:
    assert parse_version(text) == expected


def test_choose_prefers_the_plugin() -> None:
    facts = ComposeProbe(docker="/usr/bin/docker", plugin_version="v2.24.5",
                         standalone="/usr/local/bin/docker-compose", standalone_version="2.20.0")
    assert choose(facts) == PLUGIN


def test_choose_standalone_v2_without_plugin() -> None:
    facts = ComposeProbe(docker="/usr/bin/docker", plugin_version=None,
                         standalone="/usr/local/bin/docker-compose", standalone_version="2.20.0")
    assert choose(facts) == STANDALONE


def test_compose_v1_is_refused_by_version() -> None:
    facts = ComposeProbe(docker="/usr/bin/docker", plugin_version=None,
                         standalone="/usr/bin/docker-compose", standalone_version="1.29.2")
    with pytest.raises(ComposeError) as info:
        choose(facts)
    message = info.value.render()
    assert "/usr/bin/docker-compose 1.29.2" in message and "needs Compose v2" in message
    assert "docker-compose-plugin" in message  # what to install


def test_nothing_found_says_what_to_install() -> None:
    with pytest.raises(ComposeError, match="no Compose CLI found") as info:
        choose(ComposeProbe())
    assert "(no `docker` on PATH)" in info.value.message
    assert "docker-compose-plugin" in (info.value.fix or "")


def test_argv_per_action() -> None:
    base = ["/usr/bin/docker", "compose", "--file", str(FILE), "--project-name", "mlops"]
    assert compose_argv(PLUGIN, FILE, "mlops", "up") == [
        *base, "up", "--detach", "--remove-orphans"]
    assert compose_argv(PLUGIN, FILE, "mlops", "up", services=["minio"],
                        options=ComposeOptions(build=True, wait=True)) == [
        *base, "up", "--detach", "--remove-orphans", "--build", "--wait", "minio"]
    assert compose_argv(PLUGIN, FILE, "mlops", "up", services=["minio"],
                        options=ComposeOptions(no_deps=True)) == [
        *base, "up", "--detach", "--remove-orphans", "--no-deps", "minio"]
    assert compose_argv(PLUGIN, FILE, "mlops", "down", options=ComposeOptions(volumes=True)) == [
        *base, "down", "--remove-orphans", "--volumes"]
    assert compose_argv(PLUGIN, FILE, "mlops", "ps", options=ComposeOptions(all=True)) == [
        *base, "ps", "--all"]
    assert compose_argv(
        STANDALONE, FILE, "dev", "logs", services=["llm-connector"],
        env_file=Path("/home/u/.env"),
        options=ComposeOptions(follow=True, tail="50", since="10m"),
    ) == ["/usr/local/bin/docker-compose", "--file", str(FILE), "--project-name", "dev",
          "--env-file", "/home/u/.env", "logs", "--follow", "--tail", "50", "--since", "10m",
          "llm-connector"]


# ---------------------------------------------------------------------------------------------
# The real machine: no compose CLI on it
# ---------------------------------------------------------------------------------------------


def _bin_with_docker_only(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH holding the real docker CLI and nothing else, and an empty docker CLI config
    folder, so the compose plugin linked into ~/.docker is not found."""
    docker = shutil.which("docker")
    assert docker is not None, "the docker CLI is part of the test bed"
    bindir = tmp / "bin"
    bindir.mkdir()
    (bindir / "docker").symlink_to(docker)
    (tmp / "docker-config").mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp / "docker-config"))
    return bindir


def test_real_probe_finds_no_compose(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bindir = _bin_with_docker_only(tmp_path, monkeypatch)
    facts = probe(str(bindir))
    assert facts.docker == str(bindir / "docker")
    assert facts.plugin_version is None and facts.standalone is None
    with pytest.raises(ComposeError, match="no Compose CLI found"):
        choose(facts)


def test_cli_without_compose_fails_clearly_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bindir = _bin_with_docker_only(tmp_path, monkeypatch)
    monkeypatch.setenv("PATH", str(bindir))
    monkeypatch.setattr("sys.executable", str(bindir / "python"))  # not the venv's compose
    out_dir = tmp_path / "out"
    code = main(["compose", "up", "-o", str(out_dir)])
    err = capsys.readouterr().err
    assert code == 1
    assert "compose unavailable: no Compose CLI found" in err
    assert "fix: install Docker Compose v2" in err
    assert not out_dir.exists()


def _stub_compose(bindir: Path, record: Path, *, exit_code: int) -> None:
    script = bindir / "docker-compose"
    script.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = version ]; then echo 2.29.7; exit 0; fi\n'
        f'printf "%s\\n" "$@" > {record}\n'
        f'echo "key=$GOOGLE_API_KEY" >> {record}\n'
        'test -f "$2" || exit 9\n'
        f"exit {exit_code}\n"
    )
    script.chmod(0o755)


def test_cli_runs_the_chosen_compose_with_the_rendered_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A recording `docker-compose` v2: the argv and environment the deployer hands over are
    # invisible with the real CLI (which tests/test_compose_e2e.py runs): the key must arrive
    # through the environment only, never argv or the file.
    bindir = _bin_with_docker_only(tmp_path, monkeypatch)
    record = tmp_path / "argv.txt"
    _stub_compose(bindir, record, exit_code=0)
    monkeypatch.setattr("sys.executable", str(bindir / "python"))  # not the venv's compose
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}/usr/bin:/bin")
    monkeypatch.setenv("GOOGLE_API_KEY", "dp2-compose-secret")
    monkeypatch.chdir(tmp_path)  # no ./.env here: no --env-file
    out_dir = tmp_path / "out"
    code = main(["compose", "up", "-o", str(out_dir), "--set", "stack.name=dp2-compose",
                 "--wait", "llm-connector"])
    captured = capsys.readouterr()
    assert code == 0, captured
    argv = record.read_text().splitlines()
    compose_file = out_dir / "docker-compose.yml"
    assert argv[:4] == ["--file", str(compose_file), "--project-name", "dp2-compose"]
    assert argv[4:] == ["up", "--detach", "--remove-orphans", "--wait", "llm-connector",
                        "key=dp2-compose-secret"]
    assert "dp2-compose-secret" not in compose_file.read_text()  # from the environment only
    doc = yaml.safe_load(compose_file.read_text())
    build = doc["services"]["llm-connector"]["build"]
    context = out_dir / build["context"]
    # build contexts resolve from the file's folder
    assert (context / build.get("dockerfile", "Dockerfile")).is_file()
    assert "changed: [local] compose-up dp2-compose" in captured.err

    # A failing compose command is reported failed with its exit code.
    _stub_compose(bindir, record, exit_code=5)
    code = main(["compose", "down", "-o", str(out_dir), "--set", "stack.name=dp2-compose"])
    assert code == 5
    assert "failed: [local] compose-down dp2-compose" in capsys.readouterr().err


def test_unknown_service_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bindir = _bin_with_docker_only(tmp_path, monkeypatch)
    monkeypatch.setattr("sys.executable", str(bindir / "python"))
    script = bindir / "docker-compose"
    script.write_text("#!/bin/sh\necho 2.29.7\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", str(bindir))
    code = main(["compose", "logs", "-o", str(tmp_path / "o"), "nope"])
    err = capsys.readouterr().err
    assert code == 2 and "unknown service(s): nope" in err and "llm-connector" in err
