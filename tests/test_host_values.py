"""The stack name of the read-only commands (status, logs, history, listings): the same layers
as the values model (defaults < host files < host inline values < -f < --set), without it."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployer.errors import ValuesError
from deployer.host_values import load_host_values, peek_stack_name
from deployer.inventory import Host


def test_peek_takes_the_name_from_the_same_layers_as_the_model(tmp_path: Path) -> None:
    host_file = tmp_path / "host.yaml"
    host_file.write_text("stack: {name: from-host-file}\n")
    cli_file = tmp_path / "cli.yaml"
    cli_file.write_text("stack:\n  name: from-cli-file\n")
    bare = Host("local", None)
    assert peek_stack_name(bare) == load_host_values(bare).stack.name == "mlops"
    host = Host("h", None, values_files=(host_file,))
    assert peek_stack_name(host) == load_host_values(host).stack.name == "from-host-file"
    inline = Host("h", None, values_files=(host_file,), values={"stack": {"name": "inline"}})
    assert peek_stack_name(inline) == "inline"
    assert peek_stack_name(inline, [cli_file]) == "from-cli-file"
    for sets in (["stack.name=from-set"], ["stack={name: from-set}"]):
        assert peek_stack_name(inline, [cli_file], sets) == "from-set"
        assert load_host_values(inline, [cli_file], sets).stack.name == "from-set"


def test_peek_names_a_file_it_cannot_read(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("stack: [\n")
    with pytest.raises(ValuesError, match="broken.yaml.*not valid YAML"):
        peek_stack_name(Host("local", None), [broken])
    with pytest.raises(ValuesError, match="missing.yaml.*cannot read the file"):
        peek_stack_name(Host("local", None), [tmp_path / "missing.yaml"])
