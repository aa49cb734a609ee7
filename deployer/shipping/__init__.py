"""Image shipping: only the layers a target engine lacks cross the wire.

Registry-less (the default for SSH targets): a registry process on the deploying machine
(``registry``) holds the engine's compressed layers between runs; ``docker push`` into it
compresses only the layers it lacks. The target gets a ``docker load`` archive over the SSH
session (``target_load``) with only the layers it lacks (``archive``, ``target_layers``): those
blobs read back from the registry (``registry_blobs``), or, for a first ship, a ``docker save``
without the layers the target has, compressed on every core (``transfer``). When that cannot
work (no ``docker-registry`` here, an engine that rejects the archive) it falls back to
``docker save | docker load`` (``deployer.ship``) and says why; ``report`` says what each image
cost. ``progress`` turns the engines' JSON streams into layer and byte counts; ``estimate``
says, for ``--check``, roughly how much would ship.
"""

from deployer.shipping.report import ShipReport
from deployer.shipping.transfer import Shipper

__all__ = ["ShipReport", "Shipper"]
