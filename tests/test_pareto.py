"""Pareto fronts: hand-made point sets with known fronts, and a brute-force cross-check."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.pareto import pareto_front, pareto_mask


def brute_force(points: np.ndarray, maximize: list[bool]) -> np.ndarray:
    pts = points * np.where(maximize, 1.0, -1.0)
    n = len(pts)
    out = np.zeros(n, dtype=bool)
    for i in range(n):
        if np.isnan(pts[i]).any():
            continue
        dominated = False
        for j in range(n):
            if j == i or np.isnan(pts[j]).any():
                continue
            if (pts[j] >= pts[i]).all() and (pts[j] > pts[i]).any():
                dominated = True
                break
        out[i] = not dominated
    return out


def test_hand_made_front_both_maximised():
    # (accuracy, robust accuracy): the front is A, C, D; B is dominated by C, E by D, F has a NaN.
    pts = np.array(
        [
            [90.0, 40.0],  # A: best accuracy
            [80.0, 45.0],  # B: dominated by C
            [85.0, 50.0],  # C
            [70.0, 60.0],  # D: best robustness
            [70.0, 55.0],  # E: same accuracy as D, less robust
            [np.nan, 99.0],  # F: cannot be compared
        ]
    )
    assert pareto_mask(pts).tolist() == [True, False, True, True, False, False]


def test_minimised_objective_and_ties():
    # accuracy (max) against ECE (min). Duplicates of a front point both stay on the front.
    frame = pd.DataFrame(
        {
            "acc": [95.0, 95.0, 94.0, 93.0, 96.0, 96.0],
            "ece": [2.0, 2.0, 1.5, 1.5, 3.0, 3.5],
        },
        index=list("abcdef"),
    )
    front = pareto_front(frame, {"acc": "max", "ece": "min"})
    assert front.index.tolist() == list("abcdef")
    # d is dominated by c (same ECE, lower acc); f by e (same acc, worse ECE)
    assert front.to_dict() == {"a": True, "b": True, "c": True, "d": False, "e": True, "f": False}


def test_three_objectives_hand_made():
    pts = np.array([[1, 1, 1], [2, 0, 0], [0, 2, 0], [0, 0, 2], [0.5, 0.5, 0.5], [1, 1, 1]], dtype=float)
    assert pareto_mask(pts).tolist() == [True, True, True, True, False, True]
    # minimising everything: (0.5, 0.5, 0.5) now dominates both copies of (1, 1, 1)
    assert pareto_mask(pts, maximize=False).tolist() == [False, True, True, True, True, False]


@pytest.mark.parametrize("d", [1, 2, 3, 4])
def test_matches_brute_force(d):
    rng = np.random.default_rng(d)
    pts = rng.integers(0, 6, size=(120, d)).astype(float)  # many ties on purpose
    pts[rng.random(120) < 0.05, 0] = np.nan
    maximize = [bool(b) for b in rng.integers(0, 2, size=d)]
    got = pareto_mask(pts, maximize, chunk=17)
    assert got.tolist() == brute_force(pts, maximize).tolist()
    assert got.any()


def test_empty_and_bad_input():
    assert pareto_mask(np.empty((0, 2))).tolist() == []
    assert pareto_mask(np.full((3, 2), np.nan)).tolist() == [False, False, False]
    with pytest.raises(ValueError, match="2-D"):
        pareto_mask(np.zeros(3))
    frame = pd.DataFrame({"acc": [1.0]})
    with pytest.raises(ValueError, match="not in the frame"):
        pareto_front(frame, {"robust": "max"})
    with pytest.raises(ValueError, match="max, min"):
        pareto_front(frame, {"acc": "up"})
