"""Dropout: inverted scaling, identity in eval mode, backward through the same mask."""

from __future__ import annotations

import numpy as np
import pytest

import gpunet
from gpunet.nn import Dense, Dropout, Sequential


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_expectation_is_kept_and_rate_is_p(p):
    x = gpunet.asarray(np.full((400, 250), 2.0))
    y = gpunet.to_numpy(Dropout(p)(x))
    zeroed = np.mean(y == 0)
    assert zeroed == pytest.approx(p, abs=0.01)
    np.testing.assert_allclose(y[y != 0], 2.0 / (1 - p), rtol=1e-6)
    assert y.mean() == pytest.approx(2.0, rel=0.02)


def test_eval_mode_is_the_identity():
    model = Sequential(Dense(3, 3), Dropout(0.5)).eval()
    x = gpunet.asarray(np.ones((4, 3)))
    layer = model[1]
    assert layer(x) is x
    assert layer.backward(x) is x


def test_backward_uses_the_forward_mask():
    layer = Dropout(0.3)
    x = gpunet.asarray(np.ones((50, 40)), dtype="float64")
    y = gpunet.to_numpy(layer(x))
    grad = gpunet.to_numpy(layer.backward(gpunet.asarray(np.full((50, 40), 3.0), dtype="float64")))
    np.testing.assert_allclose(grad, 3.0 * y, rtol=1e-15)


def test_masks_differ_between_calls_but_repeat_with_the_seed():
    x = gpunet.asarray(np.ones((20, 20)))
    gpunet.seed(5)
    layer = Dropout(0.5)
    first, second = gpunet.to_numpy(layer(x)), gpunet.to_numpy(layer(x))
    assert not np.array_equal(first, second)
    gpunet.seed(5)
    np.testing.assert_array_equal(gpunet.to_numpy(layer(x)), first)


def test_p_zero_is_the_identity_and_dtype_is_kept():
    x = gpunet.asarray(np.ones((3, 3)), dtype="float64")
    assert Dropout(0.0)(x) is x
    assert Dropout(0.5)(x).dtype == x.dtype


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5])
def test_bad_p_raises(p):
    with pytest.raises(
        ValueError, match=rf"Dropout: p must be a finite number in \[0, 1\), got {p}"
    ):
        Dropout(p)
