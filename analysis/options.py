"""Which trial options a method uses, so that tables leave the others blank (``clip_to`` means nothing on a
``none``, ``aol`` or ``soc`` row). The one place the report asks this (:func:`method_uses`); it reads the method
registry, and can read per-method option declarations instead once the methods carry them."""

from __future__ import annotations

import math
from functools import lru_cache

#: options that only the target-controlling methods read (``svconv.control`` steps towards ``clip_to``)
TARGET_OPTIONS = ("clip_to", "clip_to_linear", "clip_to_bn", "clip_every", "clip_iters", "clip_tol", "clip_k",
                  "power_iters", "bn_concat")  # fmt: skip


@lru_cache(maxsize=None)
def _steps_to_target(method: str) -> bool:
    """From the method registry: does ``method`` step its layers towards ``clip_to``? Not ``none`` and not the
    parametrised layers (``aol``, ``soc``, the peers'), whose layers are 1-Lipschitz by construction. An unknown
    name (results of an older version) is taken to."""
    from svconv.methods import METHODS
    from svconv.methods.none import NoControl
    from svconv.methods.parametrized import _Parametrized

    cls = METHODS.get(method)
    return cls is None or not issubclass(cls, (NoControl, _Parametrized))


def method_uses(method: object, option: str, rank: object = None) -> bool:
    """True when a trial of ``method`` (at TT ``rank``, None: full) reads ``option``.

    ``lam`` (the orthogonality loss of TT cores) is read only with a TT rank; the target options only by the
    methods that step towards a target; every other option by every method."""
    if option == "lam":
        try:
            return rank is not None and not math.isnan(float(rank))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return False
    if option in TARGET_OPTIONS:
        return _steps_to_target(str(method))
    return True
