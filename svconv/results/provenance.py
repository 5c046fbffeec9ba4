"""Where and with what a row was produced: device, host, library versions, git commit."""

from __future__ import annotations

import functools
import socket
import subprocess
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


@functools.cache
def git_commit() -> str | None:
    """The commit of the svconv checkout, or None outside one: an installed svconv sits in site-packages,
    and a git work tree around that (a project's venv) is not svconv's."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "pyproject.toml").is_file():
        return None
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def device_name(device: torch.device | str) -> str:
    """Human-readable name of ``device`` (the GPU model on CUDA, 'cpu' otherwise)."""
    import torch  # here, not at import: readers of results (the report) need no torch

    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return "cpu"


def provenance(device: torch.device | str = "cpu") -> dict[str, Any]:
    """Provenance columns shared by every table: device name, host, versions, commit."""
    import torch

    return {
        "device_name": device_name(device),
        "host": socket.gethostname(),
        "torch_version": torch.__version__,
        "ray_version": _version("ray"),
        "svconv_version": _version("svconv"),
        "git_commit": git_commit(),
    }
