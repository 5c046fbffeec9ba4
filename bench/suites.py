"""Benchmark suites: YAML files of grids shipped in ``bench/suites/`` (or any path).

A suite file::

    description: one line saying what it shows
    defaults: {repeats: 5, warmup: 1}      # applied to every grid (a grid's own keys win)
    grids:
      - {method: [exact, exact-numpy], channels: 64, input_size: 32, stride: [1, 2]}
      - {scope: model, arch: wrn-16-10, method: clip, rank: [null, 192]}

See ``bench.grid`` for the keys of a grid. ``runner: clip-target`` (optional) measures the grids with
``bench.clip_target`` (time to reach the target, per strategy and solver) instead of ``bench.measure``;
``runner: soc-tt`` times one SOC layer against its SOC-TT versions (``bench.soc_tt``); ``runner: matrix-norm``
the spectral norm of a dense matrix by full SVD against the power method (``bench.matrix_norm``); ``runner: zoo``
one forward + backward of each 1-Lipschitz layer type at equal width (``bench.zoo``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from bench.grid import expand_all

SUITES_DIR = Path(__file__).resolve().parent / "suites"
#: ``runner`` of a suite file -> what measures its configs (``grid``: ``bench.measure``, the default).
RUNNERS = ("grid", "clip-target", "soc-tt", "matrix-norm", "zoo")


@dataclass
class Suite:
    """A parsed suite: its name, description and grids (defaults already merged into each grid)."""

    name: str
    description: str
    grids: list[dict[str, Any]] = field(default_factory=list)
    runner: str = "grid"

    def configs(self, overrides: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """The canonical configs of every grid; ``overrides`` (e.g. device, repeats) win over the file."""
        return runner_configs(self.grids, self.name, overrides, self.runner)


def runner_configs(
    grids: list[dict[str, Any]], suite: str, overrides: Mapping[str, Any] | None = None, runner: str = "grid"
) -> list[dict[str, Any]]:
    """The canonical configs of ``grids`` for ``runner`` (one of :data:`RUNNERS`)."""
    if runner not in RUNNERS:
        raise ValueError(f"runner must be one of {', '.join(RUNNERS)}; got {runner!r}")
    if runner == "clip-target":
        from bench import clip_target

        return clip_target.expand_all(grids, suite, overrides)
    if runner == "soc-tt":
        from bench import soc_tt

        return soc_tt.expand_all(grids, suite, overrides)
    if runner == "matrix-norm":
        from bench import matrix_norm

        return matrix_norm.expand_all(grids, suite, overrides)
    if runner == "zoo":
        from bench import zoo

        return zoo.expand_all(grids, suite, overrides)
    return expand_all(grids, suite, overrides)


def list_suites() -> dict[str, str]:
    """``{name: description}`` of the shipped suites."""
    return {p.stem: load_suite(p).description for p in sorted(SUITES_DIR.glob("*.yaml"))}


def load_suite(name_or_path: str | Path) -> Suite:
    """A shipped suite by name (``quick``, ``seed-fig2``, ...) or a YAML file by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = SUITES_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        shipped = ", ".join(p.stem for p in sorted(SUITES_DIR.glob("*.yaml")))
        raise ValueError(f"suite must be one of {shipped} or a path to a .yaml file; got {str(name_or_path)!r}")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict) or not isinstance(data.get("grids"), list) or not data["grids"]:
        raise ValueError(f"suite {path}: needs a non-empty 'grids' list (and optional 'description', 'defaults')")
    unknown = sorted(set(data) - {"description", "defaults", "grids", "runner"})
    if unknown:
        raise ValueError(f"suite {path}: unknown key(s) {unknown}; allowed: description, defaults, grids, runner")
    runner = data.get("runner", "grid")
    if runner not in RUNNERS:
        raise ValueError(f"suite {path}: runner must be one of {', '.join(RUNNERS)}; got {runner!r}")
    defaults = data.get("defaults") or {}
    grids = []
    for i, grid in enumerate(data["grids"]):
        if not isinstance(grid, dict):
            raise ValueError(f"suite {path}: grid {i} must be a mapping; got {grid!r}")
        grids.append({**defaults, **grid})
    return Suite(path.stem, str(data.get("description", "")).strip(), grids, runner)
