"""Synthetic results folders that respect the Parquet schema, for report tests and benchmarks.

The numbers are made up (plausible shapes: TT ranks speed clipping up, clipping costs a little
accuracy and buys robustness); they are never presented as measurements.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from itertools import product
from pathlib import Path

import numpy as np

from svconv.results import write_rows

METHODS = ("none", "clip", "division", "fastclip", "gram")
ARCHS = {"small-cnn": 64, "wrn-16-10": 160, "lipconvnet-5": 128}  # arch -> widest layer (channels)
DATASETS = ("synthetic", "mnist5k", "cifar10")
RANKS = (None, 8, 16, 32)


def _trial_configs(n_trials: int, rng: np.random.Generator) -> list[dict]:
    grid = [g for g in product(DATASETS, ARCHS, METHODS, RANKS, (1.0, 2.0), (0.0, 0.1)) if g[3] is not None or g[5] == 0]
    rng.shuffle(grid)  # a few trials already cover every dataset and arch
    configs = []
    seed = 0
    while len(configs) < n_trials:
        for dataset, arch, method, rank, clip_to, lam in grid:
            configs.append(
                dict(dataset=dataset, arch=arch, method=method, rank=rank, clip_to=clip_to, lam=lam, seed=seed)
            )
            if len(configs) == n_trials:
                break
        seed += 1
    return configs


def write_synthetic_results(
    results_dir: str | os.PathLike,
    n_trials: int,
    *,
    n_epochs: int = 4,
    with_bench: bool = True,
    failed_every: int = 37,
    seed: int = 0,
    chunk: int | None = 2000,
    without: tuple[str, ...] = (),
    device_name: str = "Synthetic GPU",
) -> Path:
    """Write ``n_trials`` trial rows (with epochs and layers) and a small bench suite under ``results_dir``.

    Every ``failed_every``-th trial is failed or diverged. Rows are written in files of ``chunk`` rows;
    ``chunk=None``: the layout sweeps write, one file per trial and table named by its trial id.
    ``without``: trials columns left empty (``("autoattack_025", "autoattack_05", "autoattack_36", "corruption_acc")``: results
    like the demo's); ``device_name``: the device the trials record ("cpu" for CPU-hours). Returns the folder.
    """
    rng = np.random.default_rng(seed)
    root = Path(results_dir)
    t0 = datetime(2024, 5, 1, tzinfo=timezone.utc)
    prov = dict(
        device_name=device_name, host="synthetic", torch_version="2.14.1", ray_version="2.60.0",
        svconv_version="0.1.0", git_commit="0000000", schema_version=1,
    )  # fmt: skip
    trials, epochs, layers = [], [], []
    for i, cfg in enumerate(_trial_configs(n_trials, rng)):
        tid = f"syn{i:06d}"
        c = ARCHS[cfg["arch"]]
        r = cfg["rank"]
        controlled = cfg["method"] != "none"
        status = "ok"
        if failed_every and i % failed_every == failed_every - 1:
            status = "failed" if i % 2 else "diverged"
        base_acc = {"synthetic": 97.0, "mnist5k": 96.0, "cifar10": 80.0}[cfg["dataset"]]
        acc = base_acc - (1.5 if controlled else 0) - (0 if r is None else 8.0 / r) + rng.normal(0, 0.5)
        robust = acc * (0.55 if controlled else 0.4) * (1 - cfg["clip_to"] / 10) + rng.normal(0, 1.0)
        control_time = 0.0 if not controlled else 20.0 * ((r or c) / c) ** 2 * (1 + rng.normal(0, 0.05))
        train_time = 100.0 + control_time
        comp = 1.0 if r is None else (c * c * 9) / (c * r + r * r * 9 + r * c)
        n_layers = 6
        row = dict(
            trial_id=tid, sweep=f"synthetic-{i % 2}", status=status, **cfg,
            epochs=n_epochs, batch_size=128, lr=0.01, optimizer="sgd", schedule="cosine", clip_every=1,
            config_json=json.dumps(cfg, sort_keys=True), epochs_done=n_epochs,
            start_time=t0 + timedelta(minutes=i), end_time=t0 + timedelta(minutes=i + 2), **prov,
        )  # fmt: skip
        if status == "ok":
            lip = rng.lognormal(-1.0, 0.3, size=64) * (cfg["clip_to"] if controlled else 3.0)
            row.update(
                clean_acc=acc, ece=abs(rng.normal(3, 1)), autoattack_05=robust, autoattack_36=robust + 8, autoattack_025=robust + 12,
                cra_36=max(robust - 5, 0) if controlled else None, cra_72=max(robust - 15, 0) if controlled else None,
                cra_108=max(robust - 25, 0) if controlled else None, cra_255=max(robust - 40, 0) if controlled else None,
                corruption_acc=acc - 12 + rng.normal(0, 1), lipschitz_bound=float(cfg["clip_to"] ** n_layers),
                emp_lip_max=float(lip.max()), emp_lip_hist=lip.tolist(), emp_lip_max_normalized=float(lip.max() / 4),
                emp_lip_hist_normalized=(lip / 4).tolist(), compression=comp, final_train_loss=0.2,
                train_time_s=train_time, control_time_s=control_time, control_share=control_time / train_time,
                epoch_time_s=train_time / n_epochs, peak_mem_mb=500 + (r or c) * 4.0,
            )  # fmt: skip
            for k in range(n_layers):
                layers.append(
                    dict(
                        trial_id=tid, sweep=row["sweep"], layer=f"features.{k}", kind="tt" if r else "conv",
                        spectral_norm=float(cfg["clip_to"] * (1 + abs(rng.normal(0, 0.05))) if controlled else rng.lognormal(0.5, 0.3)),
                        norm_method="exact", c_in=c, c_out=c, kernel="3x3", stride=1, input_size="32x32", rank=r,
                    )
                )  # fmt: skip
        else:
            row.update(error="RuntimeError: loss is nan" if status == "diverged" else "CUDA out of memory (synthetic)",
                       epochs_done=int(rng.integers(0, n_epochs)))  # fmt: skip
        row.update({c: None for c in without})
        trials.append(row)
        for e in range(1, row["epochs_done"] + 1):
            epochs.append(
                dict(
                    trial_id=tid, sweep=row["sweep"], epoch=e, train_loss=2.0 / e + rng.normal(0, 0.02),
                    train_acc=acc * (1 - 0.5 / e), test_acc=acc * (1 - 0.4 / e), orth_loss=cfg["lam"] / e,
                    lr=0.01, epoch_time_s=train_time / n_epochs, control_time_s=control_time / n_epochs,
                )
            )  # fmt: skip
    for name, rows in (("trials", trials), ("epochs", epochs), ("layers", layers)):
        if chunk is None:
            by_trial: dict[str, list[dict]] = {}
            for r in rows:
                by_trial.setdefault(r["trial_id"], []).append(r)
            for tid, group in by_trial.items():
                write_rows(root, name, tid, group)
            continue
        for k in range(0, len(rows), chunk):
            write_rows(root, name, f"synthetic-{k // chunk:05d}", rows[k : k + chunk])
    if with_bench:
        write_rows(root, "bench", "synthetic", _bench_rows(rng, prov))
    return root


def _bench_rows(rng: np.random.Generator, prov: dict) -> list[dict]:
    rows = []
    for method, c, n, (tt, r) in product(
        ("clip", "division", "gram"), (16, 32, 64, 128), (8, 16, 32), [(False, None), (True, 4), (True, 8), (True, 16)]
    ):
        if r is not None and r >= c:
            continue
        cost = {"clip": 1.0, "division": 0.2, "gram": 0.4}[method]
        eff = r if tt else c
        t = cost * 1e-6 * n * n * eff**3 * (1 + rng.normal(0, 0.05)) + 1e-5
        exact = 1.0 + rng.random()
        gap = {"clip": 0.0, "division": -0.02, "gram": 0.01}[method] * rng.random()
        rows.append(
            dict(
                bench_id=f"{method}-{c}-{n}-{r}", suite="synthetic", scope="layer", method=method, tt=tt, rank=r,
                c_in=c, c_out=c, kernel="3x3", input_size=f"{n}x{n}", stride=1, padding="circular", ndim=2,
                device="cpu", dtype="float32", repeats=5, time_median_s=t, time_iqr_s=0.1 * t, time_min_s=0.9 * t,
                peak_mem_mb=float(eff * n * 0.01), value=exact * (1 + gap), exact_value=exact, gap=gap,
                theory_speedup=(c / r) ** 3 if tt else None, status="ok", **prov,
            )
        )  # fmt: skip
    rows.append(dict(bench_id="skipped", suite="synthetic", scope="layer", method="clip", tt=False, c_in=512,
                     c_out=512, status="skipped", reason="too large for this device", **prov))  # fmt: skip
    return rows + _control_rows(rng, prov) + _zoo_rows(rng, prov)


#: zoo suite rows: layer type -> (time, peak memory) relative to a plain conv
_ZOO = {"conv": (1.0, 1.0), "soc": (6.0, 7.0), "aol": (2.5, 1.5), "aoc": (3.0, 1.6), "bcop": (5.0, 2.0),
        "sll": (3.5, 2.5), "cayley": (12.0, 15.0), "bjorck": (1.1, 1.2)}  # fmt: skip


def _zoo_rows(rng: np.random.Generator, prov: dict) -> list[dict]:
    """Rows shaped like ``svconv bench zoo``'s: one training step of each layer type at two shapes."""
    rows = []
    for (layer, (cost, mem)), (c, n) in product(_ZOO.items(), ((64, 32), (256, 8))):
        t = cost * 0.5 * (1 + rng.normal(0, 0.05))
        rows.append(
            dict(
                bench_id=f"zoo-{layer}-{c}", suite="zoo", scope="layer", method=layer, tt=False, c_in=c, c_out=c,
                kernel="3x3", input_size=f"{n}x{n}", stride=1, ndim=2, device="cpu", dtype="float32", repeats=5,
                time_median_s=t, time_iqr_s=0.1 * t, time_min_s=0.9 * t, peak_mem_mb=20.0 * mem, status="ok", **prov,
            )
        )  # fmt: skip
    return rows


#: clip-to-target suite rows: method -> (time in units of one clip pass, passes, sigma_after / target)
_CONTROL = {
    "clip-pass": (1.0, 1, 1.33),
    "clip-to-target/secant/eigh": (2.2, 3, 1.004),
    "clip-to-target/passes/eigh": (14.0, 16, 1.009),
    "clip-to-target/dykstra/eigh": (20.0, 20, 1.03),
    "clip-to-target/secant/matmul": (4.0, 3, 0.995),
    "clip-to-target/secant/eigh/guarantee": (2.3, 3, 0.996),
    "division": (0.2, 1, 0.93),
    "fastclip": (0.5, 10, 1.12),
    "gram": (0.4, 1, 0.81),
}


def _control_rows(rng: np.random.Generator, prov: dict) -> list[dict]:
    """Rows shaped like ``svconv bench clip-to-target``'s: one layer shape and the whole model, plain and TT."""
    rows = []
    for (scope, rank), (method, (cost, passes, ratio)) in product(
        [("layer", None), ("model", None), ("model", 256)], _CONTROL.items()
    ):
        t = cost * (2.0 if scope == "layer" else 57.0) * (1 if rank is None else 0.4) * (1 + rng.normal(0, 0.05))
        sigma = ratio * (1 + rng.normal(0, 0.002))
        shape = dict(c_in=160, c_out=160, kernel="3x3", input_size="32x32", stride=1, padding="circular") if scope == "layer" \
            else dict(arch="wrn-16-10", input_size="32x32")  # fmt: skip
        rows.append(
            dict(
                bench_id=f"ctt-{scope}-{rank}-{method}", suite="clip-to-target", scope=scope, method=method,
                tt=rank is not None, rank=rank, ndim=2, device="cpu", dtype="float32", repeats=3,
                iters=20 if method.startswith("clip-to-target") else passes, time_median_s=t, time_iqr_s=0.05 * t,
                time_min_s=0.95 * t, peak_mem_mb=300.0, value=sigma, exact_value=1.0, exact_method="target",
                gap=sigma - 1.0, sigma_after=sigma, target=1.0, passes=passes, rel_change=0.1 * abs(ratio - 1) + 0.05,
                status="ok", **shape, **prov,
            )
        )  # fmt: skip
    return rows
