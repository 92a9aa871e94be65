"""Activations: values, gradient checks in float64, and safety at |x| = 1000."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import gpunet
from gpunet import nn
from gpunet.ops import activations as F

# name -> (layer factory, NumPy formula)
ACTIVATIONS = {
    "sigmoid": (nn.Sigmoid, lambda x: 1 / (1 + np.exp(-x))),
    "tanh": (nn.Tanh, np.tanh),
    "softsign": (nn.Softsign, lambda x: x / (1 + np.abs(x))),
    "relu": (nn.ReLU, lambda x: np.maximum(x, 0)),
    "leaky_relu": (nn.LeakyReLU, lambda x: np.where(x > 0, x, 0.01 * x)),
    "leaky_relu_0.2": (lambda: nn.LeakyReLU(0.2), lambda x: np.where(x > 0, x, 0.2 * x)),
    "softplus": (nn.Softplus, lambda x: np.log1p(np.exp(x))),
    "softmax": (nn.Softmax, lambda x: np.exp(x) / np.exp(x).sum(-1, keepdims=True)),
    "softmax_axis0": (
        lambda: nn.Softmax(axis=0),
        lambda x: np.exp(x) / np.exp(x).sum(0, keepdims=True),
    ),
}


def _inputs(rng, shape=(4, 5)):
    # away from 0 so that the kinks of relu and leaky relu are not straddled
    x = rng.uniform(0.1, 3.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)
    return x


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_values_match_the_formula(name, rng):
    layer_factory, formula = ACTIVATIONS[name]
    x = _inputs(rng)
    y = gpunet.to_numpy(layer_factory()(gpunet.asarray(x, dtype="float64")))
    np.testing.assert_allclose(y, formula(x), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_gradient_check(name, rng):
    layer = ACTIVATIONS[name][0]()
    result = gpunet.gradcheck(layer, _inputs(rng))
    assert result.max_error < 1e-8, str(result)


# the activations whose backward reads their input; the others keep only their output
READS_INPUT = {"softsign", "leaky_relu", "leaky_relu_0.2", "softplus"}


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_only_what_the_backward_reads_is_kept_alive(name, rng):
    """A ReLU after a convolution must not keep the convolution's output alive as well as
    its own: the input is dropped once the forward returns, unless the backward reads it."""
    import weakref

    layer = ACTIVATIONS[name][0]()
    x = gpunet.asarray(_inputs(rng), dtype="float64")
    try:
        alive = weakref.ref(x)
    except TypeError:
        pytest.skip(f"{type(x).__name__} arrays take no weak references")
    y = layer(x)
    del x
    assert (alive() is not None) is (name in READS_INPUT)
    grad = layer.backward(gpunet.asarray(np.ones(tuple(y.shape)), dtype="float64"))
    assert tuple(grad.shape) == tuple(y.shape)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_finite_and_silent_at_large_inputs(name):
    layer = ACTIVATIONS[name][0]()
    x = gpunet.asarray(np.array([[-1000.0, -30.0, 0.0, 30.0, 1000.0]]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = gpunet.to_numpy(layer(x))
        grad = gpunet.to_numpy(layer.backward(gpunet.asarray(np.ones((1, 5)))))
    assert y.dtype == np.float32
    assert np.all(np.isfinite(y)), y
    assert np.all(np.isfinite(grad)), grad


def test_saturated_values_are_exact():
    x = gpunet.asarray(np.array([-1000.0, 1000.0]))
    np.testing.assert_array_equal(gpunet.to_numpy(F.sigmoid(x)), [0.0, 1.0])
    np.testing.assert_array_equal(gpunet.to_numpy(F.softplus(x)), [0.0, 1000.0])
    np.testing.assert_allclose(gpunet.to_numpy(F.softsign(x)), [-1000 / 1001, 1000 / 1001])


def test_log_softmax_is_stable():
    x = gpunet.asarray(np.array([[1000.0, 0.0, -1000.0]]), dtype="float64")
    np.testing.assert_allclose(gpunet.to_numpy(F.log_softmax(x)), [[0.0, -1000.0, -2000.0]])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_relu_kernels_match_reference(dtype, rng, monkeypatch):
    """The one-pass ReLU kernels against the reference, NaN and infinities included."""
    xp = gpunet.backend.xp()
    if gpunet.backend.kernel("relu_forward", xp) is None:
        pytest.skip(f"no ReLU kernel on backend {gpunet.backend.name()}")
    values = rng.standard_normal((3, 4, 5, 6))
    values.flat[:5] = [np.nan, np.inf, -np.inf, 0.0, -0.0]
    x = gpunet.asarray(values, dtype=dtype)
    grad = gpunet.asarray(rng.standard_normal(values.shape), dtype=dtype)
    x_t = xp.permute_dims(x, (0, 1, 3, 2))  # a non-contiguous input
    grad_t = xp.permute_dims(grad, (0, 1, 3, 2))
    fast = [
        F.relu(x),
        F.relu_backward(grad, x, None),
        F.relu(x_t),
        F.relu_backward(grad_t, x_t, None),
    ]
    monkeypatch.setenv("GPUNET_KERNELS", "0")
    reference = [
        F.relu(x),
        F.relu_backward(grad, x, None),
        F.relu(x_t),
        F.relu_backward(grad_t, x_t, None),
    ]
    for actual, expected in zip(fast, reference, strict=True):
        assert actual.shape == expected.shape and actual.dtype == expected.dtype
        np.testing.assert_array_equal(gpunet.to_numpy(actual), gpunet.to_numpy(expected))
