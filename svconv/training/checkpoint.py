"""Per-epoch checkpoints of a trial: ``<dir>/epoch_NNNN.pt``, written atomically, only the latest kept.

A checkpoint holds everything needed to continue as if never stopped: model, optimiser, schedule,
AMP scaler, the SV method's own state (e.g. warm power-iteration vectors), the epoch history, the
global step, the divergence reference and the time spent so far. Shuffling and augmentation are
re-seeded per epoch from the trial seed, so a resumed trial sees the same batches.

A checkpoint that cannot be read (truncated, zero bytes, not a checkpoint) is skipped with a warning
naming it: :func:`load_latest_readable` falls back to the newest readable one, or to none.
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from pathlib import Path
from typing import Any, Iterable

import torch

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^epoch_(\d+)\.pt$")


def checkpoint_path(directory: str | os.PathLike, epoch: int) -> Path:
    """Where the checkpoint after ``epoch`` (1-based) lives."""
    return Path(directory) / f"epoch_{epoch:04d}.pt"


def checkpoints(directory: str | os.PathLike | None) -> list[Path]:
    """The checkpoints in ``directory``, newest (highest epoch) first; none without a directory."""
    if directory is None or not Path(directory).is_dir():
        return []
    found = [(int(m.group(1)), p) for p in Path(directory).iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def latest_checkpoint(directory: str | os.PathLike | None) -> Path | None:
    """The checkpoint with the highest epoch in ``directory``; None if there is none (or no directory)."""
    found = checkpoints(directory)
    return found[0] if found else None


def load_latest_readable(
    paths: Iterable[str | os.PathLike], map_location: torch.device | str = "cpu"
) -> tuple[Path, dict[str, Any]] | None:
    """``(path, state)`` of the first of ``paths`` (newest first) that loads; None if none does.

    Each one that cannot be read is logged as a warning with the file and why, so a damaged checkpoint
    costs the epochs since the previous one (or a fresh start), never the trial.
    """
    paths = [Path(p) for p in paths]
    for i, path in enumerate(paths):
        try:
            return path, load_checkpoint(path, map_location=map_location)
        except Exception as exc:  # truncated zip, zero bytes, EINVAL on seek, a foreign pickle: all unreadable
            then = f"falling back to {paths[i + 1].name}" if i + 1 < len(paths) else "starting from epoch 1"
            logger.warning("checkpoint %s is unreadable (%s: %s); %s", path, type(exc).__name__, exc, then)
    return None


def save_checkpoint(directory: str | os.PathLike, epoch: int, state: dict[str, Any], keep: int = 1) -> Path:
    """Write ``state`` as the checkpoint after ``epoch``, atomically; keep only the ``keep`` newest."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    final = checkpoint_path(folder, epoch)
    tmp = folder / f".{final.name}.{uuid.uuid4().hex}.tmp"
    torch.save(state, tmp)
    os.replace(tmp, final)
    older = sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name)))
    for _, path in older[:-keep]:
        path.unlink(missing_ok=True)
    return final


def load_checkpoint(path: str | os.PathLike, map_location: torch.device | str = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by ``save_checkpoint`` (files this package wrote itself, hence not
    ``weights_only``: the state holds plain Python history rows beside tensors)."""
    return torch.load(path, map_location=map_location, weights_only=False)
