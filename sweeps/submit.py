"""Submit a sweep as a Ray Job to a running cluster (``svconv sweep submit SPEC --address http://HEAD:8265``).

The project folder (this checkout, without ``.git``, ``.venv``, results and caches) is uploaded as the job's
working directory, and the job runs ``python -m svconv_cli.main sweep run SPEC --address auto`` there, on
the head node: the driver and every trial import the shipped code, so what runs is what you submitted.
The cluster's Python must have svconv's dependencies (torch, ray[tune], ...; see ``ray_cluster.yaml``).

A spec inside the project is run by its relative path. A spec outside it travels with the job in the
environment variable ``SVCONV_SPEC_TEXT`` and is written to a temporary file there
(``python -m sweeps.submit``, the job's entrypoint in that case).

``--results`` and ``--storage`` are paths *on the cluster*, on storage every node mounts (see
:mod:`sweeps.state`); the defaults are the cluster's own (``$SVCONV_SWEEPS`` or ``~/svconv_sweeps`` on the head).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shlex
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TextIO

#: Not shipped with the job (Ray also honours the project's .gitignore): keeps the upload to about 1 MB.
EXCLUDES = [
    ".git", ".venv", "venv", "**/__pycache__", "*.egg-info", ".pytest_cache", "build", "dist",
    "results", "demo_results", "test-artifacts", "bench-figures", "*.parquet", "*.pt", "*.html",
]
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
SPEC_TEXT_ENV = "SVCONV_SPEC_TEXT"
#: The interpreter the job runs on the cluster (the one with svconv's dependencies on the head's PATH).
JOB_PYTHON = "python"


@dataclass(frozen=True)
class Submission:
    """A submitted sweep job: its id, its status when last seen, and its exit code once it has ended."""

    job_id: str
    status: str  # PENDING, RUNNING, SUCCEEDED, FAILED or STOPPED
    exit_code: int | None = None  # exit status of `svconv sweep run` on the cluster; None while it runs

    @property
    def ended(self) -> bool:
        return self.status in TERMINAL


def project_root() -> Path:
    """The folder with svconv's pyproject.toml (the checkout this module runs from): the job's working dir."""
    root = Path(__file__).resolve().parent.parent
    if not (root / "pyproject.toml").is_file():
        raise ValueError(f"cannot find the svconv project folder (no pyproject.toml in {root}); submit from a checkout")
    return root


def run_args(results: str | None, storage: str | None) -> list[str]:
    """The options of ``svconv sweep run`` after the spec, as the job passes them."""
    args = ["--address", "auto"]
    if results:
        args += ["--results", results]
    if storage:
        args += ["--storage", storage]
    return args


def job_entrypoint(spec_in_project: str | None, results: str | None, storage: str | None, spec_name: str = "spec.yaml") -> str:
    """The shell command the job runs in the shipped project folder.

    ``spec_in_project``: the spec's path relative to the project, or None when the spec travels in
    ``$SVCONV_SPEC_TEXT`` (then ``spec_name`` is the file name it gets on the cluster).
    """
    if spec_in_project is not None:
        cmd = [JOB_PYTHON, "-m", "svconv_cli.main", "sweep", "run", spec_in_project]
    else:
        cmd = [JOB_PYTHON, "-m", "sweeps.submit", spec_name]
    return shlex.join(cmd + run_args(results, storage))


def submit_sweep(
    spec_path: str | Path,
    address: str,
    results: str | None = None,
    storage: str | None = None,
    wait: bool = False,
    out: TextIO | None = None,
) -> Submission:
    """Validate the spec here, then submit ``svconv sweep run`` of it as a Ray Job.

    Args:
        spec_path: the sweep spec (YAML); anywhere (see the module's docstring).
        address: the cluster's dashboard URL, ``http://HEAD:8265``.
        results, storage: paths on the cluster (default: the cluster's defaults, see :mod:`sweeps.state`).
        wait: follow the job's logs (written to ``out``) until it ends.
        out: where the hints and logs go (default stderr). The job id is printed on stdout.

    Returns the :class:`Submission`; with ``wait`` it has ended and carries the run's exit code.
    Raises ValueError for a bad spec or address, before anything reaches the cluster.
    """
    from sweeps.spec import load_spec

    out = out or sys.stderr
    if not address.startswith(("http://", "https://")):
        raise ValueError(f"--address must be the cluster's dashboard URL, e.g. http://HEAD:8265; got {address!r}")
    for option, path in (("--results", results), ("--storage", storage)):
        if path and ("://" in path or not path.startswith(("/", "~"))):
            raise ValueError(
                f"{option} must be an absolute path on the cluster, on storage every node mounts "
                f"(e.g. /mnt/svconv/results); got {path!r} (a relative path would land in the job's temporary copy)"
            )
    spec = load_spec(spec_path)  # refuse a bad spec before anything reaches the cluster
    root = project_root()
    spec_file = Path(spec_path).resolve()
    env_vars: dict[str, str] = {}
    try:
        rel: str | None = spec_file.relative_to(root).as_posix()
    except ValueError:  # outside the project: ship its text
        rel = None
        env_vars[SPEC_TEXT_ENV] = spec.text

    from ray.job_submission import JobSubmissionClient

    try:
        client = JobSubmissionClient(address)
    except ConnectionError as exc:
        raise ValueError(f"--address {address}: no Ray dashboard answers there ({exc})") from None
    submission_id = f"svconv-{spec.name}-{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"
    runtime_env: dict = {"working_dir": str(root), "excludes": EXCLUDES}
    if env_vars:
        runtime_env["env_vars"] = env_vars
    job_id = client.submit_job(
        entrypoint=job_entrypoint(rel, results, storage, spec_name=spec_file.name),
        submission_id=submission_id,
        runtime_env=runtime_env,
        metadata={"svconv_sweep": spec.name, "svconv_spec": str(spec_file)},
    )
    print(job_id, flush=True)
    base = address.rstrip("/")
    where = f" --storage {storage}" if storage else ""
    print(
        f"submitted sweep {spec.name!r} ({len(spec.trials)} trials) as Ray job {job_id}\n"
        f"  dashboard: {base}/#/jobs/{job_id}\n"
        f"  logs:      ray job logs --follow {job_id} --address {base}\n"
        f"  stop:      ray job stop {job_id} --address {base}\n"
        f"  status:    svconv sweep status {spec.name}{where}   (on a node that mounts the sweep storage)",
        file=out,
        flush=True,
    )
    if not wait:
        return Submission(job_id, _status_name(client.get_job_status(job_id)))
    return follow_job(client, job_id, out)


def follow_job(client, job_id: str, out: TextIO, poll_s: float = 1.0) -> Submission:
    """Stream the job's logs to ``out`` until it ends; return its final status and exit code."""

    async def tail() -> None:
        with warnings.catch_warnings():  # Ray's own websocket call warns about its ssl=None
            warnings.simplefilter("ignore", DeprecationWarning)
            async for chunk in client.tail_job_logs(job_id):
                out.write(chunk)
                out.flush()

    try:
        asyncio.run(tail())
    except RuntimeError as exc:  # the log stream closed early: fall back to polling the status
        print(f"(log stream ended: {exc}; waiting for the job to end)", file=out)
    while (status := _status_name(client.get_job_status(job_id))) not in TERMINAL:
        time.sleep(poll_s)
    info = client.get_job_info(job_id)
    code = info.driver_exit_code
    if code is None:  # stopped before the driver ran, or a failure outside it (e.g. runtime env setup)
        code = 0 if status == "SUCCEEDED" else 1
    message = f": {info.message}" if status != "SUCCEEDED" and info.message else ""
    print(f"job {job_id}: {status} (exit code {code}){message}", file=out, flush=True)
    return Submission(job_id, status, code)


def _status_name(status: object) -> str:
    return str(getattr(status, "value", status)).split(".")[-1]


def _run_shipped_spec(argv: list[str]) -> int:
    """The job's entrypoint for a spec outside the project: ``python -m sweeps.submit NAME.yaml RUN_OPTIONS``.

    Writes ``$SVCONV_SPEC_TEXT`` to a temporary ``NAME.yaml`` and runs ``svconv sweep run`` on it.
    """
    from svconv_cli.main import main

    text = os.environ.get(SPEC_TEXT_ENV)
    if not argv or text is None:
        print(f"usage: {SPEC_TEXT_ENV}=<spec text> python -m sweeps.submit NAME.yaml [sweep run options]", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="svconv-spec-") as tmp:
        spec = Path(tmp) / Path(argv[0]).name
        spec.write_text(text)
        return main(["sweep", "run", str(spec), *argv[1:]])


if __name__ == "__main__":
    sys.exit(_run_shipped_spec(sys.argv[1:]))
