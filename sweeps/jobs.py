"""Talking to a cluster's Ray job server: its token, the client, following a job to its end.

A cluster started from ``ray_cluster.yaml`` runs with Ray's token authentication (``RAY_AUTH_MODE=token``):
its dashboard and job server refuse every request without ``Authorization: Bearer <token>``. The token
is looked up, first found wins, in

1. the file given with ``--token-file``;
2. ``$RAY_AUTH_TOKEN`` (the token itself) or ``$RAY_AUTH_TOKEN_PATH`` (a file holding it): Ray's own
   variables, which the ``ray`` CLI reads too;
3. ``~/.ray/auth_token``, where ``ray get-auth-token --generate`` writes a new token and which
   ``ray_cluster.yaml`` copies to every node.

A cluster without authentication ignores the header.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

logger = logging.getLogger(__name__)

TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
TOKEN_ENV = "RAY_AUTH_TOKEN"
TOKEN_PATH_ENV = "RAY_AUTH_TOKEN_PATH"
DEFAULT_TOKEN_FILE = "~/.ray/auth_token"  # Ray's default path, expanded when read
TOKEN_HELP = (
    "file holding the cluster's Ray auth token (default: $RAY_AUTH_TOKEN, else the file named by "
    "$RAY_AUTH_TOKEN_PATH, else ~/.ray/auth_token if it exists)"
)


@dataclass(frozen=True)
class Submission:
    """A submitted job: its id, its status when last seen, and its exit code once it has ended."""

    job_id: str
    status: str  # PENDING, RUNNING, SUCCEEDED, FAILED or STOPPED
    exit_code: int | None = None  # exit status of the job's command; None while it runs

    @property
    def ended(self) -> bool:
        return self.status in TERMINAL


def _read_token(path: str | os.PathLike, what: str) -> str:
    file = Path(path).expanduser()
    try:
        token = file.read_text().strip()
    except OSError as exc:
        raise ValueError(f"{what} {str(path)!r}: cannot read the auth token ({exc.strerror or exc})") from None
    if not token:
        raise ValueError(f"{what} {str(path)!r} is empty; it should hold the cluster's Ray auth token")
    return token


def find_token(token_file: str | os.PathLike | None = None) -> str | None:
    """The cluster's auth token from the places listed in the module's docstring; None if there is none."""
    if token_file is not None:
        return _read_token(token_file, "--token-file")
    if os.environ.get(TOKEN_ENV, "").strip():
        return os.environ[TOKEN_ENV].strip()
    if os.environ.get(TOKEN_PATH_ENV):
        return _read_token(os.environ[TOKEN_PATH_ENV], f"${TOKEN_PATH_ENV}")
    if Path(DEFAULT_TOKEN_FILE).expanduser().is_file():
        return _read_token(DEFAULT_TOKEN_FILE, "the default token file")
    return None


def job_client(address: str, token_file: str | os.PathLike | None = None) -> Any:
    """A ``JobSubmissionClient`` for the dashboard at ``address`` (``http://HEAD:8265``), with the token.

    Raises ValueError, before any job is submitted, for an address that is not a dashboard URL, a
    dashboard that does not answer, or one that refuses the token (or its absence).
    """
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    if not address.startswith(("http://", "https://")):
        raise ValueError(f"--address must be the cluster's dashboard URL, e.g. http://HEAD:8265; got {address!r}")
    token = find_token(token_file)
    headers = {"Authorization": f"Bearer {token}"} if token else None
    try:
        client = JobSubmissionClient(address, headers=headers)
        client.list_jobs()  # the constructor's own check does not reach an authenticated endpoint
    except ConnectionError as exc:
        raise ValueError(f"--address {address}: no Ray dashboard answers there ({exc})") from None
    except AuthenticationError:
        if token is None:
            raise ValueError(
                f"--address {address}: the cluster requires its auth token and none was found; pass "
                f"--token-file FILE or set ${TOKEN_PATH_ENV} (see README, 'Cluster')"
            ) from None
        raise ValueError(f"--address {address}: the cluster refused the auth token (a different cluster's?)") from None
    return client


def follow_job(client: Any, job_id: str, out: TextIO, poll_s: float = 1.0, summary: bool = True) -> Submission:
    """Stream the job's logs to ``out`` until it ends; return its final status and exit code.

    ``summary``: end with a line ``job ID: STATUS (exit code N)`` on ``out``.
    """

    async def tail() -> None:
        with warnings.catch_warnings():  # Ray's own websocket call warns about its ssl=None
            warnings.simplefilter("ignore", DeprecationWarning)
            async for chunk in client.tail_job_logs(job_id):
                out.write(chunk)
                out.flush()

    try:
        asyncio.run(tail())
    except RuntimeError as exc:  # the log stream closed early: fall back to polling the status
        logger.warning("job %s: the log stream ended (%s); waiting for the job to end", job_id, exc)
    while (status := status_name(client.get_job_status(job_id))) not in TERMINAL:
        time.sleep(poll_s)
    info = client.get_job_info(job_id)
    code = info.driver_exit_code
    if code is None:  # stopped before the driver ran, or a failure outside it (e.g. runtime env setup)
        code = 0 if status == "SUCCEEDED" else 1
    if summary:
        message = f": {info.message}" if status != "SUCCEEDED" and info.message else ""
        print(f"job {job_id}: {status} (exit code {code}){message}", file=out, flush=True)
    return Submission(job_id, status, code)


def status_name(status: object) -> str:
    """``JobStatus.RUNNING`` (or its string) as ``RUNNING``."""
    return str(getattr(status, "value", status)).split(".")[-1]
