"""Exact clipping of a whole model: every supported layer found, its input size inferred with one forward.

::

    from torchvision.models import resnet18
    results = svconv.control.clip_model_(resnet18(weights=None), 1.0, (3, 32, 32), tol=0.01)

``clip_model_`` clips in place (``clip_`` per layer, ``clip_bn_`` for batch norm when asked) and returns one
:class:`LayerClip` per layer; ``model_norms`` measures the same layers without changing them. Layers whose
exact spectrum needs what they lack (grouped or dilated convs, Conv1d, parametrised weights, SOC/AOL and
other Lipschitz layers) are skipped with a log line, never half-clipped.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import torch
from torch import nn
from torch.nn.utils import parametrize

from svconv.control.clip import clip_
from svconv.control.fastclip import clip_bn_
from svconv.control.layer import exact_norm, full_kernel
from svconv.kinds import LayerKind
from svconv.kinds import layer_kind as declared_kind
from svconv.spectrum._checks import check_positive

log = logging.getLogger(__name__)

#: the layer kinds ``clip_model_`` may clip (``kinds=``); batch norm only when named
MODEL_KINDS = ("conv", "tt", "linear", "bn")
DEFAULT_KINDS = ("conv", "tt", "linear")


@dataclass(frozen=True)
class LayerClip:
    """One layer of a model-level call.

    ``name``: the module's name in the model; ``kind``: ``conv``/``tt``/``linear``/``bn``; ``shape``: the
    full kernel's shape (BN: ``(channels,)``); ``input_size``: the spatial size of its input (``()`` for
    linear and BN). ``sigma_before`` / ``sigma_after``: the layer's exact norm (convs: the periodic
    operator on the layer's grid times the padding map's norm, ``exact_norm``; BN: eval mode).
    ``passes``, ``level``, ``rel_change``: as ``ControlResult``; ``time_s``: wall time of the clip
    alone (the measurements before and after are not in it). ``passes_target``: ``sigma_after`` is at
    most ``target (1 + tol)``.
    """

    name: str
    kind: str
    shape: tuple[int, ...]
    input_size: tuple[int, ...]
    sigma_before: float | None
    sigma_after: float | None
    target: float
    passes: int
    level: float | None
    rel_change: float
    time_s: float
    passes_target: bool


def supported_layers(model: nn.Module, input_shape: Sequence[int], kinds: Sequence[str] = DEFAULT_KINDS) -> list[tuple[str, str, nn.Module, tuple[int, ...]]]:
    """``(name, kind, module, spatial input size)`` of every layer of ``kinds`` that exact clipping supports,
    in module order, found with one forward pass on zeros of ``input_shape`` (one input, no batch
    dimension). Layers the forward never reaches and unsupported ones are left out (logged)."""
    from svconv.models.shapes import input_shapes

    for k in kinds:
        if k not in MODEL_KINDS:
            raise ValueError(f"kinds must be drawn from {', '.join(MODEL_KINDS)}; got {k!r}")
    shapes = input_shapes(model, input_shape)
    out: list[tuple[str, str, nn.Module, tuple[int, ...]]] = []
    inside: list[str] = []  # TT and Lipschitz layers: their children are not layers of their own
    for name, m in model.named_modules():
        if any(name.startswith(p + ".") for p in inside):
            continue
        declared = declared_kind(m)
        kind = declared.value if declared is not None else None
        if declared in (LayerKind.TT, LayerKind.SOC, LayerKind.AOL, LayerKind.PEER):
            inside.append(name)
        if kind is None or kind not in kinds or name not in shapes:
            continue
        why = _unsupported(m, kind)
        if why:
            log.info("clip_model_: skipping %s (%s): %s", name, type(m).__name__, why)
            continue
        spatial = () if kind in ("linear", "bn") else tuple(shapes[name][1:])
        out.append((name, kind, m, spatial))
    return out


def _unsupported(m: nn.Module, kind: str) -> str:
    if parametrize.is_parametrized(m):
        return "its weight is parametrised (export it to a plain layer first)"
    if isinstance(m, nn.Conv1d):
        return "Conv1d (the exact routines are 2-D and 3-D)"
    conv = m.core if kind == "tt" else m
    if kind in ("conv", "tt") and (conv.groups != 1 or any(d != 1 for d in conv.dilation)):
        return f"groups={conv.groups}, dilation={conv.dilation} (exact clipping needs 1 and 1)"
    if kind == "bn" and not getattr(m, "track_running_stats", False):
        return "batch norm without running statistics"
    return ""


def _measure(kind: str, m: nn.Module, spatial: tuple[int, ...]) -> float | None:
    if kind == "bn":
        from svconv.layers import bn_lipschitz

        return float(bn_lipschitz(m))
    return exact_norm(m, spatial or None)


def _progress(items: list, desc: str, progress: bool) -> Iterator:
    from tqdm.auto import tqdm

    return iter(tqdm(items, desc=desc, unit="layer", disable=not progress))


@torch.no_grad()
def clip_model_(
    model: nn.Module,
    max_sv: float,
    input_shape: Sequence[int],
    *,
    tol: float = 0.01,
    kinds: Sequence[str] = DEFAULT_KINDS,
    max_passes: int = 20,
    levels: dict[str, float] | None = None,
    measure_before: bool = True,
    progress: bool = False,
    **options: Any,
) -> list[LayerClip]:
    """Clip every supported layer of ``model`` to spectral norm ``max_sv`` in place, to within ``tol``.

    Args:
        model: any ``nn.Module``; its conv (2-D/3-D, groups 1, dilation 1, any stride and padding mode), TT
            and linear layers are clipped by :func:`svconv.control.clip_` (batch norm by ``clip_bn_`` when
            ``"bn"`` is in ``kinds``).
        max_sv: the target ``c > 0`` of every layer.
        input_shape: one model input without the batch dimension, e.g. ``(3, 224, 224)``; one forward pass
            on zeros finds each layer's input size.
        tol: the relative band of ``clip_to_target`` (``0``: ``max_passes`` plain passes).
        kinds: which layer kinds to clip (``MODEL_KINDS``).
        levels: ``{name: level}`` from a previous call (``LayerClip.level``), to warm-start each search.
        measure_before: also measure each layer's exact norm before clipping (one more decomposition).
        progress: show a tqdm bar.
        options: passed to ``clip_`` (``solver``, ``strategy``, ``guarantee``).

    Returns:
        One :class:`LayerClip` per clipped layer, in module order.
    """
    max_sv = check_positive(max_sv, "max_sv")
    layers = supported_layers(model, input_shape, kinds)
    levels = levels or {}
    out: list[LayerClip] = []
    for name, kind, m, spatial in _progress(layers, "clip", progress):
        before = _measure(kind, m, spatial) if measure_before else None
        start = time.perf_counter()
        if kind == "bn":
            res = clip_bn_(m, max_sv)
        else:
            res = clip_(m, max_sv, spatial or None, tol=tol, max_passes=max_passes, level=levels.get(name), **options)
        _sync(m)
        elapsed = time.perf_counter() - start
        after = res.sigma_after if res.sigma_after is not None else _measure(kind, m, spatial)
        ok = after is not None and after <= max_sv * (1 + tol) * (1 + 1e-6)
        shape = tuple(m.weight.shape) if kind == "bn" else tuple(full_kernel(m).shape)
        out.append(LayerClip(name, kind, shape, spatial, before, after, max_sv, res.passes, res.level, res.rel_change, elapsed, ok))
        log.debug("clip_model_: %s %s %.4g -> %.4g in %d passes, %.2f s", name, shape, before or float("nan"), after or float("nan"), res.passes, elapsed)
    if out:
        log.info("clip_model_: %d layers to %g, worst %.4g, %.1f s", len(out), max_sv, max(r.sigma_after or 0.0 for r in out), sum(r.time_s for r in out))
    return out


@torch.no_grad()
def model_norms(model: nn.Module, input_shape: Sequence[int], *, kinds: Sequence[str] = DEFAULT_KINDS, progress: bool = False) -> dict[str, float | None]:
    """``{layer name: exact spectral norm}`` of the layers :func:`clip_model_` would clip (nothing changes)."""
    return {name: _measure(kind, m, spatial) for name, kind, m, spatial in _progress(supported_layers(model, input_shape, kinds), "norms", progress)}


def _sync(m: nn.Module) -> None:
    p = next(m.parameters(), None)
    if p is not None and p.device.type == "cuda":
        torch.cuda.synchronize(p.device)
