"""A spec that asks for more than the Ray cluster has: refused where nothing can add it, explained where
an autoscaler can."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sweeps.driver import check_resources

ROOT = Path(__file__).resolve().parent.parent


def test_a_trial_that_fits_needs_no_word():
    assert check_resources({"cpus": 1, "gpus": 0.5}, {"CPU": 4.0, "GPU": 1.0}, 8, can_grow=False) is None
    assert check_resources({"cpus": 2, "gpus": 0}, {"CPU": 2.0}, 8, can_grow=False) is None


def test_a_fixed_instance_refuses_with_the_numbers():
    with pytest.raises(ValueError) as info:
        check_resources({"cpus": 1, "gpus": 1}, {"CPU": 2.0}, 6, can_grow=False)
    msg = str(info.value)
    assert "each trial asks for 1 GPU but this Ray instance has 0 GPU in total" in msg and "no autoscaler" in msg
    with pytest.raises(ValueError, match="asks for 8 CPU, 2 GPU but this Ray instance has 2 CPU, 1 GPU"):
        check_resources({"cpus": 8, "gpus": 2}, {"CPU": 2.0, "GPU": 1.0}, 6, can_grow=False)


def test_an_autoscaling_cluster_waits_and_shows_the_pending_demand():
    note = check_resources({"cpus": 4, "gpus": 1}, {"CPU": 8.0, "GPU": 0.0}, 16, can_grow=True)
    assert "asks for 1 GPU; the cluster has 0 GPU now" in note
    assert "wait for the autoscaler" in note and "pending demand: 16 x {CPU: 4, GPU: 1}" in note


def test_a_gpu_spec_on_a_local_instance_without_gpus_is_refused(tmp_path):
    """The issue's probe, for real: `svconv sweep run` of a `gpus: 1` spec starts a local Ray instance
    (no GPU visible) and used to hang on Ray's warning."""
    spec = tmp_path / "gpu.yaml"
    spec.write_text(textwrap.dedent(
        """\
        name: wants-gpu
        fixed: {arch: small-cnn, dataset: synthetic, epochs: 1, n_train: 64, n_test: 32, emp_lip_n: 8}
        grid:
          seed: [0, 1]
        resources: {cpus: 1, gpus: 1}
        """
    ))
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    cmd = [sys.executable, "-m", "svconv_cli.main", "sweep", "run", str(spec), "--storage", str(tmp_path / "s"),
           "--no-progress"]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "each trial asks for 1 GPU but this Ray instance has 0 GPU in total" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "s" / "wants-gpu" / "lock.json").exists()  # the lock went with the refusal
