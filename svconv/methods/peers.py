"""``aoc``, ``bcop``, ``sll``, ``cayley``, ``bjorck``: LipConvNet-N built from another library's
1-Lipschitz layers (``svconv.layers.peers``), trained like ``soc``: the layers are the control, so there
is no control step, and ``estimate`` reports each layer's spectral norm (a warm power iteration, as SOC's).

They go with ``lipconvnet-N`` only and take no rank (``check_compatible``); a method whose library does
not import stays listed and is refused by ``check_compatible`` with the package to install.
"""

from __future__ import annotations

from svconv.layers.peers import PEERS, peer_problem
from svconv.methods.parametrized import _Parametrized
from svconv.methods.registry import register


class _Peer(_Parametrized):
    order = 75
    families = ("lipconvnet",)
    tt = False  # another library's layers
    builds_layers = True

    @classmethod
    def unavailable(cls) -> str | None:
        return peer_problem(cls.name)
    bench_model = None  # measured per layer by the ``zoo`` bench suite (bench.zoo)


class AOCMethod(_Peer):
    name = "aoc"
    summary = f"{PEERS['aoc'].summary} (lipconvnet-N)"


class BCOPMethod(_Peer):
    name = "bcop"
    summary = f"{PEERS['bcop'].summary} (lipconvnet-N)"


class SLLMethod(_Peer):
    name = "sll"
    summary = f"{PEERS['sll'].summary} (lipconvnet-N)"


class CayleyMethod(_Peer):
    name = "cayley"
    summary = f"{PEERS['cayley'].summary} (lipconvnet-N)"


class BjorckMethod(_Peer):
    name = "bjorck"
    summary = f"{PEERS['bjorck'].summary} (lipconvnet-N)"

register(AOCMethod)
register(BCOPMethod)
register(SLLMethod)
register(CayleyMethod)
register(BjorckMethod)
