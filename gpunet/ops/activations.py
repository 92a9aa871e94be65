"""Activation functions and their derivatives, written once for every backend.

Each ``name(x)`` computes the activation; ``name_backward(grad, x, y)`` returns
``grad * d name / dx`` given the input ``x`` and the output ``y`` (each backward uses
whichever of the two makes it cheapest). Every form here is safe for large |x|: no
overflow, no warning, finite results at |x| = 1000 in float32.
"""

from __future__ import annotations

from typing import Any

from gpunet import backend, kernels
from gpunet.backend import namespace

for _op in ("relu_forward", "relu_backward"):
    kernels.register(_op, "activations")


def sigmoid(x: Any) -> Any:
    """1 / (1 + exp(-x)), computed from exp(-|x|) so that it never overflows."""
    xp = namespace(x)
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid_backward(grad: Any, x: Any, y: Any) -> Any:
    return grad * y * (1 - y)


def tanh(x: Any) -> Any:
    """Hyperbolic tangent."""
    return namespace(x).tanh(x)


def tanh_backward(grad: Any, x: Any, y: Any) -> Any:
    return grad * (1 - y * y)


def softsign(x: Any) -> Any:
    """x / (1 + |x|)."""
    xp = namespace(x)
    return x / (1 + xp.abs(x))


def softsign_backward(grad: Any, x: Any, y: Any) -> Any:
    xp = namespace(x)
    denominator = 1 + xp.abs(x)
    return grad / (denominator * denominator)


def relu(x: Any) -> Any:
    """max(x, 0)."""
    xp = namespace(x)
    fast = backend.kernel("relu_forward", xp)
    return fast(x) if fast is not None else xp.maximum(x, 0)


def relu_backward(grad: Any, x: Any, y: Any) -> Any:
    """Either ``x`` or ``y`` may be None: y > 0 exactly where x > 0."""
    source = y if x is None else x
    fast = backend.kernel("relu_backward", namespace(grad, source))
    if fast is not None:
        if grad.shape != source.shape:  # the kernel reads both element by element
            raise ValueError(
                f"relu_backward: grad of shape {tuple(grad.shape)} for an input of shape "
                f"{tuple(source.shape)}; they must be equal"
            )
        return fast(grad, source)
    # A multiply by the 0/1 mask: NumPy's where() is several times slower on large arrays.
    return grad * _positive_mask(source, grad.dtype)


def leaky_relu(x: Any, negative_slope: float = 0.01) -> Any:
    """x for x > 0, negative_slope * x otherwise."""
    return namespace(x).where(x > 0, x, negative_slope * x)


def leaky_relu_backward(grad: Any, x: Any, y: Any, negative_slope: float = 0.01) -> Any:
    # slope + (1 - slope) * mask is 1 where x > 0 and the slope elsewhere
    return grad * (negative_slope + (1 - negative_slope) * _positive_mask(x, grad.dtype))


def _positive_mask(x: Any, dtype: Any) -> Any:
    """1 where x > 0, else 0, in ``dtype``."""
    return namespace(x).astype(x > 0, dtype)


def softplus(x: Any) -> Any:
    """log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)), which never overflows."""
    xp = namespace(x)
    return relu(x) + xp.log1p(xp.exp(-xp.abs(x)))


def softplus_backward(grad: Any, x: Any, y: Any) -> Any:
    return grad * sigmoid(x)


def softmax(x: Any, axis: int = -1) -> Any:
    """exp(x) / sum(exp(x)) along ``axis``, with the maximum subtracted first."""
    xp = namespace(x)
    e = xp.exp(x - xp.max(x, axis=axis, keepdims=True))
    return e / xp.sum(e, axis=axis, keepdims=True)


def log_softmax(x: Any, axis: int = -1) -> Any:
    """log(softmax(x)), computed as shifted x minus the log of the shifted sum."""
    xp = namespace(x)
    shifted = x - xp.max(x, axis=axis, keepdims=True)
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=axis, keepdims=True))


def softmax_backward(grad: Any, x: Any, y: Any, axis: int = -1) -> Any:
    """The Jacobian-vector product of softmax: y * (grad - sum(grad * y))."""
    xp = namespace(y)
    return y * (grad - xp.sum(grad * y, axis=axis, keepdims=True))
