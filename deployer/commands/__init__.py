"""One module per `deployer` sub-command; each exposes ``register(subparsers)``.

``register`` adds its parser(s) and sets ``func`` (a callable taking the parsed namespace and
returning an exit code) as the parser default. ``deployer.cli`` only wires them together.
"""
