"""Where a sweep keeps its state, and the record that lets ``resume``/``status`` find it by name.

Layout under the storage root (``--storage``, else ``$SVCONV_SWEEPS``, else ``<results>/.sweeps`` when
``--results`` is given, else ``~/svconv_sweeps``)::

    <storage>/<name>/sweep.json    what was run: the spec's text, the expanded trials, results dir, resources
    <storage>/<name>/tune/         Ray Tune's experiment (state, per-trial dirs, checkpoints); resume reads it
    <storage>/<name>/results/      the Parquet tables, unless --results put them elsewhere
    <storage>/<name>/lock.json     while a run or resume drives the sweep (see sweeps.lock)
    <storage>/<name>/tune-rerun/   the Tune experiment of a resume's re-run of trials whose rows were lost

On a multi-node cluster every path here must be on storage that every node mounts at the same place
(NFS, EFS, a GCS/S3 fuse mount): Ray Tune persists checkpoints to ``storage_path`` from the node that
runs the trial, and each trial writes its Parquet rows from that node.

The default keeps each results folder's state beside it, so two checkouts running ``--results
demo_results`` never share (or replace) one state. A state belongs to the results folder in its
``sweep.json``: ``sweep run`` refuses to replace one that belongs to another results folder
(:func:`check_owner`), naming both paths.
"""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sweeps.spec import SweepSpec, iter_trial_dicts, sweep_name

STORAGE_ENV = "SVCONV_SWEEPS"
STATE_FILE = "sweep.json"
TUNE_DIR = "tune"
#: The storage root inside a results folder given without a storage root (``<results>/.sweeps``).
RESULTS_STATE_DIR = ".sweeps"


def default_storage(results_dir: str | os.PathLike | None = None) -> Path:
    """``$SVCONV_SWEEPS`` if set, else ``<results_dir>/.sweeps`` with a results folder, else ``~/svconv_sweeps``."""
    if os.environ.get(STORAGE_ENV):
        return Path(os.environ[STORAGE_ENV])
    if results_dir is not None:
        return Path(results_dir).expanduser().resolve() / RESULTS_STATE_DIR
    return Path.home() / "svconv_sweeps"


def _storage(storage: str | os.PathLike | None, results_dir: str | os.PathLike | None = None) -> Path:
    path = str(storage) if storage is not None else str(default_storage(results_dir))
    if "://" in path:
        raise ValueError(
            f"--storage must be a filesystem path that every node mounts (NFS, EFS, a fuse mount of a bucket); "
            f"got the URI {path!r}"
        )
    return Path(path).expanduser().resolve()


def sweep_dir(name: str, storage: str | os.PathLike | None = None, results_dir: str | os.PathLike | None = None) -> Path:
    """``<storage>/<name>``: the sweep's state folder (``name`` checked by :func:`sweeps.spec.sweep_name`;
    ``results_dir``: where the default storage root is, see :func:`default_storage`)."""
    return _storage(storage, results_dir) / sweep_name(name)


def resume_command(name: str, storage: str | os.PathLike) -> str:
    """The ``svconv sweep resume`` command line that finds the state under storage root ``storage``."""
    root = Path(storage)
    where = "" if root == _storage(None) else f" --storage {shlex.quote(str(root))}"
    return f"svconv sweep resume {name}{where}"


@dataclass
class SweepState:
    """The contents of ``sweep.json``."""

    name: str
    storage: str  # absolute storage root
    results_dir: str  # absolute
    spec_source: str
    spec_text: str
    resources: dict[str, float]
    concurrency: int | None
    retries: int
    reuse_workers: bool
    trials: list[dict[str, Any]]  # {"trial_id", "label", "config"}
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    scheduler: dict[str, Any] | None = None  # SchedulerSpec.to_dict(); None: no early stopping
    trackers: list[dict[str, Any]] = field(default_factory=list)  # TrackerSpec.to_dict() each

    @property
    def root(self) -> Path:
        return Path(self.storage) / self.name

    @property
    def tune_dir(self) -> Path:
        return self.root / TUNE_DIR

    @classmethod
    def from_spec(
        cls, spec: SweepSpec, results_dir: str | os.PathLike | None, storage: str | os.PathLike | None
    ) -> "SweepState":
        root = _storage(storage, results_dir)
        results = Path(results_dir).expanduser().resolve() if results_dir is not None else root / spec.name / "results"
        return cls(
            name=spec.name,
            storage=str(root),
            results_dir=str(results),
            spec_source=spec.source,
            spec_text=spec.text,
            resources={"cpus": spec.resources.cpus, "gpus": spec.resources.gpus},
            concurrency=spec.concurrency,
            retries=spec.retries,
            reuse_workers=spec.reuse_workers,
            trials=list(iter_trial_dicts(spec)),
            scheduler=spec.scheduler.to_dict() if spec.scheduler else None,
            trackers=[t.to_dict() for t in spec.trackers],
        )

    def save(self) -> Path:
        """Write ``sweep.json`` atomically."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / STATE_FILE
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1))
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, name: str, storage: str | os.PathLike | None = None,
             results_dir: str | os.PathLike | None = None) -> "SweepState":
        """Read the state of sweep ``name`` (found as :func:`sweep_dir` says); ValueError saying where it
        looked and what exists there."""
        name = sweep_name(name)
        root = sweep_dir(name, storage, results_dir)
        path = root / STATE_FILE
        if not path.is_file():
            parent = root.parent
            known = sorted(p.name for p in parent.iterdir() if (p / STATE_FILE).is_file()) if parent.is_dir() else []
            hint = f"sweeps there: {', '.join(known)}" if known else "no sweeps there"
            raise ValueError(
                f"no sweep named {name!r} under {parent} ({hint}); pass --storage or set ${STORAGE_ENV} "
                f"to the storage root the sweep ran with, or --results DIR for a sweep run with --results DIR "
                f"and no storage root (its state is in DIR/{RESULTS_STATE_DIR})"
            )
        data = json.loads(path.read_text())
        data["storage"] = str(root.parent)  # where it is now, should the folder have moved
        return cls(**data)


def check_owner(state: SweepState) -> None:
    """Refuse (ValueError naming both folders) to replace a saved state that belongs to another results folder.

    The saved ``sweep.json`` of ``state.root``, if any, records the results folder it wrote to; a state
    of the same results folder (a re-run) may be replaced, one of another may not: its resume would lose
    its trials' checkpoints and its record of what ran.
    """
    path = state.root / STATE_FILE
    try:
        saved = json.loads(path.read_text())["results_dir"]
    except FileNotFoundError:
        return
    except (OSError, ValueError, KeyError, TypeError):  # unreadable: nothing of it can be resumed anyway
        return
    if Path(saved) != Path(state.results_dir):
        raise ValueError(
            f"sweep {state.name!r}: the state in {state.root} belongs to the results folder {saved}, "
            f"not to {state.results_dir} (this run's); refusing to replace it. Give this run its own state "
            f"with --storage DIR, or remove {state.root} first (the results in {saved} stay)"
        )
