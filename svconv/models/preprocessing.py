"""Input preprocessing conventions: how a family's paper feeds images to its networks, and so what the
certificate multiplies.

Inputs stay in [0, 1] outside the model; the first module, ``Normalize(mean, std)``, applies the convention,
and the network bound includes its ``1 / min(std)`` (``svconv.metrics.network_lipschitz_bound``). Certified
radii are therefore always in [0, 1] pixel units, as in the papers; what differs between conventions is the
scale the network itself sees, which decides whether its certified margins can reach the papers' (a loss
offset of sqrt(2) suits a 1-Lipschitz map from pixels, not one behind a x4 normalisation):

- ``standardize``: per-channel mean and std of the training set (the usual convention; WRN, VGG, ResNet,
  the small CNN). Certificate: network bound x ``1 / min(std)`` (4.107 on CIFAR-10).
- ``center-scale``: per-channel mean, one std for every channel, the mean of the per-channel stds (0.2507 on
  CIFAR-10): the SOC reference code (Singla & Feizi 2021), which Senderovich et al. 2022 train LipConvNets
  with. Certificate: network bound / std (3.989 x the SOC layers' bound). The reference code uses CIFAR-10's
  numbers for CIFAR-100 too; here each dataset's own (std 0.2666 on CIFAR-100).
- ``none``: the images in [0, 1] unchanged: the AOL reference code (Prach & Lampert 2022, ``x / 255``, no
  centering). Certificate: the network bound alone (1 for the AOL nets).
"""

from __future__ import annotations

from typing import Sequence

#: Convention name -> what it does (the ``preprocessing`` column of ``trials``).
PREPROCESSING: dict[str, str] = {
    "standardize": "per-channel mean and std; certificate x 1/min(std)",
    "center-scale": "per-channel mean, one std for all channels (mean of the per-channel stds); certificate x 1/std",
    "none": "inputs in [0, 1] unchanged; certificate = the network's bound",
}


def normalization(
    preprocessing: str, mean: Sequence[float], std: Sequence[float]
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The ``(mean, std)`` of ``Normalize`` under ``preprocessing``, from a dataset's per-channel ``mean`` and ``std``
    (one value per input channel each). ValueError naming the allowed conventions otherwise."""
    if preprocessing not in PREPROCESSING:
        raise ValueError(f"preprocessing must be one of {', '.join(PREPROCESSING)}; got {preprocessing!r}")
    mean, std = tuple(float(v) for v in mean), tuple(float(v) for v in std)
    if preprocessing == "none":
        return (0.0,) * len(mean), (1.0,) * len(std)
    if preprocessing == "center-scale":
        return mean, (sum(std) / len(std),) * len(std)
    return mean, std
