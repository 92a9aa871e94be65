"""Activation kernels: ReLU forward and backward in one pass each (CPU).

NumPy's ``maximum(x, 0)`` checks every element for NaN on its way, and the backward
``grad * (x > 0)`` makes two passes and a temporary; these loops are one vectorised pass
each, over runs of elements split across gpunet's threads.

Semantics match the reference in ``gpunet.ops.activations``: ``relu(NaN)`` is NaN,
``relu(-inf)`` is 0, and the backward lets the gradient through where ``x > 0``.
There is no CUDA version: on CuPy the reference is already one fused elementwise kernel.
"""

from __future__ import annotations

import numpy as np

from . import _parallel
from ._jit import cpu_kernel


@cpu_kernel
def _relu(x, out):
    for i in range(x.size):
        value = x[i]
        out[i] = 0 if value < 0 else value


@cpu_kernel
def _relu_backward(grad, x, out):
    for i in range(x.size):
        out[i] = grad[i] * (x[i] > 0)


def relu_forward_cpu(x):
    """``max(x, 0)``, NaN kept."""
    x = np.ascontiguousarray(x)
    out = np.empty_like(x)
    flat = (x.reshape(-1), out.reshape(-1))
    _parallel.run_rows(x.size, x.size, lambda first, last: _relu(*(a[first:last] for a in flat)))
    return out


def relu_backward_cpu(grad, x):
    """``grad`` where ``x > 0``, else 0."""
    grad, x = np.ascontiguousarray(grad), np.ascontiguousarray(x)
    out = np.empty_like(grad)
    flat = (grad.reshape(-1), x.reshape(-1), out.reshape(-1))
    _parallel.run_rows(
        x.size, x.size, lambda first, last: _relu_backward(*(a[first:last] for a in flat))
    )
    return out
