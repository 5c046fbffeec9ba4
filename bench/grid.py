"""Benchmark configurations: grids (from a suite or the command line) expanded into canonical configs.

A grid is a mapping whose list values are axes; the configurations are the Cartesian product of the
axes. A *config* is a flat JSON-able dict with every field (:data:`LAYER_FIELDS` or
:data:`MODEL_FIELDS`) filled in, so its hash (``bench_id``) is deterministic and a rerun replaces its row.

Layer grids (``scope: layer``, the default): ``method``, ``channels`` (c, or ``[c_in, c_out]``),
``input_size`` and ``kernel`` (an int for every spatial dimension, or one per dimension), ``ndim``
(2 or 3), ``stride``, ``padding``, ``rank`` (TT rank; ``null`` for the plain layer) or ``rank_frac``
(fraction of ``min(c_in, c_out)``), ``iters``, ``k``, ``clip_to``, ``seed``, ``device``, ``dtype``,
``threads`` (CPU threads of torch for the measurement; null: torch's default), ``repeats``, ``warmup``.

Model grids (``scope: model``): ``arch``, ``method``, ``rank``, ``input_shape`` (``[c, h, w]``),
``num_classes``, ``iters``, ``check`` (also measure the norms after the control pass), ``clip_to``,
``seed``, ``device``, ``dtype``, ``threads``, ``repeats``, ``warmup``. ``exact`` and the control
methods walk the conv and TT layers; ``soc`` (LipConvNet only) times one forward of every SOC / SOC-TT
layer, the cost that SOC-TT reduces (Senderovich et al. 2022, Fig. 6).

The methods and what a row of each is come from the registry (``svconv.methods.registry``): a method
registered there is a bench method, with its default ``iters``, without any table here; ``method: all``
is every method of the grid's scope.

Names are checked here (a bad name is a ``ValueError`` naming the key and the allowed values);
geometry that cannot run (a stride that does not divide the input, a rank above the channels, CUDA
without a GPU) is left for the measurement to report as a skipped row with the reason.
"""

from __future__ import annotations

import itertools
from typing import Any, Iterable, Mapping

import bench.baselines  # noqa: F401 - registers the exact-numpy / exact-torch estimators
from svconv.methods.registry import entries, entry, layer_methods, model_methods
from svconv.results import config_id

#: bench method -> what a row of it is, derived from the method registry (``svconv.methods.registry``):
#: layer scope exact | baseline | bound | estimate | control; model scope exact | control | forward.
LAYER_METHODS: dict[str, str] = layer_methods()
MODEL_METHODS: dict[str, str] = model_methods()

#: default iteration counts; None: the method has no iteration count.
DEFAULT_ITERS: dict[str, int | None] = {name: cls.default_iters for name, cls in entries().items() if cls.bench_layer or cls.bench_model}

PADDINGS = ("circular", "zeros", "reflect", "replicate")
DTYPES = ("float32", "float64")
DEVICES = ("cpu", "cuda")
SCOPES = ("layer", "model")

COMMON_DEFAULTS: dict[str, Any] = {
    "device": "cpu",
    "dtype": "float32",
    "repeats": 5,
    "warmup": 1,
    "clip_to": 1.0,
    "seed": 0,
    "iters": "default",
    "threads": None,
}

LAYER_DEFAULTS: dict[str, Any] = {
    **COMMON_DEFAULTS,
    "channels": 64,
    "input_size": 32,
    "kernel": 3,
    "ndim": 2,
    "stride": 1,
    "padding": "circular",
    "rank": None,
    "rank_frac": None,
    "k": None,
}

MODEL_DEFAULTS: dict[str, Any] = {
    **COMMON_DEFAULTS,
    "repeats": 3,
    "rank": None,
    "input_shape": [3, 32, 32],
    "num_classes": 10,
    "check": True,
}

LAYER_FIELDS = (
    "suite", "scope", "method", "c_in", "c_out", "kernel", "input_size", "stride", "padding", "rank",
    "iters", "k", "clip_to", "seed", "device", "dtype", "threads", "repeats", "warmup",
)  # fmt: skip
MODEL_FIELDS = (
    "suite", "scope", "arch", "method", "rank", "input_shape", "num_classes", "iters", "check", "clip_to",
    "seed", "device", "dtype", "threads", "repeats", "warmup",
)  # fmt: skip

#: keys a grid may hold, per scope (``scope`` and ``suite`` besides).
_LAYER_KEYS = set(LAYER_DEFAULTS) | {"method", "scope", "suite"}
_MODEL_KEYS = set(MODEL_DEFAULTS) | {"method", "arch", "scope", "suite"}
#: keys whose values are themselves lists (a list of lists is an axis of them).
_SEQUENCE_KEYS = {"channels", "input_size", "kernel", "input_shape"}


def _axis(key: str, value: Any) -> list[Any]:
    """The values of one grid key: a scalar is one value; a list is an axis (of lists, for sequence keys)."""
    if not isinstance(value, (list, tuple)):
        return [value]
    if key in _SEQUENCE_KEYS:
        # [64, 128] -> two values; [[64, 128]] -> one pair; input_shape [3, 32, 32] is one shape.
        if key == "input_shape" and value and not isinstance(value[0], (list, tuple)):
            return [list(value)]
        return [list(v) if isinstance(v, (list, tuple)) else v for v in value]
    return list(value)


def expand(grid: Mapping[str, Any], suite: str = "adhoc", overrides: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """All canonical configs of one grid (defaults filled, ``overrides`` applied last, duplicates dropped)."""
    scope = grid.get("scope", "layer")
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}; got {scope!r}")
    allowed = _LAYER_KEYS if scope == "layer" else _MODEL_KEYS
    merged = dict(LAYER_DEFAULTS if scope == "layer" else MODEL_DEFAULTS)
    merged.update(grid)
    merged.update({k: v for k, v in (overrides or {}).items() if v is not None})
    unknown = sorted(set(merged) - allowed)
    if unknown:
        raise ValueError(f"unknown {scope} grid key(s) {unknown}; allowed keys: {', '.join(sorted(allowed))}")
    if "method" not in merged:
        raise ValueError(f"a {scope} grid needs 'method' (one of {', '.join(LAYER_METHODS if scope == 'layer' else MODEL_METHODS)})")
    if merged["method"] == "all":  # every method the registry measures at this scope
        merged["method"] = list(LAYER_METHODS if scope == "layer" else MODEL_METHODS)
    if scope == "model" and "arch" not in merged:
        raise ValueError("a model grid needs 'arch' (e.g. wrn-16-10, vgg19, resnet18)")
    merged["suite"] = suite
    merged["scope"] = scope
    keys = sorted(merged)
    axes = [_axis(k, merged[k]) for k in keys]
    configs: dict[str, dict[str, Any]] = {}
    for values in itertools.product(*axes):
        point = dict(zip(keys, values))
        cfg = _layer_config(point) if scope == "layer" else _model_config(point)
        configs.setdefault(bench_id(cfg), cfg)
    return list(configs.values())


def expand_all(grids: Iterable[Mapping[str, Any]], suite: str, overrides: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Configs of several grids, in order, without duplicates."""
    out: dict[str, dict[str, Any]] = {}
    for grid in grids:
        for cfg in expand(grid, suite, overrides):
            out.setdefault(bench_id(cfg), cfg)
    return list(out.values())


def bench_id(config: Mapping[str, Any]) -> str:
    """Deterministic id of a canonical config (also the name of its Parquet file)."""
    return config_id(dict(config))


def _choice(key: str, value: Any, allowed: Iterable[str]) -> Any:
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f"{key} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def _int(key: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{key} must be an int >= {minimum}; got {value!r}")
    return value


def _opt_int(key: str, value: Any) -> int | None:
    return None if value is None else _int(key, value)


def _spatial(key: str, value: Any, ndim: int) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value] * ndim
    if not isinstance(value, list) or len(value) != ndim:
        raise ValueError(f"{key} must be an int or a list of {ndim} ints (ndim={ndim}); got {value!r}")
    return [_int(key, v) for v in value]


def _iters(method: str, value: Any) -> int | None:
    if value == "default":
        return DEFAULT_ITERS.get(method)
    if DEFAULT_ITERS.get(method) is None:
        return None  # the method has no iterations: one config, whatever the axis says
    return _int("iters", value, minimum=entry(method).min_iters)


def _common(point: Mapping[str, Any], methods: Mapping[str, str]) -> dict[str, Any]:
    method = _choice("method", point["method"], methods)
    clip_to = point["clip_to"]
    if isinstance(clip_to, bool) or not isinstance(clip_to, (int, float)) or not clip_to > 0:
        raise ValueError(f"clip_to must be a positive number; got {clip_to!r}")
    return {
        "suite": str(point["suite"]),
        "scope": point["scope"],
        "method": method,
        "iters": _iters(method, point["iters"]),
        "clip_to": float(clip_to),
        "seed": _int("seed", point["seed"], minimum=0),
        "device": _choice("device", point["device"], DEVICES),
        "dtype": _choice("dtype", point["dtype"], DTYPES),
        "threads": _opt_int("threads", point["threads"]),
        "repeats": _int("repeats", point["repeats"]),
        "warmup": _int("warmup", point["warmup"], minimum=0),
    }


def _layer_config(point: Mapping[str, Any]) -> dict[str, Any]:
    cfg = _common(point, LAYER_METHODS)
    ndim = _choice("ndim", point["ndim"], (2, 3))
    ch = point["channels"]
    if isinstance(ch, int) and not isinstance(ch, bool):
        ch = [ch, ch]
    if not isinstance(ch, list) or len(ch) != 2:
        raise ValueError(f"channels must be an int c or a pair [c_in, c_out]; got {point['channels']!r}")
    c_in, c_out = (_int("channels", c) for c in ch)
    rank, frac = point["rank"], point["rank_frac"]
    if rank is not None and frac is not None:
        raise ValueError(f"give rank or rank_frac, not both; got rank={rank!r}, rank_frac={frac!r}")
    if frac is not None:
        if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not frac > 0:
            raise ValueError(f"rank_frac must be a positive number (a fraction of min(c_in, c_out)); got {frac!r}")
        rank = max(1, round(frac * min(c_in, c_out)))
    k = point["k"]
    if entry(cfg["method"]).takes_k:
        k = 1 if k is None else _int("k", k)
    else:
        k = None
    cfg.update(
        c_in=c_in,
        c_out=c_out,
        kernel=_spatial("kernel", point["kernel"], ndim),
        input_size=_spatial("input_size", point["input_size"], ndim),
        stride=_int("stride", point["stride"]),
        padding=_choice("padding", point["padding"], PADDINGS),
        rank=_opt_int("rank", rank),
        k=k,
    )
    return {f: cfg[f] for f in LAYER_FIELDS}


def _model_config(point: Mapping[str, Any]) -> dict[str, Any]:
    from svconv.models import check_arch

    cfg = _common(point, MODEL_METHODS)
    shape = point["input_shape"]
    if not isinstance(shape, list) or len(shape) != 3:
        raise ValueError(f"input_shape must be [channels, height, width]; got {shape!r}")
    cfg.update(
        arch=check_arch(point["arch"]),
        rank=_opt_int("rank", point["rank"]),
        input_shape=[_int("input_shape", v) for v in shape],
        num_classes=_int("num_classes", point["num_classes"], minimum=2),
        check=bool(point["check"]),
    )
    return {f: cfg[f] for f in MODEL_FIELDS}


def parse_grid_args(items: Iterable[str]) -> dict[str, Any]:
    """``["method=exact,power", "channels=64,128x256", "rank=null,16"]`` -> a grid mapping.

    Commas separate the values of an axis; ``AxB[xC]`` is a sequence (``channels=64x128`` is
    ``[c_in, c_out]``, ``input_size=16x32``); ``null``/``none``/``full`` is None; numbers parse as numbers.
    """
    grid: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--grid items must be KEY=VALUE[,VALUE...]; got {item!r}")
        values = [_parse_value(v) for v in raw.split(",") if v != ""]
        if not values:
            raise ValueError(f"--grid item {item!r} has no value")
        if len(values) > 1:
            grid[key] = values
        elif isinstance(values[0], list) and key != "input_shape":
            grid[key] = [values[0]]  # one sequence value, not an axis of its entries
        else:
            grid[key] = values[0]
    return grid


def _parse_value(text: str) -> Any:
    t = text.strip()
    if t.lower() in ("null", "none", "full"):
        return None
    if t.lower() in ("true", "false"):
        return t.lower() == "true"
    parts = t.split("x")
    if len(parts) > 1 and all(p.isdigit() for p in parts):
        return [int(p) for p in parts]
    for cast in (int, float):
        try:
            return cast(t)
        except ValueError:
            pass
    return t
