"""The SLURM batch script `clusters/slurm/svconv-sweep.sbatch`, run on this machine as a one-node job.

The test sets the variables SLURM gives a batch script and puts two tiny stand-ins on PATH for the SLURM
commands the script calls: `scontrol show hostnames` (the node list, split) and `srun` (logs its call,
drops its options and runs the command here). Everything else is real: `ray start --head --block` with
token authentication, the sweep's driver joining it, the trials and their Parquet rows, and Ray stopped
at the end. The cluster gets its own ports and temporary folder, and its processes carry a marker in their
environment, so that the test finds leftovers of its own cluster only (other tests' Ray instances may run).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from svconv.results import read_table
from sweeps.spec import load_spec
from test_sweep_submit import free_port  # one home for picking Ray's ports in the tests

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "clusters" / "slurm" / "svconv-sweep.sbatch"
MARKER = "SVCONV_SLURM_TEST"

SRUN = """#!/bin/bash
echo "srun $*" >> "$SHIM_LOG"
while [[ $# -gt 0 && $1 == -* ]]; do  # the options of the script's calls; -w NODE is a separate word
  case $1 in -w|-N|-n|-c) shift 2 ;; *) shift ;; esac
done
exec "$@"
"""
SCONTROL = """#!/bin/bash
echo "scontrol $*" >> "$SHIM_LOG"
[[ $1 == show && $2 == hostnames ]] || exit 1
tr ',' '\\n' <<< "$3"
"""


def _marked_processes(marker: str) -> list[int]:
    """PIDs of this machine's processes whose environment holds ``MARKER=marker`` (the script's cluster)."""
    needle = f"{MARKER}={marker}".encode()
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if needle in Path(f"/proc/{entry}/environ").read_bytes().split(b"\0"):
                pids.append(int(entry))
        except OSError:  # gone, or another user's
            continue
    return pids


@pytest.fixture
def slurm_job(tmp_path):
    """The environment of a one-node SLURM job on this machine, with the srun/scontrol stand-ins on PATH."""
    shims = tmp_path / "bin"
    shims.mkdir()
    for name, text in (("srun", SRUN), ("scontrol", SCONTROL)):
        (shims / name).write_text(text)
        (shims / name).chmod(0o755)
    home = tmp_path / "home"  # no token yet: the script makes one
    home.mkdir()
    ray_tmp = tempfile.mkdtemp(prefix="svsl-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    marker = secrets.token_hex(8)
    ports = {name: free_port() for name in ("gcs", "dashboard", "client", "agent", "metrics", "runtime_env")}
    env = {
        "PATH": os.pathsep.join([str(shims), str(Path(sys.executable).parent), "/usr/bin", "/bin"]),
        # PYTHONPATH: a checkout run with its tree first on the path tests its own code, not the venv's install
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""), "HOME": str(home), "LANG": "C.UTF-8", "SHIM_LOG": str(tmp_path / "slurm-calls.log"), MARKER: marker,
        "SLURM_JOB_ID": str(900000 + secrets.randbelow(99999)), "SLURM_JOB_NODELIST": "localhost",
        "SLURM_JOB_NUM_NODES": "1", "SLURM_NNODES": "1", "SLURM_NTASKS_PER_NODE": "1",
        "SLURM_CPUS_PER_TASK": "2", "SLURM_GPUS_ON_NODE": "0", "SLURM_SUBMIT_DIR": str(ROOT),
        "SVCONV_VENV": sys.prefix, "SVCONV_RAY_TMP": ray_tmp,
        "SVCONV_RAY_PORT": str(ports["gcs"]), "SVCONV_DASHBOARD_PORT": str(ports["dashboard"]),
        "SVCONV_RAY_START_ARGS": (
            f"--ray-client-server-port {ports['client']} --dashboard-agent-listen-port {ports['agent']} "
            f"--metrics-export-port {ports['metrics']} --runtime-env-agent-port {ports['runtime_env']}"
        ),
    }
    yield env
    for pid in _marked_processes(marker):  # only if the test failed: the script stops its own
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    shutil.rmtree(ray_tmp, ignore_errors=True)


def _probe_auth(dashboard: str, token_file: Path, script: subprocess.Popen) -> tuple[int, int, int]:
    """While the job runs: status codes of the job API without the token, with a wrong one, with the
    token (it is made by the script, so read once it exists)."""
    import requests

    url = f"{dashboard}/api/jobs/"
    while script.poll() is None:
        try:
            bare = requests.get(url, timeout=5).status_code
        except requests.ConnectionError:  # not up yet
            time.sleep(0.5)
            continue
        wrong = requests.get(url, headers={"Authorization": "Bearer not-the-token"}, timeout=5).status_code
        right = requests.get(url, headers={"Authorization": f"Bearer {token_file.read_text().strip()}"}, timeout=5)
        return bare, wrong, right.status_code
    pytest.fail("the job ended before its dashboard answered")


def _job(env: dict, args: list[str], log: Path, probe_auth: bool = False, term_when=None,
         expect_rc: int = 0) -> tuple[str, tuple | None]:
    """Run the batch script as SLURM would (in the submit folder, `sbatch SCRIPT ARGS`); its output and,
    with ``probe_auth``, what the dashboard answered while it ran. ``term_when``: send the script SIGTERM
    once this returns True (what `scancel --signal=TERM --batch` or `--signal=B:TERM@...` at the time
    limit do). Fails the test unless it exits with ``expect_rc``."""
    codes = None
    with open(log, "w") as out:
        script = subprocess.Popen(["bash", str(SCRIPT), *args], env=env, cwd=env["SLURM_SUBMIT_DIR"],
                                  stdout=out, stderr=subprocess.STDOUT)
        try:
            if probe_auth:
                token_file = Path(env["HOME"]) / ".ray" / "auth_token"
                codes = _probe_auth(f"http://127.0.0.1:{env['SVCONV_DASHBOARD_PORT']}", token_file, script)
            if term_when is not None:
                deadline = time.monotonic() + 300
                while not term_when() and script.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.2)
                script.send_signal(signal.SIGTERM)
            rc = script.wait(timeout=300)
        finally:
            if script.poll() is None:
                script.kill()
    text = log.read_text()
    assert rc == expect_rc, text[-4000:]
    return text, codes


#: What `ray start --block` prints when the raylet died because one of Ray's agents failed to start.
RAY_AGENT_FAILED = "because one Ray agent failed"


def _assert_ray_is_gone(marker: str) -> None:
    """None of the job's processes is left (they may take a moment to exit)."""
    deadline = time.monotonic() + 20
    while (left := _marked_processes(marker)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not left, [Path(f"/proc/{p}/cmdline").read_bytes() for p in left if Path(f"/proc/{p}").exists()]


def test_the_batch_script_starts_ray_runs_the_sweep_stops_it_on_sigterm_and_resumes(slurm_job, tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(
        "name: slurm-tiny\n"
        "fixed: {arch: small-cnn, dataset: synthetic, epochs: 3, n_train: 512, n_test: 32, batch_size: 32, emp_lip_n: 8}\n"
        "grid:\n  method: [none, clip]\n  seed: [0, 1]\n"
        "resources: {cpus: 1, gpus: 0}\nconcurrency: 1\n"
    )
    results, storage = tmp_path / "results", tmp_path / "storage"
    args = [str(spec), "--results", str(results), "--storage", str(storage)]

    def one_trial_done() -> bool:  # then SIGTERM to the batch script, with trials still to run
        return any((results / "trials").glob("*.parquet"))

    def job() -> tuple[str, tuple | None]:
        return _job(slurm_job, args, tmp_path / "run.log", probe_auth=True, term_when=one_trial_done, expect_rc=143)

    try:
        text, codes = job()
    except AssertionError:
        # Ray's own start-up, not the script, failed once on a loaded 2-core machine (the raylet's runtime-env
        # agent died at start); only that failure gets one more job, from a clean slate
        if RAY_AGENT_FAILED not in (tmp_path / "run.log").read_text():
            raise
        _assert_ray_is_gone(slurm_job[MARKER])
        shutil.rmtree(results, ignore_errors=True)
        shutil.rmtree(storage, ignore_errors=True)
        Path(slurm_job["SHIM_LOG"]).unlink(missing_ok=True)
        text, codes = job()

    # token authentication: the token made for the user (readable by them only), refused without it
    assert codes == (401, 403, 200), codes
    assert stat.S_IMODE((Path(slurm_job["HOME"]) / ".ray" / "auth_token").stat().st_mode) == 0o600

    # Ray's SLURM pattern: the node list from scontrol, the head as a one-task step on the first node
    calls = (tmp_path / "slurm-calls.log").read_text().splitlines()
    assert calls[0] == "scontrol show hostnames localhost"
    head = [c for c in calls if "ray start --head" in c]
    assert len(head) == 1 and head[0].startswith("srun --nodes=1 --ntasks=1 --cpus-per-task=2 -w localhost ray start")
    assert "--num-cpus 2 --num-gpus 0" in head[0] and "--block" in head[0]
    assert f"--port={slurm_job['SVCONV_RAY_PORT']}" in head[0] and "--dashboard-host=127.0.0.1" in head[0]
    assert "Ray cluster up: 1 nodes" in text

    # the sweep ran on that cluster, its rows landing where the job said, until SIGTERM: the script passed it
    # to the driver, which stopped the sweep cleanly (lock released, the resume command), then Ray stopped
    joined = text.split("Connecting to existing Ray cluster at address:")[1].split()[0]
    assert joined.rstrip(".").endswith(f":{slurm_job['SVCONV_RAY_PORT']}"), joined
    assert "received SIGTERM: stopping the sweep" in text
    assert f"interrupted (SIGTERM): continue with `svconv sweep resume slurm-tiny --storage {storage}`" in text
    assert "svconv sweep run exited with 143" in text and "SIGTERM received at time" not in text
    assert not (storage / "slurm-tiny" / "lock.json").exists()
    expected = sorted(t.trial_id for t in load_spec(spec).trials)
    done = {f: f.stat().st_mtime_ns for f in (results / "trials").glob("*.parquet")}
    assert 1 <= len(done) < len(expected)
    _assert_ray_is_gone(slurm_job[MARKER])

    # a second job resumes the sweep: the rest runs, no finished trial's row is rewritten; Ray stopped again
    # (this time without the dashboard, half of a head's start-up on two cores; one node, so no worker sees the flag)
    env = {**slurm_job, "SVCONV_RAY_START_ARGS": slurm_job["SVCONV_RAY_START_ARGS"] + " --include-dashboard false"}
    text, _ = _job(env, ["resume", "slurm-tiny", "--storage", str(storage)], tmp_path / "resume.log")
    assert "svconv sweep resume exited with 0" in text and "ok: 4" in text
    assert {f: f.stat().st_mtime_ns for f in done} == done
    trials = read_table(results, "trials")
    assert sorted(trials["trial_id"]) == expected
    assert set(trials["status"]) == {"ok"} and set(trials["sweep"]) == {"slurm-tiny"}
    assert len(read_table(results, "epochs")) == 4 * 3
    _assert_ray_is_gone(slurm_job[MARKER])


def test_the_batch_script_refuses_to_run_outside_a_job(slurm_job, tmp_path):
    env = {k: v for k, v in slurm_job.items() if k != "SLURM_JOB_ID"}
    run = subprocess.run(["bash", str(SCRIPT), "spec.yaml"], env=env, capture_output=True, text=True, timeout=30)
    assert run.returncode != 0 and "not inside a SLURM job" in run.stderr
    run = subprocess.run(["bash", str(SCRIPT), "resume"], env=slurm_job, capture_output=True, text=True, timeout=30)
    assert run.returncode == 2 and "usage: sbatch" in run.stderr
    assert not (tmp_path / "slurm-calls.log").exists()  # no SLURM command, no Ray
