"""One driver per sweep: a lock file in the sweep's state folder, on the storage every node mounts.

``<storage>/<name>/lock.json`` is written whole to a temporary file, then linked to its name with
``os.link`` (which fails if the name exists: atomic on local file systems and on NFS), so the lock never
exists empty or half-written. It holds who runs the sweep (host, pid, start time, command) and is touched every
:data:`HEARTBEAT_S` seconds while the run lasts. A second ``sweep run``/``resume`` of the same name finds
it and is refused (:class:`SweepLocked`, exit status 2) with the holder's details.

A lock whose holder is gone is recovered, with a warning logged: on the same host when its process no
longer exists (pid and process start time), from another host when its heartbeat is older than
:data:`STALE_AFTER_S` (that host's process cannot be checked from here). A lock file that cannot be read
(left by an older writer killed mid-write, or foreign) is stale once older than :data:`UNREADABLE_STALE_S`.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

LOCK_FILE = "lock.json"
#: Seconds between heartbeats (the lock file's modification time) while a run holds the lock.
HEARTBEAT_S = 30.0
#: A lock from another host whose heartbeat is older than this is taken to be left by a dead run.
STALE_AFTER_S = 600.0
#: An unreadable lock file older than this is taken as left by a writer killed mid-write (locks are
#: written whole, so a live holder's lock is readable; the grace covers a writer on another lock protocol).
UNREADABLE_STALE_S = 5.0


class SweepLocked(ValueError):
    """Another run holds the sweep's lock (a ValueError: the CLI prints it and exits with status 2)."""


@dataclass(frozen=True)
class Holder:
    """Who holds a lock: written into the lock file as JSON."""

    host: str
    pid: int
    started: str  # ISO time (UTC) the lock was taken
    command: str
    proc_start: str | None = None  # the process's start time in /proc (tells a reused pid apart)

    def describe(self) -> str:
        return f"pid {self.pid} on host {self.host}, running since {self.started} ({self.command})"


def _proc_start(pid: int) -> str | None:
    """Field 22 of ``/proc/PID/stat`` (start time in clock ticks since boot); None off Linux or if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _alive_here(holder: Holder) -> bool:
    """Whether the holder's process (on this host) still exists: its pid, with the same start time."""
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        pass
    start = _proc_start(holder.pid)
    return holder.proc_start is None or start is None or start == holder.proc_start


def _load(path: Path) -> Holder | None:
    try:
        return Holder(**json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError):  # half-written or foreign: judged by its age alone
        return _UNREADABLE


_UNREADABLE = Holder(host="?", pid=-1, started="?", command="unreadable lock file")


class SweepLock:
    """The lock of one sweep's state folder ``root``; a context manager around :meth:`acquire`/:meth:`release`.

    Args:
        root: the sweep's state folder (``<storage>/<name>``); created if missing.
        name: the sweep's name (for messages).
        command: what the holder runs (e.g. ``sweep run``), shown to whoever is refused.
    """

    def __init__(self, root: str | os.PathLike, name: str, command: str) -> None:
        self.path = Path(root) / LOCK_FILE
        self.name = name
        self.command = command
        self.holder: Holder | None = None
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    # reading ---------------------------------------------------------------------------------------
    def read(self) -> Holder | None:
        """The current holder, or None without a lock file."""
        return _load(self.path)

    def stale_reason(self, holder: Holder) -> str | None:
        """Why ``holder``'s lock is stale, or None while its run may be alive."""
        if holder is not _UNREADABLE and holder.host == socket.gethostname():
            return None if _alive_here(holder) else f"its process {holder.pid} no longer exists"
        try:
            age = time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return "it is gone"
        if holder is _UNREADABLE:  # locks are written whole: an unreadable one is not being written for long
            if age > UNREADABLE_STALE_S:
                return f"the lock file cannot be read (empty or damaged) and is {age:.0f} s old"
            return None
        if age > STALE_AFTER_S:
            return f"its heartbeat is {age / 60:.0f} min old (a live run touches it every {HEARTBEAT_S:.0f} s)"
        return None

    # taking and giving back ------------------------------------------------------------------------
    def acquire(self) -> "SweepLock":
        """Take the lock, recovering a stale one; :class:`SweepLocked` if a live run holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = Holder(
            host=socket.gethostname(),
            pid=os.getpid(),
            started=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            command=self.command,
            proc_start=_proc_start(os.getpid()),
        )
        for _ in range(5):  # a few rounds: another process may recover the same stale lock at once
            tmp = self.path.with_name(f"{LOCK_FILE}.new.{socket.gethostname()}.{os.getpid()}")
            with open(tmp, "w") as f:  # the content first, then the name: never an empty lock
                json.dump(asdict(me), f)
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, self.path)
            except FileExistsError:
                holder = self.read()
                if holder is None:
                    continue  # released in between
                reason = self.stale_reason(holder)
                if reason is None:
                    raise SweepLocked(
                        f"sweep {self.name!r} is already running: {holder.describe()}; lock {self.path}. "
                        "Wait for it to end, or stop it; a lock left by a dead run is recovered by the next run"
                    ) from None
                self._recover(holder, reason)
                continue
            finally:
                tmp.unlink(missing_ok=True)
            self.holder = me
            self._stop.clear()
            self._beat = threading.Thread(target=self._heartbeat, name=f"sweep-lock-{self.name}", daemon=True)
            self._beat.start()
            return self
        raise SweepLocked(f"sweep {self.name!r}: could not take the lock {self.path} (others keep taking it)")

    def _recover(self, holder: Holder, reason: str) -> None:
        """Remove a stale lock; a rename first, so two recovering processes cannot both remove a fresh one."""
        aside = self.path.with_name(f"{LOCK_FILE}.stale.{os.getpid()}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        if _load(aside) != holder:  # someone took a fresh lock after we read the stale one: put it back
            try:
                os.link(aside, self.path)
            except FileExistsError:
                pass
            aside.unlink(missing_ok=True)
            return
        aside.unlink(missing_ok=True)
        logger.warning("recovered the lock of sweep %r left by %s: %s", self.name, holder.describe(), reason)

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                os.utime(self.path)
            except OSError:
                pass  # the storage is away for a moment; the next beat tries again

    def release(self) -> None:
        """Give the lock back (only if this process still holds it)."""
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
            self._beat = None
        if self.holder is not None and self.read() == self.holder:
            self.path.unlink(missing_ok=True)
        self.holder = None

    def __enter__(self) -> "SweepLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()
