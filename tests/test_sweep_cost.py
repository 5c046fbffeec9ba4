"""The cost estimate of `svconv sweep run --dry-run`, from bench.epoch_time rows written as real Parquet files."""

from __future__ import annotations

import textwrap
from datetime import datetime, timezone

import pytest

from svconv.config import TrialConfig
from svconv.results import canonical_json, write_rows
from sweeps.cost import BENCH_SWEEP, estimate_cost, format_cost, read_measurements
from sweeps.spec import parse_spec
from svconv_cli.main import main as svconv_main


def bench_cell(results, device_name: str, epoch_times: list[float], control_times: list[float], sweep: str = BENCH_SWEEP,
               status: str = "ok", **config) -> str:
    """The rows bench/epoch_time.py writes for one cell (a trial under its sweep name), with chosen timings."""
    cfg = TrialConfig(**config)
    tid = cfg.trial_id(sweep)
    write_rows(results, "epochs", tid, [
        {"trial_id": tid, "sweep": sweep, "epoch": i + 1, "epoch_time_s": e, "control_time_s": c}
        for i, (e, c) in enumerate(zip(epoch_times, control_times))
    ])
    write_rows(results, "trials", tid, [{
        "trial_id": tid, "sweep": sweep, "status": status, "arch": cfg.arch, "dataset": cfg.dataset,
        "method": cfg.method, "rank": cfg.rank, "epochs": cfg.epochs, "config_json": canonical_json(cfg.to_dict()),
        "device_name": device_name, "end_time": datetime.now(timezone.utc),
    }])
    return tid


SPEC = """\
name: costly
fixed: {arch: wrn-10-2, dataset: DATASET, epochs: 10, device: auto}
grid:
  method: [none, clip]
  rank: [full, 8]
resources: {cpus: 2, gpus: GPUS}
"""


@pytest.fixture
def timings(tmp_path):
    results = tmp_path / "epoch_time"
    cell = dict(arch="wrn-10-2", dataset="mnist5k", epochs=3)
    ids = {
        # warm-up epoch (first) left out: 12 s/epoch, 3 s of it control
        "gpu_none": bench_cell(results, "NVIDIA H200", [40.0, 12.0, 12.0], [0.0, 0.0, 0.0], method="none", **cell),
        "gpu_clip": bench_cell(results, "NVIDIA H200", [50.0, 14.0, 16.0], [9.0, 3.0, 3.0], method="clip", **cell),
        "cpu_clip8": bench_cell(results, "cpu", [90.0], [30.0], method="clip", rank=8, **cell),  # one epoch: kept
        # not used: another sweep's trial, and a failed cell
        "other": bench_cell(results, "NVIDIA H200", [1.0], [0.0], method="none", rank=8, sweep="mine", **cell),
        "failed": bench_cell(results, "NVIDIA H200", [1.0], [0.0], method="none", rank=8, status="failed", **cell),
    }
    return results, ids


def test_gpu_hours_from_the_matching_rows_and_the_trials_without_one(timings):
    results, ids = timings
    spec = parse_spec(SPEC.replace("DATASET", "mnist5k").replace("GPUS", "0.5"))
    measurements = read_measurements([results, results.parent / "missing"])
    assert sorted(m.trial_id for m in measurements) == sorted([ids["gpu_none"], ids["gpu_clip"], ids["cpu_clip8"]])
    est = estimate_cost(spec, measurements, [str(results)])
    by = {(t.trial.config.method, t.trial.config.rank): t for t in est.trials}
    assert by["none", None].seconds == pytest.approx(10 * 12.0) and by["none", None].control_seconds == 0
    assert by["clip", None].seconds == pytest.approx(10 * 15.0) and by["clip", None].control_seconds == pytest.approx(30.0)
    assert by["clip", 8].measurement is None  # measured on a CPU only; the trials run on the GPU
    assert by["none", 8].measurement is None
    assert est.unit == "GPU" and est.hours == pytest.approx((120 + 150) * 0.5 / 3600)

    text = format_cost(est)
    assert f"total: {(120 + 150) * 0.5 / 3600:.3g} GPU-hours for 2 of 4 trials, each holding 0.5 GPU" in text
    assert "rows used (2):" in text and ids["gpu_none"] in text and ids["gpu_clip"] in text
    assert ids["cpu_clip8"] not in text and ids["other"] not in text
    assert "no measurement (2 trials, not in the total): wrn-10-2 none rank 8 on cuda, wrn-10-2 clip rank 8 on cuda" in text
    lines = {line.split()[0]: line.split() for line in text.splitlines() if line.startswith("  clip") or line.startswith("  none")}
    assert lines["clip"][1:] == ["1", "10", "15", "3", f"{150 * 0.5 / 3600:.3g}"]  # trials, epochs, s/epoch, control, hours


def test_cpu_hours_scale_by_images_and_mark_another_dataset(timings):
    results, ids = timings
    spec = parse_spec(SPEC.replace("DATASET", "cifar10").replace("GPUS", "0"))
    est = estimate_cost(spec, read_measurements([results]), [str(results)])
    (clip8,) = est.measured  # only the CPU row fits a CPU-only sweep
    assert (clip8.trial.config.method, clip8.trial.config.rank) == ("clip", 8)
    assert clip8.seconds == pytest.approx(10 * 90.0 * 50_000 / 4_000)  # cifar10's 50,000 images vs mnist5k's 4,000
    assert est.unit == "CPU" and est.hours == pytest.approx(clip8.seconds * 2 / 3600)  # 2 CPUs per trial
    text = format_cost(est)
    assert "CPU-hours for 1 of 4 trials, each holding 2 CPU" in text
    assert "scaled from another dataset by images per epoch only (1 trials): wrn-10-2 clip rank 8 on cifar10 from mnist5k" in text


def test_dry_run_prints_the_trials_then_the_estimate(timings, tmp_path, capsys):
    results, ids = timings
    spec = tmp_path / "costly.yaml"
    spec.write_text(textwrap.dedent(SPEC.replace("DATASET", "mnist5k").replace("GPUS", "1")))
    assert svconv_main(["sweep", "run", str(spec), "--dry-run", "--timings", str(results)]) == 0
    out = capsys.readouterr().out
    assert out.index("sweep costly: 4 trials") < out.index(f"cost estimate from bench.epoch_time rows in {results}:")
    assert "GPU-hours for 2 of 4 trials, each holding 1 GPU" in out
    assert svconv_main(["sweep", "run", str(spec), "--dry-run", "--timings", str(tmp_path / "none")]) == 0
    out = capsys.readouterr().out
    assert "(not found)" in out and "no measurement matches any trial" in out and "no measurement (4 trials" in out
