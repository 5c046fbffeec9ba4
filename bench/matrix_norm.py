"""The ``matrix-norm`` runner: the spectral norm of a dense ``n x n`` matrix by full SVD against the power method.

The power method notebook (Rakhuba's lecture "Neural network Lipschitz constant") motivates the power method
with a table of full-SVD time and the memory of ``W`` in fp32 for n = 10, 100, 1000, 5000 (38.7 µs, 3.04 ms,
717 ms, 1 min 21 s; 0.4 KB, 40 KB, 4 MB, 95 MB). This runner measures that table, with the power method
beside it, on the machine at hand.

Per config: a Gaussian ``W`` (``n x n``, std ``1/sqrt(n)``, from the config's seed, drawn in float64 on the
CPU, then moved to the device and dtype); methods

- ``matrix-svd``: ``torch.linalg.svd(W)`` (U, S and V^T: the notebook's "SVD"); value ``S[0]``;
- ``matrix-svd-numpy``: ``numpy.linalg.svd(W)`` on the CPU array (the notebook's NumPy call);
- ``matrix-power``: ``iters`` steps of ``svconv.spectrum.power_iteration`` on the matrix (two matvecs each);

``repeats`` timed calls after ``warmup`` untimed ones (``bench.timing``). The row (``bench`` schema, layer
scope, the matrix as a 1x1 conv on a 1x1 input): ``c_in = c_out = n``, ``kernel`` and ``input_size`` ``1x1``,
``time_median_s``, ``peak_mem_mb`` (what the call allocated), ``value`` the spectral norm it found,
``exact_value`` the float64 ``svdvals`` of the same matrix (``exact_method`` ``dense``), ``gap``, ``flops``
(full SVD with both vectors ``21 n^3``, Golub & Van Loan's count; power ``4 n^2`` per step).
:func:`notebook_table` prints the rows as the notebook's table, with the memory of ``W`` (``n^2`` x the
dtype's bytes) beside the measured peak.

Configs come from ``bench/suites/matrix-norm.yaml`` (``runner: matrix-norm``) or ``svconv bench --grid
runner=matrix-norm n=10,100 ...``. Grid keys: ``n`` (an int or a list), ``method`` (default: all three),
``iters`` (power steps, default 100), ``seed``, ``device``, ``dtype``, ``threads``, ``repeats``, ``warmup``.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import pandas as pd
import torch

from bench.grid import bench_id, expand
from bench.measure import Skip, _dtype, _measured
from bench.measure import run_config as run_measured
from bench.timing import time_calls

RUNNER = "matrix-norm"
METHODS = ("matrix-svd", "matrix-svd-numpy", "matrix-power")
DEFAULT_POWER_ITERS = 100


def _axis(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def expand_grid(grid: Mapping[str, Any], suite: str, overrides: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The canonical configs of one grid of this runner (see the module doc), duplicates dropped; a bad value is
    a ValueError naming the key and the allowed values (``bench.grid.expand`` checks the common keys)."""
    grid = {k: v for k, v in grid.items() if k != "runner"}
    methods = _axis(grid.pop("method", list(METHODS)))
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)} for runner {RUNNER}; got {m!r}")
    if "n" not in grid:
        raise ValueError(f"a {RUNNER} grid needs 'n' (the matrix size, an int or a list of ints)")
    sizes = _axis(grid.pop("n"))
    for n in sizes:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be an int >= 1 (or a list of them); got {n!r}")
    unknown = sorted(set(grid) - {"iters", "seed", "device", "dtype", "threads", "repeats", "warmup"})
    if unknown:
        raise ValueError(f"unknown {RUNNER} grid key(s) {unknown}; allowed: n, method, iters, seed, device, dtype, threads, repeats, warmup")
    iters = _axis(grid.pop("iters", DEFAULT_POWER_ITERS))
    # the common keys through bench.grid: the matrix is a 1x1 conv on a 1x1 input with n channels
    base = expand({**grid, "method": "power", "iters": iters, "channels": sizes, "kernel": 1, "input_size": 1,
                   "padding": "zeros"}, suite, overrides)  # fmt: skip
    out: dict[str, dict[str, Any]] = {}
    for cfg in base:
        for method in methods:
            c = {**cfg, "method": method, "runner": RUNNER, "iters": cfg["iters"] if method == "matrix-power" else None}
            out.setdefault(bench_id(c), c)
    return list(out.values())


def expand_all(grids: Iterable[Mapping[str, Any]], suite: str, overrides: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Configs of several grids, in order, without duplicates."""
    return list({bench_id(c): c for grid in grids for c in expand_grid(grid, suite, overrides)}.values())


def flops(method: str, n: int, iters: int | None) -> float:
    """Leading-order FLOPs: full SVD with both singular-vector sets ``21 n^3`` (Golub & Van Loan, Fig. 8.6.1,
    m = n); the power method ``iters`` x (``W x`` and ``W^T y``) = ``4 n^2 iters``."""
    return 4.0 * n * n * iters if method == "matrix-power" else 21.0 * n**3


def make_matrix(cfg: Mapping[str, Any]) -> torch.Tensor:
    """The config's ``W`` (``n x n``): Gaussian, std ``1/sqrt(n)``, drawn in float64 on the CPU from its seed."""
    n = cfg["c_in"]
    gen = torch.Generator().manual_seed(cfg["seed"])
    W = torch.randn(n, n, generator=gen, dtype=torch.float64) / n**0.5
    return W.to(device=cfg["device"], dtype=_dtype(cfg["dtype"]))


def _measure(cfg: Mapping[str, Any]) -> dict[str, Any]:
    from svconv.spectrum import power_iteration

    method, n, device = cfg["method"], cfg["c_in"], torch.device(cfg["device"])
    W = make_matrix(cfg)
    if method == "matrix-svd":
        run = lambda: torch.linalg.svd(W)[1][0]  # noqa: E731
    elif method == "matrix-svd-numpy":
        if device.type != "cpu":
            raise Skip("matrix-svd-numpy runs on the CPU only (NumPy)")
        import numpy as np

        A = W.numpy()
        run = lambda: np.linalg.svd(A)[1][0]  # noqa: E731
    else:
        gen = torch.Generator().manual_seed(cfg["seed"])
        run = lambda: power_iteration(W, (n,), n_iter=cfg["iters"], generator=gen)[0]  # noqa: E731
    timing = time_calls(run, device, repeats=cfg["repeats"], warmup=cfg["warmup"])
    value = float(timing.result)
    exact = float(torch.linalg.svdvals(W.double())[0])
    return _measured(timing, timing.peak_mem_mb, value, exact, "dense", (value - exact) / exact, flops(method, n, cfg["iters"]), None)


def run_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Measure one config of this runner and return its ``bench`` row (status ok, skipped or failed)."""
    return run_measured(cfg, _measure)


def notebook_table(rows: Iterable[Mapping[str, Any]] | pd.DataFrame) -> str:
    """The notebook's table from ``matrix-norm`` rows: one column per n; per method its median time, then the
    memory of ``W`` (n^2 x the dtype's bytes) and each method's measured peak (MiB) and gap."""
    df = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    df = df[(df["status"] == "ok") & df["method"].isin(METHODS)]
    if df.empty:
        return "(no matrix-norm rows)"

    def when(t: float) -> str:
        return f"{t * 1e6:.3g} µs" if t < 1e-3 else f"{t * 1e3:.3g} ms" if t < 1 else f"{t:.3g} s"

    def size(b: float) -> str:
        return f"{b / 1e3:.3g} KB" if b < 1e6 else f"{b / 1e6:.3g} MB"

    sizes = sorted(df["c_in"].unique())
    lines = {"n": [str(int(n)) for n in sizes]}
    groups = df.groupby(["method", df["iters"].fillna(0)], sort=True)
    for (method, iters), g in sorted(groups, key=lambda item: (METHODS.index(item[0][0]), item[0][1])):
        name = method + (f" x{int(iters)}" if iters else "")
        by = g.set_index("c_in")
        lines[f"time {name}"] = [when(by.loc[n, "time_median_s"]) if n in by.index else "" for n in sizes]
        lines[f"peak MiB {name}"] = [f"{by.loc[n, 'peak_mem_mb']:.3g}" if n in by.index and pd.notna(by.loc[n, "peak_mem_mb"]) else "" for n in sizes]
        lines[f"gap {name}"] = [f"{by.loc[n, 'gap']:+.1e}" if n in by.index else "" for n in sizes]
    itemsize = {"float32": 4, "float64": 8}
    dtypes = df.groupby("c_in")["dtype"].first()
    lines["memory of W"] = [f"{size(int(n) ** 2 * itemsize[dtypes[n]])} ({dtypes[n]})" for n in sizes]
    width = max(len(k) for k in lines)
    cols = [max(len(v[i]) for v in lines.values()) for i in range(len(sizes))]
    out = []
    for key, values in lines.items():
        out.append(f"| {key:<{width}} | " + " | ".join(f"{v:>{w}}" for v, w in zip(values, cols)) + " |")
        if key == "n":
            out.append("|" + "-" * (width + 2) + "|" + "|".join("-" * (w + 2) for w in cols) + "|")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.matrix_norm RESULTS``: the notebook table of the matrix-norm rows under RESULTS/bench."""
    import argparse

    from svconv.results import read_table

    parser = argparse.ArgumentParser(prog="python -m bench.matrix_norm", description=main.__doc__)
    parser.add_argument("results", nargs="?", default="results", help="results folder (default: results)")
    parser.add_argument("--suite", default="matrix-norm", help="the rows' suite name (default: matrix-norm)")
    args = parser.parse_args(argv)
    df = read_table(args.results, "bench")
    print(notebook_table(df[df["suite"] == args.suite] if not df.empty else df))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
