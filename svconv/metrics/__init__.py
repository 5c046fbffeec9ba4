"""Metrics of a trained model: calibration, certified and empirical robustness, AutoAttack,
corruption accuracy, certified Lipschitz bounds, per-layer spectral norms, whether a trial learned.

Accuracies and ECE are in percent. Models take inputs in [0, 1] (normalisation inside the model).
"""

from svconv.metrics.autoattack import autoattack_accuracy
from svconv.metrics.calibration import ece
from svconv.metrics.certified import CERTIFIED_EPS, certified_accuracies, certified_accuracy, margins
from svconv.metrics.corruption import corruption_accuracy
from svconv.metrics.empirical_lipschitz import empirical_lipschitz
from svconv.metrics.layer_norms import layer_spectral_norms
from svconv.metrics.learned import LEARNED_ACC_MARGIN, LEARNED_LOSS_DROP, trial_learned
from svconv.metrics.lipschitz_bound import layer_lipschitz_bound, leaf_lipschitz_bounds, network_lipschitz_bound

__all__ = [
    "CERTIFIED_EPS",
    "LEARNED_ACC_MARGIN",
    "LEARNED_LOSS_DROP",
    "autoattack_accuracy",
    "certified_accuracies",
    "certified_accuracy",
    "corruption_accuracy",
    "ece",
    "empirical_lipschitz",
    "layer_lipschitz_bound",
    "layer_spectral_norms",
    "leaf_lipschitz_bounds",
    "margins",
    "network_lipschitz_bound",
    "trial_learned",
]
