"""`deployer models`: what the model services serve and the registry's versions (list), and
`promote MODEL VERSION` (move the alias the services load). Parsing and output only; the work
is in ``deployer.actions.models``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deployer.commands.arguments import inherit_options
from deployer.commands.hosts import (
    action_context,
    add_action_arguments,
    each_host,
    stack_name,
    table,
)
from deployer.commands.targets import hosts_of, open_connector
from deployer.options import MODEL_INPUT_SCALINGS as INPUT_SCALINGS
from deployer.options import MODEL_OUTPUTS as OUTPUTS
from deployer.output import Reporter

if TYPE_CHECKING:
    from deployer.actions.base import ActionContext
    from deployer.actions.models import Endpoint
    from deployer.inventory import Host

SERVED_COLUMNS = ("SERVICE", "MODEL", "VERSION", "ALIAS", "METRICS")
VERSION_COLUMNS = ("MODEL", "VERSION", "ALIASES", "CREATED", "RUN", "METRICS")


def register(subparsers: Any) -> None:
    """Add `models` with `ls` (the default), `promote` and `register`."""
    p = subparsers.add_parser(
        "models", help="served model versions and the registry's; promote one",
        description="List what each model service serves now (model, version, alias, "
        "metrics) and the registry's versions of those models; or promote a version to the "
        "alias the services load (they switch on their next poll, no restart). MLflow and "
        "the services are reached through the connection (SSH to the manager).",
    )
    sub = p.add_subparsers(dest="models_command", metavar="ACTION")
    _options(p)
    p.set_defaults(func=run_list, read_only=True)
    q = sub.add_parser("ls", help="list served models and registered versions (the default)")
    _options(q)
    q.set_defaults(func=run_list, read_only=True)
    q = sub.add_parser("promote", help="point MODEL@champion (or --alias) at VERSION")
    q.add_argument("model", metavar="MODEL", help="registered model name, e.g. titanic-rf")
    q.add_argument("version", metavar="VERSION", help="its version number")
    q.add_argument("--alias", default="champion", help="the alias to move (default: champion)")
    _options(q, mutating=True)
    q.set_defaults(func=run_promote, read_only=False)
    _register_parser(sub)
    inherit_options(p, list(sub.choices.values()))  # `models --host H promote M V` too


def _options(parser: argparse.ArgumentParser, *, mutating: bool = False) -> None:
    add_action_arguments(parser, mutating=mutating)
    parser.add_argument("--endpoint", dest="endpoints", action="append", default=[],
                        metavar="SERVICE=HOST:PORT",
                        help="where mlflow-server, sklearn-model or cnn-image answers as the "
                        "manager reaches it (default: the stack's published port on the "
                        "manager; repeatable)")


def _register_parser(sub: Any) -> None:
    q = sub.add_parser(
        "register", help="register a Keras model file as a new cifar10-cnn version",
        description="Register a Keras model file (.h5/.keras, 32x32 RGB in, 10 outputs) as a "
        "new version of the stack's CNN model, its provenance as version tags, and point "
        "--alias at it; then wait until cnn-image serves it. It runs `python -m "
        "cnn_image.register` in a one-off container of cnn-image's own image beside the "
        "stack on its host (over SSH for a manager): nothing to install here but the "
        "deployer, no port opened, nothing left running.")
    q.add_argument("file", metavar="FILE", type=Path, help="the Keras model file")
    q.add_argument("--outputs", required=True, choices=OUTPUTS,
                   help="what its last layer gives (logits: a softmax is added)")
    q.add_argument("--input-scaling", required=True, choices=INPUT_SCALINGS,
                   help="the pixel range it was trained on")
    q.add_argument("--source", required=True, help="where it comes from (a version tag)")
    q.add_argument("--licence", required=True, help="its licence (a version tag)")
    q.add_argument("--alias", default="champion",
                   help="the alias to point at it (default: champion, the one served)")
    q.add_argument("--if-missing", action="store_true",
                   help="do nothing when the alias already points at a version")
    q.add_argument("--class-names", metavar="A,B,...",
                   help="in output order (default: CIFAR-10's ten classes)")
    _options(q, mutating=True)
    q.set_defaults(func=run_register, read_only=False)


def _endpoints(args: argparse.Namespace) -> dict[str, Endpoint]:
    from deployer.actions.models import parse_endpoints

    return parse_endpoints(args.endpoints)


def _metrics(metrics: Any) -> str:
    return ", ".join(f"{k}={v:.3f}" for k, v in sorted(metrics.items())) or "-"


def run_list(args: argparse.Namespace) -> int:
    from deployer.actions.models import overview

    endpoints = _endpoints(args)
    reporter = Reporter(verbose=args.verbose)
    for host in hosts_of(args):
        stack = stack_name(host, args)
        with open_connector(host) as conn:
            found = overview(action_context(conn, stack, args, reporter), endpoints=endpoints)
        print(f"[{conn.host}] stack {stack}: served models")
        print(table([(s.service, s.name or "-", s.version or "-", s.alias or "-",
                       s.problem or _metrics(s.metrics)) for s in found.served],
                     SERVED_COLUMNS))
        rows = [(m.name, v.version, ", ".join(v.aliases) or "-",
                 v.created.strftime("%Y-%m-%d %H:%M"), v.run_id[:12] or "-",
                 _metrics(v.metrics))
                for m in found.registry for v in m.versions]
        print(f"\n[{conn.host}] registered versions")
        print(table(rows, VERSION_COLUMNS))
        for name in found.missing:
            print(f"  {name}: not registered yet")
    return 0


def run_promote(args: argparse.Namespace) -> int:
    from deployer.actions.models import promote

    endpoints = _endpoints(args)

    def action(ctx: ActionContext, host: Host) -> object:
        return promote(ctx, args.model, args.version, alias=args.alias, endpoints=endpoints)

    return each_host(args, Reporter(verbose=args.verbose), "promote", action)


def run_register(args: argparse.Namespace) -> int:
    from deployer.actions.model_register import (
        RegisterRequest,
        check_request,
        read_model_file,
        register_model,
    )

    endpoints = _endpoints(args)
    req = RegisterRequest(read_model_file(args.file), args.outputs, args.input_scaling,
                          args.source, args.licence, alias=args.alias or None,
                          if_missing=args.if_missing, class_names=args.class_names)
    check_request(req)  # before any host

    def action(ctx: ActionContext, host: Host) -> object:
        return register_model(ctx, req, endpoints=endpoints)

    return each_host(args, Reporter(verbose=args.verbose), "register-model", action)
