"""Wall time and peak memory of one call: warm-up, repeats, median and IQR, CUDA-synchronised.

Time: ``time.perf_counter`` around each call, with ``torch.cuda.synchronize`` before and after on CUDA,
so asynchronous kernels are counted; ``setup`` (restoring weights, re-attaching a method) runs before
every call and is never timed.

Peak memory is read around the last timed call (the probe's bookkeeping runs before and after the
clock, never inside it), so no extra call is needed:

- CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``, minus what was allocated
  before the call: the peak of tensors the call itself allocated (the caching allocator's reserve is
  not counted).
- CPU: the process's resident-set high-water mark; neither ``tracemalloc`` (blind to PyTorch's
  allocator) nor the torch profiler (blind to NumPy and LAPACK workspaces) sees both. Before the call,
  glibc's ``malloc_trim(0)`` gives freed heap pages back to the OS and ``/proc/self/clear_refs``
  (value 5) resets ``VmHWM``; after it,
  ``VmHWM - VmRSS(before)`` is the peak of memory the call touched: PyTorch's and NumPy's buffers and
  LAPACK workspaces alike. It is process-wide: configs run one after another in a process (or one per Ray task);
  where ``/proc`` or glibc is missing it is None, never a guess.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import re
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch


@dataclass(frozen=True)
class Timing:
    """Times of the repeated calls in seconds, their summary, the peak memory of the last call (MiB; None
    where it cannot be measured) and the last call's result."""

    times: tuple[float, ...]
    peak_mem_mb: float | None = None
    result: object = None

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def iqr(self) -> float:
        """Interquartile range (0 for fewer than two repeats)."""
        if len(self.times) < 2:
            return 0.0
        q = statistics.quantiles(self.times, n=4, method="inclusive")
        return q[2] - q[0]

    @property
    def min(self) -> float:
        return min(self.times)


def sync(device: torch.device | str) -> None:
    """Wait for the device's queued work (CUDA); nothing on CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(
    fn: Callable[[], object],
    device: torch.device | str = "cpu",
    repeats: int = 5,
    warmup: int = 1,
    setup: Callable[[], object] | None = None,
    memory: bool = True,
) -> Timing:
    """Call ``fn`` ``warmup`` times untimed, then ``repeats`` times timed; ``setup`` runs untimed before each call.

    With ``memory`` the peak memory of the last timed call is measured (see the module doc).
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0; got repeats={repeats}, warmup={warmup}")
    device = torch.device(device)
    times = []
    out: object = None
    peak: float | None = None
    total = warmup + repeats
    for i in range(total):
        if setup is not None:
            setup()
        probe = _MemoryProbe(device) if memory and i == total - 1 else None
        sync(device)
        start = time.perf_counter()
        out = fn()
        sync(device)
        elapsed = time.perf_counter() - start
        if probe is not None:
            peak = probe.peak_mb()
        if i >= warmup:
            times.append(elapsed)
    return Timing(tuple(times), peak, out)


_LIBC = None


def _libc():
    global _LIBC
    if _LIBC is None:
        name = ctypes.util.find_library("c")
        try:
            _LIBC = ctypes.CDLL(name) if name else False
            if _LIBC and not hasattr(_LIBC, "malloc_trim"):
                _LIBC = False
        except OSError:
            _LIBC = False
    return _LIBC


def _proc_status_kib(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            match = re.search(rf"^{key}:\s+(\d+)\s+kB", f.read(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) if match else None


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


class _MemoryProbe:
    """Created just before a call, ``peak_mb()`` just after it: the peak memory the call allocated (MiB) or None."""

    def __init__(self, device: torch.device):
        self.device = device
        self.before: int | None
        if device.type == "cuda":
            sync(device)
            self.before = torch.cuda.memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
            return
        libc = _libc()
        if libc:
            libc.malloc_trim(0)
        self.before = _proc_status_kib("VmRSS") if _reset_hwm() else None

    def peak_mb(self) -> float | None:
        if self.device.type == "cuda":
            return (torch.cuda.max_memory_allocated(self.device) - self.before) / 2**20
        after = _proc_status_kib("VmHWM")
        if self.before is None or after is None:
            return None
        return max(after - self.before, 0) / 1024


def peak_memory_mb(fn: Callable[[], object], device: torch.device | str = "cpu") -> tuple[object, float | None]:
    """Call ``fn`` once and return ``(its result, peak memory it allocated in MiB or None)``; see the module doc."""
    probe = _MemoryProbe(torch.device(device))
    out = fn()
    sync(probe.device)
    return out, probe.peak_mb()
