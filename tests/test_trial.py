"""One trial end to end on tiny subsets: rows written and well formed for every method, divergence,
failure, checkpoint resume, re-runs replacing rows, AutoAttack inside a trial. Real data (mnist5k),
real models and methods, real Parquet."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch

from svconv.config import TrialConfig
from svconv.data import load_dataset
from svconv.models.preprocessing import normalization
from svconv.results import read_table
from svconv.results.schema import CONFIG_FIELDS
from svconv.trial import TrialFailure, run_trial
from svconv.training import DivergedError, DivergenceGuard, latest_checkpoint, multistep_milestones, save_checkpoint

TINY = dict(dataset="mnist5k", n_train=256, n_test=128, epochs=1, batch_size=64, emp_lip_n=16, device="cpu")

#: (method, the smallest architecture it trains)
METHOD_ARCHS = [
    ("none", "small-cnn"),
    ("clip", "small-cnn"),
    ("division", "small-cnn"),
    ("fastclip", "small-cnn"),
    ("gram", "small-cnn"),
    ("aol", "aol-small"),
    ("soc", "lipconvnet-5"),
]
#: LipConvNet-5 has SOC layers of up to 2048 channels (about 15M weights) and AOL-Small wide patchwise
#: layers: two small batches suffice to exercise them.
SMALLER = {
    "lipconvnet-5": dict(n_train=32, n_test=16, batch_size=16, emp_lip_n=4),
    "aol-small": dict(n_train=64, n_test=32, batch_size=32, emp_lip_n=8),
}


def _only_row(results, table="trials") -> pd.Series:
    df = read_table(results, table)
    assert len(df) == 1, df
    return df.iloc[0]


@pytest.mark.parametrize("method,arch", METHOD_ARCHS)
def test_one_epoch_trial_writes_well_formed_rows(tmp_path, method, arch):
    config = TrialConfig(arch=arch, method=method, lr=0.05, **{**TINY, **SMALLER.get(arch, {})})
    row = run_trial(config, tmp_path, sweep="t", progress=False)
    assert row["status"] == "ok", row["error"]

    t = _only_row(tmp_path)
    assert t.trial_id == config.trial_id("t") and t.sweep == "t" and t.status == "ok" and pd.isna(t.error)
    for name, _ in CONFIG_FIELDS:  # every config column, and the full config round-trips
        assert pd.isna(t[name]) if getattr(config, name) is None else t[name] == getattr(config, name)
    assert TrialConfig.from_dict(json.loads(t.config_json)) == config

    assert 0 <= t.clean_acc <= 100 and 0 <= t.ece <= 100
    cra = [t.cra_36, t.cra_72, t.cra_108, t.cra_255]
    assert all(0 <= c <= t.clean_acc for c in cra) and cra == sorted(cra, reverse=True)
    assert math.isfinite(t.lipschitz_bound) and t.lipschitz_bound > 0
    # the empirical ratio is a lower bound of the true constant, the certified bound an upper one
    assert len(t.emp_lip_hist) == config.emp_lip_n and t.emp_lip_max == pytest.approx(max(t.emp_lip_hist))
    assert 0 < t.emp_lip_max <= t.lipschitz_bound * 1.01
    # in normalised-input units (the papers' "Lip."): the same images, the bound without Normalize's 1/min(std)
    data = load_dataset(config.dataset, n_train=config.n_train, n_test=config.n_test)
    _, std = normalization(t.preprocessing, data.mean, data.std)
    assert len(t.emp_lip_hist_normalized) == config.emp_lip_n
    assert 0 < t.emp_lip_max_normalized <= t.lipschitz_bound * min(std) * 1.01
    assert math.isnan(t.autoattack_05) and math.isnan(t.corruption_acc)  # aa_n = 0; not cifar10
    assert t.compression >= 1 or math.isclose(t.compression, 1.0)
    assert t.epochs_done == 1 and math.isfinite(t.final_train_loss)
    assert t.train_time_s > 0 and t.epoch_time_s == pytest.approx(t.train_time_s)
    assert 0 <= t.control_time_s < t.train_time_s and 0 <= t.control_share < 1
    if method in ("clip", "division", "fastclip", "gram"):
        assert t.control_time_s > 0
    if method == "none":  # a timed no-op
        assert t.control_share < 0.01
    assert t.peak_mem_mb > 0 and t.device_name == "cpu" and t.schema_version >= 1
    assert t.start_time <= t.end_time

    e = _only_row(tmp_path, "epochs")
    assert e.trial_id == t.trial_id and e.epoch == 1 and e.train_loss == pytest.approx(t.final_train_loss)
    assert 0 <= e.test_acc <= 100 and e.lr == pytest.approx(0.05) and e.epoch_time_s == pytest.approx(t.train_time_s)

    layers = read_table(tmp_path, "layers")
    assert len(layers) >= 1 and (layers.trial_id == t.trial_id).all()
    assert (layers.spectral_norm > 0).all() and layers.spectral_norm.map(math.isfinite).all()


def test_absurd_learning_rate_ends_as_diverged(tmp_path):
    config = TrialConfig(lr=1e6, **TINY)
    row = run_trial(config, tmp_path, progress=False)
    assert row["status"] == "diverged"
    t = _only_row(tmp_path)
    assert t.status == "diverged" and ("loss" in t.error or "not finite" in t.error)
    assert t.epochs_done == 0 and math.isnan(t.clean_acc)
    assert read_table(tmp_path, "epochs").empty and read_table(tmp_path, "layers").empty


@pytest.mark.parametrize("method", ["clip", "division", "fastclip", "gram"])
def test_a_diverged_trial_of_a_controlling_method_ends_diverged_not_failed(tmp_path, method):
    # lr 1e12: before the check ran before the control step, clip's eigh raised on the exploded weights
    # and the trial was recorded (and in a sweep retried) as failed
    config = TrialConfig(method=method, lr=1e12, **{**TINY, "dataset": "synthetic", "n_train": 128, "batch_size": 32})
    row = run_trial(config, tmp_path, progress=False, raise_on_error=True)
    assert row["status"] == "diverged", row["error"]
    assert "before the control step" in row["error"] and "Traceback" not in row["error"]
    assert _only_row(tmp_path).status == "diverged"


def test_the_control_step_never_runs_on_non_finite_weights():
    from svconv.data import load_dataset
    from svconv.methods import get_method
    from svconv.models import build_model
    from svconv.training import train_one_epoch

    data = load_dataset("synthetic", n_train=32, n_test=8)
    shape = tuple(int(v) for v in data.input_shape)
    model = build_model("small-cnn", data.num_classes, shape, data.mean, data.std)
    method = get_method("clip")
    method.attach(model, shape)
    weight = next(p for n, p in model.named_parameters() if n.endswith("weight") and p.dim() == 4)
    with torch.no_grad():
        weight[0, 0, 0, 0] = float("nan")
    x, y = data.train.images[:8].float() / (255.0 if data.train.images.dtype == torch.uint8 else 1.0), data.train.labels[:8]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    with pytest.raises(DivergedError, match="before the control step"):
        train_one_epoch(model, [(x, y)], optimizer, method, device=torch.device("cpu"), progress=False)
    assert method.n_control_steps == 0


class _Interrupt(Exception):
    pass


def test_resume_continues_the_epoch_count_and_the_same_run(tmp_path):
    """A trial interrupted after epoch 1 resumes from its checkpoint: epoch 2 is the second epoch of the
    same run (equal to an uninterrupted run's), and the history keeps epoch 1."""
    config = TrialConfig(method="division", schedule="multistep", **{**TINY, "epochs": 2})
    ckpt = tmp_path / "ckpt"

    def interrupt(metrics):
        raise _Interrupt(f"stopped after epoch {metrics['epoch']}")

    first = run_trial(config, tmp_path / "a", checkpoint_dir=ckpt, report=interrupt, progress=False)
    assert first["status"] == "failed" and "stopped after epoch 1" in first["error"]
    assert latest_checkpoint(ckpt).name == "epoch_0001.pt"

    reports = []
    resumed = run_trial(config, tmp_path / "a", checkpoint_dir=ckpt, report=reports.append, progress=False)
    assert resumed["status"] == "ok" and resumed["epochs_done"] == 2
    assert [r["epoch"] for r in reports] == [2]  # epoch 1 was not trained again
    assert {"epoch", "epochs", "train_loss", "test_acc", "lr", "trial_id", "checkpoint"} <= set(reports[0])
    assert reports[0]["checkpoint"].endswith("epoch_0002.pt") and latest_checkpoint(ckpt).name == "epoch_0002.pt"
    assert sorted(read_table(tmp_path / "a", "epochs").epoch) == [1, 2]
    assert len(read_table(tmp_path / "a", "trials")) == 1

    straight = run_trial(config, tmp_path / "b", progress=False)
    a = read_table(tmp_path / "a", "epochs").sort_values("epoch")
    b = read_table(tmp_path / "b", "epochs").sort_values("epoch")
    assert a.train_loss.tolist() == pytest.approx(b.train_loss.tolist(), rel=1e-5)
    assert a.test_acc.tolist() == pytest.approx(b.test_acc.tolist())
    assert resumed["clean_acc"] == pytest.approx(straight["clean_acc"])


def test_checkpoint_of_another_trial_is_refused(tmp_path):
    save_checkpoint(tmp_path / "ckpt", 1, {"trial_id": "someone-else"})
    row = run_trial(TrialConfig(**TINY), tmp_path, checkpoint_dir=tmp_path / "ckpt", progress=False)
    assert row["status"] == "failed" and "belongs to trial someone-else" in row["error"]


def test_failing_trial_is_recorded_and_a_rerun_replaces_its_row(tmp_path):
    config = TrialConfig(fail_at_epoch=1, **TINY)
    row = run_trial(config, tmp_path, sweep="s", progress=False)
    assert row["status"] == "failed"
    t = _only_row(tmp_path)
    assert t.status == "failed" and "TrialFailure" in t.error and "fail_at_epoch=1" in t.error
    first_start = t.start_time

    with pytest.raises(TrialFailure, match="fail_at_epoch=1"):
        run_trial(config, tmp_path, sweep="s", raise_on_error=True, progress=False)
    t = _only_row(tmp_path)  # one row: the re-run replaced it
    assert t.status == "failed" and t.start_time > first_start


def test_autoattack_inside_a_trial_stays_below_clean_accuracy(tmp_path):
    # 8x8 images, 4 classes: AutoAttack's standard suite (APGD-CE, APGD-T, FAB-T, Square) stays quick
    # the paper's radius (0.25 px) and 0.5 px; 36/255 is not asked for, so its column stays null
    config = TrialConfig(aa_n=8, aa_radii="0.25,0.5", lr=0.05, **{**TINY, "dataset": "synthetic"})
    row = run_trial(config, tmp_path, progress=False)
    assert row["status"] == "ok", row["error"]
    t = _only_row(tmp_path)
    assert 0 <= t.autoattack_05 <= t.aa_clean_acc and 0 <= t.autoattack_025 <= t.aa_clean_acc and math.isnan(t.autoattack_36)


def test_divergence_guard():
    guard = DivergenceGuard()
    guard.check(2.3, "step 1")  # sets the reference
    guard.check(50.0, "step 2")
    with pytest.raises(DivergedError, match="exploded"):
        guard.check(1e5, "step 3")
    with pytest.raises(DivergedError, match="nan"):
        guard.check(float("nan"), "step 4")
    with pytest.raises(DivergedError, match="inf"):
        DivergenceGuard().check(float("inf"), "step 1")


def test_multistep_milestones_follow_the_seed_schedule():
    assert multistep_milestones(200) == [60, 120, 160]
    assert multistep_milestones(1) == [] and multistep_milestones(3) == [1, 2]


def test_checkpoints_keep_only_the_latest(tmp_path):
    for epoch in (1, 2, 3):
        save_checkpoint(tmp_path, epoch, {"epoch": epoch, "w": torch.ones(2)})
    assert [p.name for p in tmp_path.iterdir()] == ["epoch_0003.pt"]
    assert latest_checkpoint(tmp_path / "missing") is None


def test_optimizers_and_schedules():
    from svconv.training import build_optimizer, build_scheduler

    model = torch.nn.Linear(2, 2)
    adam = build_optimizer(model, "adam", 0.1, weight_decay=1e-4)
    assert isinstance(adam, torch.optim.Adam) and adam.param_groups[0]["weight_decay"] == 1e-4
    sgd = build_optimizer(model, "sgd", 1.0, momentum=0.9)
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["momentum"] == 0.9
    lrs = {}
    for name in ("multistep", "cosine", "constant"):
        opt = build_optimizer(model, "sgd", 1.0)
        sched = build_scheduler(opt, name, 10)
        lrs[name] = []
        for _ in range(10):
            lrs[name].append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
    assert lrs["multistep"] == pytest.approx([1, 1, 1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001])
    assert lrs["cosine"] == pytest.approx([0.5 * (1 + math.cos(math.pi * e / 10)) for e in range(10)])
    assert lrs["constant"] == [1.0] * 10
    with pytest.raises(ValueError, match="sgd, sgd-nesterov, adam"):
        build_optimizer(model, "rmsprop", 0.1)


@pytest.mark.cuda
@pytest.mark.parametrize("method,arch,rank", [("clip", "small-cnn", None), ("division", "small-cnn", 4), ("soc", "lipconvnet-5", None)])
def test_a_cuda_trial_with_mixed_precision(tmp_path, method, arch, rank):
    """On a GPU: AMP training, control steps and every end-of-trial metric run on CUDA and land as rows."""
    config = TrialConfig(arch=arch, method=method, rank=rank, lr=0.05, amp=True, aa_n=8,
                         **{**TINY, "device": "cuda", "n_train": 64, "n_test": 32, "batch_size": 16})
    row = run_trial(config, tmp_path, sweep="t", progress=False)
    assert row["status"] == "ok", row["error"]
    t = _only_row(tmp_path)
    assert t.device_name == torch.cuda.get_device_name()
    assert t.peak_mem_mb > 0 and 0 <= t.autoattack_05 <= t.clean_acc
    assert len(read_table(tmp_path, "epochs")) == 1
