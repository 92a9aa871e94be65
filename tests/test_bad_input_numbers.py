"""NaN and Inf take the same way through the kernel path and the reference path, one test
(or more) per kernel family: convolution, pooling, activations, optimizer updates."""

from __future__ import annotations

import math

import numpy as np
import pytest

import gpunet
from gpunet import backend
from gpunet.nn import AvgPool2D, Conv2D, MaxPool2D, Parameter, ReLU
from gpunet.optim import SGD, Adagrad, Adam, AdamW, RMSprop

NAN, INF = math.nan, math.inf

pytestmark = pytest.mark.skipif(
    backend.name() == "array_api_strict",
    reason="array-api-strict runs the reference path only: there is no kernel path to compare",
)


def on_both_paths(monkeypatch, run):
    """``run()`` with the kernels (GPUNET_KERNELS=1) and with the reference (0), as NumPy.

    NumPy's warnings about invalid values (Inf - Inf) are silenced: the numbers are
    what is compared.
    """
    results = []
    for switch in ("1", "0"):
        monkeypatch.setenv("GPUNET_KERNELS", switch)
        gpunet.seed(0)
        with np.errstate(all="ignore"):
            results.append([None if r is None else gpunet.to_numpy(r) for r in run()])
    return results


def assert_same_numbers(kernel, reference, rtol=1e-5):
    """The same NaN, +Inf and -Inf positions, and close finite values."""
    for got, want in zip(kernel, reference, strict=True):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want))
        np.testing.assert_array_equal(np.isneginf(got), np.isneginf(want))
        finite = np.isfinite(want)
        np.testing.assert_allclose(got[finite], want[finite], rtol=rtol, atol=1e-5)


def image(shape, specials, seed=0):
    values = np.random.default_rng(seed).normal(size=shape)
    for index, value in specials.items():
        values[index] = value
    return gpunet.asarray(values, dtype="float32")


# --------------------------------------------------------------------------- convolution


@pytest.mark.parametrize("special", [NAN, INF, -INF])
def test_convolution_propagates_nan_and_inf_alike(special, monkeypatch):
    x = image((2, 2, 5, 5), {(0, 1, 2, 2): special, (1, 0, 0, 4): special})
    grad = image((2, 3, 5, 5), {(1, 2, 4, 4): special}, seed=1)

    def run():
        layer = Conv2D(2, 3, 3, padding=1)
        y = layer(x)
        dx = layer.backward(grad)
        return [y, dx, layer.weight.grad, layer.bias.grad]

    kernel, reference = on_both_paths(monkeypatch, run)
    assert np.isnan(reference[0]).any() or np.isinf(reference[0]).any()
    assert_same_numbers(kernel, reference)


# --------------------------------------------------------------------------- pooling


def test_a_nan_wins_its_max_pool_window_on_both_paths(monkeypatch):
    # windows of 2x2: the NaN is last in its window, an Inf and a -Inf elsewhere
    x = gpunet.asarray(
        np.array(
            [[[[1.0, 2.0, 5.0, INF], [3.0, NAN, 0.0, 1.0],
               [-INF, -INF, 7.0, 8.0], [-INF, -INF, 9.0, NAN]]]]
        ),
        dtype="float32",
    )  # fmt: skip
    grad = gpunet.asarray(np.array([[[[10.0, 20.0], [30.0, 40.0]]]]), dtype="float32")

    def run():
        layer = MaxPool2D(2)
        return [layer(x), layer.backward(grad)]

    kernel, reference = on_both_paths(monkeypatch, run)
    for y, dx in (kernel, reference):
        np.testing.assert_array_equal(y[0, 0], [[NAN, INF], [-INF, NAN]])
        # each output's gradient goes to the input that won its window
        np.testing.assert_array_equal(dx[0, 0, 1, 1], 10.0)  # the NaN
        np.testing.assert_array_equal(dx[0, 0, 0, 3], 20.0)  # the Inf
        np.testing.assert_array_equal(dx[0, 0, 2, 0], 30.0)  # the first -Inf
        np.testing.assert_array_equal(dx[0, 0, 3, 3], 40.0)  # the NaN, last in its window
        assert dx.sum() == 100.0
    assert_same_numbers(kernel, reference)


@pytest.mark.parametrize("layer_type", [MaxPool2D, AvgPool2D])
@pytest.mark.parametrize("special", [NAN, INF, -INF])
def test_pooling_with_padding_and_overlap_propagates_alike(layer_type, special, monkeypatch):
    x = image((2, 3, 6, 5), {(0, 0, 2, 1): special, (1, 2, 3, 2): special, (1, 1, 5, 4): special})
    grad = image((2, 3, 3, 3), {(0, 1, 1, 1): special}, seed=2)

    def run():
        layer = layer_type(3, stride=2, padding=1)
        return [layer(x), layer.backward(grad)]

    kernel, reference = on_both_paths(monkeypatch, run)
    if not (layer_type is MaxPool2D and special == -INF):  # -Inf never wins a window
        assert not np.isfinite(reference[0]).all()
    assert_same_numbers(kernel, reference)


@pytest.mark.parametrize("special", [NAN, INF])
def test_average_pool_with_a_special_at_the_first_element_of_a_plane(special, monkeypatch):
    x = image((1, 1, 4, 4), {(0, 0, 0, 0): special})

    def run():
        return [AvgPool2D(2)(x)]

    assert_same_numbers(*on_both_paths(monkeypatch, run))


def test_the_fast_two_by_two_max_pool_agrees_on_specials(monkeypatch):
    x = image((2, 2, 4, 6), {(0, 0, 1, 1): NAN, (0, 1, 2, 3): INF, (1, 0, 0, 0): -INF})

    def run():
        layer = MaxPool2D(2)
        y = layer(x)
        return [y, layer.backward(gpunet.asarray(np.ones(tuple(y.shape)), dtype="float32"))]

    assert_same_numbers(*on_both_paths(monkeypatch, run))


# --------------------------------------------------------------------------- activations


def test_relu_keeps_nan_and_inf_on_both_paths(monkeypatch):
    x = gpunet.asarray(np.array([[NAN, INF, -INF, -1.0, 0.0, 2.0]]), dtype="float32")
    grad = gpunet.asarray(np.array([[1.0, NAN, INF, INF, 1.0, -INF]]), dtype="float32")

    def run():
        layer = ReLU()
        return [layer(x), layer.backward(grad)]

    kernel, reference = on_both_paths(monkeypatch, run)
    np.testing.assert_array_equal(reference[0], [[NAN, INF, 0.0, 0.0, 0.0, 2.0]])
    # the gradient passes where x > 0, and NaN * 0 / Inf * 0 stay NaN as in the product
    np.testing.assert_array_equal(reference[1], [[0.0, NAN, NAN, NAN, 0.0, -INF]])
    assert_same_numbers(kernel, reference, rtol=0)


# --------------------------------------------------------------------------- optimizers

OPTIMIZERS = {
    "SGD": lambda ps: SGD(ps, lr=0.1),
    "SGD-nesterov": lambda ps: SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    "Adagrad": lambda ps: Adagrad(ps, lr=0.1, lr_decay=0.01, weight_decay=0.01),
    "RMSprop": lambda ps: RMSprop(ps, lr=0.01, momentum=0.5, centered=True),
    "Adam": lambda ps: Adam(ps, lr=0.01, weight_decay=0.01),
    "Adam-amsgrad": lambda ps: Adam(ps, lr=0.01, amsgrad=True, weight_decay=0.01),
    "AdamW": lambda ps: AdamW(ps, lr=0.01),
}


def optimized(name, start, grads):
    """A function running optimizer ``name`` on one parameter over ``grads``."""

    def run():
        p = Parameter(gpunet.asarray(start, dtype="float32"), "w")
        optimizer = OPTIMIZERS[name]([p])
        for grad in grads:
            p.grad = gpunet.asarray(grad, dtype="float32")
            optimizer.step()
        state = optimizer.state_dict()["state"]
        return [p.data, *(state[k] for k in sorted(state) if not k.endswith("step"))]

    return run


@pytest.mark.parametrize("name", [name for name in OPTIMIZERS if name != "Adam-amsgrad"])
def test_optimizer_updates_propagate_nan_and_inf_alike(name, monkeypatch):
    start = np.array([1.0, -2.0, 0.1, 0.5, 4.0, 0.25, 3.0, -1.0])
    grads = [np.array([0.5, NAN, 0.1, INF, 0.2, -INF, 0.0, 1e-3])]
    kernel, reference = on_both_paths(monkeypatch, optimized(name, start, grads))
    assert np.isnan(reference[0]).any()
    assert_same_numbers(kernel, reference)


@pytest.mark.parametrize("name", ["SGD-nesterov", "Adagrad", "Adam"])
def test_nan_and_infinite_parameters_with_weight_decay_propagate_alike(name, monkeypatch):
    start = np.array([1.0, -INF, NAN, 0.5, INF, 0.25])
    grads = [np.array([0.5, 0.1, 0.1, INF, 0.2, 0.3]), np.array([0.1, 0.2, 0.3, 0.4, -0.5, NAN])]
    assert_same_numbers(*on_both_paths(monkeypatch, optimized(name, start, grads)))


@pytest.mark.parametrize("name", ["SGD", "RMSprop", "AdamW"])
def test_a_nan_or_infinite_parameter_without_weight_decay(name, monkeypatch):
    start = np.array([INF, -INF, NAN, 1.0])
    grads = [np.array([0.5, 0.1, 0.1, 0.1])]
    assert_same_numbers(*on_both_paths(monkeypatch, optimized(name, start, grads)))


def test_amsgrad_keeps_a_nan_second_moment(monkeypatch):
    start = np.array([1.0, 2.0])
    grads = [np.array([NAN, 0.5])]
    assert_same_numbers(*on_both_paths(monkeypatch, optimized("Adam-amsgrad", start, grads)))
