"""Non-dominated (Pareto-optimal) sets: pure NumPy / pandas.

A point ``a`` dominates ``b`` when ``a`` is at least as good as ``b`` in every objective and strictly
better in one. Equal points do not dominate each other, so duplicates on the front all stay on it.
Points with a NaN in any objective are never on the front (they cannot be compared).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

SENSES = ("max", "min")


def pareto_mask(points: np.ndarray, maximize: Sequence[bool] | bool = True, chunk: int = 1024) -> np.ndarray:
    """Boolean mask of the non-dominated rows of ``points``.

    points: (n, d) array of objective values, d >= 1. maximize: one bool per column (or one for all);
    False means smaller is better. Rows with a NaN are False. Cost: O(n log n) for d <= 2, otherwise
    O(n^2 d) comparisons in chunks of ``chunk`` rows (memory O(chunk · n)).
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2:
        raise ValueError(f"points must be a 2-D array (n points, d objectives); got shape {pts.shape}")
    n, d = pts.shape
    if d == 0:
        raise ValueError("points must have at least one objective column; got 0")
    signs = np.broadcast_to(np.where(np.asarray(maximize, dtype=bool), 1.0, -1.0), (d,))
    pts = pts * signs  # now every objective is maximised
    valid = ~np.isnan(pts).any(axis=1)
    mask = np.zeros(n, dtype=bool)
    idx = np.flatnonzero(valid)
    if idx.size == 0:
        return mask
    sub = pts[idx]
    if d == 1:
        mask[idx] = sub[:, 0] == sub[:, 0].max()
    elif d == 2:
        mask[idx] = _front_2d(sub[:, 0], sub[:, 1])
    else:
        mask[idx] = _front_nd(sub, chunk)
    return mask


def _front_2d(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Both maximised. p is dominated iff some q has (x_q > x_p and y_q >= y_p) or (x_q == x_p and y_q > y_p)."""
    order = np.lexsort((-y, -x))  # x descending, ties by y descending
    xs, ys = x[order], y[order]
    # first index of each run of equal x (runs are contiguous after sorting)
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    run_of = np.repeat(np.arange(starts.size), np.diff(np.r_[starts, xs.size]))
    run_max_y = ys[starts]  # sorted by y descending inside a run
    # best y among points with strictly larger x: running max over the previous runs
    prev_best = np.r_[-np.inf, np.maximum.accumulate(run_max_y)[:-1]]
    dominated = (prev_best[run_of] >= ys) | (run_max_y[run_of] > ys)
    out = np.empty_like(dominated)
    out[order] = ~dominated
    return out


def _front_nd(pts: np.ndarray, chunk: int) -> np.ndarray:
    n = pts.shape[0]
    keep = np.ones(n, dtype=bool)
    for start in range(0, n, chunk):
        block = pts[start : start + chunk]  # (b, d): is each of these dominated by some row of pts?
        ge = (pts[None, :, :] >= block[:, None, :]).all(axis=2)
        gt = (pts[None, :, :] > block[:, None, :]).any(axis=2)
        keep[start : start + chunk] = ~(ge & gt).any(axis=1)
    return keep


def pareto_front(frame: pd.DataFrame, objectives: Mapping[str, str]) -> pd.Series:
    """Boolean Series (index of ``frame``): True for rows on the Pareto front of ``objectives``.

    objectives: column -> "max" or "min", e.g. ``{"clean_acc": "max", "ece": "min"}``.
    """
    if not objectives:
        raise ValueError("objectives must name at least one column")
    for col, sense in objectives.items():
        if col not in frame.columns:
            raise ValueError(f"objective column {col!r} not in the frame; columns: {', '.join(map(str, frame.columns))}")
        if sense not in SENSES:
            raise ValueError(f"sense of {col!r} must be one of {', '.join(SENSES)}; got {sense!r}")
    cols = list(objectives)
    values = frame[cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    mask = pareto_mask(values, [objectives[c] == "max" for c in cols])
    return pd.Series(mask, index=frame.index, name="pareto")
