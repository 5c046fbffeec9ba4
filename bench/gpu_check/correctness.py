"""Phase 3, correctness on the device against float64 CPU results, on small shapes.

Every item computes a quantity on the device (float32, and float64 where it is cheap) and the same
quantity in float64 on the CPU, and checks the difference against a stated tolerance; bounds are
checked as bounds. Tolerances: float32 spectra from the Gram matrix are accurate to about
``sqrt(eps) * sigma_max`` (``svconv.spectrum.exact.gram_singular_values``), so 1e-3 relative to the
largest value; float64 to 1e-7. Autocast (float16 on CUDA, bfloat16 on CPU) carries about 3 decimal
digits through 12 Taylor terms: 3e-2.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from bench.gpu_check.record import Recorder, Skip, check

TOL = {torch.float32: 1e-3, torch.float64: 1e-7}
AMP_TOL = 3e-2
#: (label, c_out, c_in, kernel, input size, stride): 2-D and 3-D, stride 1 and 2.
EXACT_CASES = (
    ("2-D 6->8 @8", 8, 6, (3, 3), (8, 8), 1),
    ("2-D 6->8 @8 stride 2", 8, 6, (3, 3), (8, 8), 2),
    ("3-D 4->5 @4", 5, 4, (3, 3, 3), (4, 4, 4), 1),
    ("3-D 3->4 @4 stride 2", 4, 3, (3, 3, 3), (4, 4, 4), 2),
)
CLIP_CASES = (EXACT_CASES[0], EXACT_CASES[1], EXACT_CASES[2])


def _kernel(c_out: int, c_in: int, k: tuple[int, ...], seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(c_out, c_in, *k, generator=gen, dtype=torch.float64)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """``max|a - b| / max|b|`` on the CPU in float64."""
    a, b = a.detach().cpu().double(), b.detach().cpu().double()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


def _ref_norm(w: torch.Tensor, n, s) -> float:
    from svconv.spectrum import conv_spectral_norm

    return float(conv_spectral_norm(w.detach().cpu().double(), n, s))


def exact_item(dev: torch.device, case) -> Callable[[], dict[str, Any]]:
    def fn() -> dict[str, Any]:
        from svconv.spectrum import conv_singular_values

        label, c_out, c_in, k, n, s = case
        w = _kernel(c_out, c_in, k, seed=len(label))
        ref = conv_singular_values(w, n, s)
        errs = {}
        for dtype in (torch.float32, torch.float64):
            sv = conv_singular_values(w.to(dev, dtype), n, s)
            check(sv.device.type == dev.type and sv.dtype == dtype, f"result on {sv.device}/{sv.dtype}, expected {dev}/{dtype}")
            check(sv.shape == ref.shape, f"shape {tuple(sv.shape)} != {tuple(ref.shape)}")
            errs[str(dtype).split(".")[-1]] = err = _rel(sv, ref)
            check(err <= TOL[dtype], f"{dtype}: max error {err:.2e} of sigma_max > {TOL[dtype]:.0e}")
        return {"err_float32": errs["float32"], "err_float64": errs["float64"],
                "detail": f"max err / sigma_max: float32 {errs['float32']:.1e}, float64 {errs['float64']:.1e}"}  # fmt: skip

    return fn


def clip_one_pass_item(dev: torch.device) -> dict[str, Any]:
    from svconv.spectrum import clip_conv_singular_values

    _, c_out, c_in, k, n, s = EXACT_CASES[1]
    w = _kernel(c_out, c_in, k, seed=3)
    ref = clip_conv_singular_values(w, n, 1.0, stride=s, n_iter=3)
    out = clip_conv_singular_values(w.to(dev, torch.float32), n, 1.0, stride=s, n_iter=3)
    check(out.device.type == dev.type and out.dtype == torch.float32, f"result on {out.device}/{out.dtype}")
    err = _rel(out, ref)
    check(err <= 1e-3, f"3 passes, float32 on the device vs float64 CPU: max error {err:.2e} > 1e-3")
    return {"err_float32": err, "detail": f"3 passes, stride 2: max err / max|W| {err:.1e}"}


def clip_solvers() -> tuple[Callable, tuple[str, ...]]:
    """``(clip_to_target, solvers)`` or Skip while ``svconv.spectrum`` has no ``clip_to_target``."""
    import svconv.spectrum as sp

    fn = getattr(sp, "clip_to_target", None)
    if fn is None:
        raise Skip("svconv.spectrum.clip_to_target is not there yet (issue 11)")
    return fn, tuple(getattr(sp, "CLIP_SOLVERS", ("auto",)))


def clip_target_item(dev: torch.device, case, solver: str, tol: float = 0.01) -> Callable[[], dict[str, Any]]:
    """``clip_to_target`` with one solver in float32 on the device: the true norm (float64, CPU) of its result is
    within ``tol`` of the target, its reported ``sigma`` is that norm, and ``guarantee=True`` stays below it."""

    def fn() -> dict[str, Any]:
        clip_to_target, _ = clip_solvers()
        label, c_out, c_in, k, n, s = case
        w = _kernel(c_out, c_in, k, seed=7 + len(label))
        target = 0.5 * _ref_norm(w, n, s)
        res = clip_to_target(w.to(dev, torch.float32), n, target, s, tol=tol, solver=solver)
        check(res.weight.device.type == dev.type and res.weight.dtype == torch.float32 and res.weight.shape == w.shape,
              f"result weight {tuple(res.weight.shape)} on {res.weight.device}/{res.weight.dtype}")  # fmt: skip
        true = _ref_norm(res.weight, n, s)
        slack = TOL[torch.float32]
        check(target * (1 - tol - slack) <= true <= target * (1 + tol + slack),
              f"true norm / target = {true / target:.4f}, outside 1 +- {tol} (+{slack:.0e} for float32)")  # fmt: skip
        check(abs(float(res.sigma) - true) <= slack * target, f"reported sigma {float(res.sigma):.5f} != true {true:.5f}")
        ref = clip_to_target(w, n, target, s, tol=tol, solver="eigh")
        g = clip_to_target(w.to(dev, torch.float32), n, target, s, tol=tol, solver=solver, guarantee=True)
        g_true = _ref_norm(g.weight, n, s)
        check(float(g.sigma) <= target and g_true <= target * (1 + slack),
              f"guarantee: sigma {float(g.sigma):.5f}, true {g_true:.5f} > target {target:.5f}")
        diff = float((res.weight.detach().cpu().double() - ref.weight).norm() / ref.weight.norm())
        return {
            "solver": solver, "passes": int(res.passes), "sigma_ratio": true / target, "guarantee_ratio": g_true / target,
            "diff_vs_cpu_eigh": diff,
            "detail": f"{res.passes} passes, sigma/target {true / target:.4f}, guarantee {g_true / target:.4f}, "
                      f"||W - W_cpu64_eigh|| / ||W|| {diff:.1e}",
        }  # fmt: skip

    return fn


def tt_item(dev: torch.device) -> dict[str, Any]:
    """TT core singular values on the device equal the nonzero spectrum of the whole layer (float64, CPU)."""
    from svconv.spectrum import conv_singular_values
    from svconv.tt import TTConv2d

    torch.manual_seed(5)
    layer = TTConv2d(8, 10, 3, rank=(4, 5), padding=1, padding_mode="circular", bias=False, dtype=torch.float64)
    with torch.no_grad():
        layer.U.weight.mul_(1.7)  # frames off orthonormal: orthogonalize_ must fold them into the core
    ref = conv_singular_values(layer.full_weight().detach(), 8)
    on_dev = layer.to(dev, torch.float32)
    with torch.no_grad():
        on_dev.orthogonalize_()
        sv = on_dev.singular_values(8)
    check(sv.device.type == dev.type, f"singular values on {sv.device}")
    top = ref[: sv.numel()]
    err = _rel(sv, top)
    check(err <= TOL[torch.float32], f"core SVs vs the full layer's top {sv.numel()}: max error {err:.2e} > 1e-3")
    return {"err_float32": err, "detail": f"{sv.numel()} core SVs vs the full layer's: max err / sigma_max {err:.1e}"}


def _circular_conv(dev: torch.device, seed: int, stride: int = 1) -> tuple[nn.Conv2d, float]:
    conv = nn.Conv2d(6, 8, 3, stride=stride, padding=1, padding_mode="circular", bias=False, dtype=torch.float64)
    with torch.no_grad():
        conv.weight.copy_(_kernel(8, 6, (3, 3), seed))
    exact = _ref_norm(conv.weight, 8, stride)
    return conv.to(dev, torch.float32), exact


def power_item(dev: torch.device) -> dict[str, Any]:
    """Power iteration and PowerQR on the device are lower bounds of the exact norm and within 2 % of it."""
    from svconv.spectrum import conv_singular_values, power_iteration, power_qr

    conv, exact = _circular_conv(dev, seed=11)
    sigma, _ = power_iteration(conv, (6, 8, 8), n_iter=300, generator=torch.Generator().manual_seed(0))
    check(sigma.device.type == dev.type, f"power_iteration result on {sigma.device}")
    s = float(sigma)
    check(exact * 0.98 <= s <= exact * (1 + TOL[torch.float32]), f"power: {s:.5f} vs exact {exact:.5f}")
    top = power_qr(conv, (6, 8, 8), k=3, n_iter=300, generator=torch.Generator().manual_seed(0))
    ref = conv_singular_values(conv.weight.detach().cpu().double(), 8)[:3]
    ratio = (top.detach().cpu().double() / ref).tolist()
    check(all(r <= 1 + TOL[torch.float32] for r in ratio) and ratio[0] >= 0.98, f"PowerQR / exact top-3: {ratio}")
    qr = ", ".join(f"{r:.4f}" for r in ratio)
    return {"power_ratio": s / exact, "detail": f"power / exact {s / exact:.5f}; PowerQR top-3 / exact {qr}"}


def gram_item(dev: torch.device) -> dict[str, Any]:
    """The Gram-iteration bound on the device is an upper bound (stride 1 and 2), within 5 %, and equals the CPU's."""
    from svconv.spectrum import gram_iteration_bound

    details = []
    for stride in (1, 2):
        conv, exact = _circular_conv(dev, seed=13 + stride, stride=stride)
        bound = gram_iteration_bound(conv.weight.detach(), 8, n_iter=6, stride=stride)
        check(bound.device.type == dev.type, f"bound on {bound.device}")
        b = float(bound)
        cpu = float(gram_iteration_bound(conv.weight.detach().cpu().double(), 8, n_iter=6, stride=stride))
        check(exact * (1 - TOL[torch.float32]) <= b <= exact * 1.05, f"stride {stride}: bound {b:.5f} vs exact {exact:.5f}")
        check(abs(b - cpu) <= TOL[torch.float32] * cpu, f"stride {stride}: device {b:.6f} vs CPU float64 {cpu:.6f}")
        details.append(f"stride {stride}: bound / exact {b / exact:.4f}")
    return {"detail": "; ".join(details)}


def soc_amp_item(dev: torch.device) -> dict[str, Any]:
    """SOC forward and backward under autocast (float16 on CUDA, bfloat16 on CPU) against float64 on the CPU."""
    from svconv.layers import SOC

    amp = torch.float16 if dev.type == "cuda" else torch.bfloat16
    torch.manual_seed(17)
    ref = SOC(8, 3, dtype=torch.float64)
    layer = SOC(8, 3).to(dev)
    layer.load_state_dict({k: v.to(torch.float32) for k, v in ref.state_dict().items()})
    x64 = torch.randn(4, 8, 8, 8, dtype=torch.float64, requires_grad=True)
    x = x64.detach().to(dev, torch.float32).requires_grad_(True)
    # a loss along a fixed direction: ||y||^2 would have a near-zero weight gradient (SOC preserves norms)
    t64 = torch.randn(4, 8, 8, 8, dtype=torch.float64)
    with torch.autocast(dev.type, dtype=amp):
        y = layer(x)
    (y.float() * t64.to(dev, torch.float32)).mean().backward()
    y_ref = ref(x64)
    (y_ref * t64).mean().backward()
    check(bool(torch.isfinite(y).all()), "non-finite output under autocast")
    check(layer.weight.grad is not None and bool(torch.isfinite(layer.weight.grad).all()), "non-finite or missing weight gradient")
    errs = {
        "output": float((y.detach().cpu().double() - y_ref.detach()).norm() / y_ref.detach().norm()),
        "weight grad": float((layer.weight.grad.cpu().double() - ref.weight.grad).norm() / ref.weight.grad.norm()),
        "input grad": float((x.grad.cpu().double() - x64.grad).norm() / x64.grad.norm()),
    }
    bad = {k: v for k, v in errs.items() if v > AMP_TOL}
    check(not bad, f"autocast {amp} vs float64: relative errors above {AMP_TOL}: {bad}")
    return {"amp_dtype": str(amp), **{f"err_{k.replace(' ', '_')}": v for k, v in errs.items()},
            "detail": f"{str(amp).split('.')[-1]}: " + ", ".join(f"{k} {v:.1e}" for k, v in errs.items())}  # fmt: skip


def run(rec: Recorder, device: str) -> None:
    dev = torch.device(device)
    for case in EXACT_CASES:
        rec.item(f"exact SVs {case[0]}", exact_item(dev, case))
    rec.item("clip one pass (clip_conv_singular_values)", lambda: clip_one_pass_item(dev))
    try:
        _, solvers = clip_solvers()
    except Skip as exc:
        rec.row("clip_to_target", "skipped", str(exc))
        solvers = ()
    for solver in solvers:
        for case in CLIP_CASES:
            rec.item(f"clip_to_target solver={solver} {case[0]}", clip_target_item(dev, case, solver))
    rec.item("TT core SVs (TTConv2d.singular_values)", lambda: tt_item(dev))
    rec.item("power iteration / PowerQR", lambda: power_item(dev))
    rec.item("Gram iteration bound", lambda: gram_item(dev))
    rec.item("SOC forward/backward under autocast", lambda: soc_amp_item(dev))
