"""One training epoch: forward, the trial's loss (cross-entropy or AOL's offset cross-entropy,
``svconv.training.losses``) + lam * orthogonality loss, backward, optimiser step,
then the SV-control method's own step; mixed precision on CUDA; divergence detection; a progress bar.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import torch
from torch import nn
from tqdm.auto import tqdm

from svconv.training.losses import LossFn, make_loss

#: The loss has exploded when it exceeds this many times the first loss of the trial.
EXPLODE_FACTOR = 1e3
#: ... and this absolute value (a guard for a first loss near 0).
EXPLODE_MIN = 1e3
#: Steps between two checks of the loss (each check synchronises the GPU).
CHECK_EVERY = 10


class DivergedError(RuntimeError):
    """Training diverged (non-finite or exploding loss, non-finite weights); ends a trial as ``diverged``."""


class DivergenceGuard:
    """Decides whether a loss value means divergence: not finite, or above ``EXPLODE_FACTOR`` times the
    reference (the first loss seen, kept across epochs and checkpoints) and above ``EXPLODE_MIN``."""

    def __init__(self, reference: float | None = None, factor: float = EXPLODE_FACTOR, floor: float = EXPLODE_MIN):
        self.reference = reference
        self.factor = factor
        self.floor = floor

    def check(self, loss: float, where: str) -> None:
        """Raise DivergedError if ``loss`` means divergence; ``where`` names the step for the message."""
        if not math.isfinite(loss):
            raise DivergedError(f"loss is {loss} at {where}")
        if self.reference is None:
            self.reference = loss
            return
        limit = max(self.factor * self.reference, self.floor)
        if loss > limit:
            raise DivergedError(f"loss exploded to {loss:.4g} at {where} (first loss {self.reference:.4g}, limit {limit:.4g})")


def check_finite_parameters(model: nn.Module, where: str) -> None:
    """Raise DivergedError naming the first parameter that holds NaN or inf (one GPU synchronisation)."""
    params = list(model.named_parameters())
    if not params:
        return
    finite = torch.stack([torch.isfinite(p.detach()).all() for _, p in params]).cpu()
    if not bool(finite.all()):
        name = params[int((~finite).nonzero()[0])][0]
        raise DivergedError(f"parameter {name} is not finite at {where}")


def has_control_step(method: Any) -> bool:
    """Whether ``method`` changes weights in its control step (``none``'s step is a timed no-op)."""
    from svconv.methods.base import SVMethod

    return type(method).control is not SVMethod.control


def check_before_control(model: nn.Module, pending_loss: torch.Tensor, guard: DivergenceGuard, where: str) -> None:
    """Divergence check that runs before a control step: a method's linear algebra (``eigh``, SVD) fails
    or returns garbage on non-finite or exploded weights, and that is divergence, not a failure."""
    guard.check(float(pending_loss), where)
    check_finite_parameters(model, where)


@dataclass
class EpochStats:
    """What one training pass measured. The loss is the mean training loss per sample (without the orthogonality term)."""

    train_loss: float  # mean of the trial's loss (cross-entropy unless given another)
    train_acc: float  # percent, on the augmented training batches, in train mode
    steps: int
    control_steps: int  # how many optimiser steps were followed by a control step
    epoch_time_s: float  # wall time of the pass, control steps included
    control_time_s: float  # wall time of the control steps, as the method measured it


def train_one_epoch(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    method: Any,
    *,
    device: torch.device,
    lam: float = 0.0,
    orthogonality_loss: Callable[[nn.Module], torch.Tensor] | None = None,
    scaler: torch.amp.GradScaler | None = None,
    guard: DivergenceGuard | None = None,
    global_step: int = 0,
    epoch: int = 1,
    epochs: int = 1,
    progress: bool | None = None,
    loss_fn: LossFn | None = None,
) -> tuple[EpochStats, int]:
    """Train ``model`` for one pass over ``loader``; returns the stats and the new global step count.

    ``method`` is an ``svconv.methods`` SVMethod: ``method.step(model, step)`` runs after every optimiser
    step (it decides itself whether this step is a control step) and ``method.control_time_s`` grows by
    the time it spends. ``scaler`` set (CUDA): forward and loss under float16 autocast. The loss is
    ``loss_fn(logits, labels) + lam * orthogonality_loss(model)`` (``loss_fn`` None: cross-entropy; see
    ``svconv.training.losses.make_loss``); divergence raises ``DivergedError``, checked every
    ``CHECK_EVERY`` steps and before every control step (loss and weights), so that a method never runs
    its control step on diverged weights.
    """
    guard = guard if guard is not None else DivergenceGuard()
    loss_fn = loss_fn if loss_fn is not None else make_loss("ce")
    controls, clip_every = has_control_step(method), int(getattr(method, "clip_every", 1))
    use_amp = scaler is not None and device.type == "cuda"
    model.train()
    control_before = float(method.control_time_s)
    ce_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    seen = steps = control_steps = 0
    pending = torch.zeros((), device=device)  # largest loss since the last check
    bar = tqdm(
        loader,
        desc=f"epoch {epoch}/{epochs}",
        leave=False,
        disable=None if progress is None else not progress,
        unit="batch",
        dynamic_ncols=True,
    )
    t0 = time.perf_counter()
    for x, y in bar:
        x = x.to(device, non_blocking=True)
        y = y.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=use_amp):
            logits = model(x)
            ce = loss_fn(logits, y)  # float32: the losses upcast half-precision logits
        loss = ce
        if lam > 0 and orthogonality_loss is not None:
            loss = ce + lam * orthogonality_loss(model)  # float32, outside autocast
        if use_amp:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        steps += 1
        global_step += 1
        # NaN-propagating max: a NaN anywhere since the last check stays NaN
        pending = torch.maximum(pending, loss.detach().float())
        if controls and global_step % clip_every == 0:
            check_before_control(model, pending, guard, f"epoch {epoch} step {global_step}, before the control step")
        if method.step(model, global_step):
            control_steps += 1
        n = y.shape[0]
        seen += n
        ce_sum += ce.detach().double() * n
        correct += (logits.detach().argmax(1) == y).sum()
        if steps % CHECK_EVERY == 0 or steps == 1:
            value = float(pending)
            guard.check(value, f"epoch {epoch} step {global_step}")
            pending = torch.zeros((), device=device)
            bar.set_postfix(loss=f"{float(ce.detach()):.4f}", refresh=False)
    if steps == 0:
        raise ValueError("the training loader yielded no batch; check n_train and batch_size")
    guard.check(float(pending), f"epoch {epoch} step {global_step}")
    check_finite_parameters(model, f"the end of epoch {epoch}")
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - t0
    bar.close()
    stats = EpochStats(
        train_loss=float(ce_sum) / seen,
        train_acc=100.0 * float(correct) / seen,
        steps=steps,
        control_steps=control_steps,
        epoch_time_s=elapsed,
        control_time_s=float(method.control_time_s) - control_before,
    )
    return stats, global_step
