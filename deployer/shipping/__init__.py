"""Image shipping: only the layers a target engine lacks cross the wire.

Registry-less (the default for SSH targets): a registry process on the deploying machine
(``registry``), ``docker push`` into it from the local engine (only layers it lacks), an SSH remote
port forward (``forward``) so the target engine's ``docker pull 127.0.0.1:PORT/...`` reaches it
(only layers the target lacks), then the image is tagged on the target exactly as the stack file
references it (``transfer``). When that cannot work (no ``docker-registry`` here, forwarding refused
by sshd, an engine that cannot pull) it falls back to ``docker save | docker load``
(``deployer.ship``) and says why. ``progress`` turns the engines' JSON streams into layer and
byte counts; ``estimate`` says, for ``--check``, roughly how much would ship.
"""

from deployer.shipping.transfer import Shipper, ShipReport

__all__ = ["ShipReport", "Shipper"]
