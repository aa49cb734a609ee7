"""Per-stack deploy state on the manager: revisions, the current pointer, the lock, the audit log.

Layout (``$MLOPS_STATE_DIR`` from the manager's environment, else ``~/.mlops``)::

    <state>/<stack>/revisions/<n>/stack.yml   the rendered Swarm file that was deployed
    <state>/<stack>/revisions/<n>/meta.json   hashes (file, values, secrets — never values),
                                              image IDs, who, when, outcome
    <state>/<stack>/current                   the number of the deployed revision
    <state>/<stack>/lock                      the holder of a running deploy (``deployer.lock``)
    <state>/<stack>/audit.log                 one JSON line per action, append-only

The lock (``deployer.lock``) is held by a process on the manager reading the run's heartbeat:
if the deployer dies, its connection drops or its heartbeat stops, that process ends, and the
next run sees a lock whose holder is gone and takes it over (noting it in the audit log). A live
holder is refused with its name and start time; ``--break-lock`` removes any lock.
"""

from __future__ import annotations

import getpass
import json
import socket
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from deployer.connectors.base import Connector
from deployer.errors import MlopsError

STATE_ENV = "MLOPS_STATE_DIR"

# One remote read answers "what is deployed?": the state dir, the current revision and its
# meta, the revision numbers, the lock and whether its holder lives, and the stack's services.
# $1 is the stack name, passed as an argument (never formatted into the script).
READ_SCRIPT = r"""
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



def who() -> str:
    """``user@machine`` of the person running the deployer (for the lock and the audit log)."""
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_kv(text: str) -> dict[str, str]:
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
    values = parse_kv(head)
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
        fields = parse_kv(lock_text)
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
    argv = ["sh", "-c", READ_SCRIPT, "mlops-state", stack, "services" if with_services else "-"]
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
    # Over the open file session: no remote process.
    conn.append_file(line.encode(), f"{state.stack_dir}/audit.log")


def _json(data: Mapping[str, Any]) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()

