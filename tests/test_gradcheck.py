"""The gradient checker catches wrong gradients and says where."""

from __future__ import annotations

import numpy as np
import pytest

import gpunet
from gpunet.nn import Dense, Layer


class WrongSquare(Layer):
    """y = x**2 with a backward that is off by a factor of 1.5 for element (0, 1)."""

    def forward(self, x):
        self._x = x
        return x * x

    def backward(self, grad_out):
        xp = gpunet.backend.namespace(grad_out)
        factor = gpunet.asarray(np.array([[1.0, 1.5], [1.0, 1.0]]), dtype="float64")
        return xp.multiply(2 * self._x * grad_out, factor)


def test_reports_the_wrong_element(rng):
    result = gpunet.gradcheck(WrongSquare(), rng.uniform(1, 2, size=(2, 2)))
    assert not result.ok
    assert result.where == "input[0, 1]"
    assert result.max_error > 0.1
    assert "FAILED" in str(result)


def test_passes_a_correct_layer(rng):
    result = gpunet.gradcheck(Dense(2, 2).astype("float64"), rng.standard_normal((3, 2)))
    assert result.ok and bool(result)
    assert result.max_error < 1e-8


def test_refuses_float32_parameters(rng):
    with pytest.raises(
        ValueError,
        match=r"parameter 'weight' of Dense is .*float32; call layer.astype\('float64'\) first",
    ):
        gpunet.gradcheck(Dense(2, 2), rng.standard_normal((3, 2)))
