"""Convolution, pooling and batch normalisation against PyTorch, forward and backward."""

from __future__ import annotations

import numpy as np
import pytest

import gpunet
from gpunet.nn import AvgPool2D, BatchNorm1D, BatchNorm2D, Conv2D, MaxPool2D

torch = pytest.importorskip("torch")
F = torch.nn.functional

pytestmark = pytest.mark.crosscheck
DTYPES = ["float32", "float64"]


def _run(layer, x, grad):
    """gpunet's output and input gradient for input ``x`` and output gradient ``grad``."""
    y = layer(gpunet.asarray(x, dtype=x.dtype.name))
    dx = layer.backward(gpunet.asarray(grad, dtype=grad.dtype.name))
    return gpunet.to_numpy(y), gpunet.to_numpy(dx)


def _torch_run(function, x, grad, *params):
    xt = torch.tensor(x, requires_grad=True)
    params = [torch.tensor(p, requires_grad=True) for p in params]
    y = function(xt, *params)
    y.backward(torch.tensor(grad))
    return y.detach().numpy(), xt.grad.numpy(), [p.grad.numpy() for p in params]


def _close(actual, expected, tol):
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol * scale)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("kernel", "stride", "padding", "dilation"),
    [(3, 1, 1, 1), ((3, 5), (2, 1), (1, 2), 1), (3, 2, 2, 2), (1, 1, 0, 1)],
)
def test_conv2d_matches_torch(dtype, kernel, stride, padding, dilation, rng, tol):
    layer = Conv2D(3, 5, kernel, stride, padding, dilation).astype(dtype)
    x = rng.standard_normal((2, 3, 9, 8)).astype(dtype)
    w, b = gpunet.to_numpy(layer.weight.data), gpunet.to_numpy(layer.bias.data)
    grad = rng.standard_normal(layer.output_shape(x.shape)).astype(dtype)
    y, dx = _run(layer, x, grad)

    def conv(xt, wt, bt):
        return F.conv2d(xt, wt, bt, stride, padding, dilation)

    y_t, dx_t, (dw_t, db_t) = _torch_run(conv, x, grad, w, b)
    for ours, theirs in [(y, y_t), (dx, dx_t), (layer.weight.grad, dw_t), (layer.bias.grad, db_t)]:
        _close(gpunet.to_numpy(ours), theirs, tol[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("kernel", "stride", "padding"), [(2, None, 0), (3, 2, 1), ((3, 2), (1, 2), (1, 1))]
)
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pooling_matches_torch(kind, dtype, kernel, stride, padding, rng, tol):
    layer = (MaxPool2D if kind == "max" else AvgPool2D)(kernel, stride, padding)
    x = rng.standard_normal((2, 3, 7, 6)).astype(dtype)
    grad = rng.standard_normal(layer.output_shape(x.shape)).astype(dtype)
    y, dx = _run(layer, x, grad)
    function = F.max_pool2d if kind == "max" else F.avg_pool2d
    y_t, dx_t, _ = _torch_run(lambda xt: function(xt, kernel, stride, padding), x, grad)
    _close(y, y_t, tol[dtype])
    _close(dx, dx_t, tol[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("shape", [(4, 3, 5, 2), (6, 3)], ids=["2d", "1d"])
def test_batch_norm_matches_torch(shape, training, dtype, rng, tol):
    layer = (BatchNorm2D if len(shape) == 4 else BatchNorm1D)(3, momentum=0.3).astype(dtype)
    layer.weight.data = gpunet.asarray(rng.uniform(0.5, 2, 3), dtype=dtype)
    layer.bias.data = gpunet.asarray(rng.standard_normal(3), dtype=dtype)
    running_mean, running_var = rng.standard_normal(3), rng.uniform(0.5, 2, 3)
    layer.running_mean = gpunet.asarray(running_mean, dtype=dtype)
    layer.running_var = gpunet.asarray(running_var, dtype=dtype)
    layer.train(training)
    x = (rng.standard_normal(shape) * 2 + 1).astype(dtype)
    grad = rng.standard_normal(shape).astype(dtype)
    y, dx = _run(layer, x, grad)
    rm_t = torch.tensor(running_mean.astype(dtype))
    rv_t = torch.tensor(running_var.astype(dtype))
    w, b = gpunet.to_numpy(layer.weight.data), gpunet.to_numpy(layer.bias.data)

    def batch_norm(xt, wt, bt):
        return F.batch_norm(xt, rm_t, rv_t, wt, bt, training, 0.3, 1e-5)

    y_t, dx_t, (dw_t, db_t) = _torch_run(batch_norm, x, grad, w, b)
    for ours, theirs in [
        (y, y_t),
        (dx, dx_t),
        (layer.weight.grad, dw_t),
        (layer.bias.grad, db_t),
        (layer.running_mean, rm_t.numpy()),
        (layer.running_var, rv_t.numpy()),
    ]:
        _close(gpunet.to_numpy(ours), theirs, tol[dtype])
