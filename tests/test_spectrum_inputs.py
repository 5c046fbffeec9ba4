"""Bad weights and sizes given to the exact spectral routines are refused up front with a ValueError that
says what is wrong with the argument, instead of an error (or a silently wrong answer) from deep in torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from svconv.spectrum import (
    clip_conv_singular_values,
    clip_to_target,
    conv_singular_values,
    conv_spectral_norm,
    gram_iteration_bound,
)

ROUTINES = {
    "conv_singular_values": lambda w, n: conv_singular_values(w, n),
    "conv_spectral_norm": lambda w, n: conv_spectral_norm(w, n),
    "clip_conv_singular_values": lambda w, n: clip_conv_singular_values(w, n, 1.0),
    "clip_to_target": lambda w, n: clip_to_target(w, n, 1.0),
    "gram_iteration_bound": lambda w, n: gram_iteration_bound(w, n),
}


def _weight() -> torch.Tensor:
    return torch.randn(3, 2, 3, 3, generator=torch.Generator().manual_seed(0))


def _with(value: float) -> torch.Tensor:
    w = _weight()
    w[1, 0, 2, 1] = value
    return w


BAD_WEIGHTS = [
    ("nan", lambda: _with(float("nan")), ["1 non-finite", "NaN"]),
    ("inf", lambda: _with(float("-inf")), ["1 non-finite", "inf"]),
    ("empty", lambda: torch.empty(0, 2, 3, 3), ["empty", "(0, 2, 3, 3)"]),
    ("float16", lambda: _weight().half(), ["float32 or float64", "torch.float16", ".float()"]),
    ("bfloat16", lambda: _weight().bfloat16(), ["float32 or float64", "torch.bfloat16"]),
    ("int", lambda: _weight().long(), ["float32 or float64", "torch.int64"]),
]


@pytest.mark.parametrize("routine", ROUTINES)
@pytest.mark.parametrize("case, make, fragments", BAD_WEIGHTS, ids=[c[0] for c in BAD_WEIGHTS])
def test_bad_weights_are_refused_saying_what_is_wrong(routine, case, make, fragments):
    with pytest.raises(ValueError) as exc:
        ROUTINES[routine](make(), 8)
    msg = str(exc.value)
    assert msg.startswith("weight "), msg
    for f in fragments:
        assert f in msg, msg


@pytest.mark.parametrize("size", [8.5, (8, 8.5), (8.0, 8), "8"])
def test_a_fractional_input_size_is_refused_not_truncated(size):
    with pytest.raises(ValueError, match="input_size must be an int or a sequence of 2 ints"):
        conv_singular_values(_weight(), size)


def test_integer_sizes_of_any_int_type_give_the_same_spectrum():
    w = _weight()
    ref = conv_singular_values(w, 8)
    for size in ((8, 8), [8, 8], np.int64(8), (np.int32(8), 8)):
        assert torch.equal(conv_singular_values(w, size), ref)


def test_counts_refuse_bools():
    from svconv.spectrum import power_iteration

    with pytest.raises(ValueError, match="n_iter must be an int >= 1"):
        power_iteration(torch.eye(3), (3,), n_iter=True)
