"""Which errors of a trial a sweep retries: infrastructure faults yes, deterministic errors no.

Ray Tune retries every error of a trial (``max_failures``: the spec's ``retries``), from its last
checkpoint. An error that the same config meets again on any node gains nothing from that: bad input
(a ``ValueError`` or ``TypeError``, the library's way of refusing a config), missing data
(``DatasetNotFoundError``, a missing file), a full disk or quota, a read-only or forbidden folder. Those
end the trial at once as ``failed`` with one line (``sweep resume --retry-failed`` runs them again once
fixed). Everything else (a lost node or worker, CUDA and I/O errors, an error of unknown kind) may be
the infrastructure's and is retried. The commonest deterministic error, a dataset missing under its
``data_root``, is caught before any trial starts (:func:`check_data`).
"""

from __future__ import annotations

import errno
from collections import Counter
from typing import Any, Iterable, Mapping

#: OSError numbers that a retry on the same storage meets again.
DETERMINISTIC_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOENT})
#: The same, as the texts that libraries put in messages of other types (torch.save, pyarrow).
_DETERMINISTIC_TEXTS = ("No space left on device", "Disk quota exceeded", "Read-only file system")


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from or during (each once)."""
    out: list[BaseException] = []
    while exc is not None and exc not in out:
        out.append(exc)
        exc = exc.__cause__ or exc.__context__
    return out


def is_deterministic(exc: BaseException) -> bool:
    """Whether ``exc`` would happen again on a retry of the same trial: bad input, missing data, a full or
    read-only disk (see the module's docstring). False for what may be an infrastructure fault."""
    for e in _chain(exc):
        if isinstance(e, (ValueError, TypeError)):  # DatasetNotFoundError is a ValueError
            return True
        if isinstance(e, OSError) and e.errno in DETERMINISTIC_ERRNOS:
            return True
        if any(text in str(e) for text in _DETERMINISTIC_TEXTS):
            return True
    return False


def one_line(exc: BaseException, limit: int = 300) -> str:
    """``Type: message`` of ``exc`` on one line, at most ``limit`` characters."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_data(name: str, configs: Iterable[Mapping[str, Any]]) -> None:
    """Check, before any trial starts, that every dataset of the sweep's trial ``configs`` is under its
    ``data_root``; one :class:`svconv.data.DatasetNotFoundError` (a ValueError) listing what is missing.

    On a cluster this runs on the driver's node: the data root must be a path every node mounts there.
    """
    from svconv.data import DatasetNotFoundError, check_data_files

    need = Counter((c["dataset"], c.get("data_root")) for c in configs)
    missing = []
    for (dataset, root), n in need.items():
        try:
            check_data_files(dataset, root)
        except DatasetNotFoundError as exc:
            missing.append(f"{n} trial(s): {exc}")
    if missing:
        raise DatasetNotFoundError(f"sweep {name!r} cannot start, its data is missing: " + "; ".join(missing))
