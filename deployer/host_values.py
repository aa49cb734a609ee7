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
