"""Options and helpers shared by the commands that act on a host (push, status, scale, ...)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from deployer.connectors.base import Connector
    from deployer.inventory import Host
    from deployer.values import StackValues


def add_host_arguments(container: argparse._ActionsContainer) -> None:
    """``-H/--host`` and ``-i/--inventory``: where to act (the local engine by default).
    Shared by ``deployer`` and ``mlops-tui``; ``container`` may be an exclusive group."""
    container.add_argument("-H", "--host", metavar="[USER@]HOST[:PORT]",
                           help="a Swarm manager over SSH, names resolved through the ssh "
                           "config (default: the local engine)")
    container.add_argument("-i", "--inventory", metavar="FILE", help="inventory file (YAML)")


def add_ssh_arguments(container: argparse._ActionsContainer) -> None:
    """``--limit`` and the SSH settings (shared by ``deployer`` and ``mlops-tui``)."""
    container.add_argument("-l", "--limit", metavar="PATTERN",
                           help="hosts/groups of the inventory (comma-separated, globs, "
                           "!exclude)")
    container.add_argument("--ssh-config", metavar="FILE",
                           help="ssh config file (default: $MLOPS_SSH_CONFIG or ~/.ssh/config)")
    container.add_argument("--accept-new-host-key", action="store_true",
                           help="accept and record an unknown host key (changed keys are "
                           "always refused)")


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    """``--host`` / ``-i`` / ``--limit``, the SSH settings and ``-v``."""
    group = parser.add_argument_group("target")
    add_host_arguments(group)
    add_ssh_arguments(group)
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="show the commands run (-vv: debug logging)")


def add_stack_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-s", "--stack", metavar="NAME",
                        help="stack name (default: stack.name of the values)")


def hosts_of(args: argparse.Namespace) -> list[Host]:
    """The selected hosts, each one's values already loaded once: a bad overlay of the second
    host must fail the run before the first one is contacted, not after it was deployed
    (read-only commands change nothing, so they skip it)."""
    from deployer.inventory import select_hosts

    hosts = select_hosts(
        host=args.host, inventory=args.inventory, limit=args.limit, ssh_config=args.ssh_config,
        accept_new_host_key=args.accept_new_host_key,
    )
    if hasattr(args, "values_files") and not getattr(args, "read_only", False):
        for host in hosts:
            load_host_values(host, args)
    return hosts


def open_connector(host: Host) -> Connector:
    """One connection for the whole run on ``host`` (raises ``ConnectError``)."""
    from deployer.connectors import connect

    return connect(host.ssh, docker_host=host.docker_host)


def load_host_values(host: Host, args: argparse.Namespace) -> StackValues:
    """defaults < host values files < host ``values`` < ``-f`` files < ``--set``."""
    from deployer.host_values import load_host_values as load

    return load(host, getattr(args, "values_files", []), getattr(args, "sets", []),
                allow_default_credentials=getattr(args, "allow_default_credentials", False))
