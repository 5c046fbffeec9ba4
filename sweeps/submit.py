"""Submit a sweep as a Ray Job to a running cluster (``svconv sweep submit SPEC --address http://HEAD:8265``).

The project folder (this checkout, without ``.git``, ``.venv``, results and caches) is uploaded as the job's
working directory, and the job runs ``python -m svconv_cli.main sweep run SPEC --address auto`` there, on
the head node: the driver and every trial import the shipped code, so what runs is what you submitted.
The cluster's Python must have svconv's dependencies (torch, ray[tune], ...; see ``ray_cluster.yaml``).

A spec inside the project is run by its relative path. A spec outside it travels with the job in the
environment variable ``SVCONV_SPEC_TEXT``, which the job pipes into ``svconv sweep run -``.

The cluster's job server wants its auth token (see :mod:`sweeps.jobs`). ``svconv sweep status NAME
--address URL`` asks the cluster the same way: a job runs ``svconv sweep status`` on the head, where the
sweep storage is mounted.

``--results`` and ``--storage`` are paths *on the cluster*, on storage every node mounts (see
:mod:`sweeps.state`); the defaults are the cluster's own (``$SVCONV_SWEEPS``, else ``<results>/.sweeps``
with ``--results``, else ``~/svconv_sweeps`` on the head).
"""

from __future__ import annotations

import logging
import secrets
import shlex
import sys
from datetime import datetime
from pathlib import Path
from typing import TextIO

from sweeps.jobs import Submission, follow_job, job_client, status_name

logger = logging.getLogger(__name__)

#: Not shipped with the job (Ray also honours the project's .gitignore): keeps the upload to about 1 MB.
EXCLUDES = [
    ".git", ".venv", "venv", "**/__pycache__", "*.egg-info", ".pytest_cache", "build", "dist",
    # anchored, as in .gitignore: a bare "results" would also drop the package svconv/results
    "/results", "/demo_results", "/test-artifacts", "/bench-figures", "*.parquet", "*.pt", "*.html",
    "*auth_token*",  # a Ray auth token kept in the checkout (git-ignored) stays on this machine
]
SPEC_TEXT_ENV = "SVCONV_SPEC_TEXT"
#: The interpreter the job runs on the cluster (the one with svconv's dependencies on the head's PATH).
JOB_PYTHON = "python"
#: The job's command line for ``svconv ARGS`` (the project's CLI, run from the shipped folder).
SVCONV = [JOB_PYTHON, "-m", "svconv_cli.main"]


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


def job_entrypoint(spec_in_project: str | None, results: str | None, storage: str | None) -> str:
    """The shell command the job runs in the shipped project folder.

    ``spec_in_project``: the spec's path relative to the project, or None when the spec travels in
    ``$SVCONV_SPEC_TEXT`` (then it is piped into ``svconv sweep run -``).
    """
    run = shlex.join([*SVCONV, "sweep", "run", spec_in_project or "-", *run_args(results, storage)])
    return run if spec_in_project is not None else f'printf %s "${SPEC_TEXT_ENV}" | {run}'


def submit_sweep(
    spec_path: str | Path,
    address: str,
    results: str | None = None,
    storage: str | None = None,
    wait: bool = False,
    out: TextIO | None = None,
    token_file: str | None = None,
) -> Submission:
    """Validate the spec here, then submit ``svconv sweep run`` of it as a Ray Job.

    Args:
        spec_path: the sweep spec (YAML); anywhere (see the module's docstring).
        address: the cluster's dashboard URL, ``http://HEAD:8265``.
        results, storage: paths on the cluster (default: the cluster's defaults, see :mod:`sweeps.state`).
        wait: follow the job's logs (written to ``out``) until it ends.
        out: where the followed logs go (default stderr). The job id is printed on stdout, the hints
            (dashboard, logs, stop, status) are logged.
        token_file: file with the cluster's auth token (default: see :func:`sweeps.jobs.find_token`).

    Returns the :class:`Submission`; with ``wait`` it has ended and carries the run's exit code.
    Raises ValueError for a bad spec, address or token, before anything reaches the cluster.
    """
    from sweeps.spec import find_spec, load_spec

    out = out or sys.stderr
    for option, path in (("--results", results), ("--storage", storage)):
        if path and ("://" in path or not path.startswith(("/", "~"))):
            raise ValueError(
                f"{option} must be an absolute path on the cluster, on storage every node mounts "
                f"(e.g. /mnt/svconv/results); got {path!r} (a relative path would land in the job's temporary copy)"
            )
    spec = load_spec(spec_path)  # refuse a bad spec before anything reaches the cluster
    root = project_root()
    spec_file = find_spec(spec_path).resolve()
    env_vars: dict[str, str] = {}
    try:
        rel: str | None = spec_file.relative_to(root).as_posix()
    except ValueError:  # outside the project: ship its text
        rel = None
        env_vars[SPEC_TEXT_ENV] = spec.text

    client = job_client(address, token_file)
    submission_id = f"svconv-{spec.name}-{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"
    job_id = client.submit_job(
        entrypoint=job_entrypoint(rel, results, storage),
        submission_id=submission_id,
        runtime_env=_runtime_env(root, env_vars),
        metadata={"svconv_sweep": spec.name, "svconv_spec": str(spec_file)},
    )
    print(job_id, flush=True)
    base = address.rstrip("/")
    where = f" --storage {storage}" if storage else f" --results {results}" if results else ""
    logger.info(
        f"submitted sweep {spec.name!r} ({len(spec.trials)} trials) as Ray job {job_id}\n"
        f"  dashboard: {base}/#/jobs/{job_id}\n"
        f"  logs:      ray job logs --follow {job_id} --address {base}   (with RAY_AUTH_MODE=token and the token)\n"
        f"  stop:      ray job stop {job_id} --address {base}\n"
        f"  status:    svconv sweep status {spec.name}{where} --address {base}",
    )
    if not wait:
        return Submission(job_id, status_name(client.get_job_status(job_id)))
    return follow_job(client, job_id, out)


def remote_status(
    name: str,
    address: str,
    storage: str | None = None,
    options: tuple[str, ...] = (),
    token_file: str | None = None,
    out: TextIO | None = None,
) -> int:
    """``svconv sweep status NAME`` run on the cluster as a Ray Job; its output goes to ``out`` (stdout).

    ``options``: more ``sweep status`` flags (``--json``, ``--full-errors``). Returns the command's exit
    status on the cluster.
    """
    from sweeps.spec import sweep_name

    cmd = [*SVCONV, "sweep", "status", sweep_name(name), *(["--storage", storage] if storage else []), *options]
    client = job_client(address, token_file)
    job_id = client.submit_job(
        entrypoint=shlex.join(cmd),
        submission_id=f"svconv-status-{sweep_name(name)}-{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}",
        runtime_env=_runtime_env(project_root(), {}),
    )
    return int(follow_job(client, job_id, out or sys.stdout, summary=False).exit_code or 0)


def _runtime_env(root: Path, env_vars: dict[str, str]) -> dict:
    runtime_env: dict = {"working_dir": str(root), "excludes": EXCLUDES}
    if env_vars:
        runtime_env["env_vars"] = env_vars
    return runtime_env
