"""The one way every service reads a secret: ``NAME`` itself, or the file ``NAME_FILE`` names.

Compose passes credentials as plain variables (``AWS_ACCESS_KEY_ID``); Swarm mounts secrets as
files and passes their paths (``AWS_ACCESS_KEY_ID_FILE=/run/secrets/s3_access_key``, the official
postgres/MinIO images' convention). The rules, the same in every image:

- a blank value counts as unset, plain or file (Compose renders ``KEY="${KEY:-}"``, and
  ``deployer push --allow-missing-secret`` deploys a blank placeholder file);
- both ``NAME`` and ``NAME_FILE`` set is an error (which one wins would be a guess);
- a relative ``NAME_FILE`` is looked up under ``/run/secrets`` (as MinIO does);
- the content is stripped (``echo KEY | docker secret create`` adds a newline);
- an unreadable file is an error naming the variable and the path, never any content.

Standard library only: the mlflow-server and S3 store entrypoints use it before (and without)
anything else from their venvs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

#: Where Docker mounts secrets; a relative ``NAME_FILE`` is resolved against it.
SECRETS_DIR = Path("/run/secrets")


class SecretFileError(ValueError):
    """A secret cannot be read, or is given twice; the message names the variable(s)."""


def secret_path(ref: str, secrets_dir: Path = SECRETS_DIR) -> Path:
    """The file a ``NAME_FILE`` value names (relative values under ``secrets_dir``)."""
    path = Path(ref)
    return path if path.is_absolute() else secrets_dir / path


def read_secret(environ: Mapping[str, str], name: str,
                secrets_dir: Path = SECRETS_DIR) -> str | None:
    """The value of ``name``: the plain variable, else the stripped content of the file that
    ``<name>_FILE`` names; None when neither gives a non-blank value.

    Raises :class:`SecretFileError` when both are set or the file cannot be read.
    """
    plain = environ.get(name, "").strip()
    ref = environ.get(f"{name}_FILE", "").strip()
    if not ref:
        return plain or None
    if plain:
        raise SecretFileError(f"both {name} and {name}_FILE are set: set only one of them")
    path = secret_path(ref, secrets_dir)
    shown = ref if str(path) == ref else f"{ref} ({path})"
    try:
        content = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise SecretFileError(f"{name}_FILE={shown}: cannot read the file ({reason})") from None
    return content or None


def read_secrets(environ: Mapping[str, str], names: Iterable[str],
                 secrets_dir: Path = SECRETS_DIR) -> dict[str, str]:
    """``{name: value}`` for each of ``names`` that :func:`read_secret` finds a value for."""
    out: dict[str, str] = {}
    for name in names:
        value = read_secret(environ, name, secrets_dir)
        if value is not None:
            out[name] = value
    return out
