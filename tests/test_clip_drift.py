"""bench.clip_drift (a short real training run with exact clipping; counts checked against the exact spectra) and
bench.clip_model (torchvision's resnet18 clipped whole)."""

import pandas as pd
import pytest
import torch

from bench.clip_drift import _counts, main


def test_counts_are_those_of_the_exact_per_frequency_spectrum():
    from svconv.spectrum.exact import gram_singular_values, transfer_matrices

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 5, 3, padding=1, padding_mode="circular")
    P, _ = transfer_matrices(conv.weight.detach(), (6, 6), (1, 1))
    sv = gram_singular_values(P)
    threshold = float(sv.flatten().quantile(0.9))
    mx, mean, share, size = _counts(conv, (6, 6), threshold)
    above = (sv > threshold).sum(-1)
    assert size == 3 and mx == int(above.max()) and 0 < mean <= mx and 0 < share <= 1


def test_a_short_run_writes_one_row_per_step_and_conv_layer(tmp_path, capsys):
    assert main(["--steps", "2", "--batch-size", "16", "--out", str(tmp_path)]) == 0
    df = pd.read_csv(tmp_path / "clip_drift.csv")
    assert sorted(set(df["step"])) == [1, 2] and len(df) == 2 * df["layer"].nunique()
    assert (df["above_max"] <= df["per_freq"]).all() and (df["freq_share"].between(0, 1)).all()
    # every control step ends in the band, or below it where nothing needed clipping
    assert ((df["sigma_after"] <= 1.01 + 1e-6) & ((df["sigma_after"] >= 0.99) | (df["passes"] == 0))).all()
    assert "above_max" in capsys.readouterr().out
    assert main(["--steps", "0", "--out", str(tmp_path)]) == 2


def test_clip_model_bench_clips_torchvision_resnet18_within_the_band(tmp_path, capsys):
    pytest.importorskip("torchvision")
    from bench.clip_model import main as clip_model

    assert clip_model(["--size", "16", "--out", str(tmp_path)]) == 0
    df = pd.read_csv(tmp_path / "clip_model.csv")
    assert len(df) == 20 and (df["sigma_after"] <= 1.01 + 1e-6).all()  # every conv of resnet18
    assert "20 convs" in capsys.readouterr().out
    assert clip_model(["--size", "0", "--out", str(tmp_path)]) == 2
