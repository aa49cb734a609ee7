"""`deployer ship-cache`: the local shipping registry's size, and `prune` to bound it.
Argument parsing and output only; the work is in ``deployer.shipping.registry_gc``."""

from __future__ import annotations

import argparse
from typing import Any

from deployer.output import Reporter

DEFAULT_KEEP = 3


def register(subparsers: Any) -> None:
    """Add `ship-cache` with `status` (the default) and `prune`."""
    p = subparsers.add_parser(
        "ship-cache", help="the local registry that layer shipping pushes into: size, prune",
        description="Layer shipping pushes images into a registry process on this machine "
        "whose data stays between runs (under the state dir), so later pushes send only new "
        "layers. `prune` keeps each repository's newest --keep images and deletes every layer "
        "no kept image uses; a pruned image still ships, its layers pushed again.",
    )
    sub = p.add_subparsers(dest="cache_command", metavar="ACTION")
    p.set_defaults(func=run_status)
    sub.add_parser("status", help="size, repositories and images (the default)").set_defaults(
        func=run_status)
    q = sub.add_parser("prune", help="keep each repository's newest images, free the rest")
    q.add_argument("--keep", type=int, default=DEFAULT_KEEP, metavar="N",
                   help=f"images kept per repository (default {DEFAULT_KEEP})")
    q.add_argument("--dry-run", action="store_true", help="say what would go, delete nothing")
    q.set_defaults(func=run_prune)


def run_status(args: argparse.Namespace) -> int:
    from deployer.shipping.progress import human
    from deployer.shipping.registry import LocalRegistry
    from deployer.shipping.registry_gc import LOCK_WAIT, disk_usage, list_images

    out = Reporter()
    registry = LocalRegistry()
    size = disk_usage(registry.dir / "data")
    if size == 0:
        out.info(f"{registry.dir}: empty (nothing shipped by layers from here yet)")
        return 0
    registry.start(wait_lock=LOCK_WAIT)
    try:
        images = list_images(registry)
    finally:
        registry.stop()
    repos = sorted({i.repository for i in images})
    out.info(f"{registry.dir}: {human(size)}, {len(images)} image(s) in {len(repos)} "
             "repositories")
    for repo in repos:
        tags = sorted((i for i in images if i.repository == repo), key=lambda i: i.created,
                      reverse=True)
        out.info(f"  {repo}: " + ", ".join(f"{i.tag} ({i.created[:19] or '?'})" for i in tags))
    return 0


def run_prune(args: argparse.Namespace) -> int:
    from deployer.shipping.progress import human
    from deployer.shipping.registry import LocalRegistry
    from deployer.shipping.registry_gc import prune

    out = Reporter()
    registry = LocalRegistry()
    report = prune(registry, args.keep, dry_run=args.dry_run)
    verb = "would delete" if args.dry_run else "deleted"
    for image in report.deleted:
        out.info(f"  {verb} {image.repository}:{image.tag} ({image.created[:19] or '?'})")
    freed = "" if args.dry_run else f", freed {human(report.freed)}"
    out.info(f"{registry.dir}: kept {len(report.kept)} image(s), {verb} "
             f"{len(report.deleted)}{freed} ({human(report.bytes_after)} left)")
    return 0
