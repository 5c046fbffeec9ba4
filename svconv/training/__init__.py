"""Training of one trial: optimisers and schedules, the epoch loop (AMP on CUDA, divergence detection,
progress bar), per-epoch checkpoints and the end-of-trial evaluation. ``svconv.trial.run_trial`` ties
them together.
"""

from svconv.training.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from svconv.training.evaluate import final_metrics, predict
from svconv.training.loop import DivergedError, DivergenceGuard, EpochStats, train_one_epoch
from svconv.training.optim import build_optimizer, build_scheduler, multistep_milestones

__all__ = [
    "DivergedError",
    "DivergenceGuard",
    "EpochStats",
    "build_optimizer",
    "build_scheduler",
    "final_metrics",
    "latest_checkpoint",
    "load_checkpoint",
    "multistep_milestones",
    "predict",
    "save_checkpoint",
    "train_one_epoch",
]
