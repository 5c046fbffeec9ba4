"""The ``clip-to-target`` suite: how fast each method lands a layer's (or a model's) spectral norm on its target.

Clipping is judged by what it achieves (issue 11): every row records ``sigma_after``, ``target``,
``passes`` and ``rel_change = ||W' - W||_F / ||W||_F`` beside the time (median over the repeats) and the
peak memory, in the ``bench`` schema. Each method is the ``svconv.control`` function training runs, on
every controlled layer:

- ``clip-to-target``: ``clip_`` with a tolerance (``svconv.spectrum.clip_to_target``; TT layers through the
  orthogonalised core), one row per ``strategy`` x ``solver`` (x ``guarantee``): it stops once the norm is
  within ``tol`` of the target or after ``max_passes`` passes. The row's ``method`` names them,
  ``clip-to-target/secant/eigh`` (``/guarantee`` and ``/tol=T`` appended when set); ``iters`` holds
  ``max_passes``.
- ``clip-pass``: ``iters`` plain clip-then-restrict passes at the target (``tol=0``), the pre-target
  behaviour; one pass is the unit the issue's goal is stated in.
- ``drift`` > 0 (``clip-to-target`` and ``clip-pass``): the control step during training. Before each timed
  call (untimed) every layer is clipped to within 1 % and then moved by a random step of relative norm
  ``drift``; ``clip-to-target`` starts from the level that first clip found (``level=``, as training
  carries it), ``clip-pass`` does its plain passes on the drifted kernel. The label ends ``/drift=D``.
- ``division`` (``iters`` power steps, then divide), ``fastclip`` (at most ``iters`` projection steps of
  ``iters`` power steps each), ``gram`` (rescale by the 6-step Gram-iteration bound). The power
  iterations start cold (seeded) at every call.

``sigma_after``: layer rows: the true norm of the layer's operator, float64 (``bench.measure.reference_norm``);
model rows (as ``bench.measure``): the worst layer's exact (periodic-model) norm divided by the target,
``passes`` the most any layer took, ``rel_change`` over all full kernels together. Model rows control the
conv, TT and linear layers (batch norm is left alone by every method here). The time never includes the
check of ``sigma_after``; ``clip-to-target`` measures its own result on the way, and that is in its time.

Configs come from suite files whose top level says ``runner: clip-target`` (``bench.suites``), or from
``svconv bench --grid runner=clip-target ...``. Grid keys: those of ``bench.grid`` plus ``strategy``,
``solver``, ``guarantee``, ``tol``, ``max_passes``, ``drift`` (see :data:`EXTRA_DEFAULTS`); ``method`` takes
:data:`METHODS`. ``bench.run`` sends configs that carry ``runner: clip-target`` here.
"""

from __future__ import annotations

import copy
import itertools
import math
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch
from torch import nn

from bench.grid import bench_id, expand
from bench.measure import Skip, _check_layer, _measured, build_bench_model, make_layer, reference_norm
from bench.measure import run_config as run_measured
from bench.timing import time_calls

RUNNER = "clip-target"
CT_METHOD = "clip-to-target"
#: method of this suite -> the registry method (``svconv.methods.registry``) whose geometry checks it shares
METHODS: dict[str, str] = {CT_METHOD: "clip", "clip-pass": "clip", "division": "division", "fastclip": "fastclip", "gram": "gram"}
DEFAULT_TOL = 0.01
#: grid keys of this runner on top of ``bench.grid``'s; strategy / solver None: every one (solver ``auto`` aside)
EXTRA_DEFAULTS: dict[str, Any] = {"strategy": None, "solver": None, "guarantee": False, "tol": DEFAULT_TOL, "max_passes": 20, "drift": 0.0}


def _axis(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _check_extras(extras: Mapping[str, list[Any]]) -> None:
    from svconv.spectrum import CLIP_SOLVERS, CLIP_STRATEGIES
    from svconv.spectrum._checks import check_choice, check_count

    for key, allowed in (("strategy", CLIP_STRATEGIES), ("solver", CLIP_SOLVERS)):
        for v in extras[key]:
            check_choice(v, allowed, key)
    for t in extras["tol"]:
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 < t < 1:
            raise ValueError(f"tol must be a number in (0, 1); got {t!r}")
    for n in extras["max_passes"]:
        check_count(n, "max_passes")
    for v in extras["drift"]:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1:
            raise ValueError(f"drift must be a number in [0, 1); got {v!r}")


def expand_grid(grid: Mapping[str, Any], suite: str, overrides: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The canonical configs of one grid of this runner (see the module doc), duplicates dropped.

    ``bench.grid.expand`` checks and fills the geometry keys; a bad name is a ValueError naming the key
    and the allowed values.
    """
    from svconv.spectrum import CLIP_SOLVERS, CLIP_STRATEGIES

    grid = {k: v for k, v in grid.items() if k != "runner"}
    everything = {"strategy": list(CLIP_STRATEGIES), "solver": [s for s in CLIP_SOLVERS if s != "auto"]}
    extras = {k: _axis(grid.pop(k, v)) if grid.get(k, v) is not None else everything[k] for k, v in EXTRA_DEFAULTS.items()}
    _check_extras(extras)
    methods = _axis(grid.pop("method", list(METHODS)))
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}; got {m!r}")
    base = expand({**grid, "method": "division"}, suite, overrides)  # geometry; iters defaults to 1
    out: dict[str, dict[str, Any]] = {}
    for cfg, method in itertools.product(base, methods):
        cfg = {**cfg, "method": method, "runner": RUNNER}
        if method == CT_METHOD:
            combos = itertools.product(*(extras[k] for k in ("strategy", "solver", "guarantee", "tol", "max_passes")))
            variants = [dict(strategy=a, solver=b, guarantee=bool(g), tol=float(t), iters=n) for a, b, g, t, n in combos]
        else:
            iters = None if method == "gram" else cfg["iters"]
            variants = [dict(strategy=None, solver=None, guarantee=False, tol=None, iters=iters)]
        drifts = [float(v) for v in extras["drift"]] if method in (CT_METHOD, "clip-pass") else [0.0]
        variants = [{**v, **({"drift": d} if d else {})} for v in variants for d in drifts]  # ids of drift 0 unchanged
        for v in variants:
            c = {**cfg, **v}
            out.setdefault(bench_id(c), c)
    return list(out.values())


def expand_all(grids: Iterable[Mapping[str, Any]], suite: str, overrides: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Configs of several grids, in order, without duplicates (equal ids are equal configs)."""
    return list({bench_id(c): c for grid in grids for c in expand_grid(grid, suite, overrides)}.values())


def method_label(cfg: Mapping[str, Any]) -> str:
    """The row's ``method``: ``clip-to-target/STRATEGY/SOLVER[/guarantee][/tol=T]``, or the method's name."""
    if cfg["method"] != CT_METHOD:
        return cfg["method"] + _drift_label(cfg)
    label = f"{CT_METHOD}/{cfg['strategy']}/{cfg['solver']}"
    if cfg["guarantee"]:
        label += "/guarantee"
    if cfg["tol"] != DEFAULT_TOL:
        label += f"/tol={cfg['tol']:g}"
    return label + _drift_label(cfg)


def _drift_label(cfg: Mapping[str, Any]) -> str:
    return f"/drift={cfg['drift']:g}" if cfg.get("drift") else ""


def rel_change(before: Sequence[torch.Tensor], modules: Sequence[nn.Module]) -> float:
    """``||W' - W||_F / ||W||_F`` over the full kernels of ``modules`` together (TT layers: frames times core),
    ``before`` their saved full kernels; in float64."""
    from svconv.control.layer import full_kernel

    num = sum(float((full_kernel(m).double() - b.double()).pow(2).sum()) for b, m in zip(before, modules))
    den = sum(float(b.double().pow(2).sum()) for b in before)
    return math.sqrt(num / den) if den > 0 else 0.0


def _control_fn(cfg: Mapping[str, Any]) -> Callable[[nn.Module, Sequence[int], dict], Any]:
    """``f(layer, spatial input size, state) -> ControlResult``: the config's method on one layer, in place
    (``svconv.control``, the functions training runs)."""
    from svconv import control

    c, it = cfg["clip_to"], cfg["iters"]
    method = cfg["method"]
    if method == CT_METHOD:
        opts = dict(guarantee=cfg["guarantee"], solver=cfg["solver"], strategy=cfg["strategy"])
        return lambda m, size, st: control.clip_(m, c, size, tol=cfg["tol"], max_passes=it, level=st.get("level"), **opts)
    if method == "clip-pass":
        return lambda m, size, st: control.clip_(m, c, size, tol=0, max_passes=it)
    if method == "division":
        return lambda m, size, st: control.divide_(m, c, size, n_iter=it, state=st, generator=st["gen"])
    if method == "fastclip":
        return lambda m, size, st: control.fastclip_(m, c, size, n_iter=it, power_iters=it, state=st, generator=st["gen"])
    if method == "gram":
        return lambda m, size, st: control.gram_rescale_(m, c, size)
    raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")


def _timed_control(cfg: Mapping[str, Any], model: nn.Module, layers: list) -> tuple[Any, list[torch.Tensor]]:
    """Time the config's method over ``layers`` of ``model`` (from the same weights and a fresh power-iteration
    state every call; restoring them is untimed). Returns the timing (its result: the last call's
    ``ControlResult`` per layer) and the layers' full kernels before control."""
    from svconv.control.layer import full_kernel

    fn = _control_fn(cfg)
    saved = copy.deepcopy(model.state_dict())
    before = [full_kernel(layer.module).clone() for layer in layers]
    states: list[dict] = []

    def setup() -> None:
        model.load_state_dict(saved)
        states[:] = [{"gen": torch.Generator().manual_seed(cfg["seed"])} for _ in layers]
        if cfg.get("drift"):
            _clip_then_drift(cfg, layers, states)

    def run() -> list[Any]:
        with torch.no_grad():
            return [fn(layer.module, layer.spatial, st) for layer, st in zip(layers, states)]

    timing = time_calls(run, torch.device(cfg["device"]), repeats=cfg["repeats"], warmup=cfg["warmup"], setup=setup)
    return timing, before


def _clip_then_drift(cfg: Mapping[str, Any], layers: list, states: list[dict]) -> None:
    """The state a control step meets during training (untimed): each layer clipped to within 1 % of the
    target (``clip_to_target``, its level kept as the warm start of the timed step), then moved by a seeded
    random step of relative Frobenius norm ``drift`` (an optimiser's steps between two control steps)."""
    from svconv import control
    from svconv.control.layer import controlled_part

    gen = torch.Generator().manual_seed(cfg["seed"] + 1)
    with torch.no_grad():
        for layer, st in zip(layers, states):
            res = control.clip_(layer.module, cfg["clip_to"], layer.spatial or None, tol=DEFAULT_TOL)
            st["level"] = res.level
            w = controlled_part(layer.module)[0].weight
            noise = torch.randn(w.shape, generator=gen, dtype=w.dtype).to(w.device)
            w.add_(noise * (cfg["drift"] * w.norm() / noise.norm()))


def _measure_layer(cfg: Mapping[str, Any]) -> dict[str, Any]:
    from svconv.methods.base import find_layers

    _check_layer({**cfg, "method": METHODS[cfg["method"]]})
    case = make_layer(cfg)
    model = nn.Sequential(case.module)
    layers = find_layers(model, case.input_shape)
    timing, before = _timed_control(cfg, model, layers)
    (result,) = timing.result
    target = float(cfg["clip_to"])
    sigma, _ = reference_norm(case.module, case.input_shape, case.tt)  # the layer's own operator, float64
    row = _measured(timing, timing.peak_mem_mb, sigma, target, "target", (sigma - target) / target, None, None)
    row.update(sigma_after=sigma, target=target, passes=int(result.passes), rel_change=rel_change(before, [case.module]))
    return row


def _measure_model(cfg: Mapping[str, Any]) -> dict[str, Any]:
    from svconv.control import exact_norm
    from svconv.methods.base import find_layers

    model = build_bench_model(cfg)
    input_shape = tuple(cfg["input_shape"])
    layers = [layer for layer in find_layers(model, input_shape) if layer.kind in ("conv", "tt", "linear")]
    if not layers:
        raise Skip(f"arch {cfg['arch']} has no conv, TT or linear layer")
    timing, before = _timed_control(cfg, model, layers)
    target = float(cfg["clip_to"])
    # exact norms of the periodic models that clipping controls (zeros padding: a bound on the layer's own)
    worst = max(exact_norm(layer.module, layer.spatial) for layer in layers)
    row = _measured(timing, timing.peak_mem_mb, worst, target, "target", (worst - target) / target, None, None)
    row.update(
        sigma_after=worst / target, target=target, passes=max(int(r.passes) for r in timing.result),
        rel_change=rel_change(before, [layer.module for layer in layers]),
    )  # fmt: skip
    return row


def run_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Measure one config of this suite and return its ``bench`` row (status ok, skipped or failed)."""
    row = run_measured(cfg, lambda c: _measure_layer(c) if c["scope"] == "layer" else _measure_model(c))
    row["method"] = method_label(cfg)
    return row
