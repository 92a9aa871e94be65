"""Conv2D -> ReLU (-> 2x2 MaxPool2D) run as one block: the numbers of the layers one by one."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import gpunet
from gpunet import backend
from gpunet.nn import Conv2D, Dense, Flatten, LeakyReLU, MaxPool2D, ReLU, Sequential, Tanh, fusion
from gpunet.ops import conv_block

needs_kernel = pytest.mark.skipif(
    backend.name() != "numpy", reason="the fused kernel is NumPy's (elsewhere: layer by layer)"
)


def _close(actual, expected, dtype):
    tol = 2e-5 if dtype == "float32" else 1e-11
    np.testing.assert_allclose(
        gpunet.to_numpy(actual), gpunet.to_numpy(expected), rtol=tol, atol=tol
    )


@needs_kernel
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    ("shape", "kernel", "padding", "stride", "pool"),
    [
        ((3, 2, 8, 8), (3, 3), (1, 1), (1, 1), True),
        ((2, 3, 9, 6), (2, 3), (0, 1), (1, 1), True),
        ((2, 1, 7, 7), (3, 3), (1, 1), (2, 1), False),
        ((1, 4, 6, 10), (5, 5), (2, 2), (1, 1), True),
    ],
)
def test_fused_kernel_matches_the_three_ops(
    shape, kernel, padding, stride, pool, dtype, rng, monkeypatch
):
    x = gpunet.asarray(rng.standard_normal(shape), dtype=dtype)
    weight = gpunet.asarray(rng.standard_normal((5, shape[1], *kernel)), dtype=dtype)
    bias = gpunet.asarray(rng.standard_normal(5), dtype=dtype)
    geometry = (stride, padding, (1, 1))
    y, cache = conv_block.conv2d_relu(x, weight, bias, *geometry, pool=pool)
    assert cache.fast
    grad = gpunet.asarray(rng.standard_normal(tuple(y.shape)), dtype=dtype)
    grads = conv_block.conv2d_relu_backward(grad, cache, weight)
    monkeypatch.setenv("GPUNET_KERNELS", "0")
    y_ref, cache_ref = conv_block.conv2d_relu(x, weight, bias, *geometry, pool=pool)
    assert not cache_ref.fast
    grads_ref = conv_block.conv2d_relu_backward(grad, cache_ref, weight)
    assert y.shape == y_ref.shape and y.dtype == y_ref.dtype
    _close(y, y_ref, dtype)
    for actual, expected in zip(grads, grads_ref, strict=True):
        _close(actual, expected, dtype)


@needs_kernel
def test_fused_pooling_lets_a_nan_through_as_the_layers_do(monkeypatch):
    x = np.ones((1, 1, 4, 4), dtype=np.float32)
    x[0, 0, 1, 2] = np.nan
    weight, bias = np.ones((2, 1, 1, 1), dtype=np.float32), np.zeros(2, dtype=np.float32)
    y, cache = conv_block.conv2d_relu(x, weight, bias, (1, 1), (0, 0), (1, 1), pool=True)
    grads = conv_block.conv2d_relu_backward(np.ones_like(y), cache, weight)
    monkeypatch.setenv("GPUNET_KERNELS", "0")
    y_ref, cache_ref = conv_block.conv2d_relu(x, weight, bias, (1, 1), (0, 0), (1, 1), pool=True)
    grads_ref = conv_block.conv2d_relu_backward(np.ones_like(y), cache_ref, weight)
    np.testing.assert_array_equal(y, y_ref)
    assert np.isnan(y[0, :, 0, 1]).all() and not np.isnan(y[0, :, 1, :]).any()
    for actual, expected in zip(grads, grads_ref, strict=True):
        np.testing.assert_array_equal(actual, expected)


def _cnn(input_grad=True):
    gpunet.seed(3)
    first = Conv2D(2, 4, 3, padding=1)
    first.input_grad = input_grad
    return Sequential(
        first, ReLU(), MaxPool2D(2),
        Conv2D(4, 6, 3, padding=1), ReLU(), MaxPool2D(2),
        Conv2D(6, 6, 3), ReLU(),
        Flatten(), Dense(6, 3),
    )  # fmt: skip


@pytest.mark.parametrize("input_grad", [True, False])
def test_a_cnn_in_blocks_gives_the_numbers_of_its_layers(input_grad, rng, monkeypatch):
    x = gpunet.asarray(rng.standard_normal((5, 2, 12, 12)), dtype="float64")
    grad = gpunet.asarray(rng.standard_normal((5, 3)), dtype="float64")
    results = []
    for fused in (True, False):
        model = _cnn(input_grad).astype("float64")
        monkeypatch.setattr(fusion, "fused_kernel_available", lambda xp, on=fused: on)
        y = model(x)
        grad_x = model.backward(grad)
        kinds = [type(block or model[index]).__name__ for block, index in model._stages]
        results.append((y, grad_x, [p.grad for p in model.parameters()], kinds))
    (y, grad_x, grads, kinds), (y_ref, grad_x_ref, grads_ref, kinds_ref) = results
    assert kinds == ["ConvBlock", "ConvBlock", "ConvBlock", "Flatten", "Dense"]
    assert kinds_ref == [type(layer).__name__ for layer in _cnn()]
    _close(y, y_ref, "float64")
    assert (grad_x is None) == (not input_grad)
    if input_grad:
        _close(grad_x, grad_x_ref, "float64")
    for actual, expected in zip(grads, grads_ref, strict=True):
        _close(actual, expected, "float64")


def test_only_conv_relu_and_2x2_pools_are_fused(monkeypatch):
    monkeypatch.setattr(fusion, "fused_kernel_available", lambda xp: True)
    x = gpunet.asarray(np.zeros((1, 1, 4, 4)))
    layers = [
        Conv2D(1, 1, 1), ReLU(), MaxPool2D(3, stride=2),  # a pool other than 2x2
        Conv2D(1, 1, 1), Tanh(),
        Conv2D(1, 1, 1), LeakyReLU(),
        Conv2D(1, 1, 1), ReLU(), MaxPool2D(2),
        Conv2D(1, 1, 1), ReLU(),
    ]  # fmt: skip
    found = fusion.stages(layers, x)
    described = [
        (type(block or layers[index]).__name__, index, getattr(block, "pool", None) is not None)
        for block, index in found
    ]
    assert described == [
        ("ConvBlock", 0, False), ("MaxPool2D", 2, False),
        ("Conv2D", 3, False), ("Tanh", 4, False),
        ("Conv2D", 5, False), ("LeakyReLU", 6, False),
        ("ConvBlock", 7, True),
        ("ConvBlock", 10, False),
    ]  # fmt: skip


@needs_kernel
def test_a_pool_whose_windows_do_not_tile_runs_after_the_block(rng):
    model = Sequential(Conv2D(1, 2, 2), ReLU(), MaxPool2D(2))  # 6x6 -> 5x5: odd
    x = gpunet.asarray(rng.standard_normal((2, 1, 6, 6)), dtype="float64")
    model.astype("float64")
    y = model(x)
    y_ref = model[2](model[1](model[0](x)))
    _close(y, y_ref, "float64")
    assert tuple(y.shape) == (2, 2, 2, 2)
    grad = np.ones(tuple(y.shape))
    grad_x = model.backward(grad)
    _close(grad_x, model[0].backward(model[1].backward(model[2].backward(grad))), "float64")


@needs_kernel
def test_a_forward_between_a_fused_forward_and_its_backward_changes_nothing(rng):
    model = _cnn()
    x1, x2 = (gpunet.asarray(rng.standard_normal((3, 2, 12, 12))) for _ in range(2))
    grad = gpunet.asarray(rng.standard_normal((3, 3)))
    model(x1)
    expected_input = gpunet.to_numpy(model.backward(grad)).copy()
    expected = [gpunet.to_numpy(p.grad).copy() for p in model.parameters()]
    model.zero_grad()
    model(x1)
    twin = copy.copy(model)  # forward 1's stages and the layers' own saved arrays
    twin.layers_ = [copy.copy(layer) for layer in model.layers_]
    model(x2)  # a validation batch between forward and backward
    np.testing.assert_array_equal(gpunet.to_numpy(twin.backward(grad)), expected_input)
    for want, p in zip(expected, model.parameters(), strict=True):
        np.testing.assert_array_equal(gpunet.to_numpy(p.grad), want)


@needs_kernel
def test_a_fused_block_checks_its_gradient_and_its_layers_know_they_did_not_run(rng):
    model = Sequential(Conv2D(1, 2, 3, padding=1), ReLU(), MaxPool2D(2))
    y = model(gpunet.asarray(rng.standard_normal((2, 1, 4, 4))))
    with pytest.raises(
        ValueError,
        match=r"MaxPool2D.backward: expected a gradient of shape \(2, 2, 2, 2\), got shape \(2, 2, 4, 4\)",
    ):
        model.backward(np.ones((2, 2, 4, 4), dtype=np.float32))
    with pytest.raises(RuntimeError, match=r"Conv2D.backward: called before forward"):
        model[0].backward(np.ones((2, 2, 4, 4), dtype=np.float32))
    assert model.backward(np.ones(tuple(y.shape), dtype=np.float32)).shape == (2, 1, 4, 4)
