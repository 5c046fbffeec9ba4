"""One trial: train one model with one way of controlling singular values, measure it, write its rows.

``run_trial(config, results_dir)`` is what ``svconv train`` runs and what each Ray trial of a sweep
runs. It writes ``trials/``, ``epochs/`` and ``layers/`` rows (file id ``config.trial_id(sweep)``, so a
re-run replaces them) and never crashes on a bad trial: divergence ends it as ``diverged``, an
exception as ``failed`` with the traceback tail (re-raised only when asked).
"""

from __future__ import annotations

import math
import os
import random
import resource
import sys
import traceback
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from svconv.config import TrialConfig
from svconv.results import canonical_json, provenance, write_rows
from svconv.results.schema import CONFIG_FIELDS
from svconv.training.batches import DeviceBatches
from svconv.training.checkpoint import checkpoints, load_latest_readable, save_checkpoint
from svconv.training.evaluate import accuracy, final_metrics, predict
from svconv.training.loop import DivergedError, DivergenceGuard, train_one_epoch
from svconv.training.losses import make_loss, resolve_loss
from svconv.training.optim import build_optimizer, build_scheduler, current_lr

#: Characters of the traceback kept in a failed row's ``error``.
ERROR_TAIL = 4000

Report = Callable[[dict[str, Any]], None]


class TrialFailure(RuntimeError):
    """A deliberate failure (``fail_at_epoch``), raised like any other error of a trial."""


def resolve_device(name: str) -> torch.device:
    """``auto``: CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but CUDA is not available here; use device 'auto' or 'cpu'")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's (all devices') generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch's shuffling and augmentation: a resumed trial draws the same batches."""
    return (seed * 1_000_003 + epoch) % 2**63


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory in MiB: the CUDA allocator's peak on a GPU (reset at the start of the trial), else the
    process's maximum resident set size (a process-wide maximum, so an upper bound for the trial)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10  # bytes on macOS, KiB on Linux


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class _Progress:
    """What a trial has produced so far; recorded whatever way it ends."""

    device: torch.device | None = None
    history: list[dict[str, Any]] = field(default_factory=list)  # epochs rows
    metrics: dict[str, Any] = field(default_factory=dict)  # trials columns from the final evaluation
    layers: list[dict[str, Any]] = field(default_factory=list)
    compression: float | None = None
    num_classes: int | None = None  # of the dataset, once loaded (chance accuracy for ``learned``)


def run_trial(
    config: TrialConfig,
    results_dir: str | os.PathLike,
    sweep: str | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    report: Report | None = None,
    raise_on_error: bool = False,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Train and evaluate one model per ``config``; write its rows under ``results_dir``; return the trials row.

    Args:
        config: the trial (validated already).
        results_dir: root of the Parquet tables.
        sweep: the sweep's name (part of the trial id); None for a lone trial.
        checkpoint_dir: where per-epoch checkpoints go; training resumes from the latest one there
            (the epoch count continues). None: no checkpoints.
        report: called after every epoch (after its checkpoint is saved) with ``epoch``, ``epochs``,
            ``train_loss``, ``train_acc``, ``test_acc`` (percent), ``orth_loss``, ``lr``, ``epoch_time_s``,
            ``control_time_s``, ``trial_id`` and ``checkpoint`` (path of the epoch's checkpoint or None).
        raise_on_error: re-raise an exception of the trial after its ``failed`` row is written.
        progress: per-epoch progress bars; None shows them only on a terminal.

    Returns:
        The ``trials`` row as a dict: ``status`` is ``ok``, ``diverged`` or ``failed`` (with ``error``).
    """
    trial_id = config.trial_id(sweep)
    start = _now()
    state = _Progress()
    status, error, failure = "ok", None, None
    try:
        _train_and_evaluate(config, trial_id, checkpoint_dir, report, progress, state)
    except DivergedError as exc:
        status, error = "diverged", str(exc)
    except Exception as exc:  # recorded, then re-raised on request
        status, failure = "failed", exc
        error = "".join(traceback.format_exception(exc))[-ERROR_TAIL:]
    row = _trials_row(config, trial_id, sweep, status, error, state, start)
    tag = {"trial_id": trial_id, "sweep": sweep}
    # trials last: its row existing means the epochs and layers rows are in place
    write_rows(results_dir, "epochs", trial_id, [{**tag, **r} for r in state.history])
    write_rows(results_dir, "layers", trial_id, [{**tag, **r} for r in state.layers])
    write_rows(results_dir, "trials", trial_id, [row])
    if failure is not None and raise_on_error:
        raise failure
    return row


def _train_and_evaluate(
    config: TrialConfig,
    trial_id: str,
    checkpoint_dir: str | os.PathLike | None,
    report: Report | None,
    progress: bool | None,
    state: _Progress,
) -> None:
    """The steps of a trial, in order; each fills ``state`` as it goes so that a failure keeps what was done."""
    state.device = _prepare_device(config)
    run = _set_up(config, state.device)
    state.num_classes = run.num_classes
    done = _resume(run, checkpoint_dir, trial_id, state)
    for epoch in range(done + 1, config.epochs + 1):
        row = _train_epoch(run, config, epoch, progress)
        state.history.append(row)
        path = _save_epoch(run, checkpoint_dir, trial_id, epoch, state.history)
        if report is not None:
            report({**row, "epochs": config.epochs, "trial_id": trial_id, "checkpoint": None if path is None else str(path)})
    _evaluate(run, config, progress, state)


@dataclass
class _Run:
    """Everything a trial trains and evaluates with, built once from its config."""

    device: torch.device
    input_shape: tuple[int, ...]
    model: nn.Module
    method: Any  # an svconv.methods.SVMethod
    optimizer: torch.optim.Optimizer
    scheduler: Any  # a torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler | None
    guard: DivergenceGuard
    train: DeviceBatches
    test: DeviceBatches
    num_classes: int
    global_step: int = 0


def _prepare_device(config: TrialConfig) -> torch.device:
    """The trial's device (peak-memory counter reset on CUDA), with every generator seeded."""
    device = resolve_device(config.device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seed_everything(config.seed)
    return device


def _set_up(config: TrialConfig, device: torch.device) -> _Run:
    """Load the data; build the model, its SV-control method, optimiser, schedule and batches."""
    from svconv.data import load_dataset
    from svconv.methods import get_method, model_layers
    from svconv.models import build_model

    bundle = load_dataset(
        config.dataset,
        data_root=config.data_root,
        n_train=config.n_train,
        n_test=config.n_test,
        augment=config.augment,
        seed=config.seed,
    )
    input_shape = tuple(int(v) for v in bundle.input_shape)
    # the config has checked that method, arch and rank go together (svconv.methods.check_compatible)
    model = build_model(
        config.arch, bundle.num_classes, input_shape, bundle.mean, bundle.std, rank=config.rank, layers=model_layers(config.method)
    ).to(device)
    method = get_method(config.method, **asdict(config.method_options()))
    method.attach(model, input_shape)
    optimizer = build_optimizer(model, config.optimizer, config.lr, config.momentum, config.weight_decay)
    return _Run(
        device=device,
        input_shape=input_shape,
        model=model,
        method=method,
        optimizer=optimizer,
        scheduler=build_scheduler(optimizer, config.schedule, config.epochs),
        scaler=torch.amp.GradScaler("cuda") if config.amp and device.type == "cuda" else None,
        guard=DivergenceGuard(),
        test=DeviceBatches(bundle.test, max(config.batch_size, 256), device, augment=False),
        train=DeviceBatches(bundle.train, config.batch_size, device, shuffle=True),
        num_classes=bundle.num_classes,
    )


def _resume(run: _Run, checkpoint_dir: str | os.PathLike | None, trial_id: str, state: _Progress) -> int:
    """Restore the newest readable checkpoint in ``checkpoint_dir``, if any (an unreadable one is logged and
    skipped); return the number of epochs it holds (0: train from the start)."""
    found = load_latest_readable(checkpoints(checkpoint_dir), map_location=run.device)
    if found is None:
        return 0
    ckpt, saved = found
    if saved["trial_id"] != trial_id:
        raise ValueError(
            f"checkpoint {ckpt} belongs to trial {saved['trial_id']}, not {trial_id}; "
            "give each trial its own checkpoint_dir"
        )
    run.model.load_state_dict(saved["model"])
    run.optimizer.load_state_dict(saved["optimizer"])
    run.scheduler.load_state_dict(saved["scheduler"])
    if run.scaler is not None and saved.get("scaler"):
        run.scaler.load_state_dict(saved["scaler"])
    _restore_method_state(run.method, saved.get("method", {}))
    run.guard.reference = saved["loss_reference"]
    run.global_step = saved["global_step"]
    state.history = list(saved["history"])
    return saved["epoch"]


def _train_epoch(run: _Run, config: TrialConfig, epoch: int, progress: bool | None) -> dict[str, Any]:
    """Train one epoch (seeded by ``epoch_seed``), step the schedule, test; return the epochs row."""
    from svconv.tt import orthogonality_loss

    if config.fail_at_epoch == epoch:
        raise TrialFailure(f"fail_at_epoch={epoch}: deliberate failure at the start of epoch {epoch}")
    seed_everything(epoch_seed(config.seed, epoch))
    run.train.generator = torch.Generator().manual_seed(epoch_seed(config.seed, epoch))
    lr = current_lr(run.optimizer)
    stats, run.global_step = train_one_epoch(
        run.model,
        run.train,
        run.optimizer,
        run.method,
        device=run.device,
        lam=config.lam,
        orthogonality_loss=orthogonality_loss,
        scaler=run.scaler,
        guard=run.guard,
        global_step=run.global_step,
        epoch=epoch,
        epochs=config.epochs,
        progress=progress,
        loss_fn=make_loss(config.loss, config.loss_offset, config.loss_temperature),
    )
    run.scheduler.step()
    logits, labels = predict(run.model, run.test, run.device)
    with torch.no_grad():
        orth = float(orthogonality_loss(run.model))
    return {
        "epoch": epoch,
        "train_loss": stats.train_loss,
        "train_acc": stats.train_acc,
        "test_acc": accuracy(logits, labels),
        "orth_loss": orth,
        "lr": lr,
        "epoch_time_s": stats.epoch_time_s,
        "control_time_s": stats.control_time_s,
    }


def _save_epoch(
    run: _Run, checkpoint_dir: str | os.PathLike | None, trial_id: str, epoch: int, history: list[dict[str, Any]]
) -> Any:
    """Write the checkpoint of ``epoch`` (None without a ``checkpoint_dir``); return its path."""
    if checkpoint_dir is None:
        return None
    return save_checkpoint(
        checkpoint_dir,
        epoch,
        {
            "trial_id": trial_id,
            "epoch": epoch,
            "global_step": run.global_step,
            "model": run.model.state_dict(),
            "optimizer": run.optimizer.state_dict(),
            "scheduler": run.scheduler.state_dict(),
            "scaler": run.scaler.state_dict() if run.scaler is not None else None,
            "method": _method_state(run.method),
            "loss_reference": run.guard.reference,
            "history": history,
        },
    )


def _evaluate(run: _Run, config: TrialConfig, progress: bool | None, state: _Progress) -> None:
    """The final measurements: compression, the trials metrics and the layers rows."""
    from svconv.tt import compression_ratio

    state.compression = float(compression_ratio(run.model))
    state.metrics, state.layers = final_metrics(
        run.model,
        run.test,
        run.input_shape,
        dataset=config.dataset,
        device=run.device,
        aa_n=config.aa_n,
        aa_radii=config.aa_radii,
        emp_lip_n=config.emp_lip_n,
        data_root=config.data_root,
        progress=bool(progress),
    )


def _method_state(method: Any) -> dict[str, Any]:
    """The warm-start state of an SV method (per-layer vectors), keyed by layer name."""
    return {layer.name: dict(layer.state) for layer in getattr(method, "layers", [])}


def _restore_method_state(method: Any, saved: dict[str, Any]) -> None:
    for layer in getattr(method, "layers", []):
        if layer.name in saved:
            layer.state.update(saved[layer.name])


def _trials_row(
    config: TrialConfig,
    trial_id: str,
    sweep: str | None,
    status: str,
    error: str | None,
    state: _Progress,
    start: datetime,
) -> dict[str, Any]:
    from svconv.metrics.learned import trial_learned
    from svconv.models import arch_preprocessing

    device = state.device or torch.device("cpu")
    epoch_times = [r["epoch_time_s"] for r in state.history]
    train_time = float(sum(epoch_times))
    control_time = float(sum(r["control_time_s"] for r in state.history))
    row: dict[str, Any] = {
        "trial_id": trial_id,
        "sweep": sweep,
        "status": status,
        "error": error,
        **{name: getattr(config, name) for name, _ in CONFIG_FIELDS},
        # the offset and temperature trained with, defaults resolved (null for ce)
        **dict(zip(("loss_offset", "loss_temperature"), resolve_loss(config.loss, config.loss_offset, config.loss_temperature))),
        "config_json": canonical_json(config.to_dict()),
        "preprocessing": arch_preprocessing(config.arch),
        **state.metrics,
        "compression": state.compression,
        "final_train_loss": state.history[-1]["train_loss"] if state.history else None,
        "epochs_done": len(state.history),
        # an ok trial that ended at chance says so; null when it did not end ok
        "learned": trial_learned(state.metrics.get("clean_acc"), state.num_classes, [r["train_loss"] for r in state.history])
        if status == "ok" and state.num_classes else None,
        "train_time_s": train_time,
        "control_time_s": control_time,
        "control_share": control_time / train_time if train_time > 0 else None,
        "epoch_time_s": train_time / len(epoch_times) if epoch_times else None,
        "peak_mem_mb": peak_memory_mb(device),
        **provenance(device),
        "start_time": start,
        "end_time": _now(),
    }
    # NaN metrics (e.g. accuracy of an empty set) are stored as nulls
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
