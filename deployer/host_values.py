"""A host's values: defaults < the host's values files < its inline inventory ``values`` < the
run's ``-f`` files < ``--set``. Used by both front ends (the CLI's commands, the dashboard's
deploy), so an inventory overlay means the same wherever a push starts."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from deployer.errors import ValuesError

if TYPE_CHECKING:
    from deployer.inventory import Host
    from deployer.values import StackValues


@contextlib.contextmanager
def host_values_files(host: Host) -> Iterator[list[Path]]:
    """The host's values files, then its inline ``values`` overlay as a temp file."""
    files = list(host.values_files)
    if not host.values:
        yield files
        return
    import yaml

    with tempfile.TemporaryDirectory(prefix="mlops-values-") as tmp:
        overlay = Path(tmp) / f"inventory-{host.name}.yaml"
        overlay.write_text(yaml.safe_dump(dict(host.values), sort_keys=True))
        try:
            yield [*files, overlay]
        except ValuesError as exc:  # name the inventory's lines, not the temp file's
            raise host.relocate_values_error(exc, overlay) from None


def load_host_values(host: Host, files: Sequence[Path] = (), sets: Sequence[str] = (), *,
                     allow_default_credentials: bool = False) -> StackValues:
    """defaults < host values files < host ``values`` < ``files`` < ``sets``."""
    from deployer.values import load_values

    with host_values_files(host) as own:
        return load_values([*own, *files], sets,
                           allow_default_credentials=allow_default_credentials)


def peek_stack_name(host: Host, files: Sequence[Path] = (), sets: Sequence[str] = ()) -> str:
    """Only ``stack.name`` of the same layers, without building the values model: what the
    read-only commands (status, logs, history, listings) need, at a fraction of the start-up.
    Nothing is deployed from it, so the rest of the files is not validated here."""
    import yaml

    from deployer.resources import templates_dir

    def read(path: Path) -> object:
        try:
            return yaml.safe_load(Path(path).read_text()) or {}
        except OSError as exc:
            raise ValuesError(f"cannot read the file ({exc.strerror or exc})",
                              source=str(path)) from None
        except yaml.YAMLError as exc:
            raise ValuesError(f"not valid YAML ({exc})", source=str(path)) from None

    name = "mlops"
    for path in (templates_dir() / "values.yaml", *host.values_files):
        name = _stack_name_in(read(path), name)
    name = _stack_name_in(dict(host.values), name)
    for path in files:
        name = _stack_name_in(read(path), name)
    for raw in sets:
        key, sep, value = raw.partition("=")
        if sep and key.strip() == "stack.name":
            name = str(yaml.safe_load(value))
        elif sep and key.strip() == "stack":
            name = _stack_name_in({"stack": yaml.safe_load(value)}, name)
    return name


def _stack_name_in(data: object, default: str) -> str:
    stack = data.get("stack") if isinstance(data, dict) else None
    value = stack.get("name") if isinstance(stack, dict) else None
    return str(value) if value is not None else default
