"""Flatten: from image feature maps to the vectors a Dense layer takes."""

from __future__ import annotations

from typing import Any

from gpunet.backend import namespace
from gpunet.nn.layer import Layer


class Flatten(Layer):
    """Flattens every axis after the first: ``(N, d1, d2, ...)`` -> ``(N, d1*d2*...)``.

    The order is C's (row-major), as PyTorch's ``Flatten``, so a Dense layer after it
    takes weights exported from a PyTorch model (transposed, as Dense's layout says).
    """

    def forward(self, x: Any) -> Any:
        if x.ndim < 2:
            raise ValueError(f"Flatten: expected input (N, ...), got shape {tuple(x.shape)}")
        self._x_shape = tuple(x.shape)
        return namespace(x).reshape(x, (x.shape[0], -1))

    def backward(self, grad_out: Any) -> Any:
        return namespace(grad_out).reshape(grad_out, self._x_shape)

    def __repr__(self) -> str:
        return "Flatten()"
