"""One configuration in, one ``bench`` row out: time, peak memory, value and gap of one method.

Per config (see ``bench.grid``): build the layer (or model) from the config's seed, call the method
``warmup`` times untimed and ``repeats`` times timed; the last timed call also gives the peak memory and
the value (``bench.timing``); a control method starts every call from the same weights (and, per model,
a freshly attached method object), so the value does not depend on how often it was timed. What a
method is and how it runs comes from its registry entry (``svconv.methods.registry``): per layer its
``layer_value`` or ``layer_control`` (``svconv.control``), per model its ``SVMethod``.

What ``value``, ``exact_value`` and ``gap = (value - exact_value) / exact_value`` hold:

- estimators and bounds (``exact``, ``exact-numpy``, ``exact-torch``, ``gram``, ``rescale``, ``power``, ``powerqr``):
  ``value`` is the method's spectral norm; ``exact_value`` the true spectral norm of the layer's own
  operator (its padding and stride), in float64: ``fft`` (the exact formula, for circular padding),
  ``dense`` (SVD of the explicit matrix, small layers) or ``lanczos`` (ARPACK on ``M^T M`` to 1e-10),
  named in ``exact_method``. For circular padding the exact methods have gap 0 to rounding and
  ``gram`` gap >= 0; for zeros padding the exact methods are those of the periodic model on the padded
  grid (what clipping controls), an upper bound, so their gap is >= 0 too; power iteration and
  PowerQR are lower bounds (gap <= 0 up to rounding).
- control steps (``clip``, ``division``, ``fastclip``, ``aol``): ``value`` is the true spectral norm of
  the layer after one control step (as above), ``exact_value`` the target ``clip_to`` (1 for AOL),
  ``exact_method`` = ``target``: the gap says how far from the target one step lands. The control
  columns: ``sigma_after`` (= ``value``), ``target``, ``passes`` (clip passes, power or projection steps
  spent) and ``rel_change`` (``||W' - W||_F / ||W||_F``); FLOPs count the passes spent, not the cap.
- model passes (scope ``model``): ``exact`` times the singular values of every conv/TT layer at its
  input size (value: the largest); a control method times one full control step over the model;
  with ``check`` the value is the largest exact (periodic-model) norm of a conv/TT layer after it and
  ``sigma_after`` that over the target (the worst layer's ratio); ``passes`` the most any layer spent,
  ``rel_change`` over all kernels together.
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
from bench.grid import bench_id
from bench.timing import time_calls
from svconv.control import exact_norm
from svconv.methods.registry import entry
from svconv.results import provenance

#: explicit-matrix ground truth up to this many entries (in_features * out_features), else Lanczos.
DENSE_LIMIT = 2**22
LANCZOS_TOL = 1e-10


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


def run_config(cfg: Mapping[str, Any], measure: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None) -> dict[str, Any]:
    """Measure one canonical config (``bench.grid``) and return its row (status ok, skipped or failed).

    ``measure(cfg)``: the measured columns, instead of this module's (``bench.clip_target`` passes its own).
    """
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
            if measure is not None:
                row.update(measure(cfg))
            elif cfg["scope"] == "layer":
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
        from svconv.methods.base import grid_and_stride

        return grid_and_stride(self.conv, self.spatial)

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
    reason = entry(cfg["method"]).bench_skip(cfg["padding"], rank is not None, len(k))
    if reason:
        raise Skip(reason)


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


def _top(out: Any) -> float:
    """The largest of an estimator's values (a tensor, an array or a number)."""
    if isinstance(out, torch.Tensor):
        return float(out.detach().max())
    return float(np.max(out))


def _layer_method(cfg: Mapping[str, Any], case: Case) -> tuple[Callable[[], Any], Callable[[], Any] | None]:
    """``(run, setup)`` of a layer config: the registry entry's ``layer_value`` (estimators, bounds) or its
    ``layer_control`` on the layer, restored to the same weights before every call (control)."""
    cls = entry(cfg["method"])
    if cls.bench_layer == "control":
        saved = copy.deepcopy(case.module.state_dict())

        def setup() -> None:
            case.module.load_state_dict(saved)

        return (lambda: cls.layer_control(case.module, case.input_shape, cfg["clip_to"], cfg["iters"], {})), setup

    def run() -> Any:
        with torch.no_grad():
            return cls.layer_value(case.module, case.input_shape, cfg["iters"], cfg["k"], case.generator())

    return run, None


def _control(cfg: Mapping[str, Any], model: nn.Module, input_shape: Sequence[int]):
    """A control step of the registry's ``SVMethod`` over ``model``, from the same weights each call;
    ``holder["method"]`` is the method object of the last call (its ``results`` per layer)."""
    cls = entry(cfg["method"])
    saved = copy.deepcopy(model.state_dict())
    holder: dict[str, Any] = {"saved": saved}

    def setup() -> None:
        model.load_state_dict(saved)
        holder["method"] = cls.bench_method(cfg["clip_to"], cfg["iters"])
        holder["method"].attach(model, input_shape)

    def run() -> None:
        holder["method"].step(model, 0)

    return run, setup, holder


def _measure_layer(cfg: Mapping[str, Any]) -> dict[str, Any]:
    _check_layer(cfg)
    case = make_layer(cfg)
    cls = entry(cfg["method"])
    run, setup = _layer_method(cfg, case)
    timing = time_calls(run, case.device, repeats=cfg["repeats"], warmup=cfg["warmup"], setup=setup)
    out, mem = timing.result, timing.peak_mem_mb
    control: dict[str, Any] = {}
    if cls.bench_layer == "control":
        # what the step achieved: the true norm of the layer's own operator after it, against its target
        value, _ = reference_norm(case.module, case.input_shape, case.tt)
        exact, exact_method = out.target, "target"
        control = _control_columns(value, out.target, out.passes, out.rel_change)
    else:
        value = _top(out)
        exact, exact_method = reference_norm(case.module, case.input_shape, case.tt)
    grid, stride = case.geometry()
    ranks = (int(case.conv.in_channels), int(case.conv.out_channels)) if case.tt else None
    iters = control.get("passes") or cfg["iters"]  # a control step's count is what it spent, not its cap
    flops = theory.method_flops(
        cfg["method"], cfg["c_out"], cfg["c_in"], cfg["kernel"], grid if cls.flops_on_grid else cfg["input_size"],
        stride if cls.flops_on_grid else (cfg["stride"],) * len(grid), iters=iters, k=cfg["k"], ranks=ranks,
    )  # fmt: skip
    row = _measured(
        timing, mem, value, exact, exact_method, (value - exact) / exact if exact else None, flops,
        theory.tt_theory_speedup(cfg["c_out"], cfg["c_in"], ranks[0], ranks[1], stride) if ranks else None,
    )  # fmt: skip
    row.update(control)
    return row


def _control_columns(ratio: float | None, target: float | None, passes: int | None, rel_change: float | None) -> dict[str, Any]:
    """The control columns of a BENCH row: ``sigma_after`` (layer scope: the true norm after control; model
    scope: the worst layer's ratio of it to the target), ``target``, ``passes`` (model scope: the most any
    layer took), ``rel_change`` (``||W' - W||_F / ||W||_F``; model scope: over all kernels together)."""
    return {"sigma_after": ratio, "target": target, "passes": passes, "rel_change": rel_change}


# --------------------------------------------------------------------------------------------- models


def build_bench_model(cfg: Mapping[str, Any]) -> nn.Module:
    """The model of a model config (weights from the config's seed) on its device and dtype."""
    from svconv.methods import check_compatible
    from svconv.models import build_model

    c = cfg["input_shape"][0]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg["seed"])
        try:
            # as before build_model stopped checking methods: model rows run the plain model or SOC's
            check_compatible("soc" if cfg["method"] == "soc" else "none", cfg["arch"], cfg["rank"])
            model = build_model(
                cfg["arch"], cfg["num_classes"], cfg["input_shape"], [0.5] * c, [0.25] * c, rank=cfg["rank"]
            )
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


def _model_flops(method: str, layers, iters: int | None, spent: Mapping[str, int] | None = None) -> tuple[float | None, float | None]:
    """``(flops of this model's pass, flops of the same pass with every TT layer replaced by its plain conv)``."""
    from svconv.methods.base import grid_and_stride

    total, plain = 0.0, 0.0
    for layer in layers:
        c_out, c_in, k, ranks = _layer_dims(layer)
        conv = layer.module.core if layer.kind == "tt" else layer.module
        grid, stride = grid_and_stride(conv, layer.spatial)
        it = entry(method).fixed_iters or (spent or {}).get(layer.name, iters)  # passes spent, where known
        f = theory.method_flops(method, c_out, c_in, k, grid, stride, iters=it, ranks=ranks)
        p = theory.method_flops(method, c_out, c_in, k, grid, stride, iters=it)
        if f is None or p is None:
            return None, None
        total, plain = total + f, plain + p
    return total, plain


def _measure_model(cfg: Mapping[str, Any]) -> dict[str, Any]:
    model = build_bench_model(cfg)
    input_shape = tuple(cfg["input_shape"])
    device = torch.device(cfg["device"])
    method = cfg["method"]
    cls = entry(method)
    if cls.bench_model == "forward":
        return _measure_soc(cfg, model, input_shape, device)
    layers = _spectral_layers(model, input_shape)
    if not layers:
        raise Skip(f"arch {cfg['arch']} has no conv or TT layer for method {method}")
    holder: dict[str, Any] = {}
    if cls.bench_model == "exact":

        def run() -> float:
            with torch.no_grad():
                return max(_top(cls.layer_value(layer.module, layer.input_shape, None, None, None)) for layer in layers)

        setup = None
    else:
        run, setup, holder = _control(cfg, model, input_shape)
    timing = time_calls(run, device, repeats=cfg["repeats"], warmup=cfg["warmup"], setup=setup)
    out, mem = timing.result, timing.peak_mem_mb
    value = exact = gap = None
    exact_method = None
    control: dict[str, Any] = {}
    if cls.bench_model == "exact":
        value = out
    else:
        results = list(holder["method"].results.values())
        control = _control_columns(
            None, cfg["clip_to"], max((r.passes for r in results), default=None), _model_rel_change(holder["saved"], model)
        )
        if cfg["check"]:
            # exact (periodic-model) norm of every conv/TT layer after the step: the layer's own, or a bound on it
            value = max(exact_norm(layer.module, layer.spatial) for layer in layers)
            exact, exact_method = cfg["clip_to"], "target"
            gap = (value - exact) / exact
            control["sigma_after"] = value / cfg["clip_to"]
    spent = {name: r.passes for name, r in holder["method"].results.items()} if holder else None
    flops, plain_flops = _model_flops(method, layers, cfg["iters"], spent)
    tt = cfg["rank"] is not None
    row = _measured(timing, mem, value, exact, exact_method, gap, flops, plain_flops / flops if tt and flops else None)
    row.update(control)
    return row


def _model_rel_change(saved: Mapping[str, torch.Tensor], model: nn.Module) -> float:
    """``||W' - W|| / ||W||`` over every weight the control step may edit (all parameters with a kernel)."""
    num = den = 0.0
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() > 1 and name in saved:
                num += float((p - saved[name]).pow(2).sum())
                den += float(saved[name].pow(2).sum())
    return math.sqrt(num / den) if den else 0.0


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
