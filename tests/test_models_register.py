"""`deployer models register FILE`: the file and options refused before any host, the one-off
container's argv (the stack's network and image, no secret passed, the file on stdin), and a
stack that is not deployed refused over real SSH to the bed's namespace manager, nothing done.

Registering for real (a remote manager's MLflow, cnn-image switching to the new version) is
what bench/real_stack_remote.py does with the six real images; it takes minutes, not a test.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from deployer.actions.model_register import (
    SCRIPT,
    ModelFile,
    RegisterRequest,
    check_request,
    container_argv,
    read_model_file,
)
from deployer.cli import main
from deployer.errors import ConfigError

PROVENANCE = ["--outputs", "logits", "--input-scaling", "0-255", "--source", "pkg==1.0",
              "--licence", "BSD-3"]


def request(**changes: Any) -> RegisterRequest:
    base: dict[str, Any] = {"file": ModelFile("cnn_model.h5", b"\x89HDF"), "outputs": "logits",
                            "input_scaling": "0-255", "source": "pkg==1.0", "licence": "BSD-3"}
    return RegisterRequest(**{**base, **changes})


@pytest.mark.parametrize("name", ["model.txt", "model", "-x.h5", "a b.h5", "ü.keras"])
def test_file_names_that_cannot_be_a_keras_file_are_refused(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"x")
    with pytest.raises(ConfigError, match="expected a Keras model file"):
        read_model_file(path)


def test_a_missing_file_and_a_directory_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="No such file"):
        read_model_file(tmp_path / "absent.h5")
    (tmp_path / "dir.keras").mkdir()
    with pytest.raises(ConfigError, match="not a file"):
        read_model_file(tmp_path / "dir.keras")


def test_a_model_file_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "cnn_model.h5"
    path.write_bytes(b"\x89HDF\r\n" * 10)
    assert read_model_file(path) == ModelFile("cnn_model.h5", b"\x89HDF\r\n" * 10)


@pytest.mark.parametrize(("changes", "match"), [
    ({"outputs": "scores"}, "--outputs"), ({"input_scaling": "0-2"}, "--input-scaling"),
    ({"source": " "}, "--source is empty"), ({"licence": ""}, "--licence is empty")])
def test_bad_options_are_refused(changes: dict[str, str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        check_request(request(**changes))


def test_the_container_runs_beside_the_stack_with_the_file_on_stdin() -> None:
    req = request(if_missing=True)
    argv = container_argv("s1", "mlops/cnn-image:abc", "netid",
                          {"MLFLOW_TRACKING_URI": "http://mlflow-server:5000",
                           "MODEL_NAME": "cifar10-cnn"}, req, "s1-register-1")
    image = argv.index("mlops/cnn-image:abc")
    assert argv[:4] == ["docker", "run", "--rm", "-i"]
    assert argv[argv.index("--name") + 1] == "s1-register-1"  # removable if interrupted
    assert argv[argv.index("--network") + 1] == "netid"
    assert argv[argv.index("--pull") + 1] == "never"  # the stack's own image, never a pull
    assert argv[argv.index("--label") + 1] == "io.mlops.stack=s1"
    env = [argv[i + 1] for i in range(image) if argv[i] == "-e"]
    assert env == ["MLFLOW_TRACKING_URI=http://mlflow-server:5000", "MODEL_NAME=cifar10-cnn"]
    # The user's values are argv items after the script, never part of a shell string.
    assert argv[image + 1:image + 5] == ["-c", SCRIPT, "sh", "cnn_model.h5"]
    assert argv[image + 5:] == [*PROVENANCE, "--alias", "champion", "--if-missing"]


def test_cli_refuses_bad_input_before_any_host(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    # A loopback port nothing listens on: a refusal must come before any connection is tried.
    argv = ["models", "register", "--host", "root@127.0.0.1:1", "-s", "x", *PROVENANCE]
    assert main([*argv, str(tmp_path / "absent.h5")]) == 2
    assert "absent.h5" in capsys.readouterr().err
    (tmp_path / "m.h5").write_bytes(b"x")
    assert main([*argv[:-2], "--licence", " ", str(tmp_path / "m.h5")]) == 2
    assert "--licence is empty" in capsys.readouterr().err


def test_a_stack_not_deployed_on_the_manager_is_refused(
    bed: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = f"dp-reg-{uuid.uuid4().hex[:6]}"
    (tmp_path / "m.h5").write_bytes(b"x")
    code = main(["models", "register", str(tmp_path / "m.h5"), *PROVENANCE, "--host",
                 "bed-remote", "--ssh-config", bed["ssh_config"], "--stack", stack])
    out = capsys.readouterr()
    assert code != 0
    assert f"stack {stack} is not deployed" in out.out + out.err
    assert not (Path(bed["managers"]["remote"]["state_dir"]) / stack).exists()


@pytest.mark.parametrize("argv", [
    ["models", "--host", "h1", "-s", "s1", "-f", "a.yaml", "promote", "m", "1"],
    ["models", "promote", "m", "1", "--host", "h1", "-s", "s1", "-f", "a.yaml"],
    ["models", "-H", "h1", "-s", "s1", "register", "m.h5", "-f", "a.yaml", *PROVENANCE],
    ["nodes", "-H", "h1", "-s", "s1", "-f", "a.yaml", "drain", "n1"],
    ["nodes", "label", "n1", "k=v", "-H", "h1", "-s", "s1", "-f", "a.yaml"],
])
def test_target_options_count_before_and_after_the_action(argv: list[str]) -> None:
    # They were dropped when given before the action: `deployer models --host H promote M V`
    # promoted on the local engine's stack.
    from deployer.cli import build_parser

    args = build_parser().parse_args(argv)
    assert (args.host, args.stack, [str(f) for f in args.values_files]) == ("h1", "s1",
                                                                          ["a.yaml"])
    assert args.timeout == 300.0  # the action's own options keep their defaults
