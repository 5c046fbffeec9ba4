"""AOL's offset cross-entropy (Prach & Lampert 2022) against hand-computed values, its defaults, the trial
options that select it and the training loop that uses it."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from svconv.config import TrialConfig
from svconv.methods import get_method
from svconv.training import train_one_epoch
from svconv.training.losses import AOL_OFFSET, AOL_TEMPERATURE, aol_temperature, make_loss, offset_cross_entropy, resolve_loss


def test_offset_cross_entropy_matches_the_authors_unit_test():
    # OffsetXentFromScores(offset=1) on zero scores of 10 classes: 1 + log(e^-1 + 9) (their test_uniform_offset)
    loss = offset_cross_entropy(torch.zeros(1, 10), torch.tensor([0]), offset=1.0, temperature=1.0)
    assert float(loss) == pytest.approx(1 + math.log(math.exp(-1.0) + 9), rel=1e-6)


def test_offset_cross_entropy_by_hand_with_the_default_offset_and_temperature():
    s = torch.tensor([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0]], dtype=torch.float64)
    y = torch.tensor([0, 2])
    o, t = math.sqrt(2), 0.25
    # T * (log sum_j exp(z_j) - z_y), z = (s - o * onehot(y)) / T
    z0 = [(2 - o) / t, 0 / t, -1 / t]
    z1 = [0.5 / t, 1.5 / t, (0 - o) / t]
    by_hand = [t * (math.log(sum(math.exp(v) for v in z)) - z[k]) for z, k in ((z0, 0), (z1, 2))]
    loss = offset_cross_entropy(s, y)
    assert float(loss) == pytest.approx(sum(by_hand) / 2, rel=1e-12)
    assert float(make_loss("aol-offset")(s, y)) == pytest.approx(float(loss), rel=1e-12)
    assert float(make_loss("ce")(s, y)) == pytest.approx(float(nn.functional.cross_entropy(s, y)), rel=1e-6)


def test_a_small_temperature_makes_it_a_hinge_on_the_offset_margin():
    # T -> 0: T * CE -> max(0, max_{j != y} s_j - (s_y - offset))
    s = torch.tensor([[1.0, 0.2, 0.5], [3.0, 0.0, 0.1]], dtype=torch.float64)
    y = torch.tensor([0, 0])
    loss = offset_cross_entropy(s, y, offset=1.0, temperature=1e-4)
    assert float(loss) == pytest.approx((max(0.0, 0.5 - (1.0 - 1.0)) + 0.0) / 2, abs=1e-3)


def test_half_precision_logits_are_upcast():
    s = torch.randn(4, 5)
    y = torch.tensor([0, 1, 2, 3])
    loss = offset_cross_entropy(s.half(), y)
    assert loss.dtype == torch.float32 and float(loss) == pytest.approx(float(offset_cross_entropy(s.half().float(), y)))


def test_defaults_and_the_ablation_rescaling_of_the_temperature():
    assert (AOL_OFFSET, AOL_TEMPERATURE) == (math.sqrt(2), 0.25)
    assert resolve_loss("aol-offset") == (math.sqrt(2), 0.25)
    assert resolve_loss("ce") == (None, None)
    # run IDs 20-24: offset sqrt(2) b, temperature b / 4
    for b in (1 / 16, 1 / 4, 1, 4, 16):
        assert aol_temperature(math.sqrt(2) * b) == pytest.approx(b / 4, rel=1e-12)
        assert resolve_loss("aol-offset", math.sqrt(2) * b)[1] == pytest.approx(b / 4, rel=1e-12)
    assert resolve_loss("aol-offset", 2.0, 0.5) == (2.0, 0.5)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(loss="hinge"), "loss must be one of ce, aol-offset"),
        (dict(loss="ce", loss_offset=1.0), "apply to loss aol-offset only"),
        (dict(loss="ce", loss_temperature=1.0), "apply to loss aol-offset only"),
        (dict(loss="aol-offset", loss_offset=0.0), "loss_offset must be a positive number"),
        (dict(loss="aol-offset", loss_temperature=-1.0), "loss_temperature must be a positive number"),
        (dict(loss="aol-offset", loss_offset="1"), "loss_offset must be a finite number or null"),
    ],
)
def test_trial_config_refuses_bad_loss_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrialConfig(**kwargs)


def test_resolve_loss_refuses_bad_arguments():
    with pytest.raises(ValueError, match="loss must be one of"):
        resolve_loss("xent")
    with pytest.raises(ValueError, match="loss_temperature must be a positive number"):
        resolve_loss("aol-offset", 1.0, 0.0)
    with pytest.raises(ValueError, match="temperature must be a positive number"):
        offset_cross_entropy(torch.zeros(2, 3), torch.tensor([0, 1]), temperature=0.0)


def test_the_training_loop_reports_the_loss_it_is_given():
    torch.manual_seed(0)
    model = nn.Linear(6, 3)
    x, y = torch.randn(8, 6), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: the loss is that of the initial model
    method = get_method("none")
    method.attach(model, (6,))
    with torch.no_grad():
        expected = float(offset_cross_entropy(model(x), y))
        ce = float(nn.functional.cross_entropy(model(x), y))
    loss_fn = make_loss("aol-offset")
    stats, _ = train_one_epoch(model, [(x, y)], opt, method, device=torch.device("cpu"), progress=False, loss_fn=loss_fn)
    assert stats.train_loss == pytest.approx(expected, rel=1e-6)
    stats, _ = train_one_epoch(model, [(x, y)], opt, method, device=torch.device("cpu"), progress=False)
    assert stats.train_loss == pytest.approx(ce, rel=1e-6) and ce != pytest.approx(expected)


def test_a_trial_trains_with_it_and_records_the_resolved_offset_and_temperature(tmp_path):
    from svconv.results import read_table
    from svconv.trial import run_trial

    config = TrialConfig(
        loss="aol-offset", loss_offset=math.sqrt(2) / 4, dataset="synthetic", n_train=64, n_test=32,
        batch_size=32, emp_lip_n=4, device="cpu",
    )  # fmt: skip
    row = run_trial(config, tmp_path, sweep="t", progress=False)
    assert row["status"] == "ok", row["error"]
    t = read_table(tmp_path, "trials").iloc[0]
    assert t.loss == "aol-offset" and t.loss_offset == pytest.approx(math.sqrt(2) / 4) and t.loss_temperature == pytest.approx(1 / 16)
    assert TrialConfig(dataset="synthetic").trial_id("t") != TrialConfig(dataset="synthetic", loss="aol-offset").trial_id("t")
