"""Ray Tune sweeps of training trials: specs (``spec``), the driver (``driver``), one run per sweep
(``lock``), Ray Jobs submission (``submit``) through an authenticated job server (``jobs``), status
(``status``) and where sweep state lives (``state``); early stopping (``scheduler``), experiment
trackers (``trackers``) and the dry run's cost estimate (``cost``); which errors are retried, and the
data check before any trial (``failures``); SIGTERM handled as Ctrl+C (``interrupt``); ``svconv sweep``
is ``cli``.

Heavy libraries (Ray) are imported by ``driver`` at import time, by ``jobs`` inside its functions.
"""

from sweeps.spec import SpecError, SweepSpec, Trial, load_spec, parse_spec

__all__ = ["SpecError", "SweepSpec", "Trial", "load_spec", "parse_spec"]
