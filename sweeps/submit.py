"""Submit a sweep as a Ray Job: the project folder becomes the job's working directory on the cluster,
and the job runs ``svconv sweep run SPEC --address auto`` there (the driver then runs on the head node).
"""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path

#: Not shipped with the job (Ray also honours the project's .gitignore).
EXCLUDES = [".git", ".venv", "**/__pycache__", "*.egg-info", "demo_results", "results", "test-artifacts", "*.parquet", "*.pt"]
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


def project_root() -> Path:
    """The folder with svconv's pyproject.toml (the checkout this module runs from)."""
    root = Path(__file__).resolve().parent.parent
    if not (root / "pyproject.toml").is_file():
        raise ValueError(f"cannot find the svconv project folder (no pyproject.toml in {root}); submit from a checkout")
    return root


def job_entrypoint(spec_in_project: str, results: str | None, storage: str | None) -> str:
    """The shell command the job runs on the cluster."""
    cmd = ["svconv", "sweep", "run", spec_in_project, "--address", "auto"]
    if results:
        cmd += ["--results", results]
    if storage:
        cmd += ["--storage", storage]
    return shlex.join(cmd)


def submit_sweep(
    spec_path: str | Path,
    address: str,
    results: str | None = None,
    storage: str | None = None,
    wait: bool = False,
    poll_s: float = 2.0,
) -> tuple[str, str]:
    """Validate the spec here, then submit it as a Ray Job to the dashboard at ``address``
    (``http://HEAD:8265``). ``results``/``storage`` are paths on the cluster (default: the cluster's own
    defaults, see :mod:`sweeps.state`). With ``wait``, follow the job until it ends and print its logs.

    Returns ``(job id, final or current job status)``.
    """
    from ray.job_submission import JobSubmissionClient

    from sweeps.spec import load_spec

    spec = load_spec(spec_path)  # refuse a bad spec before anything reaches the cluster
    root = project_root()
    spec_file = Path(spec_path).resolve()
    try:
        rel = spec_file.relative_to(root)
    except ValueError:
        raise ValueError(
            f"the spec {spec_path} must be inside the project folder {root}: the folder is what the job ships"
        ) from None
    if not address.startswith(("http://", "https://")):
        raise ValueError(f"--address must be the dashboard's URL, e.g. http://HEAD:8265; got {address!r}")
    client = JobSubmissionClient(address)
    job_id = client.submit_job(
        entrypoint=job_entrypoint(rel.as_posix(), results, storage),
        runtime_env={"working_dir": str(root), "excludes": EXCLUDES},
        metadata={"svconv_sweep": spec.name},
    )
    print(f"submitted sweep {spec.name!r} ({len(spec.trials)} trials) as job {job_id}", file=sys.stderr)
    print(f"  dashboard: {address.rstrip('/')}/#/jobs/{job_id}", file=sys.stderr)
    print(f"  logs:      ray job logs --follow {job_id} --address {address}", file=sys.stderr)
    print(f"  status:    svconv sweep status {spec.name}   (on a node that mounts the sweep storage)", file=sys.stderr)
    status = str(client.get_job_status(job_id))
    if wait:
        while (status := _status_name(client.get_job_status(job_id))) not in TERMINAL:
            time.sleep(poll_s)
        sys.stderr.write(client.get_job_logs(job_id))
        print(f"job {job_id}: {status}", file=sys.stderr)
    return job_id, _status_name(status)


def _status_name(status: object) -> str:
    return str(getattr(status, "value", status)).split(".")[-1]
