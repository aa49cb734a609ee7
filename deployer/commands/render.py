"""`deployer render` (values -> validated stack files) and `deployer schema` (JSON Schema)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from deployer.errors import ConfigError
from deployer.options import FILENAMES, RENDER_TARGETS


def add_values_arguments(parser: argparse.ArgumentParser) -> None:
    """The values options shared by every command that renders (-f, --set, defaults check)."""
    parser.add_argument(
        "-f", "--values", dest="values_files", action="append", type=Path, default=[],
        metavar="FILE", help="values overlay (repeatable; later files win)",
    )
    parser.add_argument(
        "--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
        help="override one value, e.g. services.minio.replicas=2 (repeatable; typed as YAML)",
    )
    parser.add_argument(
        "--allow-default-credentials", action="store_true",
        help="accept the well-known default S3/postgres credentials with environment production",
    )


def register(subparsers: Any) -> None:
    """Add the `render` and `schema` sub-commands."""
    p = subparsers.add_parser(
        "render", help="render docker-compose.yml, swarm-stack.yml and .env.example",
        description="Render the stack from the shipped defaults, -f overlays and --set values. "
        "Every file is validated before anything is written; files are replaced atomically.",
    )
    p.add_argument(
        "--target", choices=[*RENDER_TARGETS, "all"], default="all",
        help="which file to render (default: all)",
    )
    add_values_arguments(p)
    out = p.add_mutually_exclusive_group(required=True)
    out.add_argument("-o", "--output-dir", type=Path, metavar="DIR",
                     help="write the files into DIR (created if missing)")
    out.add_argument("--stdout", action="store_true", help="print instead of writing")
    p.set_defaults(func=run_render)

    s = subparsers.add_parser(
        "schema", help="print the JSON Schema of the values file",
        description="Print the JSON Schema of values files (for editor completion).",
    )
    s.add_argument("-o", "--output", type=Path, metavar="FILE", help="write to FILE instead")
    s.set_defaults(func=run_schema)


def run_render(args: argparse.Namespace) -> int:
    """Render the requested target(s); nothing is written unless every file validates."""
    from deployer.render import TARGETS, RenderedFile, Target, render, write_files
    from deployer.resources import services_dir
    from deployer.values import load_values

    values = load_values(
        args.values_files, args.sets, allow_default_credentials=args.allow_default_credentials
    )
    out_dir: Path | None = args.output_dir
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"{out_dir}: exists and is not a directory",
                          fix="pass a directory to -o")
    # Compose resolves build contexts relative to the file's folder: point them at the
    # services this deployer ships, as seen from where the file lands.
    base = out_dir if out_dir is not None else Path.cwd()
    build_root = Path(os.path.relpath(services_dir(), base.resolve())).as_posix()
    targets: list[Target] = list(TARGETS) if args.target == "all" else [args.target]
    files: list[RenderedFile] = [render(values, t, build_root=build_root) for t in targets]
    if out_dir is None:
        for f in files:
            if len(files) > 1:
                print(f"# ==> {f.filename} <==")
            sys.stdout.write(f.text)
        return 0
    for path in write_files(files, out_dir):
        print(f"wrote {path}")
    return 0


def run_schema(args: argparse.Namespace) -> int:
    """Print (or write) the values JSON Schema."""
    from deployer.render import RenderedFile, write_files
    from deployer.values import json_schema

    text = json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
    if args.output is None:
        sys.stdout.write(text)
        return 0
    write_files([RenderedFile("env", args.output.name, text)], args.output.parent)
    return 0


__all__ = ["FILENAMES", "add_values_arguments", "register", "run_render", "run_schema"]
