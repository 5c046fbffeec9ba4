"""Running configurations locally or as Ray tasks, and writing their rows.

Locally the configs run one after another in this process (timings never overlap). With an address
each config is one Ray task (``num_gpus=1`` for CUDA configs, ``task_cpus`` CPUs each), gathered as
they finish; the rows are written by this process, so the results folder only needs to exist here.
Every node needs svconv installed (``ray_cluster.yaml`` does it).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from bench.grid import bench_id
from bench.measure import run_config


def run_configs(
    configs: Iterable[Mapping[str, Any]],
    address: str | None = None,
    progress: bool = True,
    task_cpus: float = 1,
) -> list[dict[str, Any]]:
    """One row per config, in the configs' order. ``address``: a Ray address, ``auto``, or ``local``
    (start a Ray instance on this machine; an already initialised one is reused in every case)."""
    configs = [dict(c) for c in configs]
    if address:
        return _run_ray(configs, address, progress, task_cpus)
    from tqdm.auto import tqdm

    rows = []
    bar = tqdm(configs, desc="bench", unit="config", disable=not progress)
    for cfg in bar:
        bar.set_postfix_str(_label(cfg), refresh=False)
        rows.append(run_one(cfg))
    return rows


def run_one(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The row of one config, measured by its runner: ``bench.measure``, or ``bench.clip_target`` /
    ``bench.soc_tt`` / ``bench.matrix_norm`` / ``bench.zoo`` for configs that carry ``runner: clip-target`` /
    ``soc-tt`` / ``matrix-norm`` / ``zoo``."""
    if cfg.get("runner") == "clip-target":
        from bench.clip_target import run_config as run_clip_target

        return run_clip_target(cfg)
    if cfg.get("runner") == "soc-tt":
        from bench.soc_tt import run_config as run_soc_tt

        return run_soc_tt(cfg)
    if cfg.get("runner") == "matrix-norm":
        from bench.matrix_norm import run_config as run_matrix_norm

        return run_matrix_norm(cfg)
    if cfg.get("runner") == "zoo":
        from bench.zoo import run_config as run_zoo

        return run_zoo(cfg)
    return run_config(cfg)


def _label(cfg: Mapping[str, Any]) -> str:
    if cfg["scope"] == "model":
        return f"{cfg['arch']} {cfg['method']} rank={cfg['rank']}"
    return f"{cfg['method']} {cfg['c_in']}->{cfg['c_out']} n={cfg['input_size'][0]} s={cfg['stride']} rank={cfg['rank']}"


def _run_ray(configs: list[dict[str, Any]], address: str, progress: bool, task_cpus: float) -> list[dict[str, Any]]:
    import ray
    from tqdm.auto import tqdm

    if not ray.is_initialized():
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        ray.init(address=address, log_to_driver=False)  # "local" starts a new instance
    remote = ray.remote(run_one)
    refs = {}
    for i, cfg in enumerate(configs):
        gpus = 1 if cfg["device"] == "cuda" else 0
        refs[remote.options(num_cpus=task_cpus, num_gpus=gpus, max_retries=1).remote(cfg)] = i
    rows: list[dict[str, Any] | None] = [None] * len(configs)
    pending = list(refs)
    with tqdm(total=len(pending), desc="bench (ray)", unit="config", disable=not progress) as bar:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                rows[refs[ref]] = ray.get(ref)
                bar.update(1)
    return rows  # type: ignore[return-value]


def write_bench_rows(results_dir: str | os.PathLike, rows: Iterable[Mapping[str, Any]]) -> list[Path]:
    """One Parquet file per row, named by its ``bench_id``: a rerun of a config replaces its file."""
    from svconv.results import write_rows

    return [write_rows(results_dir, "bench", row["bench_id"], [row]) for row in rows]


__all__ = ["run_configs", "write_bench_rows", "bench_id"]
