"""SIGTERM to a sweep's driver, handled as Ctrl+C (SIGINT).

SLURM (``scancel``, the time limit) and Kubernetes (a pod's deletion) stop a process with SIGTERM.
``ray.init`` installs a SIGTERM handler that raises ``SystemExit`` wherever the driver is, which tears
Ray down under Tune and aborts (exit 134, a crash dump). Here SIGTERM takes the path of SIGINT: inside
``tune.run`` it calls Tune's SIGINT handler (Tune saves the experiment state and stops; ``sweep resume``
continues it), elsewhere it raises :class:`Terminated`, a ``KeyboardInterrupt``, so that ``with`` blocks
(the sweep's lock) unwind. The CLI exits 143 (128 + SIGTERM) after it, 130 after SIGINT.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived outside Tune's run loop (``signum``: the signal's number)."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(f"received signal {signum}")
        self.signum = signum


class TermAsInterrupt:
    """Context manager: while active (main thread only), SIGTERM acts as SIGINT; the previous handler is
    restored on exit. ``received`` is SIGTERM's number once it arrived, else None.

    :meth:`install` again after anything that replaces the handler (``ray.init`` does).
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: Any = None
        self._active = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received = signum
        current = signal.getsignal(signal.SIGINT)
        if callable(current) and current is not signal.default_int_handler:
            current(signal.SIGINT, frame)  # Tune's: stop after saving the experiment (then it restores the default)
        else:
            raise Terminated(signum)

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, self._handle)
            if not self._active:
                self._previous, self._active = previous, True

    def __enter__(self) -> "TermAsInterrupt":
        self.install()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._active:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if self._previous is None else self._previous)
            self._active = False
