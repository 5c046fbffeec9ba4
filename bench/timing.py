"""Wall time and peak memory of one call: warm-up, repeats, median and IQR, CUDA-synchronised.

Time: ``time.perf_counter`` around each call, with ``torch.cuda.synchronize`` before and after on CUDA,
so asynchronous kernels are counted; ``setup`` (restoring weights, re-attaching a method) runs before
every call and is never timed.

Peak memory (one extra, untimed probe call, so that measuring never slows the timed calls):

- CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``, minus what was allocated
  before the call: the peak of tensors the call itself allocated (the caching allocator's reserve is
  not counted).
- CPU: the process's resident-set high-water mark. Before the call, glibc's ``malloc_trim(0)`` gives
  freed heap pages back to the OS and ``/proc/self/clear_refs`` (value 5) resets ``VmHWM``; after it,
  ``VmHWM - VmRSS(before)`` is the peak of memory the call touched: PyTorch's and NumPy's buffers and
  LAPACK workspaces alike. It is process-wide, so run one measurement per process (a Ray task does);
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
    """Times of the repeated calls in seconds, and their summary."""

    times: tuple[float, ...]

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
) -> Timing:
    """Call ``fn`` ``warmup`` times untimed, then ``repeats`` times timed; ``setup`` runs untimed before each call."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0; got repeats={repeats}, warmup={warmup}")
    times = []
    for i in range(warmup + repeats):
        if setup is not None:
            setup()
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        elapsed = time.perf_counter() - start
        if i >= warmup:
            times.append(elapsed)
    return Timing(tuple(times))


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


def peak_memory_mb(fn: Callable[[], object], device: torch.device | str = "cpu") -> tuple[object, float | None]:
    """Call ``fn`` once and return ``(its result, peak memory it allocated in MiB or None)``; see the module doc."""
    device = torch.device(device)
    if device.type == "cuda":
        sync(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        out = fn()
        sync(device)
        return out, (torch.cuda.max_memory_allocated(device) - before) / 2**20
    libc = _libc()
    if libc:
        libc.malloc_trim(0)
    ok = _reset_hwm()
    before = _proc_status_kib("VmRSS")
    out = fn()
    after = _proc_status_kib("VmHWM")
    if not ok or before is None or after is None:
        return out, None
    return out, max(after - before, 0) / 1024
