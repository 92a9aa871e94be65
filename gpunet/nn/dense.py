"""Dense: the fully connected layer y = x W + b."""

from __future__ import annotations

from typing import Any

from gpunet import checks, regularizers
from gpunet import init as initializers
from gpunet.backend import namespace
from gpunet.nn.layer import Layer
from gpunet.nn.parameter import Parameter
from gpunet.ops.linear import matmul


class Dense(Layer):
    """Fully connected layer: ``y = x @ weight + bias``.

    Args:
        in_features: size of each input sample.
        out_features: size of each output sample.
        bias: learn an additive bias (default True).
        init: initialiser of the weight, a name from ``gpunet.init`` or a function
            (default ``"xavier_uniform"``, Glorot); the bias starts at zero.
        regularizer: a penalty on the weight such as ``gpunet.regularizers.L2(1e-4)``
            (default None); its gradient is added in backward.
        dtype: parameter dtype (default float32).

    Shapes:
        input ``(N, in_features)`` or ``(N, ..., in_features)``; output the same with
        ``out_features`` last. ``weight`` is ``(in_features, out_features)``, the
        transpose of PyTorch's ``Linear.weight``.

    Attributes:
        input_grad: compute the input gradient in backward (default True). Set it to
            False on a network's first layer, whose input needs no gradient: backward
            then returns None and skips that GEMM.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        init: Any = "xavier_uniform",
        regularizer: Any = None,
        dtype: Any = None,
    ):
        self.in_features = checks.integer(in_features, "Dense", "in_features", minimum=1)
        self.out_features = checks.integer(out_features, "Dense", "out_features", minimum=1)
        checks.flag(bias, "Dense", "bias")
        make = initializers.get(init, layer="Dense")
        shape = (self.in_features, self.out_features)
        self.weight = Parameter(initializers.parameter_array(make, shape, dtype, "Dense"), "weight")
        self.bias = (
            Parameter(initializers.zeros((self.out_features,), dtype=dtype), "bias")
            if bias
            else None
        )
        self.regularizer = regularizers.check(regularizer, "Dense")
        self.input_grad = True

    def forward(self, x: Any) -> Any:
        x = self.checked_input(x, like=self.weight.data)
        if x.ndim < 2 or x.shape[-1] != self.in_features:
            checks.shape(x, (self, "forward"), ("N", ..., self.in_features))
        xp = namespace(x, self.weight.data)
        flat = x if x.ndim == 2 else xp.reshape(x, (-1, self.in_features))
        y = matmul(flat, self.weight.data)
        if self.bias is not None:
            y = y + self.bias.data
        self._input = flat
        self._input_shape = x.shape
        y = y if x.ndim == 2 else xp.reshape(y, (*x.shape[:-1], self.out_features))
        return self.remember_output(y)

    def backward(self, grad_out: Any) -> Any:
        grad_out = self.checked_gradient(grad_out)
        xp = namespace(grad_out)
        grad = grad_out if grad_out.ndim == 2 else xp.reshape(grad_out, (-1, self.out_features))
        weight_grad = matmul(self._input.T, grad)
        if self.regularizer is not None:
            weight_grad = weight_grad + self.regularizer.gradient(self.weight.data)
        self.weight.accumulate(weight_grad)
        if self.bias is not None:
            self.bias.accumulate(xp.sum(grad, axis=0))
        if not self.input_grad:
            return None
        grad_in = matmul(grad, self.weight.data.T)
        return grad_in if grad_out.ndim == 2 else xp.reshape(grad_in, self._input_shape)

    def __repr__(self) -> str:
        return f"Dense({self.in_features}, {self.out_features}, bias={self.bias is not None})"
