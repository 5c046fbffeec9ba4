"""`svconv sweep submit` and `sweep status --address` against a real local Ray head started with token
authentication (dashboard and job server on 127.0.0.1), and the cluster-launcher config `ray_cluster.yaml`.

The head gets its own --temp-dir, ports and token file, and is stopped by signalling its own processes
only (`ray stop` would stop every Ray instance on the machine, other test sessions' included). This test
process keeps Ray's own authentication off (RAY_AUTH_MODE=disabled, no token variables, HOME without a
token file): whatever reaches the head with the token was sent by svconv itself.
"""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from svconv.results import read_table
from sweeps.spec import load_spec
from sweeps.submit import EXCLUDES, SPEC_TEXT_ENV, job_entrypoint, project_root
from svconv_cli.main import main as svconv_main

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
#: This process's Ray environment: no authentication of its own (see the module's docstring).
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled", "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0"}
TOKEN_VARS = ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


@dataclass(frozen=True)
class Head:
    address: str  # dashboard URL
    gcs: str  # HOST:PORT
    token_file: Path
    env: dict  # the environment of the head's processes (what a node of the cluster config has)


# --------------------------------------------------------------------------------------------------
# a real local head


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago (Ray takes it a little later)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _processes_under(temp_dir: str) -> list[int]:
    """PIDs whose command line names ``temp_dir`` (this head's processes; Ray passes its session dir)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if temp_dir in cmdline:
            pids.append(int(entry))
    return pids


@pytest.fixture(scope="module")
def ray_cluster():
    """Start ``ray start --head --block`` with the dashboard and token auth, as ``ray_cluster.yaml`` starts
    its head (but on 127.0.0.1); yield a :class:`Head`; stop it and only it."""
    temp_dir = tempfile.mkdtemp(prefix="svray-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    token_file = Path(temp_dir) / "auth_token"
    token_file.write_text(secrets.token_hex(32))
    dash_port, gcs_port = free_port(), free_port()
    head_env = {**os.environ, **RAY_ENV, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_file),
                "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    cmd = [
        str(VENV_BIN / "ray"), "start", "--head", "--block", "--disable-usage-stats",
        "--node-ip-address", "127.0.0.1", "--port", str(gcs_port),
        "--include-dashboard", "true", "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dash_port),
        "--ray-client-server-port", str(free_port()), "--dashboard-agent-listen-port", str(free_port()),
        "--metrics-export-port", str(free_port()), "--runtime-env-agent-port", str(free_port()),
        "--temp-dir", temp_dir, "--num-cpus", "2", "--num-gpus", "0",
    ]
    log = open(Path(temp_dir) / "ray_start.log", "w")
    proc = subprocess.Popen(cmd, env=head_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"http://127.0.0.1:{dash_port}"
    saved = {k: os.environ.get(k) for k in (*RAY_ENV, *TOKEN_VARS, "HOME")}
    os.environ.update(RAY_ENV, HOME=temp_dir)  # no ~/.ray/auth_token to fall back on
    for k in TOKEN_VARS:
        os.environ.pop(k, None)
    try:
        _wait_for_job_server(address, token_file, proc, Path(temp_dir) / "ray_start.log")
        yield Head(address, f"127.0.0.1:{gcs_port}", token_file, head_env)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        _stop_head(proc, temp_dir)
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)


def _wait_for_job_server(address: str, token_file: Path, proc: subprocess.Popen, log: Path, timeout_s: float = 120.0) -> None:
    from sweeps.jobs import job_client

    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            pytest.fail(f"`ray start --head` exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            job_client(address, token_file)
            return
        except Exception as exc:  # not up yet
            if time.monotonic() > deadline:
                pytest.fail(f"the Ray job server at {address} did not come up: {exc}\n{log.read_text()[-3000:]}")
            time.sleep(0.5)


def _stop_head(proc: subprocess.Popen, temp_dir: str) -> None:
    """SIGINT lets `ray start --block` shut its node down; then kill whatever of ours is left."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    for pid in _processes_under(temp_dir):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture
def ray_head(ray_cluster) -> str:
    """The head's dashboard URL (the address `svconv sweep submit` takes), with its token in
    ``$RAY_AUTH_TOKEN_PATH`` (one of the places svconv looks) for the test."""
    os.environ["RAY_AUTH_TOKEN_PATH"] = str(ray_cluster.token_file)
    yield ray_cluster.address
    os.environ.pop("RAY_AUTH_TOKEN_PATH", None)


def _client(head: Head):
    from sweeps.jobs import job_client

    return job_client(head.address, head.token_file)


# --------------------------------------------------------------------------------------------------
# the tests


def _write_spec(path: Path, name: str, extra: str = "", grid: str = "method: [none, clip]") -> Path:
    path.write_text(
        f"name: {name}\n"
        "fixed: {arch: small-cnn, dataset: synthetic, epochs: 1, n_train: 64, n_test: 32, batch_size: 32, emp_lip_n: 8}\n"
        f"grid:\n  {grid}\n"
        "resources: {cpus: 1, gpus: 0}\n"
        f"{extra}"
    )
    return path


def test_the_job_server_refuses_requests_without_the_token(ray_cluster, tmp_path):
    """The issue's probe: a bare POST to the job API ran `touch FILE` on a head without authentication."""
    import requests

    marker = tmp_path / "pwned"
    job = {"entrypoint": f"touch {marker}"}
    url = f"{ray_cluster.address}/api/jobs/"
    assert requests.post(url, json=job, timeout=30).status_code == 401
    assert requests.post(url, json=job, headers={"Authorization": "Bearer not-the-token"}, timeout=30).status_code == 403
    token = ray_cluster.token_file.read_text()
    r = requests.post(url, json=job, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert r.status_code == 200, r.text
    from sweeps.jobs import follow_job

    assert follow_job(_client(ray_cluster), r.json()["job_id"], io.StringIO()).exit_code == 0
    assert marker.exists()  # with the token the same request is a job like any other


def test_svconv_says_when_the_token_is_missing_or_wrong(ray_cluster, tmp_path, capsys):
    spec = _write_spec(tmp_path / "t.yaml", "auth-refused")
    assert svconv_main(["sweep", "submit", str(spec), "--address", ray_cluster.address]) == 2
    assert "the cluster requires its auth token and none was found" in capsys.readouterr().err
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-token\n")
    assert svconv_main(["sweep", "submit", str(spec), "--address", ray_cluster.address, "--token-file", str(wrong)]) == 2
    assert "the cluster refused the auth token" in capsys.readouterr().err
    assert svconv_main(["sweep", "status", "x", "--address", ray_cluster.address, "--token-file", str(tmp_path / "nope")]) == 2
    assert "--token-file" in (err := capsys.readouterr().err) and "cannot read the auth token" in err
    assert not [j for j in _client(ray_cluster).list_jobs() if (j.metadata or {}).get("svconv_sweep") == "auth-refused"]


def test_submit_runs_the_spec_as_a_job_and_its_rows_land(ray_head, ray_cluster, tmp_path, capsys):
    spec_path = _write_spec(tmp_path / "tiny.yaml", "submit-tiny")
    results, storage = tmp_path / "results", tmp_path / "storage"
    rc = svconv_main(["sweep", "submit", str(spec_path), "--address", ray_head,
                      "--results", str(results), "--storage", str(storage), "--wait"])
    out, err = capsys.readouterr()
    assert rc == 0, err[-4000:]
    job_id = out.splitlines()[0]
    assert job_id.startswith("svconv-submit-tiny-")
    assert f"ray job logs --follow {job_id} --address {ray_head}" in err
    assert "sweep submit-tiny: 2 trials" in err  # the job's own output, followed with --wait
    assert f"job {job_id}: SUCCEEDED (exit code 0)" in err

    # the job ran the shipped spec; its rows are the spec's trials, once each
    info = _client(ray_cluster).get_job_info(job_id)
    assert info.entrypoint.startswith('printf %s "$SVCONV_SPEC_TEXT" | python -m svconv_cli.main sweep run - --address auto')
    expected = {t.trial_id for t in load_spec(spec_path).trials}
    trials = read_table(results, "trials")
    assert sorted(trials["trial_id"]) == sorted(expected)
    assert set(trials["status"]) == {"ok"}
    assert set(trials["sweep"]) == {"submit-tiny"}

    # `svconv sweep status` finds the sweep the job ran
    assert svconv_main(["sweep", "status", "submit-tiny", "--storage", str(storage), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {r["trial_id"] for r in rows} == expected
    assert {r["status"] for r in rows} == {"ok"}
    assert svconv_main(["sweep", "status", "submit-tiny", "--storage", str(storage)]) == 0
    assert "ok: 2  diverged: 0  failed: 0  stopped: 0  unfinished: 0" in capsys.readouterr().out

    # the same asked of the cluster, as from a machine that does not mount the storage (token from --token-file)
    os.environ.pop("RAY_AUTH_TOKEN_PATH")
    assert svconv_main(["sweep", "status", "submit-tiny/", "--storage", str(storage), "--json",
                        "--address", ray_head, "--token-file", str(ray_cluster.token_file)]) == 0
    remote = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert remote == rows


def test_wait_returns_the_exit_status_of_a_failing_sweep(ray_head, tmp_path, capsys):
    spec_path = _write_spec(tmp_path / "fails.yaml", "submit-fails", extra="retries: 0\n",
                            grid="fail_at_epoch: [1]")
    storage = tmp_path / "storage"
    rc = svconv_main(["sweep", "submit", str(spec_path), "--address", ray_head, "--storage", str(storage), "--wait"])
    out, err = capsys.readouterr()
    job_id = out.splitlines()[0]
    assert rc == 1, err[-4000:]  # `svconv sweep run` exits 1 when a trial failed
    assert f"job {job_id}: FAILED (exit code 1)" in err
    assert svconv_main(["sweep", "status", "submit-fails", "--storage", str(storage), "--json"]) == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["status"] == "failed" and "fail_at_epoch" in row["error"]


def test_bad_spec_or_address_is_refused_before_anything_is_submitted(ray_head, ray_cluster, tmp_path, capsys):
    client = _client(ray_cluster)
    before = len(client.list_jobs())
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nfixed: {arch: small-cnn, dataset: synthetic}\ngrid:\n  methd: [none]\n")
    assert svconv_main(["sweep", "submit", str(bad), "--address", ray_head]) == 2
    assert "bad.yaml:4:" in capsys.readouterr().err
    good = _write_spec(tmp_path / "good.yaml", "good")
    assert svconv_main(["sweep", "submit", str(good), "--address", ray_head.removeprefix("http://")]) == 2
    assert "dashboard URL, e.g. http://HEAD:8265" in capsys.readouterr().err
    assert svconv_main(["sweep", "submit", str(good), "--address", ray_head, "--results", "results"]) == 2
    assert "--results must be an absolute path on the cluster" in capsys.readouterr().err
    nobody = f"http://127.0.0.1:{free_port()}"
    assert svconv_main(["sweep", "submit", str(good), "--address", nobody]) == 2
    assert f"--address {nobody}: no Ray dashboard answers there" in capsys.readouterr().err
    assert len(client.list_jobs()) == before


def test_overhead_benchmark_runs_on_the_cluster(ray_cluster):
    # a driver on a node of the cluster: Ray's own token variables, as the nodes of ray_cluster.yaml have
    cmd = [sys.executable, "-m", "bench.ray_overhead", "--durations", "0.2", "--trials", "2", "--address", ray_cluster.gcs]
    run = subprocess.run(cmd, env=ray_cluster.env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout
    rows = [line.split() for line in out.splitlines() if line.strip().startswith("0.2s")]
    assert [r[:3] for r in rows] == [["0.2s", "cold", "1"], ["0.2s", "warm", "1"]], out
    assert all(float(x) >= 0 for r in rows for x in (r[3], r[5])), out  # gaps between ordered events


def test_a_spec_inside_the_project_runs_by_its_path_and_the_upload_leaves_out_local_state():
    assert project_root() == ROOT
    cmd = job_entrypoint("sweeps/demo.yaml", "/shared/results", None)
    assert cmd == "python -m svconv_cli.main sweep run sweeps/demo.yaml --address auto --results /shared/results"
    assert job_entrypoint(None, None, "/mnt/s") == (
        'printf %s "$SVCONV_SPEC_TEXT" | python -m svconv_cli.main sweep run - --address auto --storage /mnt/s'
    )
    assert {".git", ".venv", "/results", "*.egg-info", "*auth_token*"} <= set(EXCLUDES)
    # gitignore rules, as Ray reads them: "results" unanchored would leave out the package svconv/results too
    assert "results" not in EXCLUDES
    assert SPEC_TEXT_ENV == "SVCONV_SPEC_TEXT"


# --------------------------------------------------------------------------------------------------
# ray_cluster.yaml


def test_cluster_config_has_what_the_launcher_needs():
    import copy
    from importlib.resources import files

    import jsonschema
    from ray.autoscaler.sdk import fillout_defaults

    cfg = yaml.safe_load((ROOT / "ray_cluster.yaml").read_text())
    # Ray's own cluster-config schema (shipped with the launcher), after the launcher's defaults
    schema = json.loads(files("ray.autoscaler").joinpath("ray-schema.json").read_text())
    jsonschema.validate(fillout_defaults(copy.deepcopy(cfg)), schema)
    assert isinstance(cfg["cluster_name"], str) and cfg["cluster_name"]
    assert cfg["provider"]["type"] == "aws" and cfg["provider"]["region"]
    types = cfg["available_node_types"]
    head = types[cfg["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0 and head["max_workers"] == 0, "a CPU head"
    gpu_types = [name for name, t in types.items() if t["resources"].get("GPU", 0) >= 1]
    assert gpu_types, "a GPU worker type"
    for name in gpu_types:
        assert types[name]["min_workers"] < types[name]["max_workers"], f"{name} autoscales"
    assert cfg["max_workers"] >= max(types[n]["max_workers"] for n in gpu_types)
    # setup: svconv installed from the synced checkout with the torch pinned in pyproject.toml, and Ray in
    # the range pinned there (job submission wants the same Ray on both sides), which holds this machine's
    import ray
    from packaging.requirements import Requirement
    from packaging.version import Version

    setup = "\n".join(cfg["setup_commands"])
    pyproject = (ROOT / "pyproject.toml").read_text()
    torch_pin = re.search(r'"(torch==[^"]+)"', pyproject).group(1)
    ray_pin = re.search(r'"(ray\[default,tune\][^"]+)"', pyproject).group(1)
    assert Requirement(ray_pin).specifier.contains(ray.__version__), (ray_pin, ray.__version__)
    lowest = min(Version(s.version) for s in Requirement(ray_pin).specifier if s.operator == ">=")
    assert lowest >= Version("2.52")  # token auth
    assert torch_pin in setup and f'"{ray_pin}"' in setup
    assert "~/svconv" in cfg["file_mounts"] and "-e ~/svconv" in setup
    # shared storage for sweep state and results, mounted on every node and exported as the default
    assert "mount -t nfs4" in setup and "SVCONV_SWEEPS=/mnt/svconv/sweeps" in setup
    # token auth on every node: the token copied from outside the checkout, every `ray start` in token mode
    assert cfg["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"
    assert "export RAY_AUTH_MODE=token" in setup
    starts = cfg["head_start_ray_commands"] + cfg["worker_start_ray_commands"]
    for cmd in (c for c in starts if "ray start" in c):
        assert "export RAY_AUTH_MODE=token;" in cmd, cmd
    (head_start,) = [c for c in cfg["head_start_ray_commands"] if "ray start --head" in c]
    assert "--dashboard-host=127.0.0.1" in head_start and "0.0.0.0" not in head_start
    assert any("ray start --address=$RAY_HEAD_IP:6379" in c for c in cfg["worker_start_ray_commands"])
    # the token never travels with the checkout or a job's upload
    assert subprocess.run(["git", "check-ignore", "-q", "auth_token"], cwd=ROOT).returncode == 0
