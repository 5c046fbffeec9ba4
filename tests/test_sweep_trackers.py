"""Experiment trackers: the spec's `trackers` refused with FILE:LINE, and on a real local Ray instance a sweep
with `trackers: [tensorboard, mlflow]` writes TensorBoard event files per trial and one MLflow run per trial
(the default file store under the results folder) holding the same per-epoch numbers as the Parquet rows."""

from __future__ import annotations

import struct
import textwrap
from pathlib import Path

import pytest
from test_sweep_ray import TINY, ray  # Ray's environment is set there before Ray is imported
from test_sweep_scheduler import assert_refused

from svconv.results import read_table
from sweeps.driver import run_sweep
from sweeps.spec import parse_spec

BASE = """\
name: t
fixed: {arch: small-cnn, dataset: synthetic}
grid:
  seed: [0, 1]
"""


@pytest.mark.parametrize(
    "trackers, line, words",
    [
        ("[wandb]", 5, ["each entry must be one of tensorboard, mlflow", "'wandb'"]),
        ("[mlflow, mlflow]", 5, ["mlflow is listed twice"]),
        ("\n  - tensorboard\n  - {mlflow: {uri: x}}", 7, ["unknown mlflow option 'uri'; known options: tracking_uri, experiment"]),
        ("[{tensorboard: {logdir: x}}]", 5, ["unknown tensorboard option 'logdir'; known options: none"]),
        ("[{mlflow: {experiment: 3}}]", 5, ["mlflow experiment must be a non-empty string"]),
        ("tensorboard", 5, ["trackers must be a list"]),
    ],
)
def test_a_bad_tracker_is_refused_naming_the_allowed_ones(trackers, line, words):
    assert_refused(BASE + f"trackers: {trackers}\n", f"s.yaml:{line}: trackers", words)


def scalars(event_file: Path) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value)] of a TensorBoard event file (TFRecord framing, tensorboardX's Event proto)."""
    from tensorboardX.proto.event_pb2 import Event

    out: dict[str, list[tuple[int, float]]] = {}
    data = event_file.read_bytes()
    pos = 0
    while pos < len(data):
        (length,) = struct.unpack("<Q", data[pos:pos + 8])
        event = Event.FromString(data[pos + 12:pos + 12 + length])  # after the length and its CRC
        pos += 12 + length + 4  # and the data's CRC
        for value in event.summary.value:
            out.setdefault(value.tag, []).append((event.step, value.simple_value))
    return out


def test_tensorboard_and_mlflow_receive_every_epoch(tmp_path):
    pytest.importorskip("tensorboardX", reason="the tensorboard tracker needs tensorboardX (pip install 'svconv[trackers]')")
    pytest.importorskip("mlflow", reason="the mlflow tracker needs mlflow (pip install 'svconv[trackers]')")
    from mlflow.tracking import MlflowClient

    text = textwrap.dedent(
        f"""\
        name: tracked
        fixed: {TINY[:-1]}, epochs: 2}}
        grid:
          seed: [0, 1]
        resources: {{cpus: 1, gpus: 0}}
        trackers: [tensorboard, mlflow]
        """
    )
    spec = parse_spec(text, source="tracked.yaml")
    results, storage = tmp_path / "results", tmp_path / "state"
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        outcome = run_sweep(spec, results_dir=results, storage=storage, progress=False)
    finally:
        ray.shutdown()
    assert outcome.ok
    epochs = read_table(results, "epochs")

    client = MlflowClient((results / "mlruns").resolve().as_uri())
    experiment = client.get_experiment_by_name("tracked")  # the sweep's name
    runs = {r.data.params["trial/trial_id"]: r for r in client.search_runs([experiment.experiment_id])}
    assert sorted(runs) == sorted(t.trial_id for t in spec.trials)
    for t in spec.trials:
        mine = epochs[epochs["trial_id"] == t.trial_id].sort_values("epoch")
        expected = list(mine["test_acc"])
        assert len(expected) == 2

        (event_file,) = (storage / "tracked" / "tune" / t.trial_id).glob("events.out.tfevents*")
        tb = scalars(event_file)
        # steps 1, 2: the epochs; step 3: the final report (the trials row), whose clean_acc is the final evaluation
        assert [v for step, v in tb["ray/tune/test_acc"]] == pytest.approx(expected)
        assert [step for step, v in tb["ray/tune/clean_acc"]] == [1, 2, 3]

        run = runs[t.trial_id]
        assert run.info.status == "FINISHED" and run.data.tags["sweep"] == "tracked"
        assert run.data.params["trial/config/seed"] == str(t.config.seed)
        history = client.get_metric_history(run.info.run_id, "test_acc")
        assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(expected)
