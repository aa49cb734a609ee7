"""The project's exceptions: one root, each carrying a title and the fix to show the user."""

from __future__ import annotations


class MlopsError(Exception):
    """Root of every error the deployer and the dashboard report to a user.

    ``title`` is a one-line summary; ``fix`` says what the user can do about it.
    """

    title: str = "error"
    #: Process exit code when this error ends a CLI run (Ansible-like: 2 bad input, 4 unreachable).
    exit_code: int = 1

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def render(self) -> str:
        """The text shown to a user: the message, then the fix on its own line."""
        text = f"{self.title}: {self.message}"
        if self.fix:
            text += f"\n  fix: {self.fix}"
        return text


class ConfigError(MlopsError):
    """A values file, inventory or command-line setting is wrong."""

    title = "configuration error"
    exit_code = 2


class ValuesError(ConfigError):
    """A values file or ``--set`` is wrong; names the file, the key path and the line if known."""

    title = "invalid values"

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        key: str | None = None,
        line: int | None = None,
        fix: str | None = None,
    ) -> None:
        where = source or "<values>"
        if line is not None:
            where += f":{line}"
        if key:
            where += f": {key}"
        super().__init__(f"{where}: {message}", fix=fix)
        self.source = source
        self.key = key
        self.line = line


class RenderError(MlopsError):
    """A rendered file failed validation (a template bug or an invalid combination of values)."""

    title = "render failed"


class ConnectError(MlopsError):
    """A host could not be reached or authenticated."""

    title = "cannot connect"
    exit_code = 4

    def __init__(self, host: str, reason: str, *, fix: str | None = None) -> None:
        super().__init__(f"{host}: {reason}", fix=fix)
        self.host = host
        self.reason = reason


class ConnectionLost(ConnectError):
    """An open connection to a host died mid-run; the message says what was going on then."""

    title = "connection lost"


class CommandError(MlopsError):
    """A command run on a host exited non-zero."""

    title = "command failed"

    def __init__(
        self, argv: list[str], returncode: int, stderr: str, *, host: str = "local",
        fix: str | None = None,
    ) -> None:
        tail = stderr.strip().splitlines()[-5:]
        detail = "\n    ".join(tail) if tail else "(no output)"
        super().__init__(
            f"{host}: `{argv[0]} {argv[1] if len(argv) > 1 else ''}` exited {returncode}:\n    "
            f"{detail}",
            fix=fix,
        )
        self.argv = argv
        self.returncode = returncode
        self.stderr = stderr
        self.host = host


class DockerError(MlopsError):
    """The Docker engine refused or failed a request (its HTTP status and own words kept, for
    callers that tell "not found" from other refusals)."""

    title = "docker error"

    def __init__(self, message: str, *, fix: str | None = None, status: int | None = None,
                 explanation: str = "", host: str = "") -> None:
        super().__init__(message, fix=fix)
        self.status = status
        self.explanation = explanation
        self.host = host  # whose engine said it


class DeployError(MlopsError):
    """A deploy did not converge, or a step of it failed."""

    title = "deploy failed"


class LockHeldError(DeployError):
    """Another deploy holds the stack's lock."""

    title = "stack is locked"


class BuildError(MlopsError):
    """An image build failed; names the service and the failing step."""

    title = "build failed"

    def __init__(
        self, message: str, *, service: str, step: str | None = None, fix: str | None = None
    ) -> None:
        super().__init__(message, fix=fix)
        self.service = service
        self.step = step


class ComposeError(MlopsError):
    """No usable compose CLI, or a compose command failed."""

    title = "compose unavailable"
