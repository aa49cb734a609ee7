"""Per-stack deploy state on the manager: revisions, the current pointer, the lock, the audit log.

Layout (``$MLOPS_STATE_DIR`` from the manager's environment, else ``~/.mlops``)::

    <state>/<stack>/revisions/<n>/stack.yml   the rendered Swarm file that was deployed
    <state>/<stack>/revisions/<n>/meta.json   hashes (file, values, secrets — never values),
                                              image IDs, who, when, outcome
    <state>/<stack>/current                   the number of the deployed revision
    <state>/<stack>/lock                      the holder of a running deploy (see ``DeployLock``)
    <state>/<stack>/audit.log                 one JSON line per action, append-only

The lock is held by a process on the manager (a ``cat`` waiting on the SSH channel of the run):
if the deployer dies or its connection drops, that process ends, and the next run sees a lock
whose holder is gone and takes it over (noting it in the audit log). A live holder is refused
with its name and start time; ``--break-lock`` removes any lock.
"""

from __future__ import annotations

import getpass
import json
import socket
import threading
import uuid
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from deployer.connectors.base import Connector
from deployer.errors import DeployError, LockHeldError, MlopsError

STATE_ENV = "MLOPS_STATE_DIR"

# One remote read answers "what is deployed?": the state dir, the current revision and its
# meta, the revision numbers, the lock and whether its holder lives, and the stack's services.
# $1 is the stack name, passed as an argument (never formatted into the script).
_READ_SCRIPT = r"""
d="${MLOPS_STATE_DIR:-$HOME/.mlops}"; s="$d/$1"
echo "dir=$d"
cur=$(cat "$s/current" 2>/dev/null)
echo "current=$cur"
echo "revisions=$(ls "$s/revisions" 2>/dev/null | tr '\n' ' ')"
if [ -f "$s/lock" ]; then
  pid=$(sed -n 's/^pid=//p' "$s/lock")
  alive=0; if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then alive=1; fi
  echo "lock_alive=$alive"
  echo "--lock--"; cat "$s/lock"
fi
echo "--meta--"
if [ -n "$cur" ]; then cat "$s/revisions/$cur/meta.json" 2>/dev/null; fi
echo "--services--"
if [ "$2" = "services" ]; then
  docker service ls --filter "label=com.docker.stack.namespace=$1" --format '{{.Name}}' 2>&1 \
    || echo "!error"
fi
"""

# Take the lock atomically (noclobber = O_EXCL), or report the live holder; a lock whose holder
# process is gone is replaced. Then hold it while the run's heartbeat arrives on stdin (a byte
# every HEARTBEAT_SECONDS): when the run ends, its connection closes (EOF), or nothing arrives for
# $6 seconds (a cut the manager's sshd has not noticed: without ClientAlive settings it keeps a
# dead session for hours), the shell (whose pid the lock names) removes the lock. If even the
# shell is killed, the pid is dead and the next run takes the lock over. Without `timeout`
# (a very bare manager) only EOF ends it, as before.
_LOCK_SCRIPT = r"""
s="$1"; mkdir -p "$s" || exit 3
take() {
  ( set -C; printf 'pid=%s\nholder=%s\nsince=%s\nrun=%s\n' "$$" "$2" "$3" "$4" >"$s/lock" ) \
    2>/dev/null
}
if ! take "$@"; then
  pid=$(sed -n 's/^pid=//p' "$s/lock" 2>/dev/null)
  if [ "$5" != "break" ] && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    echo "HELD"; cat "$s/lock"; exit 2
  fi
  echo "STALE"; cat "$s/lock" 2>/dev/null; rm -f "$s/lock"
  take "$@" || { echo "HELD"; cat "$s/lock"; exit 2; }
fi
echo "LOCKED"
if command -v timeout >/dev/null 2>&1 && command -v dd >/dev/null 2>&1; then
  while beat=$(timeout "$6" dd bs=1 count=1 2>/dev/null) && [ -n "$beat" ]; do :; done
else
  cat >/dev/null
fi
grep -q "^run=$4\$" "$s/lock" && rm -f "$s/lock"
exit 0
"""


def who() -> str:
    """``user@machine`` of the person running the deployer (for the lock and the audit log)."""
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_kv(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


@dataclass(frozen=True)
class LockInfo:
    holder: str
    since: str
    pid: str
    alive: bool

    def describe(self) -> str:
        return f"{self.holder} since {self.since}"


@dataclass(frozen=True)
class StackState:
    """What the manager's state directory says about a stack (one remote read)."""

    stack: str
    state_dir: str
    current: int | None
    revisions: tuple[int, ...]
    meta: Mapping[str, Any] | None
    lock: LockInfo | None
    #: Names of the stack's live services (None if not asked for or unknown).
    live_services: tuple[str, ...] | None = None

    @property
    def stack_dir(self) -> str:
        return f"{self.state_dir}/{self.stack}"

    @property
    def next_revision(self) -> int:
        return max(self.revisions, default=0) + 1

    def revision_dir(self, number: int) -> str:
        return f"{self.stack_dir}/revisions/{number}"


def parse_state(stack: str, output: str) -> StackState:
    """Parse the output of the read script (pure; tests feed it text)."""
    head, _, rest = output.partition("--meta--")
    lock_text = ""
    if "--lock--" in head:
        head, _, lock_text = head.partition("--lock--")
    meta_text, _, services_text = rest.partition("--services--")
    values = _parse_kv(head)
    current = values.get("current") or ""
    revisions = tuple(sorted(int(r) for r in values.get("revisions", "").split() if r.isdigit()))
    meta: dict[str, Any] | None = None
    if meta_text.strip():
        try:
            meta = json.loads(meta_text)
        except json.JSONDecodeError:
            meta = None  # a damaged meta counts as "unknown": the next push redeploys
    lock = None
    if lock_text.strip():
        fields = _parse_kv(lock_text)
        lock = LockInfo(
            holder=fields.get("holder", "?"),
            since=fields.get("since", "?"),
            pid=fields.get("pid", ""),
            alive=values.get("lock_alive") == "1",
        )
    services: tuple[str, ...] | None = None
    lines = [line.strip() for line in services_text.splitlines() if line.strip()]
    if lines and "!error" not in lines:
        services = tuple(lines)
    elif not lines:
        services = ()
    return StackState(
        stack=stack,
        state_dir=values.get("dir", ""),
        current=int(current) if current.isdigit() else None,
        revisions=revisions,
        meta=meta,
        lock=lock,
        live_services=services,
    )


# The state directory each open connection has reported ($MLOPS_STATE_DIR of the manager does not
# change while a connection is open), so later reads on it can skip the remote command.
_STATE_DIRS: weakref.WeakKeyDictionary[Connector, str] = weakref.WeakKeyDictionary()


def read_state(conn: Connector, stack: str, *, with_services: bool = True) -> StackState:
    """Read the stack's state in one remote command."""
    argv = ["sh", "-c", _READ_SCRIPT, "mlops-state", stack, "services" if with_services else "-"]
    result = conn.run(argv)
    state = parse_state(stack, result.stdout)
    if state.state_dir:
        _STATE_DIRS[conn] = state.state_dir
    return state


def read_state_quick(
    conn: Connector, stack: str, live_services: Callable[[], Iterable[str]]
) -> StackState | None:
    """The deployed revision and its meta read over the connection's open file session, the live
    service names from ``live_services`` (e.g. one Docker API call): no remote command.

    ``None`` until ``read_state`` ran once on this connection (it learns the state directory), or
    when no revision is deployed. The lock and the revision list are not read: the result is
    enough for the no-op test (``operations.inputs_unchanged``), not for planning.
    """
    state_dir = _STATE_DIRS.get(conn)
    if state_dir is None:
        return None
    stack_dir = f"{state_dir}/{stack}"
    raw = conn.get_file(f"{stack_dir}/current")
    current = raw.decode(errors="replace").strip() if raw else ""
    if not current.isdigit():
        return None
    raw_meta = conn.get_file(f"{stack_dir}/revisions/{current}/meta.json")
    try:
        meta = json.loads(raw_meta) if raw_meta else None
    except json.JSONDecodeError:
        meta = None
    return StackState(stack=stack, state_dir=state_dir, current=int(current), revisions=(),
                      meta=meta, lock=None, live_services=tuple(live_services()))


#: The holder sends a byte this often; the manager frees the lock after LEASE_SECONDS without one.
HEARTBEAT_SECONDS = 10.0
LEASE_SECONDS = 45


class DeployLock:
    """The stack's deploy lock, held for the lifetime of this object's channel."""

    def __init__(self, conn: Connector, state: StackState, *, break_lock: bool = False) -> None:
        self._conn = conn
        self._state = state
        self._break = break_lock
        self._thread: threading.Thread | None = None
        self._release = threading.Event()
        self._ready = threading.Event()
        self._lines: list[str] = []
        self._code: int | None = None
        self.stale: LockInfo | None = None
        self.run_id = uuid.uuid4().hex[:12]

    @property
    def path(self) -> str:
        return f"{self._state.stack_dir}/lock"

    def _stdin(self) -> Any:
        # The heartbeat, until released; then the stream ends and the manager frees the lock.
        while not self._release.wait(HEARTBEAT_SECONDS):
            yield b"."

    def acquire(self) -> DeployLock:
        """Take the lock or raise ``LockHeldError`` naming the holder and since when."""
        argv = [
            "sh", "-c", _LOCK_SCRIPT, "mlops-lock", self._state.stack_dir, who(), now_iso(),
            self.run_id, "break" if self._break else "-", str(LEASE_SECONDS),
        ]

        def on_line(line: str) -> None:
            self._lines.append(line)
            if line in ("LOCKED", "HELD"):
                self._ready.set()

        def hold() -> None:
            try:
                result = self._conn.run(argv, stdin=self._stdin(), check=False, on_line=on_line)
                self._code = result.returncode
            except Exception:  # noqa: BLE001 - reported through _code below
                self._code = -1
            finally:
                self._ready.set()

        self._thread = threading.Thread(target=hold, name="deploy-lock", daemon=True)
        self._thread.start()
        self._ready.wait(timeout=60)
        if "STALE" in self._lines:
            fields = _parse_kv("\n".join(self._lines[self._lines.index("STALE") + 1 :]))
            self.stale = LockInfo(fields.get("holder", "?"), fields.get("since", "?"),
                                  fields.get("pid", ""), alive=False)
        if "LOCKED" in self._lines:
            return self
        self._release.set()
        if self._thread:
            self._thread.join(timeout=10)
        if "HELD" in self._lines:
            fields = _parse_kv("\n".join(self._lines[self._lines.index("HELD") + 1 :]))
            holder = LockInfo(fields.get("holder", "?"), fields.get("since", "?"),
                              fields.get("pid", ""), alive=True)
            fix = "wait for it to finish; if that deploy is really dead, rerun with --break-lock"
            if holder.holder == who():
                # Most often a run of ours whose connection was cut: the manager frees the
                # lock once that run's heartbeat has been missing for LEASE_SECONDS.
                fix = ("that is you, from this machine: if no other run of yours is going on "
                       "(e.g. the one holding it lost its connection), the lock frees itself "
                       f"{LEASE_SECONDS} s after that run went silent; or rerun with --break-lock")
            raise LockHeldError(
                f"stack {self._state.stack!r} is being deployed by {holder.describe()}",
                fix=fix,
            )
        raise DeployError(
            f"could not take the deploy lock {self.path}: {' '.join(self._lines) or 'no answer'}"
        )

    def release(self) -> None:
        """End the holder process, which removes the lock file."""
        if self._thread is None:
            return
        self._release.set()
        self._thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> DeployLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


@dataclass
class Revision:
    """A revision to record: the deployed file and its meta."""

    number: int
    stack_file: str
    meta: dict[str, Any] = field(default_factory=dict)


def write_revision(conn: Connector, state: StackState, revision: Revision) -> str:
    """Upload the revision's stack file and meta; returns the stack file's path on the manager."""
    base = state.revision_dir(revision.number)
    try:
        conn.put_file(revision.stack_file.encode(), f"{base}/stack.yml", 0o600)
        conn.put_file(_json(revision.meta), f"{base}/meta.json", 0o600)
    except MlopsError:
        # No half-written revision stays behind (e.g. a full disk): `history` would list a
        # folder without its stack file or meta, and a rollback to it could only fail.
        try:
            conn.run(["rm", "-rf", "--", base], check=False)
        except MlopsError:
            pass  # the connection is gone: the error being raised says so
        raise
    return f"{base}/stack.yml"


def update_meta(conn: Connector, state: StackState, number: int, meta: Mapping[str, Any]) -> None:
    conn.put_file(_json(meta), f"{state.revision_dir(number)}/meta.json", 0o600)


def set_current(conn: Connector, state: StackState, number: int) -> None:
    conn.put_file(f"{number}\n".encode(), f"{state.stack_dir}/current", 0o644)


def read_revision(conn: Connector, state: StackState, number: int) -> Revision | None:
    base = state.revision_dir(number)
    text = conn.get_file(f"{base}/stack.yml")
    if text is None:
        return None
    raw_meta = conn.get_file(f"{base}/meta.json")
    meta = json.loads(raw_meta) if raw_meta else {}
    return Revision(number, text.decode(), meta)


def audit(conn: Connector, state: StackState, action: str, **details: Any) -> None:
    """Append one JSON line to the stack's audit log (never secret values)."""
    entry = {"time": now_iso(), "who": who(), "action": action, **details}
    line = json.dumps(entry, sort_keys=True) + "\n"
    conn.run(["sh", "-c", 'mkdir -p "$(dirname "$1")" && cat >> "$1"', "mlops-audit",
              f"{state.stack_dir}/audit.log"], stdin=line)


def _json(data: Mapping[str, Any]) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()

