"""The one package over the Docker SDK: clients (local socket, or an engine over an SSH
transport), the mapping of SDK errors to the project's errors, and the object rules (secrets and
configs created when missing, pruned when unused). Everything else in the project reaches an
engine through here or through a connector's argv commands.
"""
