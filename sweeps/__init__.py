"""Ray Tune sweeps of training trials: specs (``spec``), the driver (``driver``), Ray Jobs submission
(``submit``), status (``status``) and where sweep state lives (``state``); ``svconv sweep`` is ``cli``.

Heavy libraries (Ray) are imported by ``driver`` and ``submit`` only.
"""

from sweeps.spec import SpecError, SweepSpec, Trial, load_spec, parse_spec

__all__ = ["SpecError", "SweepSpec", "Trial", "load_spec", "parse_spec"]
