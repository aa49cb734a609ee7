"""What one shipped image cost: how it reached the target and what crossed the wire."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from deployer.shipping.progress import human


@dataclass(frozen=True)
class ShipReport:
    """How one image reached the target and what crossed the wire."""

    ref: str
    method: Literal["layers", "save-load"]
    layers: int  # layers of the image (0 when unknown: save/load)
    moved: int  # layers transferred to the target
    bytes: int  # bytes sent towards the target (the archive; shared by a save's images)
    reason: str = ""  # why save/load was used
    shared_with: int = 0  # other images in the same archive (a first ship's docker save)
    wasted: int = 0  # bytes of a failed attempt before this one (included in ``bytes``)

    def describe(self) -> str:
        if self.method == "layers":
            shared = (f" (one archive with {self.shared_with} other image"
                      f"{'s' if self.shared_with > 1 else ''})" if self.shared_with else "")
            return (f"{self.moved} of {self.layers} layers sent, {human(self.bytes)} "
                    f"over SSH{shared}")
        failed = (f", {human(self.wasted)} of it a failed layer archive" if self.wasted
                  else "")
        return f"docker save | docker load, {human(self.bytes)} over SSH{failed}"
