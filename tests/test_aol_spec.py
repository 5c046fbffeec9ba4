"""sweeps/aol.yaml is the AOL paper's run-ID table (Prach & Lampert 2022, README of the authors' code and
their get_run_setting.py): one trial per run ID, with its model, dataset, loss offset and temperature, and
the authors' training setup (schedule, optimiser)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from svconv.training.losses import resolve_loss
from svconv.training.optim import AOL_FRACTIONS, build_optimizer, build_scheduler, multistep_milestones
from sweeps.spec import load_spec

SPEC = Path(__file__).resolve().parents[1] / "sweeps" / "aol.yaml"
R2 = math.sqrt(2)

#: The paper's run-ID table: run ID -> (model, dataset, loss offset); the temperature is offset / (4 sqrt(2)).
RUN_IDS = {
    0: ("aol-small", "cifar10", R2),
    1: ("aol-medium", "cifar10", R2),
    2: ("aol-large", "cifar10", R2),
    10: ("aol-fc", "cifar10", R2),
    11: ("aol-conv", "cifar10", R2),
    12: ("aol-std", "cifar10", R2),
    20: ("aol-small", "cifar10", R2 / 16),
    21: ("aol-small", "cifar10", R2 / 4),
    22: ("aol-small", "cifar10", R2),
    23: ("aol-small", "cifar10", 4 * R2),
    24: ("aol-small", "cifar10", 16 * R2),
    30: ("aol-small", "cifar100", R2),
    31: ("aol-medium", "cifar100", R2),
    32: ("aol-large", "cifar100", R2),
}
#: The ablation's temperatures, base_offset / 4 with offset = sqrt(2) base_offset (get_run_setting.py).
ABLATION_TEMPERATURES = {20: 1 / 64, 21: 1 / 16, 22: 1 / 4, 23: 1.0, 24: 4.0}


def test_the_spec_expands_to_the_run_id_table():
    spec = load_spec(SPEC)
    assert spec.name == "aol" and len(spec.trials) == len(RUN_IDS) == 14
    by_run = {t.config.seed: t.config for t in spec.trials}  # the seed is the run ID
    assert set(by_run) == set(RUN_IDS)
    for run, (arch, dataset, offset) in RUN_IDS.items():
        c = by_run[run]
        assert (c.arch, c.dataset, c.method, c.loss) == (arch, dataset, "aol", "aol-offset"), run
        got_offset, temperature = resolve_loss(c.loss, c.loss_offset, c.loss_temperature)
        assert got_offset == pytest.approx(offset, rel=1e-12), run
        assert temperature == pytest.approx(ABLATION_TEMPERATURES.get(run, 0.25), rel=1e-12), run
        assert (c.epochs, c.batch_size, c.lr, c.optimizer, c.momentum, c.schedule) == (1000, 250, 1e-3, "sgd-nesterov", 0.9, "aol")
    assert len({t.trial_id for t in spec.trials}) == 14


def test_the_authors_schedule_and_optimiser():
    model = torch.nn.Linear(2, 2)
    opt = build_optimizer(model, "sgd-nesterov", 1e-3, 0.9, 1e-3)
    assert opt.param_groups[0]["nesterov"] and not build_optimizer(model, "sgd", 1e-3, 0.9).param_groups[0]["nesterov"]
    # lr x 0.1 at the start of (0-based) epochs 900, 990 and 999, as their LearningRateSchedulerCallback
    assert build_scheduler(opt, "aol", 1000).milestones == {900: 1, 990: 1, 999: 1}
    assert multistep_milestones(10, AOL_FRACTIONS) == [9]  # short runs keep the drops that fall inside them
