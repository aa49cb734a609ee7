"""The Jinja2 environment (StrictUndefined: a missing value is an error, never an empty
string) and its filters for YAML-safe quoting."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable
from typing import Any

import jinja2

from deployer.resources import templates_dir


def _q(value: Any) -> str:
    """A YAML double-quoted scalar (JSON strings are valid YAML)."""
    return json.dumps(str(value), ensure_ascii=False)


def _qlist(values: Iterable[Any]) -> str:
    return "[" + ", ".join(_q(v) for v in values) + "]"


def _env_value(value: str) -> str:
    """A .env value: bare when safe, else single-quoted (Compose's dotenv rules)."""
    if re.fullmatch(r"[A-Za-z0-9_./:@+,-]*", value):
        return value
    return "'" + value.replace("'", "") + "'"


@functools.lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["q"] = _q
    env.filters["qlist"] = _qlist
    env.filters["envvalue"] = _env_value
    return env
