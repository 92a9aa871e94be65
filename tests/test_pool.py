"""MaxPool2D, AvgPool2D, GlobalAvgPool2D and Flatten: values, gradients, bad input."""

from __future__ import annotations

import numpy as np
import pytest

import gpunet
from gpunet.nn import AvgPool2D, Flatten, GlobalAvgPool2D, MaxPool2D


@pytest.fixture(params=["kernels", "reference"])
def path(request, monkeypatch):
    if request.param == "reference":
        monkeypatch.setenv("GPUNET_KERNELS", "0")
    return request.param


# (kernel, stride, padding, input (N, C, H, W))
CONFIGS = {
    "2x2": (2, None, 0, (2, 3, 4, 6)),
    "3x2-stride1-overlap": ((3, 2), 1, 0, (1, 2, 5, 4)),
    "3-stride2-pad1": (3, 2, 1, (2, 5, 5, 7)),
    "2x4-pad-1x2": ((2, 4), (1, 2), (1, 2), (1, 1, 4, 5)),
}


@pytest.mark.parametrize("layer_type", [MaxPool2D, AvgPool2D])
@pytest.mark.parametrize("config", list(CONFIGS.values()), ids=list(CONFIGS))
def test_pool_gradient_check(layer_type, config, path, rng):
    kernel, stride, padding, shape = config
    # Distinct values keep each window's maximum away from ties (max is not smooth there).
    x = rng.permutation(np.prod(shape)).reshape(shape) / np.prod(shape)
    result = gpunet.gradcheck(layer_type(kernel, stride, padding), x)
    assert result.max_error < 1e-8, str(result)


def test_max_pool_values_and_padding_as_minus_infinity(path):
    x = -np.arange(16.0).reshape(1, 1, 4, 4)  # all negative: zero padding would win
    layer = MaxPool2D(3, stride=2, padding=1)
    y = gpunet.to_numpy(layer(gpunet.asarray(x, dtype="float64")))
    np.testing.assert_array_equal(y, [[[[0.0, -1.0], [-4.0, -5.0]]]])


def test_max_pool_gradient_goes_to_first_maximum_on_ties(path):
    x = gpunet.asarray(np.ones((1, 1, 2, 2)), dtype="float64")
    layer = MaxPool2D(2)
    layer(x)
    grad = layer.backward(gpunet.asarray(np.full((1, 1, 1, 1), 3.0), dtype="float64"))
    np.testing.assert_array_equal(gpunet.to_numpy(grad), [[[[3.0, 0.0], [0.0, 0.0]]]])


def test_avg_pool_counts_padded_zeros(path):
    x = gpunet.asarray(np.ones((1, 1, 2, 2)), dtype="float64")
    y = gpunet.to_numpy(AvgPool2D(2, stride=1, padding=1)(x))
    np.testing.assert_allclose(y[0, 0], [[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]])


def test_global_avg_pool_values_and_gradient(rng):
    x = rng.standard_normal((2, 3, 4, 5))
    y = GlobalAvgPool2D()(gpunet.asarray(x, dtype="float64"))
    assert tuple(y.shape) == (2, 3)
    np.testing.assert_allclose(gpunet.to_numpy(y), x.mean(axis=(2, 3)), rtol=1e-12)
    result = gpunet.gradcheck(GlobalAvgPool2D(), x)
    assert result.max_error < 1e-8, str(result)


def test_flatten_round_trip(rng):
    x = rng.standard_normal((2, 3, 4, 5))
    layer = Flatten()
    y = layer(gpunet.asarray(x, dtype="float64"))
    np.testing.assert_array_equal(gpunet.to_numpy(y), x.reshape(2, 60))
    grad = layer.backward(y)
    np.testing.assert_array_equal(gpunet.to_numpy(grad), x)


def test_output_shapes():
    assert MaxPool2D(2).output_shape((8, 3, 7, 9)) == (8, 3, 3, 4)
    assert AvgPool2D((3, 2), stride=(2, 1), padding=1).output_shape((1, 1, 6, 5)) == (1, 1, 3, 6)


@pytest.mark.parametrize("layer_type", [MaxPool2D, AvgPool2D])
def test_pool_rejects_bad_input(layer_type):
    name = layer_type.__name__
    with pytest.raises(
        ValueError, match=rf"{name}.forward: expected input of shape \(N, C, H, W\), got shape"
    ):
        layer_type(2)(gpunet.asarray(np.zeros((3, 4, 4))))
    with pytest.raises(
        ValueError, match=rf"{name}.forward: kernel 5x5 is larger than the padded input"
    ):
        layer_type(5)(gpunet.asarray(np.zeros((1, 1, 4, 8))))
    with pytest.raises(ValueError, match=rf"{name}: stride must be >= 1, got 0"):
        layer_type(2, stride=0)
    with pytest.raises(TypeError, match=rf"{name}: kernel_size must be an int or a pair"):
        layer_type(1.5)
    with pytest.raises(ValueError, match=rf"{name}: padding must be at most half the kernel"):
        layer_type(2, padding=2)


def test_global_pool_and_flatten_reject_bad_input():
    with pytest.raises(
        ValueError, match=r"GlobalAvgPool2D.forward: expected input of shape \(N, C, H, W\)"
    ):
        GlobalAvgPool2D()(gpunet.asarray(np.zeros((2, 3))))
    with pytest.raises(
        ValueError,
        match=r"Flatten.forward: expected input of shape \(N, d1, \.\.\.\), got shape \(3,\)",
    ):
        Flatten()(gpunet.asarray(np.zeros(3)))
