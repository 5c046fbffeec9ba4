"""Experiment trackers of a sweep: the spec's ``trackers`` list, as Ray Tune's own logger callbacks.

    trackers: [tensorboard, mlflow]           # off unless listed
    trackers:
      - tensorboard                           # TBXLoggerCallback: event files in each trial's Tune folder
      - mlflow: {tracking_uri: URI, experiment: NAME}   # MLflowLoggerCallback; both options optional

TensorBoard: ``tensorboard --logdir <storage>/<name>/tune``. MLflow: one run per trial (its config as
params, every reported result as metrics, step = Tune's ``training_iteration``) in experiment ``NAME``
(default: the sweep's name) at ``tracking_uri`` (default: the file store ``<results>/mlruns``, read with
``mlflow ui --backend-store-uri <results>/mlruns``). The callbacks run in the driver process, so on a
cluster the trackers write from the head node only.

MLflow 3 refuses its file store unless ``MLFLOW_ALLOW_FILE_STORE=true`` (the file store is in maintenance
mode; its database store needs SQLAlchemy, which ``mlflow-skinny`` lacks); the driver sets that variable
(unless it is set) for a ``file:`` tracking URI. Without any tracker, the driver also keeps Tune from adding its TensorBoard
logger on its own (it does whenever tensorboardX is installed); Tune's CSV and JSON logs stay.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

#: tracker name -> (the package it needs, the options it takes)
TRACKERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "tensorboard": ("tensorboardX", ()),
    "mlflow": ("mlflow", ("tracking_uri", "experiment")),
}
MLFLOW_DIR = "mlruns"
_INSTALL = "pip install 'svconv[trackers]'"


class TrackerOptionError(ValueError):
    """A bad ``trackers`` entry; ``index`` is its position in the list."""

    def __init__(self, index: int | None, message: str) -> None:
        super().__init__(message)
        self.index = index


@dataclass(frozen=True)
class TrackerSpec:
    name: str
    options: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "options": dict(self.options)}


def check_trackers(items: Sequence[Any]) -> tuple[TrackerSpec, ...]:
    """Validate a spec's ``trackers`` list: names or one-key mappings ``{name: {option: value}}``."""
    out: list[TrackerSpec] = []
    for i, item in enumerate(items):
        if isinstance(item, Mapping) and len(item) == 1:
            ((name, options),) = item.items()
            options = {} if options is None else options
        else:
            name, options = item, {}
        if not isinstance(name, str) or name not in TRACKERS:
            raise TrackerOptionError(i, f"trackers: each entry must be one of {', '.join(TRACKERS)} "
                                        f"(or {{mlflow: {{tracking_uri: ..., experiment: ...}}}}); got {item!r}")
        allowed = TRACKERS[name][1]
        if not isinstance(options, Mapping):
            raise TrackerOptionError(i, f"trackers: the options of {name} must be a mapping; got {options!r}")
        for key, value in options.items():
            if key not in allowed:
                known = ", ".join(allowed) if allowed else "none"
                raise TrackerOptionError(i, f"trackers: unknown {name} option {key!r}; known options: {known}")
            if not isinstance(value, str) or not value:
                raise TrackerOptionError(i, f"trackers: {name} {key} must be a non-empty string; got {value!r}")
        if any(t.name == name for t in out):
            raise TrackerOptionError(i, f"trackers: {name} is listed twice")
        out.append(TrackerSpec(name, dict(options)))
    return tuple(out)


def missing_packages(trackers: Sequence[Mapping[str, Any]]) -> list[str]:
    """The packages the listed trackers need that are not installed here."""
    return [TRACKERS[t["name"]][0] for t in trackers if importlib.util.find_spec(TRACKERS[t["name"]][0]) is None]


def mlflow_uri(tracker: Mapping[str, Any], results_dir: str | os.PathLike) -> str:
    """The tracking URI of an ``mlflow`` tracker: its ``tracking_uri``, else the file store ``<results>/mlruns``."""
    return tracker["options"].get("tracking_uri") or (Path(results_dir) / MLFLOW_DIR).resolve().as_uri()


def tracker_callbacks(trackers: Sequence[Mapping[str, Any]], sweep: str, results_dir: str | os.PathLike) -> list[Any]:
    """Ray Tune logger callbacks for ``trackers`` (``TrackerSpec.to_dict()`` entries), plus Tune's CSV and JSON
    loggers (Tune's experiment analysis reads them). Raises ValueError naming a package that is missing."""
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback, TBXLoggerCallback

    missing = missing_packages(trackers)
    if missing:
        raise ValueError(f"trackers: {', '.join(missing)} is not installed here ({_INSTALL})")
    callbacks: list[Any] = [CSVLoggerCallback(), JsonLoggerCallback()]
    for t in trackers:
        if t["name"] == "tensorboard":
            callbacks.append(TBXLoggerCallback())
        elif t["name"] == "mlflow":
            from ray.air.integrations.mlflow import MLflowLoggerCallback

            uri = mlflow_uri(t, results_dir)
            if uri.startswith("file:"):
                os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # see the docstring
            callbacks.append(MLflowLoggerCallback(
                tracking_uri=uri, experiment_name=t["options"].get("experiment") or sweep, tags={"sweep": sweep}
            ))
    return callbacks
