"""Robust accuracy under AutoAttack (Croce & Hein 2020) through the ``pyautoattack`` package."""

from __future__ import annotations

import logging

import torch
from torch import nn

VERSIONS = ("standard", "plus", "rand", "custom")

#: AutoAttack L2 radii a trial can run (its ``aa_radii``), in [0, 1] pixel units, and the ``trials`` column
#: each fills. 0.25 is Senderovich et al. 2022's "AA": their code (src/robust_metrics.py) attacks at eps 0.5
#: on inputs normalised by mean 0.5, std 0.5 (--gouk-transforms of their experiments.sh), i.e. 0.25 px.
AUTOATTACK_RADII: dict[str, tuple[str, float]] = {
    "0.25": ("autoattack_025", 0.25),
    "36/255": ("autoattack_36", 36 / 255),
    "0.5": ("autoattack_05", 0.5),
}


def parse_aa_radii(text: str) -> tuple[str, ...]:
    """The radius names of a comma-separated ``aa_radii`` ("0.25,36/255"), each a key of
    :data:`AUTOATTACK_RADII`; ValueError naming the allowed ones otherwise."""
    names = tuple(t.strip() for t in str(text).split(",") if t.strip()) if isinstance(text, str) else ()
    bad = [n for n in names if n not in AUTOATTACK_RADII]
    if not names or bad or len(set(names)) != len(names):
        raise ValueError(f"aa_radii must be distinct comma-separated radii from {', '.join(AUTOATTACK_RADII)} (pixel units); got {text!r}")
    return names
NORMS = ("L2", "Linf", "L1")


def autoattack_accuracy(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    norm: str = "L2",
    version: str = "standard",
    batch_size: int = 500,
    seed: int = 0,
    attacks: list[str] | None = None,
) -> float:
    """Percent of ``x`` still classified correctly after AutoAttack at radius ``eps``.

    The model runs in eval mode (its mode is restored) on the device of its parameters; ``x`` is
    ``(N, C, H, W)`` in [0, 1] (normalisation belongs inside the model), ``y`` ``(N,)``. Images the
    model already misclassifies count as broken. ``version="standard"`` runs APGD-CE, APGD-T, FAB-T
    and Square (5,000 queries) as RobustBench does; the targeted attacks use ``min(9, classes - 1)``
    target classes, so fewer than 10 classes work too. ``attacks`` is for ``version="custom"``.
    """
    from pyautoattack import AutoAttack

    if norm not in NORMS:
        raise ValueError(f"norm must be one of {', '.join(NORMS)}; got {norm!r}")
    if version not in VERSIONS:
        raise ValueError(f"version must be one of {', '.join(VERSIONS)}; got {version!r}")
    if not eps > 0:
        raise ValueError(f"eps must be positive; got {eps!r}")
    if x.dim() < 2 or y.shape != (x.shape[0],) or x.shape[0] == 0:
        raise ValueError(f"x must be (N, ...) with N >= 1 and y (N,); got {tuple(x.shape)} and {tuple(y.shape)}")
    if version != "custom" and (x.dim() != 4 or min(x.shape[2:]) < 5):
        raise ValueError(f"AutoAttack's Square attack needs images (N, C, H, W) of at least 5x5; got {tuple(x.shape)}")
    param = next(model.parameters(), None)
    device = param.device if param is not None else x.device
    x = x.detach().to(device=device, dtype=torch.float32)
    y = y.detach().to(device=device, dtype=torch.int64)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            n_classes = model(x[:1]).shape[1]
        if n_classes < 3 and version in ("standard", "plus"):
            raise ValueError(f"AutoAttack's DLR losses need at least 3 classes; the model has {n_classes}")
        adversary = AutoAttack(
            model,
            attacks=attacks if version == "custom" else None,
            device=device,
            eps=float(eps),
            norm=norm,
            seed=seed,
            version=version,
        )
        targets = min(9, n_classes - 1)
        adversary.apgd_targeted.n_target_classes = targets
        adversary.fab.n_target_classes = targets
        # pyautoattack reports through the "auto-attack" logger; keep its warnings, silence its chatter
        logging.getLogger("auto-attack").setLevel(logging.WARNING)
        x_adv, y_adv = adversary.run_standard_evaluation(x, y, batch_size=batch_size)
        with torch.no_grad():
            # count from the returned adversarial images, checked independently of the library's flags
            delta = (x_adv - x).flatten(1)
            ord_ = {"L2": 2, "Linf": float("inf"), "L1": 1}[norm]
            if (delta.norm(p=ord_, dim=1) > eps * (1 + 1e-4) + 1e-6).any():
                raise RuntimeError(f"AutoAttack returned perturbations larger than eps={eps} in {norm}")
            robust = torch.cat([model(xb).argmax(1) for xb in x_adv.split(batch_size)]) == y
    finally:
        model.train(was_training)
    return float(100 * robust.double().mean())
