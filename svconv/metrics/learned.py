"""Did a trial learn? The ``learned`` column of ``trials``: a trial that ends at chance is visible, not a quiet ``ok``.

A trial learned when its test accuracy is at least :data:`LEARNED_ACC_MARGIN` percentage points above
chance (100 / classes), or when its last epoch's mean training loss is at least :data:`LEARNED_LOSS_DROP`
below its first epoch's. Either suffices: a short trial on a hard set can lower its loss before its
accuracy leaves chance, and a one-epoch trial has only its accuracy. AOL-Small at Adam lr 0.003 on mnist5k
(10.2 % after 3 epochs, loss flat from step 10) fails both.
"""

from __future__ import annotations

import math
from typing import Sequence

#: Percentage points above chance that the test accuracy must reach (10 classes: 20 %).
LEARNED_ACC_MARGIN = 10.0
#: Fraction by which the last epoch's mean training loss must be below the first epoch's.
LEARNED_LOSS_DROP = 0.1


def trial_learned(clean_acc: float | None, num_classes: int, train_losses: Sequence[float]) -> bool | None:
    """Whether a trial learned (see the module docstring); None when there is nothing to judge by.

    Args:
        clean_acc: test accuracy in percent (None or NaN: not measured).
        num_classes: number of classes (chance is ``100 / num_classes`` percent).
        train_losses: mean training loss of each epoch, in order.
    """
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2; got {num_classes!r}")
    acc = None if clean_acc is None or math.isnan(clean_acc) else float(clean_acc)
    losses = [float(v) for v in train_losses]
    if acc is None and len(losses) < 2:
        return None
    by_acc = acc is not None and acc >= 100.0 / num_classes + LEARNED_ACC_MARGIN
    by_loss = len(losses) >= 2 and math.isfinite(losses[0]) and losses[-1] <= (1 - LEARNED_LOSS_DROP) * losses[0]
    return bool(by_acc or by_loss)
