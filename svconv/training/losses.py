"""Training losses: plain cross-entropy and AOL's offset cross-entropy (Prach & Lampert 2022).

AOL's loss (``OffsetXentFromScores`` of the authors' code) subtracts a margin ``offset`` from the score
of the true class, divides the scores by a temperature ``T`` and multiplies the cross-entropy by ``T``:

    loss(s, y) = T · CE((s - offset · onehot(y)) / T, y)
               = T · log(sum_j exp(s_j / T) · exp(-offset · [j = y] / T)) - (s_y - offset)

For a 1-Lipschitz network a margin of ``sqrt(2) ε`` certifies radius ε (Tsuzuku et al. 2018), so the
offset asks for a certified margin; the defaults are the paper's: offset ``sqrt(2)``, ``T = 1/4``. Its
offset ablation (run IDs 20-24) scales both together, ``offset = sqrt(2) b``, ``T = b / 4``, so a
temperature left unset follows the offset: ``T = offset / (4 sqrt(2))``.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from svconv.config import LOSSES
from svconv.spectrum._checks import check_choice, check_positive

#: AOL's default margin offset and temperature (``get_run_setting.py`` of the authors' code).
AOL_OFFSET = math.sqrt(2)
AOL_TEMPERATURE = 0.25

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def aol_temperature(offset: float) -> float:
    """The temperature that goes with ``offset`` in AOL's ablation: ``offset / (4 sqrt(2))`` (1/4 at sqrt(2))."""
    return offset * AOL_TEMPERATURE / AOL_OFFSET


def offset_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, offset: float = AOL_OFFSET, temperature: float = AOL_TEMPERATURE
) -> torch.Tensor:
    """AOL's loss ``T · CE((s - offset · onehot(y)) / T, y)``, mean over the batch (a scalar).

    ``logits`` ``(N, classes)`` (computed in float32 at least), ``labels`` ``(N,)`` int64;
    ``offset`` and ``temperature`` (positive) are in the units of the logits.
    """
    check_positive(offset, "offset")
    check_positive(temperature, "temperature")
    s = logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits
    shifted = s - offset * F.one_hot(labels, s.shape[1]).to(s.dtype)
    return temperature * F.cross_entropy(shifted / temperature, labels)


def resolve_loss(name: str, offset: float | None = None, temperature: float | None = None) -> tuple[float | None, float | None]:
    """The offset and temperature that loss ``name`` trains with: AOL's defaults for what is None
    (temperature rescaled with the offset, :func:`aol_temperature`); ``(None, None)`` for ``ce``.

    ValueError naming the argument for an unknown name, for parameters given to ``ce`` or for values out of
    range (``TrialConfig.validate`` makes the same checks on a trial's fields).
    """
    check_choice(name, LOSSES, "loss")
    if name == "ce":
        if offset is not None or temperature is not None:
            raise ValueError("loss_offset and loss_temperature apply to loss aol-offset only; leave them unset for loss ce")
        return None, None
    offset = AOL_OFFSET if offset is None else check_positive(offset, "loss_offset")
    temperature = aol_temperature(offset) if temperature is None else check_positive(temperature, "loss_temperature")
    return offset, temperature


def make_loss(name: str = "ce", offset: float | None = None, temperature: float | None = None) -> LossFn:
    """The loss ``(logits (N, classes), labels (N,)) -> scalar`` named ``name`` (:data:`LOSSES`).

    ``ce``: ``F.cross_entropy`` in float32; ``aol-offset``: :func:`offset_cross_entropy` with the
    parameters of :func:`resolve_loss`.
    """
    offset, temperature = resolve_loss(name, offset, temperature)
    if name == "ce":
        return lambda logits, labels: F.cross_entropy(logits.float(), labels)
    return lambda logits, labels: offset_cross_entropy(logits, labels, offset, temperature)
