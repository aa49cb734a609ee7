"""The build options ``deployer build``, ``rebuild`` and ``compose up --build`` share: one table,
so the same inputs give the same content-hash tags whichever command built them."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from deployer.build import BuildOptions

BUILDERS = ("auto", "buildkit", "legacy")


def add_build_options(parser: argparse.ArgumentParser, title: str = "build") -> None:
    group = parser.add_argument_group(title)
    group.add_argument("--base-image", metavar="IMAGE",
                       help="BASE_IMAGE build argument (default: build.base_image of the values)")
    group.add_argument("--ca-cert", dest="ca_certs", action="append", type=Path, default=[],
                       metavar="FILE", help="extra CA certificate (PEM) installed in the images, "
                       "e.g. a TLS-intercepting proxy's (repeatable; give the same ones as the "
                       "first build to reuse its layers)")
    group.add_argument("--no-cache", action="store_true",
                       help="build even if the content hash is already built, without the "
                       "builder's layer cache")
    group.add_argument("--builder", choices=BUILDERS, default="auto",
                       help="BuildKit (docker buildx; cache mounts keep pip's downloads between "
                       "builds) or the legacy builder; auto: BuildKit where the docker CLI has "
                       "buildx (default: %(default)s)")
    group.add_argument("--context-dir", type=Path, metavar="DIR",
                       help="folder holding <service>/Dockerfile (default: the shipped services/)")


def build_options(args: argparse.Namespace) -> BuildOptions:
    from deployer.build import BuildOptions

    return BuildOptions(base_image=args.base_image, ca_certs=tuple(args.ca_certs),
                        no_cache=args.no_cache, context_dir=args.context_dir,
                        builder=args.builder)
