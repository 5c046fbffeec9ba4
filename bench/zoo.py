"""The ``zoo`` runner: one training step's forward + backward of each 1-Lipschitz layer type at equal width.

Per config: one square layer (``c -> c`` channels, ``k x k``, stride 1, its own padding) in train mode on a
random ``(batch, c, n, n)`` input; a call is ``zero_grad``, the forward, ``mean(y^2)`` and its backward (what
training spends per layer, the parametrisation included: AOL's rescaling, SOC's series with ``train_terms``,
the peers' orthogonalisations); ``repeats`` timed calls after ``warmup`` untimed ones. Layer types
(``layer``, the row's ``method``): ``conv`` (a plain ``nn.Conv2d``, the reference), ``soc`` and ``aol``
(svconv's own, ``svconv.layers``), and the peers' ``aoc``, ``bcop``, ``sll``, ``cayley``, ``bjorck``
(``svconv.layers.peers``; a library that does not import gives skipped rows saying what to install).

The row (``bench`` schema, layer scope): ``c_in = c_out = c``, ``padding`` the layer's own, ``time_median_s``
per call, ``peak_mem_mb`` of the last call (``bench.timing``), ``value`` the layer's trainable parameter
count. Configs come from suite files with ``runner: zoo`` (``bench/suites/zoo.yaml``) or ``svconv bench --grid
runner=zoo ...``. Grid keys: ``layer`` (default: every type), ``channels`` (an int), ``input_size``, ``kernel``
(odd), ``batch`` (default 16), ``seed``, ``device``, ``dtype``, ``threads``, ``repeats``, ``warmup``.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import torch
from torch import nn

from bench.grid import bench_id, expand
from bench.measure import Skip, _dtype, _measured
from bench.measure import run_config as run_measured
from bench.timing import time_calls
from svconv.spectrum._checks import check_count

RUNNER = "zoo"


def layer_types() -> tuple[str, ...]:
    """``conv``, svconv's ``soc`` and ``aol``, then every peer of ``svconv.layers.peers``."""
    from svconv.layers.peers import PEERS

    return ("conv", "soc", "aol", *PEERS)


def padding_of(layer: str) -> str:
    """The padding the layer type uses in its network (the zoo times each as it trains)."""
    from svconv.layers.peers import PEERS

    return PEERS[layer].padding if layer in PEERS else "zeros"



def expand_grid(grid: Mapping[str, Any], suite: str, overrides: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The canonical configs of one grid of this runner (see the module doc), duplicates dropped; a bad value
    is a ValueError naming the key and the allowed values (``bench.grid.expand`` checks the geometry keys)."""
    grid = {k: v for k, v in grid.items() if k != "runner"}
    known = layer_types()
    layers = grid.pop("layer", list(known))
    layers = layers if isinstance(layers, list) else [layers]
    for name in layers:
        if name not in known:
            raise ValueError(f"layer must be one of {', '.join(known)}; got {name!r}")
    batch = grid.pop("batch", 16)
    batches = [check_count(b, "batch") for b in (batch if isinstance(batch, list) else [batch])]
    for c in grid.get("channels", 64) if isinstance(grid.get("channels"), list) else [grid.get("channels", 64)]:
        if isinstance(c, list):
            raise ValueError(f"channels must be an int per value (the layers are square); got {c!r}")
    base = expand({**grid, "method": "division"}, suite, overrides)  # geometry and common keys
    out: dict[str, dict[str, Any]] = {}
    for cfg in base:
        if len(cfg["kernel"]) != 2 or cfg["stride"] != 1 or cfg["kernel"][0] != cfg["kernel"][1] or cfg["kernel"][0] % 2 == 0:
            raise ValueError(f"runner {RUNNER} takes square odd 2-D kernels at stride 1; got kernel {cfg['kernel']}, stride {cfg['stride']}")
        for name in layers:
            for b in batches:
                c = {**cfg, "method": name, "iters": None, "padding": padding_of(name), "runner": RUNNER, "batch": b}
                out.setdefault(bench_id(c), c)
    return list(out.values())


def expand_all(grids: Iterable[Mapping[str, Any]], suite: str, overrides: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Configs of several grids, in order, without duplicates."""
    return list({bench_id(c): c for grid in grids for c in expand_grid(grid, suite, overrides)}.values())


def make_layer(name: str, c: int, k: int) -> nn.Module:
    """A square ``c -> c`` layer of type ``name`` with a ``k x k`` kernel, as its network builds it."""
    from svconv.layers import SOC, AOLConv2d
    from svconv.layers.peers import PEERS, peer_conv, peer_problem

    if name == "conv":
        return nn.Conv2d(c, c, k, padding=k // 2)
    if name == "soc":
        return SOC(c, kernel_size=k)
    if name == "aol":
        return AOLConv2d(c, c, k)
    if name in PEERS and peer_problem(name):
        raise Skip(peer_problem(name))
    return peer_conv(name, c, c, k)


def _measure(cfg: Mapping[str, Any]) -> dict[str, Any]:
    c, (k, _), (n, n2) = cfg["c_in"], cfg["kernel"], cfg["input_size"]
    device, dtype = torch.device(cfg["device"]), _dtype(cfg["dtype"])
    torch.manual_seed(cfg["seed"])
    # orthogonium's normalisers fix their dtype when built: build in the config's dtype, not convert after
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        layer = make_layer(cfg["method"], c, k).to(device).train()
    finally:
        torch.set_default_dtype(old)
    gen = torch.Generator().manual_seed(cfg["seed"])
    x = torch.randn((cfg["batch"], c, n, n2), generator=gen, dtype=torch.float64).to(device=device, dtype=dtype)

    def step() -> torch.Tensor:
        layer.zero_grad(set_to_none=True)
        loss = layer(x).square().mean()
        loss.backward()
        return loss.detach()

    timing = time_calls(step, device, repeats=cfg["repeats"], warmup=cfg["warmup"])
    params = float(sum(p.numel() for p in layer.parameters() if p.requires_grad))
    return _measured(timing, timing.peak_mem_mb, params, None, None, None, None, None)


def run_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Measure one config of this runner and return its ``bench`` row (status ok, skipped or failed)."""
    return run_measured(cfg, _measure)
