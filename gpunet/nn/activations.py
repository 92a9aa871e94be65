"""Activation layers: each wraps one function of ``gpunet.ops.activations``."""

from __future__ import annotations

from typing import Any

from gpunet import checks
from gpunet.nn.layer import Layer
from gpunet.ops import activations as F


class Activation(Layer):
    """An elementwise activation; subclasses name the function and its backward.

    ``reads`` says which of the input ``x`` and the output ``y`` the backward
    ``derivative(grad, x, y)`` reads: only those are kept until the next forward (the
    other is passed as None), so that, e.g., a ReLU does not keep the convolution output
    before it alive as well as its own.
    """

    function = staticmethod(F.tanh)
    derivative = staticmethod(F.tanh_backward)
    reads = "y"

    def forward(self, x: Any) -> Any:
        x = self.checked_input(x)
        y = self.function(x)
        self._cache = (x if "x" in self.reads else None, y if "y" in self.reads else None)
        return self.remember_output(y)

    def backward(self, grad_out: Any) -> Any:
        grad_out = self.checked_gradient(grad_out)
        x, y = self._cache
        return self.derivative(grad_out, x, y)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Sigmoid(Activation):
    """1 / (1 + exp(-x))."""

    function = staticmethod(F.sigmoid)
    derivative = staticmethod(F.sigmoid_backward)


class Tanh(Activation):
    """tanh(x)."""

    function = staticmethod(F.tanh)
    derivative = staticmethod(F.tanh_backward)


class Softsign(Activation):
    """x / (1 + |x|)."""

    function = staticmethod(F.softsign)
    derivative = staticmethod(F.softsign_backward)
    reads = "x"


class ReLU(Activation):
    """max(x, 0)."""

    function = staticmethod(F.relu)
    derivative = staticmethod(F.relu_backward)


class Softplus(Activation):
    """log(1 + exp(x))."""

    function = staticmethod(F.softplus)
    derivative = staticmethod(F.softplus_backward)
    reads = "x"


class LeakyReLU(Activation):
    """x for x > 0, else negative_slope * x.

    Args:
        negative_slope: slope for negative inputs (default 0.01).
    """

    reads = "x"

    def __init__(self, negative_slope: float = 0.01):
        self.negative_slope = checks.number(negative_slope, "LeakyReLU", "negative_slope")

    def function(self, x: Any) -> Any:
        return F.leaky_relu(x, self.negative_slope)

    def derivative(self, grad: Any, x: Any, y: Any) -> Any:
        return F.leaky_relu_backward(grad, x, y, self.negative_slope)

    def __repr__(self) -> str:
        return f"LeakyReLU(negative_slope={self.negative_slope})"


class Softmax(Activation):
    """exp(x) / sum(exp(x)) along an axis.

    Args:
        axis: the axis that sums to one (default -1). For classification train on
            logits with ``CrossEntropy`` instead; it is faster and more accurate.
    """

    def __init__(self, axis: int = -1):
        self.axis = checks.integer(axis, "Softmax", "axis")

    def function(self, x: Any) -> Any:
        if not -x.ndim <= self.axis < x.ndim:
            raise ValueError(
                f"Softmax.forward: axis {self.axis} does not exist in an input of shape "
                f"{tuple(x.shape)}"
            )
        return F.softmax(x, self.axis)

    def derivative(self, grad: Any, x: Any, y: Any) -> Any:
        return F.softmax_backward(grad, x, y, self.axis)

    def __repr__(self) -> str:
        return f"Softmax(axis={self.axis})"
