"""The stack's deploy lock on its manager: taken atomically, held with a heartbeat, freed when
the run ends, its connection closes, or the heartbeat stops for the lease (a cut link).

The lock file lives in the stack's state folder (``deployer.state``) and names its holder
process on the manager, who holds it and since when; ``--break-lock`` removes any lock.
"""

from __future__ import annotations

import threading
import uuid
from typing import TYPE_CHECKING, Any

from deployer.errors import DeployError, LockHeldError
from deployer.state import READ_SCRIPT, LockInfo, now_iso, parse_kv, parse_state, who

if TYPE_CHECKING:
    from deployer.connectors.base import Connector
    from deployer.state import StackState


class LockLost(DeployError):
    """The deploy lock was lost while a run held it."""


# Take the lock atomically (noclobber = O_EXCL), or report the live holder; a lock whose holder
# process is gone is replaced. Then hold it while the run's heartbeat arrives on stdin (a byte
# every HEARTBEAT_SECONDS): when the run ends, its connection closes (EOF), or nothing arrives for
# $6 seconds (a cut the manager's sshd has not noticed: without ClientAlive settings it keeps a
# dead session for hours), the shell (whose pid the lock names) removes the lock. If even the
# shell is killed, the pid is dead and the next run takes the lock over. Without a working
# `timeout N` (a very bare manager, or busybox before 1.30, which wants `timeout -t N`) only EOF
# ends it. A lapsed lease is said (EXPIRED) for a holder that is still there to read it. With
# $7 (state.READ_SCRIPT) the stack's state, as now locked, follows LOCKED: one process, not two.
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
if [ -n "$7" ]; then sh -c "$7" mlops-state "$8" -; echo "--end-state--"; fi
if timeout 1 true 2>/dev/null && command -v dd >/dev/null 2>&1; then
  while :; do
    beat=$(timeout "$6" dd bs=1 count=1 2>/dev/null) || { echo "EXPIRED"; break; }
    [ -n "$beat" ] || break
  done
else
  cat >/dev/null
fi
grep -q "^run=$4\$" "$s/lock" && rm -f "$s/lock"
exit 0
"""


#: The holder sends a byte this often; the manager frees the lock after LEASE_SECONDS without one.
#: The lease is six heartbeats: a byte can queue behind image data on a slow uplink.
HEARTBEAT_SECONDS = 10.0
LEASE_SECONDS = 60


class DeployLock:
    """The stack's deploy lock, held for the lifetime of this object's channel."""

    def __init__(self, conn: Connector, state: StackState, *, break_lock: bool = False,
                 read_state: bool = False) -> None:
        """``read_state``: the state is read again once locked (``self.state``), by the same
        remote process."""
        self._conn = conn
        self._state = state
        self._break = break_lock
        self._read = read_state
        #: The stack's state read under the lock (with ``read_state``).
        self.state: StackState | None = None
        self._thread: threading.Thread | None = None
        self._release = threading.Event()
        self._ready = threading.Event()
        self._lines: list[str] = []
        self._code: int | None = None
        self.stale: LockInfo | None = None
        self.run_id = uuid.uuid4().hex[:12]
        self._expired = threading.Event()  # the manager freed the lock while we held it

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
            READ_SCRIPT if self._read else "", self._state.stack,
        ]
        ready_at = "--end-state--" if self._read else "LOCKED"

        def on_line(line: str) -> None:
            self._lines.append(line)
            if line in (ready_at, "HELD"):
                self._ready.set()
            elif line == "EXPIRED":
                self._expired.set()

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
            fields = parse_kv("\n".join(self._lines[self._lines.index("STALE") + 1 :]))
            self.stale = LockInfo(fields.get("holder", "?"), fields.get("since", "?"),
                                  fields.get("pid", ""), alive=False)
        if "LOCKED" in self._lines:
            if "--end-state--" in self._lines:
                start = self._lines.index("LOCKED") + 1
                text = "\n".join(self._lines[start:self._lines.index("--end-state--")])
                self.state = parse_state(self._state.stack, text)
            return self
        self._release.set()
        if self._thread:
            self._thread.join(timeout=10)
        if "HELD" in self._lines:
            fields = parse_kv("\n".join(self._lines[self._lines.index("HELD") + 1 :]))
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

    def check(self) -> None:
        """Raise ``LockLost`` if the lock is no longer ours: the manager let its lease lapse
        (this run was suspended, or its heartbeat held up, past LEASE_SECONDS) or the holder
        process ended; another run may have taken it since."""
        if self._release.is_set() or self._thread is None:
            return
        if self._expired.is_set() or not self._thread.is_alive():
            why = ("its lease lapsed (no heartbeat for "
                   f"{LEASE_SECONDS} s)" if self._expired.is_set() else "its holder ended")
            raise LockLost(f"lost the deploy lock of stack {self._state.stack!r}: {why}; "
                           "stopped before the next step, as another run may hold it now",
                           fix="`deployer history` and `deployer status` show what is "
                           "deployed; rerun to finish")

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
