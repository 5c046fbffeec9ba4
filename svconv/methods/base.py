"""The one interface of an SV-control method, and the discovery of the layers it controls.

A method is attached to a model once (``attach``): it finds the controllable layers (conv, TT, linear,
batch norm, and the parametrised AOL/SOC layers) and records each layer's input shape. Then:

- ``enforce(model)``: one control step now; its wall time (CUDA-synchronised) is added to ``control_time_s``;
- ``step(model, i)``: what training calls after every optimiser step: ``enforce`` when ``i % clip_every == 0``;
- ``estimate(model)``: the method's own estimate of each handled layer's spectral norm.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import nn

from svconv.control.layer import check_plain
from svconv.control.result import ControlResult
from svconv.kinds import LayerKind, layer_kind
from svconv.spectrum.conv_geometry import conv_geometry as _geometry
from svconv.options import NoOptions
from svconv.methods.registry import Registered, training_methods
from svconv.models.shapes import input_shapes

#: ``svconv.kinds`` kind -> the ``Layer.kind`` a method sees; kinds absent here are not methods' layers.
METHOD_KINDS = {
    LayerKind.CONV: "conv",
    LayerKind.TT: "tt",
    LayerKind.LINEAR: "linear",
    LayerKind.BN: "bn",
    LayerKind.SOC: "lipschitz",
    LayerKind.AOL: "lipschitz",
    LayerKind.PEER: "lipschitz",
}


@dataclass
class Layer:
    """A controllable layer of an attached model.

    ``kind``: ``conv`` (Conv2d/Conv3d), ``tt`` (a ``svconv.tt`` layer; controlled through ``module.core``),
    ``linear``, ``bn`` (batch norm), ``lipschitz`` (AOL/SOC layers: estimated, never controlled).
    ``input_shape``: the module's input without the batch dimension. ``bn``: the batch norm that directly
    follows a conv or TT layer in its ``nn.Sequential`` (used by FastClip's conv+BN option).
    ``state``: per-method warm-start vectors.
    """

    name: str
    kind: str
    module: nn.Module
    input_shape: tuple[int, ...]
    bn: nn.Module | None = None
    bn_name: str | None = None
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def spatial(self) -> tuple[int, ...]:
        return self.input_shape[1:]

    def core_input_shape(self) -> tuple[int, ...]:
        """Input shape of a TT layer's core: ``(r1, *spatial)`` (the 1x1 frame ``U`` keeps the spatial size)."""
        return (int(self.module.core.in_channels), *self.spatial)


def find_layers(model: nn.Module, input_shape: Sequence[int]) -> list[Layer]:
    """All controllable layers of ``model`` in module order, with their input shapes.

    Children of TT and AOL/SOC layers are not listed on their own (the parent layer is). Layers that
    the forward pass on ``input_shape`` never reaches are skipped.
    """
    shapes = input_shapes(model, input_shape)

    def kind_of(m: nn.Module) -> str | None:
        if isinstance(m, nn.Conv1d):  # the exact routines and the control functions are 2-D / 3-D
            return None
        return METHOD_KINDS.get(layer_kind(m))

    following_bn: dict[int, tuple[str, nn.Module]] = {}
    names = {id(m): n for n, m in model.named_modules()}
    for seq in model.modules():
        if isinstance(seq, nn.Sequential):
            kids = list(seq.children())
            for a, b in zip(kids, kids[1:]):
                if kind_of(a) in ("conv", "tt") and kind_of(b) == "bn":
                    following_bn[id(a)] = (names[id(b)], b)
    layers: list[Layer] = []
    skip: list[str] = []
    for name, m in model.named_modules():
        if any(name.startswith(p + ".") for p in skip) or name not in shapes:
            continue
        kind = kind_of(m)
        if kind is None:
            continue
        if kind in ("lipschitz", "tt"):
            skip.append(name)
        bn_name, bn = following_bn.get(id(m), (None, None))
        layers.append(Layer(name, kind, m, shapes[name], bn=bn, bn_name=bn_name))
    return layers


def grid_and_stride(conv: nn.Module, spatial: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(grid, stride)``: the periodic grid on which a conv's exact spectrum is computed, and its stride
    (``svconv.spectrum.conv_geometry``: the grid's spectral norm times ``padding_norm`` bounds the layer's)."""
    geom = _geometry(conv, spatial)
    return geom.grid, geom.stride


def is_periodic(conv: nn.Module, spatial: Sequence[int]) -> bool:
    """Whether the conv's outputs are outputs of the periodic operator on its own input size (``ConvGeometry.periodic``)."""
    return _geometry(conv, spatial).periodic


def padding_norm(conv: nn.Module, spatial: Sequence[int]) -> float:
    """Spectral norm of the map from the input to the grid of ``grid_and_stride`` (``ConvGeometry.padding_norm``)."""
    return _geometry(conv, spatial).padding_norm


def check_plain_conv(layer: Layer, method: str) -> None:
    """Exact spectral routines need groups = 1 and dilation 1 (of a conv, or of a TT layer's core); say
    which methods handle the rest. Other layer kinds pass."""
    if layer.kind == "conv":
        check_plain(layer.module, layer.name, method)
    elif layer.kind == "tt":
        check_plain(layer.module.core, layer.name + ".core", method)


#: option giving one layer kind its own target -> that kind (``TrialConfig`` fields and ``SVMethod`` arguments)
KIND_TARGET_OPTIONS = {"clip_to_linear": "linear", "clip_to_bn": "bn"}


def check_kind_targets(method: str, kind_targets: Sequence[str], **targets: float | None) -> None:
    """ValueError naming the option when a per-kind target (``clip_to_linear``, ``clip_to_bn``) is neither None
    nor a positive number, or is set for a method that gives that kind no target of its own."""
    for option, value in targets.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"{option} must be None (same as clip_to) or a positive number; got {value!r}")
        kind = KIND_TARGET_OPTIONS[option]
        if kind not in kind_targets:
            users = [n for n, c in training_methods().items() if kind in getattr(c, "kind_targets", ())]
            raise ValueError(
                f"{option} applies to method(s) {', '.join(users)} (their own target for {kind} layers); "
                f"method {method!r} uses clip_to for every layer: leave {option} unset (None)"
            )


class SVMethod(Registered):
    """Base class of every SV-control method (see the module docstring for the protocol).

    A subclass is registered by ``register(Cls)`` in its module (``svconv.methods.registry``); its ``control`` runs a ``svconv.control`` function over
    ``self.layers`` and keeps what each achieved in ``self.results``.

    Args:
        clip_to: target spectral norm ``c`` of every controlled layer (> 0).
        clip_every: run the control step when ``step % clip_every == 0``.
        clip_iters: passes per control step (clip with ``clip_tol=0``: clip-then-restrict passes;
            fastclip: projection steps).
        power_iters: warm power iterations per control step (division, fastclip) and per estimate.
        bn_concat: FastClip only: control each conv together with the batch norm that follows it.
        clip_tol: clip only: relative tolerance around ``clip_to`` that a control step reaches
            (``svconv.spectrum.clip_to_target``); 0: ``clip_iters`` plain passes instead.
        clip_to_linear, clip_to_bn: the targets of linear and batch-norm layers (None: ``clip_to``), for the
            methods whose ``kind_targets`` name those kinds (division, as Gouk et al. 2021); see :meth:`target_for`.
    """

    #: layer kinds to which this method gives their own target (``clip_to_linear``, ``clip_to_bn``)
    kind_targets: tuple[str, ...] = ()
    trains = True
    #: the dataclass of the options this method takes (``svconv.options``); others are refused
    options: type = NoOptions
    #: the model families (``svconv.models`` ``ModelEntry.family``) built from this method's layers, with which
    #: alone it goes; None: every family that no method's layers build (:func:`svconv.methods.check_compatible`)
    families: tuple[str, ...] | None = None
    #: whether the method trains TT layers (takes a rank)
    tt = True
    #: whether ``build_model`` builds the model from this method's own layers (``layers=name``: the peers')
    builds_layers = False

    @classmethod
    def unavailable(cls) -> str | None:
        """Why the method cannot run here (a library that does not import, with the line to install it), or None."""
        return None

    def __init__(
        self,
        clip_to: float = 1.0,
        clip_every: int = 1,
        clip_iters: int = 1,
        power_iters: int = 1,
        bn_concat: bool = False,
        clip_tol: float = 0.01,
        clip_to_linear: float | None = None,
        clip_to_bn: float | None = None,
    ):
        if isinstance(clip_to, bool) or not isinstance(clip_to, (int, float)) or not clip_to > 0:
            raise ValueError(f"clip_to must be a positive number; got {clip_to!r}")
        check_kind_targets(self.name, self.kind_targets, clip_to_linear=clip_to_linear, clip_to_bn=clip_to_bn)
        if isinstance(clip_tol, bool) or not isinstance(clip_tol, (int, float)) or not 0 <= clip_tol < 1:
            raise ValueError(f"clip_tol must be a number in [0, 1); got {clip_tol!r}")
        for key, val in (("clip_every", clip_every), ("clip_iters", clip_iters), ("power_iters", power_iters)):
            if isinstance(val, bool) or not isinstance(val, int) or val < 1:
                raise ValueError(f"{key} must be an int >= 1; got {val!r}")
        self.clip_to = float(clip_to)
        self.clip_every = clip_every
        self.clip_iters = clip_iters
        self.power_iters = power_iters
        self.bn_concat = bool(bn_concat)
        self.clip_tol = float(clip_tol)
        self.clip_to_linear = self.clip_to if clip_to_linear is None else float(clip_to_linear)
        self.clip_to_bn = self.clip_to if clip_to_bn is None else float(clip_to_bn)
        #: what the last control step achieved, per layer name (methods built on ``svconv.control``)
        self.results: dict[str, ControlResult] = {}
        self.control_time_s = 0.0
        self.n_control_steps = 0
        self.layers: list[Layer] = []
        self._model: nn.Module | None = None
        self._generator = torch.Generator().manual_seed(0)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(clip_to={self.clip_to}, clip_every={self.clip_every}, "
            f"clip_iters={self.clip_iters}, power_iters={self.power_iters}, bn_concat={self.bn_concat}, "
            f"clip_tol={self.clip_tol})"
        )

    def target_for(self, kind: str) -> float:
        """The target of a layer of ``kind`` (a ``Layer.kind``): ``clip_to_linear`` for linear layers and
        ``clip_to_bn`` for batch norm (each ``clip_to`` unless given), ``clip_to`` for every other kind."""
        return {"linear": self.clip_to_linear, "bn": self.clip_to_bn}.get(kind, self.clip_to)

    # -- protocol -------------------------------------------------------------------------------
    def attach(self, model: nn.Module, input_shape: Sequence[int]) -> list[Layer]:
        """Find the layers this method controls or estimates; ``input_shape`` is one input, e.g. ``(3, 32, 32)``.

        Call after the model is on its device. Returns the layers (also kept in ``self.layers``).
        """
        layers = find_layers(model, input_shape)
        self.layers = [layer for layer in layers if self.handles(layer)]
        for layer in self.layers:
            self.check_layer(layer)
        self._model = model
        self.control_time_s = 0.0
        self.n_control_steps = 0
        return self.layers

    def step(self, model: nn.Module, step: int) -> bool:
        """Run the control step (:meth:`enforce`) if ``step % clip_every == 0``; True when it ran."""
        self._check_attached(model)
        if step % self.clip_every:
            return False
        self.enforce(model)
        return True

    def enforce(self, model: nn.Module) -> None:
        """Run one control step now; its wall time (CUDA-synchronised) is added to ``control_time_s``."""
        self._check_attached(model)
        device = _device(model)
        _sync(device)
        start = time.perf_counter()
        with torch.no_grad():
            self.control()
        _sync(device)
        self.control_time_s += time.perf_counter() - start
        self.n_control_steps += 1

    def estimate(self, model: nn.Module) -> dict[str, float]:
        """``{layer name: the method's estimate of its spectral norm}`` for every layer it handles."""
        self._check_attached(model)
        out: dict[str, float] = {}
        with torch.no_grad():
            for layer in self.layers:
                value = self.layer_norm(layer)
                if value is not None:
                    out[layer.name] = float(value)
        return out

    @classmethod
    def bench_method(cls, clip_to: float, iters: int | None) -> "SVMethod":
        """The method object a model bench row times, ``iters`` being the row's iteration count."""
        return cls(clip_to=clip_to)

    # -- for subclasses ---------------------------------------------------------------------------
    def handles(self, layer: Layer) -> bool:
        """Whether this method controls/estimates ``layer``: conv, TT and linear layers by default."""
        return layer.kind in ("conv", "tt", "linear")

    def check_layer(self, layer: Layer) -> None:
        """Raise ValueError at attach time for a layer this method cannot control."""

    def control(self) -> None:
        """One control step over ``self.layers`` (runs under ``torch.no_grad``)."""

    def layer_norm(self, layer: Layer) -> float | None:
        """The method's estimate of the spectral norm of one layer."""
        raise NotImplementedError

    # -- helpers ------------------------------------------------------------------------------
    def _check_attached(self, model: nn.Module) -> None:
        if self._model is None:
            raise RuntimeError(f"method {self.name!r}: call attach(model, input_shape) before step/estimate")
        if model is not self._model:
            raise ValueError(f"method {self.name!r} is attached to another model; call attach(model, input_shape)")

    def power_norm(self, layer: Layer, module: Any, input_shape: Sequence[int], key: str, n_iter: int) -> float:
        """Warm power iteration on ``module``'s linear part; the vector is kept in ``layer.state[key]``."""
        from svconv.spectrum import power_iteration

        v = layer.state.get(key)
        if v is not None and tuple(v.shape) != tuple(input_shape):
            v = None
        with _eval_mode(module):
            sigma, v = power_iteration(module, input_shape, n_iter=n_iter, v=v, generator=self._generator)
        layer.state[key] = v
        return float(sigma)


class _eval_mode:
    """Temporarily put a module (when it is one) in eval mode: SOC's evaluation series, BN's running stats."""

    def __init__(self, module: Any):
        self.module = module if isinstance(module, nn.Module) else None

    def __enter__(self):
        if self.module is not None:
            self.was = self.module.training
            self.module.eval()

    def __exit__(self, *exc):
        if self.module is not None:
            self.module.train(self.was)


def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
