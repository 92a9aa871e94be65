"""Conv2D and the conv2d op: gradients, shapes, initialisation, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

import gpunet
from gpunet.nn import Conv2D
from gpunet.ops.conv import col2im, im2col


@pytest.fixture(params=["kernels", "reference"])
def path(request, monkeypatch):
    """Run the test on the Numba kernels (where the backend has them) and the reference."""
    if request.param == "reference":
        monkeypatch.setenv("GPUNET_KERNELS", "0")
    return request.param


# (in, out, kernel, stride, padding, dilation, input (N, H, W))
CONFIGS = {
    "3x5-kernel-nonsquare": (3, 2, (3, 5), 1, 0, 1, (2, 5, 7)),
    "stride2-pad1": (2, 3, 3, 2, 1, 1, (2, 6, 5)),
    "pad2-batch1": (3, 2, 3, 1, 2, 1, (1, 4, 5)),
    "dilation2": (2, 5, 3, 1, 1, 2, (1, 6, 7)),
    "kernel1": (5, 3, 1, 1, 0, 1, (2, 3, 4)),
    "mixed-pairs": (3, 2, (2, 3), (2, 1), (1, 2), (1, 2), (1, 5, 6)),
}


@pytest.mark.parametrize("config", list(CONFIGS.values()), ids=list(CONFIGS))
def test_conv2d_gradient_check(config, path, rng):
    c_in, c_out, kernel, stride, padding, dilation, (n, h, w) = config
    layer = Conv2D(c_in, c_out, kernel, stride, padding, dilation).astype("float64")
    result = gpunet.gradcheck(layer, rng.standard_normal((n, c_in, h, w)))
    assert result.max_error < 1e-7, str(result)


def test_conv2d_without_bias_gradient_check(path, rng):
    layer = Conv2D(2, 3, 3, padding=1, bias=False).astype("float64")
    assert layer.bias is None and len(layer.parameters()) == 1
    result = gpunet.gradcheck(layer, rng.standard_normal((2, 2, 4, 3)))
    assert result.max_error < 1e-7, str(result)


def test_conv2d_forward_matches_direct_sum(path, rng):
    layer = Conv2D(2, 3, (2, 3), stride=(1, 2), padding=1).astype("float64")
    x = rng.standard_normal((2, 2, 4, 5))
    w, b = gpunet.to_numpy(layer.weight.data), gpunet.to_numpy(layer.bias.data)
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    expected = np.zeros((2, 3, 5, 3))
    for oh in range(5):
        for ow in range(3):
            patch = padded[:, :, oh : oh + 2, 2 * ow : 2 * ow + 3]
            expected[:, :, oh, ow] = np.einsum("nchw,ochw->no", patch, w) + b
    y = gpunet.to_numpy(layer(gpunet.asarray(x, dtype="float64")))
    assert y.shape == layer.output_shape(x.shape) == (2, 3, 5, 3)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


def test_first_layer_can_skip_the_input_gradient(rng):
    layer = Conv2D(1, 2, 3).astype("float64")
    layer.input_grad = False
    y = layer(gpunet.asarray(rng.standard_normal((2, 1, 5, 5)), dtype="float64"))
    assert layer.backward(y) is None
    assert layer.weight.grad is not None and layer.bias.grad is not None


def test_im2col_and_col2im_are_adjoint(rng):
    """<im2col(x), c> == <x, col2im(c)> for the reference pair."""
    shape, geometry = (2, 3, 5, 6), ((3, 2), (2, 1), (1, 2), (2, 1))
    x = gpunet.asarray(rng.standard_normal(shape), dtype="float64")
    col = im2col(x, *geometry)
    c = gpunet.asarray(rng.standard_normal(tuple(col.shape)), dtype="float64")
    left = float(np.sum(gpunet.to_numpy(col) * gpunet.to_numpy(c)))
    right = float(np.sum(gpunet.to_numpy(x) * gpunet.to_numpy(col2im(c, shape, *geometry))))
    assert abs(left - right) < 1e-10 * max(1.0, abs(left))


def test_default_init_is_pytorchs_uniform():
    layer = Conv2D(4, 8, 3)
    bound = 1 / math.sqrt(4 * 3 * 3)
    w, b = gpunet.to_numpy(layer.weight.data), gpunet.to_numpy(layer.bias.data)
    assert w.shape == (8, 4, 3, 3) and b.shape == (8,) and w.dtype == np.float32
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.8 * bound
    assert np.abs(b).max() <= bound and np.abs(b).max() > 0.3 * bound


def test_named_init_and_zero_bias():
    layer = Conv2D(2, 3, 3, init="he_uniform")
    assert np.all(gpunet.to_numpy(layer.bias.data) == 0)
    assert np.abs(gpunet.to_numpy(layer.weight.data)).max() <= math.sqrt(6 / 18)


def test_state_dict_names_and_shapes():
    state = Conv2D(3, 4, (2, 5)).state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == {
        "weight": (4, 3, 2, 5),
        "bias": (4,),
    }


def test_conv2d_rejects_3d_input():
    with pytest.raises(
        ValueError,
        match=r"Conv2D.forward: expected input of shape \(N, 3, H, W\), got shape \(3, 8, 8\)",
    ):
        Conv2D(3, 4, 3)(gpunet.asarray(np.zeros((3, 8, 8))))


def test_conv2d_rejects_wrong_channel_count():
    with pytest.raises(
        ValueError,
        match=r"Conv2D.forward: expected input of shape \(N, 3, H, W\), got shape \(2, 4, 8, 8\)",
    ):
        Conv2D(3, 4, 3)(gpunet.asarray(np.zeros((2, 4, 8, 8))))


def test_conv2d_rejects_kernel_larger_than_padded_input():
    with pytest.raises(
        ValueError,
        match=r"Conv2D.forward: kernel 5x5 .* larger than the padded input 4x6; "
        r"got input shape \(1, 1, 2, 4\) with padding \(1, 1\)",
    ):
        Conv2D(1, 1, 5, padding=1)(gpunet.asarray(np.zeros((1, 1, 2, 4))))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"stride": 0}, ValueError, r"Conv2D: stride must be >= 1, got 0"),
        ({"stride": (1, -2)}, ValueError, r"Conv2D: stride must be >= 1, got \(1, -2\)"),
        ({"padding": -1}, ValueError, r"Conv2D: padding must be >= 0, got -1"),
        ({"dilation": 0}, ValueError, r"Conv2D: dilation must be >= 1, got 0"),
        ({"kernel_size": 2.5}, TypeError, r"Conv2D: kernel_size must be an int or a pair"),
        ({"kernel_size": (3, 3, 3)}, TypeError, r"kernel_size must be an int or a pair"),
        ({"stride": True}, TypeError, r"Conv2D: stride must be an int or a pair of ints"),
        ({"in_channels": 0}, ValueError, r"Conv2D: in_channels and out_channels must be >= 1"),
    ],
)
def test_conv2d_rejects_bad_arguments(kwargs, error, message):
    arguments = {"in_channels": 2, "out_channels": 3, "kernel_size": 3, **kwargs}
    with pytest.raises(error, match=message):
        Conv2D(**arguments)
