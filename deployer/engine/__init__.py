"""The one package over the Docker SDK: clients (local socket, or an engine over an SSH
transport), the mapping of SDK errors to the project's errors, and the object rules (secrets and
configs created when missing, pruned when unused). Everything else in the project reaches an
engine through here or through a connector's argv commands.
"""

import sys

# The SDK's own SSH transport (``ssh://`` base URLs) is never used: a remote engine rides the
# connector's paramiko connection (``client.ssh_client``). Importing that transport cost every
# command paramiko and, with it, invoke (0.3 s of a 0.5 s local `deployer status`), so the SDK
# is loaded without it; paramiko comes in with the SSH connector, for runs that have a remote host.
sys.modules.setdefault("docker.transport.sshconn", None)  # type: ignore[arg-type]
