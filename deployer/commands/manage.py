"""`deployer status` (and later scale, logs, remove, rollback, history)."""

from __future__ import annotations

import argparse
from typing import Any

from deployer.commands.targets import (
    add_stack_argument,
    add_target_arguments,
    hosts_of,
    open_connector,
)
from deployer.docker_api import docker_errors
from deployer.swarm import read_snapshot

COLUMNS = ("SERVICE", "REPLICAS", "IMAGE", "PORTS", "UPDATE", "HEALTH")


def register(subparsers: Any) -> None:
    """Add the `status` sub-command."""
    p = subparsers.add_parser("status", help="services of the stack: replicas, image, health")
    add_target_arguments(p)
    add_stack_argument(p)
    p.set_defaults(func=run_status)


def run_status(args: argparse.Namespace) -> int:
    stack = args.stack or "mlops"
    for host in hosts_of(args):
        with open_connector(host) as conn:
            with docker_errors(conn.host):
                snapshot = read_snapshot(conn.docker_client().api, stack, include_nodes=False)
            print(f"[{conn.host}] stack {stack}: {len(snapshot.services)} service(s)")
            rows = [
                (s.short_name, s.replicas_text, s.image, ", ".join(str(p) for p in s.ports),
                 s.update_state or "-", s.health)
                for s in snapshot.services
            ]
            widths = [max(len(str(r[i])) for r in [COLUMNS, *rows]) for i in range(len(COLUMNS))]
            for row in [COLUMNS, *rows]:
                print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return 0
