"""Phase 4, speed on the device: eigh against matmul-only solvers and against a CPU round trip.

In order of value: per WRN-16-10 layer shape (periodic operator on the stage's input, float32, kernel
drawn like ``bench.measure.make_conv``) exact singular values with eigh, ``clip_to_target`` (target 1,
tol 1 %) with each solver, and one plain clip pass; then the whole WRN-16-10, plain and TT at ranks
192/256/320 (every conv/TT layer at its own input size and periodic grid, as ``bench.measure``): exact
singular values and ``clip_to_target`` per solver with the achieved worst ``sigma / target``; then per
shape the extras: eigh with each preferred CUDA linear-algebra library, CPU round trips of the exact
values and of ``clip_to_target``, and the estimators (Gram bound, power iteration, PowerQR).

Times are CUDA-synchronised medians (``bench.timing.time_calls``) after a first, untimed-for-the-median
call; repeats adapt to the cost (one call for items of several seconds). ``--size quick`` (the default on
CPU) keeps two layer shapes with channels divided by 8 and input sizes by 4, and WRN-10-1 at 8x8 with one
TT rank.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import nn

from bench.gpu_check.correctness import clip_solvers
from bench.gpu_check.record import Recorder, Skip
from bench.timing import time_calls

#: (c_in, c_out, input size, stride) of the WRN-16-10 convs (issue 13).
WRN_LAYERS = ((16, 160, 32, 1), (160, 160, 32, 1), (160, 320, 32, 2), (320, 320, 16, 1), (320, 640, 16, 2), (640, 640, 8, 1))
WRN_RANKS = (192, 256, 320)
TARGET, TOL = 1.0, 0.01
#: seconds of timed calls aimed at per item (full, quick)
TIME_TARGET = {"full": 0.5, "quick": 0.3}
#: a whole-model pass costs about this many times the sum of the six layer shapes (13 convs, 3 of each
#: square shape); used to skip a model item that cannot finish in the time left
MODEL_FACTOR = 2.5


def layer_shapes(size: str) -> list[tuple[int, int, int, int]]:
    """The WRN-16-10 shapes; quick: the first and the first strided one, channels / 8 and sizes / 4."""
    if size == "full":
        return list(WRN_LAYERS)
    return [(max(2, ci // 8), max(2, co // 8), max(4, n // 4), s) for ci, co, n, s in (WRN_LAYERS[0], WRN_LAYERS[2])]


def model_spec(size: str) -> tuple[str, tuple[int, int, int], tuple[int, ...]]:
    """``(arch, input_shape, ranks)`` of the whole-model items; quick: WRN-10-1 on 8x8, one TT rank."""
    if size == "full":
        return "wrn-16-10", (3, 32, 32), WRN_RANKS
    return "wrn-10-1", (3, 8, 8), (WRN_RANKS[0] // 10,)


def shape_label(c_in: int, c_out: int, n: int, s: int) -> str:
    return f"{c_in}->{c_out} @{n}" + (f" s{s}" if s > 1 else "")


def kernel(c_in: int, c_out: int, seed: int = 0) -> torch.Tensor:
    """A 3x3 kernel as ``bench.measure.make_conv`` draws it (std 2/sqrt(fan_in)), float64 on the CPU."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(c_out, c_in, 3, 3, generator=gen, dtype=torch.float64) * (2.0 / math.sqrt(c_in * 9))


class Timer:
    """Times items against the phase's clock: one first call, then as many repeats as the aimed time allows."""

    def __init__(self, rec: Recorder, dev: torch.device, size: str):
        self.rec, self.dev, self.aim = rec, dev, TIME_TARGET[size]

    def __call__(self, fn: Callable[[], Any]) -> tuple[dict[str, Any], Any]:
        with torch.no_grad():
            first = time_calls(fn, self.dev, repeats=1, warmup=0, memory=True)
            t0 = max(first.median, 1e-6)
            repeats = min(5, int(self.aim / t0), int(max(self.rec.left() - 1, 0) / t0))
            timing = time_calls(fn, self.dev, repeats=repeats, warmup=0, memory=True) if repeats >= 2 else first
        fields = {
            "time_median_s": timing.median,
            "time_iqr_s": timing.iqr,
            "repeats": len(timing.times),
            "first_call_s": first.median,
            "peak_mem_mb": timing.peak_mem_mb,
        }
        return fields, timing.result


def device_solvers() -> tuple[Callable, tuple[str, ...]]:
    """``(clip_to_target, its solvers but auto)``, or Skip while svconv.spectrum has none."""
    fn, solvers = clip_solvers()
    return fn, tuple(x for x in solvers if x != "auto") or ("auto",)


class _LinalgLibrary:
    """``torch.backends.cuda.preferred_linalg_library(name)`` for a block, restored after it."""

    def __init__(self, name: str):
        self.name = name

    def __enter__(self):
        self.before = torch.backends.cuda.preferred_linalg_library()
        torch.backends.cuda.preferred_linalg_library(self.name)

    def __exit__(self, *exc):
        torch.backends.cuda.preferred_linalg_library(self.before)


def layer_items(rec: Recorder, timer: Timer, shape: tuple[int, int, int, int], times: dict, exact: dict, extras: bool,
                gpu: bool) -> None:
    """The ops of one layer shape: the core pass (exact SVs with eigh, ``clip_to_target`` per solver, one plain
    pass) or the extras pass (with ``gpu``: eigh with each CUDA linear-algebra library and CPU round trips;
    the estimators).

    ``times[(op, solver)]`` collects medians for the model estimates; ``exact[shape]`` the exact norm.
    """
    from svconv.spectrum import clip_conv_singular_values, conv_singular_values, conv_spectral_norm
    from svconv.spectrum import gram_iteration_bound, power_iteration, power_qr

    c_in, c_out, n, s = shape
    dev = timer.dev
    label = shape_label(*shape)
    tags = {"scope": "layer", "shape": label, "c_in": c_in, "c_out": c_out, "input_size": n, "stride": s}
    w = kernel(c_in, c_out).to(dev, torch.float32)

    def record(op: str, solver: str, fn: Callable[[], dict[str, Any]]) -> None:
        def wrapped() -> dict[str, Any]:
            out = fn()
            times.setdefault((op, solver), []).append(out["time_median_s"])
            return out

        rec.item(f"{op} [{solver}] {label}", wrapped, op=op, solver=solver, **tags)

    def exact_sv(route: Callable[[], torch.Tensor]) -> Callable[[], dict[str, Any]]:
        def fn() -> dict[str, Any]:
            fields, sv = timer(route)
            exact.setdefault(label, float(sv.max()))
            return {**fields, "value": float(sv.max())}

        return fn

    def to_target(solver: str, on_cpu: bool = False) -> Callable[[], dict[str, Any]]:
        def fn() -> dict[str, Any]:
            clip_to_target, _ = device_solvers()

            def call():
                res = clip_to_target(w.cpu() if on_cpu else w, n, TARGET, s, tol=TOL, solver=solver)
                return res, res.weight.to(dev)

            fields, (res, _) = timer(call)
            ratio = float(res.sigma) / TARGET
            ok = ratio <= 1 + TOL and (ratio >= 1 - TOL or exact.get(label, math.inf) <= TARGET)
            return {**fields, "passes": int(res.passes), "sigma_ratio": ratio, "rel_change": float(res.rel_change),
                    "status": "ok" if ok else "failed",
                    "detail": "" if ok else f"sigma/target {ratio:.4f} outside 1 +- {TOL}"}  # fmt: skip

        return fn

    try:
        solvers = device_solvers()[1]
    except Skip:
        solvers = ()

    if not extras:
        record("exact-sv", "eigh", exact_sv(lambda: conv_singular_values(w, n, s)))
        if not solvers:
            rec.row(f"clip-target {label}", "skipped", "svconv.spectrum.clip_to_target is not there yet (issue 11)", **tags)
        for solver in solvers:
            record("clip-target", solver, to_target(solver))

        def one_pass() -> dict[str, Any]:
            fields, out = timer(lambda: clip_conv_singular_values(w, n, TARGET, s, n_iter=1))
            sigma = float(conv_spectral_norm(out, n, s))
            return {**fields, "passes": 1, "sigma_ratio": sigma / TARGET, "rel_change": float((out - w).norm() / w.norm())}

        record("clip-1pass", "eigh", one_pass)
        return

    if gpu:
        for lib in ("cusolver", "magma"):
            def with_lib(lib=lib) -> torch.Tensor:
                with _LinalgLibrary(lib):
                    return conv_singular_values(w, n, s)

            record("exact-sv", f"eigh-{lib}", exact_sv(with_lib))
        record("exact-sv", "cpu", exact_sv(lambda: conv_singular_values(w.cpu(), n, s).to(dev)))
        if solvers:
            record("clip-target", "cpu", to_target("eigh", on_cpu=True))

    def estimator(run: Callable[[], torch.Tensor]) -> Callable[[], dict[str, Any]]:
        def fn() -> dict[str, Any]:
            fields, value = timer(run)
            v = float(torch.as_tensor(value).max())
            ref = exact.get(label)
            return {**fields, "value": v, "gap": (v - ref) / ref if ref else None}

        return fn

    conv = nn.Conv2d(c_in, c_out, 3, stride=s, padding=1, padding_mode="circular", bias=False).to(dev)
    with torch.no_grad():
        conv.weight.copy_(w)
    gen = torch.Generator().manual_seed(0)
    record("gram-bound", "matmul", estimator(lambda: gram_iteration_bound(w, n, n_iter=6, stride=s)))
    record("power-20", "autograd", estimator(lambda: power_iteration(conv, (c_in, n, n), n_iter=20, generator=gen)[0]))
    record("powerqr-4x20", "autograd", estimator(lambda: power_qr(conv, (c_in, n, n), k=4, n_iter=20, generator=gen)))


def build_model(arch: str, input_shape: tuple[int, int, int], rank: int | None, dev: torch.device) -> tuple[nn.Module, list]:
    """The model (weights from seed 0, built on the CPU, float32 on ``dev``) and its conv/TT layers with geometry."""
    from svconv.methods.base import find_layers, grid_and_stride
    from svconv.models import build_model as build

    c = input_shape[0]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build(arch, 10, input_shape, [0.5] * c, [0.25] * c, rank=rank)
    model = model.to(dev).eval()
    layers = []
    for layer in find_layers(model, input_shape):
        if layer.kind in ("conv", "tt"):
            conv = layer.module.core if layer.kind == "tt" else layer.module
            layers.append((layer, *grid_and_stride(conv, layer.spatial)))
    return model, layers


def _model_exact(layers) -> Callable[[], float]:
    from svconv.spectrum import conv_singular_values

    def run() -> float:
        best = 0.0
        for layer, grid, stride in layers:
            m = layer.module
            if layer.kind == "tt":
                sv = m.orthogonalize_().singular_values(grid)
            else:
                sv = conv_singular_values(m.weight, grid, stride)
            best = max(best, float(sv.max()))
        return best

    return run


def _model_clip(layers, solver: str) -> Callable[[], dict[str, float]]:
    """``clip_to_target`` on every conv/TT layer (TT: the orthogonalised core); the model is left unchanged."""
    clip_to_target, _ = device_solvers()

    def run() -> dict[str, float]:
        worst, change, passes = 0.0, 0.0, 0
        for layer, grid, stride in layers:
            m = layer.module
            if layer.kind == "tt":
                m.orthogonalize_()
                m = m.core
            res = clip_to_target(m.weight, grid, TARGET, stride, tol=TOL, solver=solver)
            worst, change, passes = max(worst, float(res.sigma) / TARGET), max(change, float(res.rel_change)), passes + int(res.passes)
        return {"sigma_ratio": worst, "rel_change": change, "passes": passes}

    return run


def model_items(rec: Recorder, timer: Timer, size: str, times: dict) -> None:
    arch, input_shape, ranks = model_spec(size)
    dev = timer.dev
    plain: dict[tuple[str, str], float] = {}
    try:
        solvers = device_solvers()[1]
    except Skip:
        solvers = ()

    def estimate(op: str, solver: str, rank: int | None) -> float:
        if rank is not None and (op, solver) in plain:
            return plain[(op, solver)]  # a TT model costs less than the plain one
        return MODEL_FACTOR * sum(times.get((op, solver), [0.0]))

    for rank in (None, *ranks):
        name = arch if rank is None else f"{arch} TT {rank}"
        tags = {"scope": "model", "shape": name, "arch": arch, "rank": rank, "input_size": input_shape[1]}
        built: dict[str, Any] = {}

        def layers():
            if "layers" not in built:
                built["model"], built["layers"] = build_model(arch, input_shape, rank, dev)
            return built["layers"]

        def exact() -> dict[str, Any]:
            fields, value = timer(_model_exact(layers()))
            return {**fields, "value": value, "layers": len(layers())}

        def clip(solver: str) -> dict[str, Any]:
            fields, out = timer(_model_clip(layers(), solver))
            ok = out["sigma_ratio"] <= 1 + TOL
            return {**fields, **out, "layers": len(layers()), "status": "ok" if ok else "failed",
                    "detail": f"worst layer sigma/target {out['sigma_ratio']:.4f}"}  # fmt: skip

        plan: list[tuple[str, str, Callable[[], dict[str, Any]]]] = [("exact-sv", "eigh", exact)]
        plan += [("clip-target", sv, lambda sv=sv: clip(sv)) for sv in solvers]
        for op, solver, fn in plan:
            row = rec.item(f"{op} [{solver}] {name}", fn, est_s=estimate(op, solver, rank), op=op, solver=solver, **tags)
            if rank is None and row["status"] == "ok":
                plain[(op, solver)] = row["time_median_s"]
        if not solvers:
            rec.row(f"clip-target {name}", "skipped", "svconv.spectrum.clip_to_target is not there yet (issue 11)", **tags)
        built.clear()
        if dev.type == "cuda":
            torch.cuda.empty_cache()


def run(rec: Recorder, device: str, size: str) -> None:
    """In order of value: the core ops on every layer shape, the whole models, then the extras per shape."""
    dev = torch.device(device)
    timer = Timer(rec, dev, size)
    times: dict[tuple[str, str], list[float]] = {}
    exact: dict[str, float] = {}
    for extras in (False, None, True):
        if extras is None:
            model_items(rec, timer, size, times)
            continue
        for shape in layer_shapes(size):
            layer_items(rec, timer, shape, times, exact, extras, gpu=dev.type == "cuda")
            if dev.type == "cuda":
                torch.cuda.empty_cache()
