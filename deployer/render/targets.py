"""What is rendered: the targets, their file names and templates, the names every target
shares (network, secrets folder), and ``RenderedFile``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, get_args

import yaml

Target = Literal["compose", "swarm", "env"]


TARGETS: tuple[Target, ...] = get_args(Target)


#: Output file name of each target.
FILENAMES: dict[Target, str] = {
    "compose": "docker-compose.yml",
    "swarm": "swarm-stack.yml",
    "env": ".env.example",
}


_TEMPLATES: dict[Target, str] = {
    "compose": "docker-compose.yml.j2",
    "swarm": "swarm-stack.yml.j2",
    "env": "env.example.j2",
}


#: Version used in secret names when the caller passes none (see the module docstring).
UNSET_VERSION = "unset"


NETWORK = "mlops-network"


#: Mount point of a Swarm secret named ``<base>_<version>``: stable across rotations.
SECRETS_DIR = "/run/secrets"


_BUCKET_INIT_PATH = "/bucket-init.sh"


# libyaml's parser when PyYAML was built with it (several times faster), else pure Python.
_YAML_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,40}$")


@dataclass(frozen=True)
class RenderedFile:
    """One rendered, validated output file."""

    target: Target
    filename: str
    text: str
