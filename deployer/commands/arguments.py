"""Checks of option values several commands share, run once right after parsing.

argparse only knows types: ``--timeout nan`` is a float, ``--to-revision -3`` an int and
``--stack 'My Stack'`` a string. Each would reach a host (or wait forever) before failing; here
they are refused first, with the option named, before any host is contacted or file written.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from deployer.errors import ConfigError

#: Longest wait accepted (a day): more is a unit mistake (milliseconds), not a wish.
MAX_TIMEOUT = 86400.0


def check_arguments(args: argparse.Namespace) -> None:
    """Raise ``ConfigError`` for the first option value no command can use."""
    _check_timeout(getattr(args, "timeout", None))
    _check_stack(getattr(args, "stack", None))
    _check_tail(getattr(args, "tail", None))
    revision = getattr(args, "to_revision", None)
    if revision is not None and revision < 1:
        raise ConfigError(f"--to-revision {revision}: revisions are numbered from 1",
                          fix="`deployer history` lists the stored revisions")
    env_file = getattr(args, "env_file", None)
    if env_file is not None and not Path(env_file).is_file():
        raise ConfigError(f"--env-file {env_file}: no such file",
                          fix="give the path of a .env file holding GOOGLE_API_KEY=...")
    for cert in getattr(args, "ca_certs", None) or ():
        if not Path(cert).is_file():
            raise ConfigError(f"--ca-cert {cert}: no such file",
                              fix="give the path of a PEM certificate, e.g. "
                              "/usr/local/share/ca-certificates/proxy.crt")
    context = getattr(args, "context_dir", None)
    if context is not None and not Path(context).is_dir():
        raise ConfigError(f"--context-dir {context}: no such folder",
                          fix="it holds one <service>/Dockerfile per service")


def _check_timeout(value: Any) -> None:
    if value is None:
        return
    if not math.isfinite(value) or not 0 < value <= MAX_TIMEOUT:
        raise ConfigError(f"--timeout {value:g}: expected a number of seconds above 0 and at "
                          f"most {MAX_TIMEOUT:g}", fix="e.g. --timeout 300")


def _check_stack(value: Any) -> None:
    if value is None:
        return
    import pydantic

    from deployer.values import Stack

    try:
        Stack(name=value)
    except pydantic.ValidationError:
        raise ConfigError(
            f"--stack {value!r}: expected lower-case letters, digits, '-' and '_' (at most 50, "
            "starting with a letter or digit), as a Swarm stack name",
        ) from None


def _check_tail(value: Any) -> None:
    # `logs --tail` is an int; `compose logs --tail` passes through to compose ("all" or N).
    if value is None:
        return
    if isinstance(value, int):
        bad = value < 0
    else:
        bad = not (value == "all" or str(value).isdigit())
    if bad:
        raise ConfigError(f"--tail {value}: expected 0 or more lines"
                          + ("" if isinstance(value, int) else " (or 'all')"))


def inherit_options(parent: argparse.ArgumentParser,
                    children: list[argparse.ArgumentParser]) -> None:
    """Let options come before or after a command's action (``deployer models --host H
    promote M V`` as ``deployer models promote M V --host H``).

    argparse copies everything the action's parser returns over what the command's parser
    parsed, defaults included: ``--host``, ``--stack`` or ``-f`` given before the action were
    silently replaced by the defaults, and the action ran on the local engine or the default
    stack. With no default of their own for the options the command's parser has too, the
    action's parsers set only what they are given. (An append option given on both sides
    keeps the items after the action.)
    """
    shared = {a.dest for a in parent._actions if a.option_strings and a.dest != "help"}
    for child in children:
        for action in child._actions:
            if action.option_strings and action.dest in shared:
                action.default = argparse.SUPPRESS
