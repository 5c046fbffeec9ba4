"""The ``soc-tt`` runner: inference time of one SOC layer against its SOC-TT versions as the number of channels
grows (Senderovich et al. 2022, App. C.2, Fig. 6).

Per config: an SOC on ``c`` channels (``rank: null``) or an SOC-TT (``svconv.layers.SOCTT``: 1x1 ``U`` to
``rank`` channels, an SOC core on them, 1x1 ``V`` back), in eval mode (12 Taylor terms, as inference runs),
on a random ``(batch, c, n, n)`` input; ``repeats`` timed forward passes after ``warmup`` untimed ones,
under ``torch.no_grad``. The row (``bench`` schema, layer scope): ``method`` ``soc/batch=B``, ``c_in = c_out
= c``, ``rank``, ``time_median_s``, ``peak_mem_mb``; ``flops`` the multiply-adds x 2 of the Taylor series
(``T · 2 c^2 k^2 n^2`` per image; SOC-TT ``T · 2 r^2 k^2 n^2 + 4 c r n^2``) and ``theory_speedup`` the SOC's
FLOPs over this row's; ``value`` ``||f(x) - f(0)|| / ||x||`` (1 for an orthogonal layer; an SOC-TT with
random orthonormal frames loses the part of ``x`` outside ``U``'s rows, so less), ``exact_value`` 1
(``target``). ``bench.summary`` pairs each SOC-TT row with the SOC row of the same shape: ``tt_speedup``.

Configs come from suite files with ``runner: soc-tt`` (``bench/suites/soc-tt.yaml``) or ``svconv bench --grid
runner=soc-tt ...``. Grid keys: ``channels`` (an int: SOC layers are square), ``rank``, ``input_size``,
``kernel`` (odd), ``padding`` (``zeros``, the default, or ``circular``), ``batch`` (default 1), ``seed``,
``device``, ``dtype``, ``threads``, ``repeats``, ``warmup``. A rank at or above the channels is a skipped row
(the SOC-TT would be the SOC with two extra 1x1 convs).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import torch

from bench.grid import bench_id, expand
from bench.measure import Skip, _dtype, _measured
from bench.measure import run_config as run_measured
from bench.timing import time_calls
from svconv.spectrum._checks import check_count

RUNNER = "soc-tt"
METHOD = "soc"
PADDINGS = ("zeros", "circular")
EVAL_TERMS = 12  # svconv.layers.SOC's default in eval mode



def expand_grid(grid: Mapping[str, Any], suite: str, overrides: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The canonical configs of one grid of this runner (see the module doc), duplicates dropped; a bad value
    is a ValueError naming the key and the allowed values (``bench.grid.expand`` checks the geometry keys)."""
    grid = {k: v for k, v in grid.items() if k != "runner"}
    method = grid.pop("method", METHOD)
    if method != METHOD:
        raise ValueError(f"method must be {METHOD} for runner {RUNNER}; got {method!r}")
    batch = grid.pop("batch", 1)
    batches = [check_count(b, "batch") for b in (batch if isinstance(batch, list) else [batch])]
    channels = grid.get("channels", 64)
    for c in channels if isinstance(channels, list) else [channels]:
        if isinstance(c, list):
            raise ValueError(f"channels must be an int per value (SOC layers are square); got {c!r}")
    grid.setdefault("padding", "zeros")
    base = expand({**grid, "method": "division"}, suite, overrides)  # geometry and common keys
    out: dict[str, dict[str, Any]] = {}
    for cfg in base:
        if cfg["padding"] not in PADDINGS:
            raise ValueError(f"padding must be one of {', '.join(PADDINGS)} for runner {RUNNER}; got {cfg['padding']!r}")
        if len(cfg["kernel"]) != 2 or cfg["stride"] != 1:
            raise ValueError(f"runner {RUNNER} takes 2-D layers of stride 1; got kernel {cfg['kernel']}, stride {cfg['stride']}")
        for b in batches:
            c = {**cfg, "method": METHOD, "iters": None, "runner": RUNNER, "batch": b}
            out.setdefault(bench_id(c), c)
    return list(out.values())


def expand_all(grids: Iterable[Mapping[str, Any]], suite: str, overrides: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Configs of several grids, in order, without duplicates."""
    return list({bench_id(c): c for grid in grids for c in expand_grid(grid, suite, overrides)}.values())


def flops(c: int, rank: int | None, kernel: int, pixels: int, batch: int = 1, terms: int = EVAL_TERMS) -> float:
    """FLOPs (2 x multiply-adds) of one forward on ``batch`` maps of ``pixels`` pixels: ``terms`` convs by the
    (core's) ``k x k`` kernel, plus the two 1x1 frames of an SOC-TT (``rank`` None: the plain SOC)."""
    r = c if rank is None else rank
    series = terms * 2.0 * r * r * kernel * kernel
    frames = 0.0 if rank is None else 2 * 2.0 * c * r
    return batch * pixels * (series + frames)


def _measure(cfg: Mapping[str, Any]) -> dict[str, Any]:
    from svconv.layers import SOC, SOCTT

    c, rank, (k, k2), (n, n2) = cfg["c_in"], cfg["rank"], cfg["kernel"], cfg["input_size"]
    if k != k2 or k % 2 == 0:
        raise Skip(f"SOC needs a square odd kernel; got {k}x{k2}")
    if k > min(n, n2):
        raise Skip(f"kernel {k} is larger than input_size {n}x{n2}")
    if rank is not None and rank >= c:
        raise Skip(f"rank {rank} reaches the channels ({c}): the SOC-TT would be the SOC with two extra 1x1 convs")
    device, dtype = torch.device(cfg["device"]), _dtype(cfg["dtype"])
    torch.manual_seed(cfg["seed"])
    kw = dict(kernel_size=k, padding_mode=cfg["padding"], device=device, dtype=dtype)
    layer = (SOC(c, **kw) if rank is None else SOCTT(c, rank, **kw)).eval()
    gen = torch.Generator().manual_seed(cfg["seed"])
    x = torch.randn((cfg["batch"], c, n, n2), generator=gen, dtype=torch.float64).to(device=device, dtype=dtype)

    def forward() -> torch.Tensor:
        with torch.no_grad():
            return layer(x)

    timing = time_calls(forward, device, repeats=cfg["repeats"], warmup=cfg["warmup"])
    with torch.no_grad():
        value = float((timing.result - layer(torch.zeros_like(x))).norm() / x.norm())
    mine = flops(c, rank, k, n * n2, cfg["batch"])
    return _measured(timing, timing.peak_mem_mb, value, 1.0, "target", value - 1.0, mine, flops(c, None, k, n * n2, cfg["batch"]) / mine)


def run_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Measure one config of this runner and return its ``bench`` row (status ok, skipped or failed)."""
    row = run_measured(cfg, _measure)
    row["method"] = f"{METHOD}/batch={cfg['batch']}"
    return row
