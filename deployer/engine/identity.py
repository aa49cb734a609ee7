"""An image's identity by content: the same on every engine version and image store.

An image's ID is what its engine's store makes of it: the config digest on the classic store,
the manifest (or index) digest on the containerd store (Docker 29's default), so one image has
two IDs on two engines and a comparison of IDs says "missing" for an image that is there. Its
content does not change with the store: the layers (diff IDs), the creation time and the runtime
config, as ``docker image inspect`` reports them. The key is a hash of those; empty fields are
dropped first, since engines and CLIs differ in which empty fields they write (an encoder with
``omitempty`` or without), and so is the config's ``Image`` (the legacy builder's parent image
ID, itself store-defined: the containerd store does not report it).

Pure code, no I/O: fed an inspect document (the Engine API's, or the docker CLI's JSON).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

PREFIX = "content:"


def _clean(value: Any) -> Any:
    """``value`` without empty members (None, "", false, 0, [], {}), recursively."""
    if isinstance(value, Mapping):
        kept = {str(k): _clean(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v not in (None, "", False, 0, [], {})}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def content_key(inspect: Mapping[str, Any]) -> str:
    """The content key of the image ``inspect`` describes (``docker image inspect``'s
    document): ``content:`` and a SHA-256 of its layers, creation time, platform and config."""
    body = {
        "layers": list((inspect.get("RootFS") or {}).get("Layers") or ()),
        "created": inspect.get("Created") or "",
        "os": inspect.get("Os") or "",
        "architecture": inspect.get("Architecture") or "",
        "config": _clean({k: v for k, v in (inspect.get("Config") or {}).items()
                          if k != "Image"}),
    }
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return PREFIX + hashlib.sha256(text.encode()).hexdigest()


def short(key_or_id: str) -> str:
    """12 hex digits of an ID or a content key, for display."""
    return key_or_id.removeprefix(PREFIX).removeprefix("sha256:")[:12]
