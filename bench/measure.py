"""One configuration in, one ``bench`` row out: time, peak memory, value and gap of one method.

Per config (see ``bench.grid``): build the layer (or model) from the config's seed, call the method
``warmup`` times untimed and ``repeats`` times timed; the last timed call also gives the peak memory and
the value (``bench.timing``); a control method starts every call from the same weights and a freshly
attached method object, so the value does not depend on how often it was timed.

What ``value``, ``exact_value`` and ``gap = (value - exact_value) / exact_value`` hold:

- estimators and bounds (``exact``, ``exact-numpy``, ``exact-torch``, ``gram``, ``power``, ``powerqr``):
  ``value`` is the method's spectral norm; ``exact_value`` the true spectral norm of the layer's own
  operator (its padding and stride), in float64: ``fft`` (the exact formula, for circular padding),
  ``dense`` (SVD of the explicit matrix, small layers) or ``lanczos`` (ARPACK on ``M^T M`` to 1e-10),
  named in ``exact_method``. For circular padding the exact methods have gap 0 to rounding and
  ``gram`` gap >= 0; for zeros padding the exact methods are those of the periodic model on the padded
  grid (what clipping controls), an upper bound, so their gap is >= 0 too; power iteration and
  PowerQR are lower bounds (gap <= 0 up to rounding).
- control steps (``clip``, ``division``, ``fastclip``, ``aol``): ``value`` is the true spectral norm of
  the layer after one control step (as above), ``exact_value`` the target ``clip_to`` (1 for AOL),
  ``exact_method`` = ``target``: the gap says how far from the target one step lands.
- model passes (scope ``model``): ``exact`` times the singular values of every conv/TT layer at its
  input size (value: the largest); a control method times one full control step over the model;
  with ``check`` the value is the largest exact (periodic-model) norm of a conv/TT layer after it.
  ``soc`` (LipConvNet) times one forward of every SOC / SOC-TT layer; value: the largest output/input
  norm ratio on that input (target 1).

A config that cannot run becomes a ``skipped`` row with the reason; an exception while measuring a
``failed`` row with the error, so one bad configuration never stops a run.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as _dt
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from bench import theory
from bench.grid import LAYER_METHODS, bench_id
from bench.timing import time_calls
from svconv.results import provenance

#: explicit-matrix ground truth up to this many entries (in_features * out_features), else Lanczos.
DENSE_LIMIT = 2**22
LANCZOS_TOL = 1e-10
EXACT_FAMILY = ("exact", "exact-numpy", "exact-torch")


class Skip(Exception):
    """A configuration that cannot run here; the message is the reason."""


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def _dims(values: Sequence[int]) -> str:
    return "x".join(str(int(v)) for v in values)


def _dtype(name: str) -> torch.dtype:
    return {"float32": torch.float32, "float64": torch.float64}[name]


def base_row(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The columns every row of ``cfg`` has, whatever its status."""
    layer = cfg["scope"] == "layer"
    row = {
        "bench_id": bench_id(cfg),
        "suite": cfg["suite"],
        "scope": cfg["scope"],
        "arch": None if layer else cfg["arch"],
        "method": cfg["method"],
        "tt": cfg["rank"] is not None,
        "rank": cfg["rank"],
        "device": cfg["device"],
        "dtype": cfg["dtype"],
        "threads": cfg.get("threads"),
        "repeats": cfg["repeats"],
        "iters": cfg["iters"],
        "k": cfg.get("k"),
    }
    if layer:
        row.update(
            c_in=cfg["c_in"],
            c_out=cfg["c_out"],
            kernel=_dims(cfg["kernel"]),
            input_size=_dims(cfg["input_size"]),
            stride=cfg["stride"],
            padding=cfg["padding"],
            ndim=len(cfg["kernel"]),
        )
    else:
        row.update(input_size=_dims(cfg["input_shape"][1:]), ndim=len(cfg["input_shape"]) - 1)
    return row


def run_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Measure one canonical config (``bench.grid``) and return its row (status ok, skipped or failed)."""
    row = base_row(cfg)
    start = _now()
    device = cfg["device"]
    threads = torch.get_num_threads()
    limits: contextlib.AbstractContextManager = contextlib.nullcontext()
    if cfg.get("threads"):
        torch.set_num_threads(cfg["threads"])
        try:  # NumPy's BLAS/LAPACK pool too, so that the NumPy baseline runs on as many threads
            from threadpoolctl import threadpool_limits

            limits = threadpool_limits(cfg["threads"])
        except ImportError:
            pass
    row["threads"] = torch.get_num_threads()
    try:
        if device == "cuda" and not torch.cuda.is_available():
            raise Skip("device cuda requested but CUDA is not available on this machine")
        with limits:
            if cfg["scope"] == "layer":
                row.update(_measure_layer(cfg))
            else:
                row.update(_measure_model(cfg))
        row.update(status="ok", reason=None)
    except Skip as exc:
        row.update(status="skipped", reason=str(exc))
    except Exception as exc:  # noqa: BLE001 - a failed measurement is a row, not a crashed run
        row.update(status="failed", reason=f"{type(exc).__name__}: {exc}")
    finally:
        torch.set_num_threads(threads)
    ok_device = device if device != "cuda" or torch.cuda.is_available() else "cpu"
    row.update(provenance(ok_device))
    if ok_device != device:
        row["device_name"] = None
    row.update(start_time=start, end_time=_now())
    return row


# --------------------------------------------------------------------------------------------- layers


@dataclass
class Case:
    """The layer of a layer config, where it lives, and the geometry the exact routines use."""

    module: nn.Module  # nn.Conv2d/3d, or a svconv.tt layer
    tt: bool
    input_shape: tuple[int, ...]  # (c_in, *spatial)
    device: torch.device
    seed: int

    @property
    def spatial(self) -> tuple[int, ...]:
        return self.input_shape[1:]

    @property
    def conv(self) -> nn.Module:
        """The conv whose kernel the exact routines see: the layer, or a TT layer's core."""
        return self.module.core if self.tt else self.module

    def geometry(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        from svconv.methods.base import conv_geometry

        return conv_geometry(self.conv, self.spatial)

    def generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed)


def _check_layer(cfg: Mapping[str, Any]) -> None:
    n, k, s = cfg["input_size"], cfg["kernel"], cfg["stride"]
    if any(nj % s for nj in n):
        raise Skip(f"stride {s} does not divide input_size {_dims(n)}")
    if any(kj > nj for kj, nj in zip(k, n)):
        raise Skip(f"kernel {_dims(k)} is larger than input_size {_dims(n)}")
    rank = cfg["rank"]
    if rank is not None and rank >= max(cfg["c_in"], cfg["c_out"]):
        raise Skip(
            f"rank {rank} reaches both channel counts (c_in={cfg['c_in']}, c_out={cfg['c_out']}): "
            "the TT layer would be the plain conv"
        )
    if cfg["method"] in EXACT_FAMILY and cfg["padding"] not in ("circular", "zeros"):
        raise Skip(f"method {cfg['method']} needs circular or zeros padding (a periodic model); got {cfg['padding']}")
    if cfg["method"] == "aol":
        if rank is not None:
            raise Skip("AOL rescales the full kernel: it has no TT form")
        if len(k) != 2:
            raise Skip("AOL layers are 2-D only (AOLConv2d)")


def make_conv(cfg: Mapping[str, Any]) -> nn.Module:
    """The plain conv of a layer config: random Gaussian kernel (std 2/sqrt(fan_in)) from the config's seed.

    Drawn in float64 on the CPU, so every device and process gets the same weights; ``(k-1)//2`` padding.
    """
    k = tuple(cfg["kernel"])
    conv_cls = nn.Conv2d if len(k) == 2 else nn.Conv3d
    conv = conv_cls(
        cfg["c_in"], cfg["c_out"], k, stride=cfg["stride"], padding=tuple((kj - 1) // 2 for kj in k),
        padding_mode=cfg["padding"], bias=False,
    )  # fmt: skip
    gen = torch.Generator().manual_seed(cfg["seed"])
    w = torch.randn(conv.weight.shape, generator=gen, dtype=torch.float64) * (2.0 / math.sqrt(cfg["c_in"] * math.prod(k)))
    conv = conv.double()
    with torch.no_grad():
        conv.weight.copy_(w)
    return conv


def make_layer(cfg: Mapping[str, Any]) -> Case:
    """The layer of ``cfg`` on its device and dtype: the plain conv, or its TT decomposition at ``rank``."""
    conv = make_conv(cfg)
    module = conv
    if cfg["rank"] is not None:
        try:
            from svconv.tt import from_conv
        except ImportError as exc:
            raise Skip(f"svconv.tt is not available: {exc}") from exc
        module = from_conv(conv, cfg["rank"])
        if isinstance(module, tuple):  # (layer, reconstruction report)
            module = module[0]
    module = module.to(device=cfg["device"], dtype=_dtype(cfg["dtype"]))
    return Case(module, cfg["rank"] is not None, (cfg["c_in"], *cfg["input_size"]), torch.device(cfg["device"]), cfg["seed"])


def reference_norm(module: nn.Module, input_shape: Sequence[int], tt: bool) -> tuple[float, str]:
    """The true spectral norm of the layer's operator in float64, and how it was found (fft|dense|lanczos)."""
    from svconv.methods.base import is_periodic
    from svconv.spectrum import conv_spectral_norm, dense_operator
    from svconv.spectrum.linear_map import LinearPart

    spatial = tuple(input_shape[1:])
    m64 = copy.deepcopy(module).to(dtype=torch.float64)
    conv = m64.core if tt else m64
    frames_ok = not tt or all(isinstance(f, (nn.Conv2d, nn.Conv3d)) and f.stride == (1,) * len(spatial) for f in (m64.U, m64.V))
    if is_periodic(conv, spatial) and frames_ok and conv.groups == 1 and all(d == 1 for d in conv.dilation):
        weight = m64.full_weight() if tt else m64.weight
        return float(conv_spectral_norm(weight.detach(), spatial, conv.stride)), "fft"
    M = LinearPart(m64, input_shape)
    if M.in_features * M.out_features <= DENSE_LIMIT:
        with torch.no_grad():
            A = dense_operator(m64, input_shape)
        return float(torch.linalg.matrix_norm(A, ord=2)), "dense"
    from scipy.sparse.linalg import LinearOperator, eigsh

    def matvec(x: np.ndarray) -> np.ndarray:
        t = torch.as_tensor(np.ascontiguousarray(x).reshape(1, *M.input_shape), dtype=torch.float64, device=M.device)
        return M.gram(t)[1].reshape(-1).cpu().numpy()

    op = LinearOperator((M.in_features, M.in_features), matvec=matvec, dtype=np.float64)
    v0 = np.random.default_rng(0).standard_normal(M.in_features)
    lam = eigsh(op, k=1, which="LA", tol=LANCZOS_TOL, v0=v0, return_eigenvectors=False)
    return float(math.sqrt(max(float(lam[0]), 0.0))), "lanczos"


def _tt_core_weight(case: Case) -> torch.Tensor:
    case.module.orthogonalize_()
    return case.module.core.weight


def _layer_method(cfg: Mapping[str, Any], case: Case) -> tuple[Callable[[], Any], Callable[[], Any] | None, Callable[[Any], float]]:
    """``(run, setup, value_of(run's result))`` for the layer methods."""
    from svconv.spectrum import conv_singular_values, gram_iteration_bound, power_iteration, power_qr

    method, iters = cfg["method"], cfg["iters"]
    grid, stride = case.geometry()
    top = lambda out: float(torch.as_tensor(out).detach().max())  # noqa: E731

    def weight() -> torch.Tensor:
        return _tt_core_weight(case) if case.tt else case.module.weight

    if method == "exact":
        if case.tt:
            return (lambda: (case.module.orthogonalize_(), case.module.singular_values(grid))[1]), None, top
        return (lambda: conv_singular_values(case.module.weight.detach(), grid, stride)), None, top
    if method == "exact-numpy":
        from bench.baselines import numpy_singular_values

        return (lambda: numpy_singular_values(weight().detach().cpu().numpy(), grid, stride)), None, lambda out: float(np.max(out))
    if method == "exact-torch":
        from bench.baselines import torch_singular_values

        return (lambda: torch_singular_values(weight().detach(), grid, stride)), None, top
    if method == "gram":
        from svconv.methods.base import padding_norm

        def run_gram() -> torch.Tensor:
            bound = gram_iteration_bound(weight().detach(), grid, n_iter=iters, stride=stride)
            return bound * padding_norm(case.conv, case.spatial)

        return run_gram, None, top
    if method == "power":
        return (lambda: power_iteration(case.module, case.input_shape, n_iter=iters, generator=case.generator())[0]), None, top
    if method == "powerqr":
        return (lambda: power_qr(case.module, case.input_shape, k=cfg["k"], n_iter=iters, generator=case.generator())), None, top
    if method in ("clip", "division", "fastclip"):
        return _control(cfg, case.module, case.input_shape)
    if method == "aol":
        return _aol(case)
    raise ValueError(f"method must be one of {', '.join(LAYER_METHODS)}; got {method!r}")


def _method_object(cfg: Mapping[str, Any]):
    from svconv.methods import get_method

    name, iters = cfg["method"], cfg["iters"] or 1
    if name == "clip":
        return get_method("clip", clip_to=cfg["clip_to"], clip_iters=iters)
    if name == "division":
        return get_method("division", clip_to=cfg["clip_to"], power_iters=iters)
    if name == "fastclip":
        return get_method("fastclip", clip_to=cfg["clip_to"], clip_iters=iters, power_iters=iters)
    return get_method(name, clip_to=cfg["clip_to"])


def _control(cfg: Mapping[str, Any], module: nn.Module, input_shape: Sequence[int], model: nn.Module | None = None):
    """A control step of ``svconv.methods`` on a one-layer model (or ``model``), from the same weights each call."""
    model = model if model is not None else nn.Sequential(module)
    saved = copy.deepcopy(model.state_dict())
    holder: dict[str, Any] = {}

    def setup() -> None:
        model.load_state_dict(saved)
        holder["method"] = _method_object(cfg)
        holder["method"].attach(model, input_shape)

    def run() -> None:
        holder["method"].step(model, 0)

    return run, setup, None


def _aol(case: Case):
    """AOL rescaling of the conv's kernel (Prach & Lampert 2022): ``K[:, j] d_j`` from its self-correlation."""
    try:
        from svconv.layers.aol import aol_conv_scale  # the rescaling AOLConv2d applies in its forward
    except ImportError as exc:
        raise Skip(f"svconv.layers.aol is not available: {exc}") from exc
    conv = case.module

    def run() -> torch.Tensor:
        w = conv.weight.detach()
        return w * aol_conv_scale(w).view(1, -1, 1, 1)

    return run, None, None


def _measure_layer(cfg: Mapping[str, Any]) -> dict[str, Any]:
    _check_layer(cfg)
    case = make_layer(cfg)
    method, kind = cfg["method"], LAYER_METHODS[cfg["method"]]
    run, setup, value_of = _layer_method(cfg, case)
    timing = time_calls(run, case.device, repeats=cfg["repeats"], warmup=cfg["warmup"], setup=setup)
    out, mem = timing.result, timing.peak_mem_mb
    if kind == "control":
        if method == "aol":
            measured = copy.deepcopy(case.module)
            with torch.no_grad():
                measured.weight.copy_(out)
            target = 1.0
        else:
            measured, target = case.module, cfg["clip_to"]
        value, _ = reference_norm(measured, case.input_shape, case.tt)
        exact, exact_method = target, "target"
    else:
        value = value_of(out)
        exact, exact_method = reference_norm(case.module, case.input_shape, case.tt)
    grid, stride = case.geometry()
    ranks = (int(case.conv.in_channels), int(case.conv.out_channels)) if case.tt else None
    periodic_method = method in EXACT_FAMILY + ("gram", "clip")
    flops = theory.method_flops(
        method, cfg["c_out"], cfg["c_in"], cfg["kernel"], grid if periodic_method else cfg["input_size"],
        stride if periodic_method else (cfg["stride"],) * len(grid), iters=cfg["iters"], k=cfg["k"], ranks=ranks,
    )  # fmt: skip
    return _measured(
        timing, mem, value, exact, exact_method, (value - exact) / exact if exact else None, flops,
        theory.tt_theory_speedup(cfg["c_out"], cfg["c_in"], ranks[0], ranks[1], stride) if ranks else None,
    )


# --------------------------------------------------------------------------------------------- models


def build_bench_model(cfg: Mapping[str, Any]) -> nn.Module:
    """The model of a model config (weights from the config's seed) on its device and dtype."""
    from svconv.models import build_model

    c = cfg["input_shape"][0]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg["seed"])
        try:
            model = build_model(
                cfg["arch"], cfg["num_classes"], cfg["input_shape"], [0.5] * c, [0.25] * c, rank=cfg["rank"],
                method="soc" if cfg["method"] == "soc" else "none",
            )  # fmt: skip
        except ImportError as exc:
            raise Skip(f"a module the model needs is not available: {exc}") from exc
        except ValueError as exc:
            raise Skip(str(exc)) from exc
    return model.to(device=cfg["device"], dtype=_dtype(cfg["dtype"]))


def _spectral_layers(model: nn.Module, input_shape: Sequence[int]):
    from svconv.methods.base import find_layers

    return [layer for layer in find_layers(model, input_shape) if layer.kind in ("conv", "tt")]


def _layer_dims(layer) -> tuple[int, int, tuple[int, ...], tuple[int, int] | None]:
    """``(c_out, c_in, kernel, (r1, r2) or None)`` of a conv or TT layer."""
    m = layer.module
    if layer.kind == "tt":
        return int(m.V.out_channels), int(m.U.in_channels), tuple(m.core.kernel_size), (int(m.core.in_channels), int(m.core.out_channels))
    return int(m.out_channels), int(m.in_channels), tuple(m.kernel_size), None


def _model_flops(method: str, layers, iters: int | None) -> tuple[float | None, float | None]:
    """``(flops of this model's pass, flops of the same pass with every TT layer replaced by its plain conv)``."""
    from svconv.methods.base import conv_geometry

    total, plain = 0.0, 0.0
    for layer in layers:
        c_out, c_in, k, ranks = _layer_dims(layer)
        conv = layer.module.core if layer.kind == "tt" else layer.module
        grid, stride = conv_geometry(conv, layer.spatial)
        it = 6 if method == "gram" else iters
        f = theory.method_flops(method, c_out, c_in, k, grid, stride, iters=it, ranks=ranks)
        p = theory.method_flops(method, c_out, c_in, k, grid, stride, iters=it)
        if f is None or p is None:
            return None, None
        total, plain = total + f, plain + p
    return total, plain


def _measure_model(cfg: Mapping[str, Any]) -> dict[str, Any]:
    from svconv.methods.base import conv_geometry
    from svconv.spectrum import conv_singular_values

    model = build_bench_model(cfg)
    input_shape = tuple(cfg["input_shape"])
    device = torch.device(cfg["device"])
    method = cfg["method"]
    if method == "soc":
        return _measure_soc(cfg, model, input_shape, device)
    layers = _spectral_layers(model, input_shape)
    if not layers:
        raise Skip(f"arch {cfg['arch']} has no conv or TT layer for method {method}")
    if method == "exact":
        geoms = []
        for layer in layers:
            conv = layer.module.core if layer.kind == "tt" else layer.module
            geoms.append(conv_geometry(conv, layer.spatial))

        def run() -> float:
            best = 0.0
            with torch.no_grad():
                for layer, (grid, stride) in zip(layers, geoms):
                    if layer.kind == "tt":
                        layer.module.orthogonalize_()
                        sv = layer.module.singular_values(grid)
                    else:
                        sv = conv_singular_values(layer.module.weight, grid, stride)
                    best = max(best, float(sv.max()))
            return best

        setup = None
    else:
        run, setup, _ = _control(cfg, None, input_shape, model=model)
    timing = time_calls(run, device, repeats=cfg["repeats"], warmup=cfg["warmup"], setup=setup)
    out, mem = timing.result, timing.peak_mem_mb
    value = exact = gap = None
    exact_method = None
    if method == "exact":
        value = out
    elif cfg["check"]:
        from svconv.methods import get_method

        checker = get_method("clip", clip_to=cfg["clip_to"])
        checker.attach(model, input_shape)
        norms = checker.estimate(model)
        value = max(norms[layer.name] for layer in layers)
        exact, exact_method = cfg["clip_to"], "target"
        gap = (value - exact) / exact
    flops, plain_flops = _model_flops(method, layers, cfg["iters"])
    tt = cfg["rank"] is not None
    return _measured(timing, mem, value, exact, exact_method, gap, flops, plain_flops / flops if tt and flops else None)


def _measure_soc(cfg: Mapping[str, Any], model: nn.Module, input_shape: Sequence[int], device: torch.device) -> dict[str, Any]:
    """One eval-mode forward (``eval_terms`` Taylor terms) of every SOC / SOC-TT layer on one input of its shape.

    value: the largest ``||f(x) - f(0)|| / ||x||`` over the layers on that input, a lower bound of the
    layers' Lipschitz constant; ``exact_value`` 1, the constant SOC is built to have (``target``).
    """
    from svconv.layers import SOC, SOCTT
    from svconv.methods.base import find_layers

    layers = [layer for layer in find_layers(model, input_shape) if isinstance(layer.module, (SOC, SOCTT))]
    if not layers:
        raise Skip(f"arch {cfg['arch']} has no SOC layer")
    model.eval()
    gen = torch.Generator().manual_seed(cfg["seed"])
    xs = [torch.randn((1, *layer.input_shape), generator=gen, dtype=torch.float64).to(device=device, dtype=_dtype(cfg["dtype"])) for layer in layers]

    def run() -> list[torch.Tensor]:
        with torch.no_grad():
            return [layer.module(x) for layer, x in zip(layers, xs)]

    timing = time_calls(run, device, repeats=cfg["repeats"], warmup=cfg["warmup"])
    with torch.no_grad():
        ratios = [
            float((y - layer.module(torch.zeros_like(x))).norm() / x.norm()) for layer, x, y in zip(layers, xs, timing.result)
        ]
    value = max(ratios)
    return _measured(timing, timing.peak_mem_mb, value, 1.0, "target", value - 1.0, None, None)


def _measured(timing: Any, mem: float | None, value: float | None, exact: float | None, exact_method: str | None,
              gap: float | None, flops: float | None, theory_speedup: float | None) -> dict[str, Any]:
    """The measured columns of a BENCH row (times in seconds, memory in MiB)."""
    return {
        "time_median_s": timing.median,
        "time_iqr_s": timing.iqr,
        "time_min_s": timing.min,
        "peak_mem_mb": mem,
        "value": value,
        "exact_value": exact,
        "exact_method": exact_method,
        "gap": gap,
        "flops": flops,
        "theory_speedup": theory_speedup,
    }
