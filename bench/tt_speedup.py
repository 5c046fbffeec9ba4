"""Exact singular values of a full 3x3 conv against its TT version: measured speedup beside ``(c/r)^3``.

For each width ``c`` (square ``c -> c`` layers, stride 1, on the spatial size of its WRN-16-10 stage:
32 for c <= 160, 16 for 320, 8 for 640) and each rank ``r`` in ``c/4, c/2, 3c/4``, a random TT layer
(orthonormal frames) is built; the full layer is the conv with its ``full_weight()``, i.e. the same
operator. Timed (median of ``--repeats`` after one warm-up):

- ``full``: ``conv_singular_values(full kernel, n)``, every singular value of the dense conv;
- ``tt``: ``layer.singular_values(n)``, the same nonzero values through the ``r x r`` core (Theorem 3.2);
- ``tt+orth``: ``orthogonalize_()`` then ``singular_values``, what a layer with drifting frames pays.

The theoretical speedup is the seed's ``(c/r)^3`` (``bench.theory.tt_theory_speedup``); ``gap`` is the
relative difference of the two spectral norms (a check that both compute the same operator).

Run: ``python -m bench.tt_speedup --channels 64 160 320 --repeats 3`` (add ``--device cuda`` on a GPU).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

WRN_SIZE = {16: 32, 64: 32, 160: 32, 320: 16, 640: 8}  # width -> spatial size of its WRN-16-10 stage
FRACTIONS = (0.25, 0.5, 0.75)


@dataclass
class Row:
    channels: int
    size: int
    rank: int
    full_s: float
    tt_s: float
    tt_orth_s: float
    theory: float
    gap: float

    @property
    def speedup(self) -> float:
        return self.full_s / self.tt_s

    @property
    def speedup_orth(self) -> float:
        return self.full_s / self.tt_orth_s


def stage_size(channels: int) -> int:
    """Spatial size of the WRN-16-10 stage with this width (the nearest stage's for other widths)."""
    if channels in WRN_SIZE:
        return WRN_SIZE[channels]
    return 32 if channels <= 160 else 16 if channels <= 320 else 8


def measure(
    channels: int, repeats: int, device: str, dtype_name: str = "float32", warmup: int = 1, progress=None
) -> list[Row]:
    """One row per rank for width ``channels``; see the module doc. The full conv is timed once (its cost does
    not depend on the rank); for the other ranks its spectrum is computed once more for the ``gap`` check."""
    import torch

    from bench.theory import tt_theory_speedup
    from bench.timing import time_calls
    from svconv.spectrum import conv_singular_values
    from svconv.tt import TTConv2d

    dtype = getattr(torch, dtype_name)
    n = stage_size(channels)
    size = (n, n)
    torch.manual_seed(channels)
    rows = []
    full = None
    for frac in FRACTIONS:
        r = max(1, round(channels * frac))
        layer = TTConv2d(channels, channels, 3, r, padding=1, device=device, dtype=dtype)
        with torch.no_grad():
            weight = layer.full_weight().detach()
            if full is None:  # the full conv's cost does not depend on the rank
                full = time_calls(lambda: conv_singular_values(weight, size), device, repeats, warmup, memory=False)
            else:
                full_sv = conv_singular_values(weight, size)
            full_norm = float((full.result if len(rows) == 0 else full_sv)[0])
            tt = time_calls(lambda: layer.singular_values(size), device, repeats, warmup, memory=False)
            tt_norm = float(tt.result[0])
            orth = time_calls(lambda: layer.orthogonalize_().singular_values(size), device, repeats, warmup, memory=False)
        rows.append(
            Row(channels, n, r, full.median, tt.median, orth.median,
                tt_theory_speedup(channels, channels, r, r, (1, 1)), abs(full_norm - tt_norm) / full_norm)
        )
        if progress is not None:
            progress.update(1)
    return rows


def table(rows: list[Row]) -> str:
    head = (f"{'c':>5} {'n':>3} {'r':>5} {'full [s]':>10} {'tt [s]':>10} {'tt+orth [s]':>12} "
            f"{'speedup':>8} {'w/ orth':>8} {'(c/r)^3':>8} {'gap':>9}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r.channels:>5} {r.size:>3} {r.rank:>5} {r.full_s:>10.4f} {r.tt_s:>10.4f} {r.tt_orth_s:>12.4f} "
            f"{r.speedup:>8.1f} {r.speedup_orth:>8.1f} {r.theory:>8.1f} {r.gap:>9.1e}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.tt_speedup",
        description="Time exact singular values of full 3x3 convs against their TT versions (ranks c/4, c/2, 3c/4).",
    )
    parser.add_argument("--channels", type=int, nargs="+", default=[64, 160, 320, 640],
                        help="layer widths c (default: 64 160 320 640); spatial size from the WRN-16-10 stage")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per measurement; the median is shown")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls before each measurement (default: 1)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default: cpu)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"], help="weight dtype")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1; got {args.repeats}")
    if args.warmup < 0:
        parser.error(f"--warmup must be >= 0; got {args.warmup}")
    if any(c < 4 for c in args.channels):
        parser.error(f"--channels must be >= 4 (ranks c/4 must be >= 1); got {args.channels}")

    import torch
    from tqdm import tqdm

    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda was asked for but CUDA is not available here")
    # One untimed call first: the first LAPACK/FFT call of a process pays one-time set-up costs.
    from svconv.spectrum import conv_singular_values

    conv_singular_values(torch.randn(8, 8, 3, 3, device=args.device, dtype=getattr(torch, args.dtype)), (8, 8))
    rows: list[Row] = []
    with tqdm(total=len(args.channels) * len(FRACTIONS), desc="tt speedup", file=sys.stderr) as bar:
        for c in args.channels:
            bar.set_postfix(c=c)
            rows += measure(c, args.repeats, args.device, args.dtype, args.warmup, progress=bar)
    name = torch.cuda.get_device_name(args.device) if torch.device(args.device).type == "cuda" else "cpu"
    print(f"device: {name}, dtype: {args.dtype}, repeats: {args.repeats} (median), warmup: {args.warmup}, "
          f"torch threads: {torch.get_num_threads()}")
    print(table(rows))
    return 0


if __name__ == "__main__":
    if __package__ in (None, ""):  # run as a script: make the repository root importable
        import pathlib

        sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
    sys.exit(main())
