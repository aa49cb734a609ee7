"""The use cases: the only way either front end (the ``deployer`` CLI, ``mlops-tui``) changes or
reads a deployed stack.

Each action takes an :class:`~deployer.actions.base.ActionContext` (one open connector, the stack,
an event sink) and does the lock, the audit entry and the convergence wait itself. Front ends only
choose arguments and render the events they receive.
"""
