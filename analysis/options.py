"""Which trial options a method uses, so that tables leave the others blank (``clip_to`` means nothing on a
``none``, ``aol`` or ``soc`` row). The one place the report asks this; it reads the method registry."""

from __future__ import annotations

import math

#: options that only the target-controlling methods read (``svconv.control`` steps towards ``clip_to``)
TARGET_OPTIONS = ("clip_to", "clip_to_linear", "clip_to_bn", "clip_every", "clip_iters", "clip_tol", "clip_k",
                  "power_iters", "bn_concat")  # fmt: skip
#: methods that control singular values towards a target; the others (none, the parametrised layers) do not
_NO_TARGET = ("none", "aol", "soc")


def method_uses(method: object, option: str, rank: object = None) -> bool:
    """True when a trial of ``method`` (at TT ``rank``, None: full) reads ``option``.

    ``lam`` (the orthogonality loss of TT cores) is read only with a TT rank; the target options only by the
    methods that step towards a target (not ``none``, ``aol``, ``soc`` or the peers' layers); every other option
    by every method."""
    from svconv.layers.peers import PEERS

    if option == "lam":
        try:
            return rank is not None and not math.isnan(float(rank))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return False
    if option in TARGET_OPTIONS:
        return str(method) not in (*_NO_TARGET, *PEERS)
    return True
