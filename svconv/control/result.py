"""What one per-layer control call achieved (``svconv.control``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ControlResult:
    """The outcome of controlling one layer in place.

    ``sigma_after``: the spectral norm of the layer after control where the routine knows it exactly
    (exact clipping: the periodic operator's norm on the layer's grid, ``docs/design.md``; linear
    layers: the matrix norm), or measured by the exact routine when the call was made with
    ``check=True``; None where only an estimate exists. ``target``: the norm aimed at. ``passes``:
    clip passes, power/projection steps or rescalings performed (0 when nothing needed control).
    ``rel_change``: ``||W' - W||_F / ||W||_F`` of the layer's full kernel (TT layers: the product of the
    frames and the core). ``level``: the clip level used last (exact clipping only; carried over to the
    next control step as its first guess).
    """

    sigma_after: float | None
    target: float
    passes: int
    rel_change: float
    level: float | None = None

    @property
    def ratio(self) -> float | None:
        """``sigma_after / target`` (None when ``sigma_after`` is unknown)."""
        return None if self.sigma_after is None else self.sigma_after / self.target
