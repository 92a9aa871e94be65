"""Batch normalisation layers with running statistics: BatchNorm1D and BatchNorm2D."""

from __future__ import annotations

import math
from typing import Any

from gpunet import checks
from gpunet import init as initializers
from gpunet.nn.layer import Layer
from gpunet.nn.parameter import Parameter
from gpunet.ops.batchnorm import batch_norm, batch_norm_backward


class _BatchNorm(Layer):
    """Normalisation per feature (axis 1), PyTorch's semantics.

    In training mode the batch's mean and biased variance normalise the input and the
    running statistics move towards the batch's (the variance unbiased); in eval mode
    the running statistics normalise. See ``gpunet.ops.batchnorm`` for the math.
    """

    buffers = ("running_mean", "running_var")
    _ndims: tuple[int, ...] = ()
    _layout = ""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = True,
        dtype: Any = None,
    ):
        name = type(self).__name__
        self.num_features = checks.integer(num_features, name, "num_features", minimum=1)
        self.eps = checks.number(eps, name, "eps", 0, low_open=True)
        self.momentum = checks.number(momentum, name, "momentum", 0, 1)
        checks.flag(affine, name, "affine")
        shape = (num_features,)
        self.weight = Parameter(initializers.ones(shape, dtype=dtype), "weight") if affine else None
        self.bias = Parameter(initializers.zeros(shape, dtype=dtype), "bias") if affine else None
        self.running_mean = initializers.zeros(shape, dtype=dtype)
        self.running_var = initializers.ones(shape, dtype=dtype)

    def forward(self, x: Any) -> Any:
        x = self.checked_input(x, like=self.running_mean)
        if x.ndim not in self._ndims or x.shape[1] != self.num_features:
            raise ValueError(
                f"{type(self).__name__}.forward: expected input of shape "
                f"{self._layout.format(self.num_features)}, got shape {tuple(x.shape)}"
            )
        if self.training and math.prod(x.shape) // x.shape[1] < 2:
            raise ValueError(
                f"{type(self).__name__}.forward: training needs more than one value per "
                f"feature, got input shape {tuple(x.shape)}"
            )
        weight = self.weight.data if self.weight is not None else None
        bias = self.bias.data if self.bias is not None else None
        y, self.running_mean, self.running_var, self._cache = batch_norm(
            x,
            weight,
            bias,
            self.running_mean,
            self.running_var,
            self.training,
            self.momentum,
            self.eps,
        )
        return self.remember_output(y)

    def backward(self, grad_out: Any) -> Any:
        grad_out = self.checked_gradient(grad_out)
        weight = self.weight.data if self.weight is not None else None
        grad_in, weight_grad, bias_grad = batch_norm_backward(grad_out, self._cache, weight)
        if self.weight is not None:
            self.weight.accumulate(weight_grad)
            self.bias.accumulate(bias_grad)
        return grad_in

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.num_features}, eps={self.eps}, "
            f"momentum={self.momentum}, affine={self.weight is not None})"
        )


class BatchNorm1D(_BatchNorm):
    """Batch normalisation of ``(N, C)`` or ``(N, C, L)`` input (PyTorch's ``BatchNorm1d``).

    Args:
        num_features: C.
        eps: added to the variance (default 1e-5).
        momentum: weight of each new batch in the running statistics (default 0.1).
        affine: learn ``weight`` (starts at 1) and ``bias`` (starts at 0) (default True).
        dtype: parameter and buffer dtype (default float32).

    Buffers ``running_mean`` (starts at 0) and ``running_var`` (starts at 1) are saved by
    ``state_dict``.
    """

    _ndims = (2, 3)
    _layout = "(N, {0}) or (N, {0}, L)"


class BatchNorm2D(_BatchNorm):
    """Batch normalisation of NCHW images per channel (PyTorch's ``BatchNorm2d``).

    Args:
        num_features: C.
        eps: added to the variance (default 1e-5).
        momentum: weight of each new batch in the running statistics (default 0.1).
        affine: learn ``weight`` (starts at 1) and ``bias`` (starts at 0) (default True).
        dtype: parameter and buffer dtype (default float32).

    Buffers ``running_mean`` (starts at 0) and ``running_var`` (starts at 1) are saved by
    ``state_dict``.
    """

    _ndims = (4,)
    _layout = "(N, {0}, H, W)"
