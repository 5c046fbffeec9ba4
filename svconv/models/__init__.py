"""Architectures by name and the structural modules they are built from.

``build_model(arch, ...)`` returns ``Sequential(normalize, net)``; ``check_arch(name)`` validates a name.
Structural modules (``Normalize``, ``Residual``) and ``input_shapes`` let generic code walk any model.
"""

from svconv.models.blocks import Normalize, Residual
from svconv.models.preprocessing import PREPROCESSING
from svconv.models.registry import (
    ARCH_PATTERNS,
    MODELS,
    ArchSpec,
    LearningRates,
    ModelEntry,
    arch_preprocessing,
    build_model,
    check_arch,
    default_lr,
    parse_arch,
    tt_rank_limit,
)
from svconv.models.shapes import input_shapes

__all__ = [
    "ARCH_PATTERNS",
    "ArchSpec",
    "LearningRates",
    "MODELS",
    "ModelEntry",
    "PREPROCESSING",
    "Normalize",
    "Residual",
    "arch_preprocessing",
    "build_model",
    "check_arch",
    "default_lr",
    "input_shapes",
    "parse_arch",
    "tt_rank_limit",
]
