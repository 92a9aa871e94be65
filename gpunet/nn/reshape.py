"""Flatten: from image feature maps to the vectors a Dense layer takes."""

from __future__ import annotations

from typing import Any

from gpunet import checks
from gpunet.backend import namespace
from gpunet.nn.layer import Layer


class Flatten(Layer):
    """Flattens every axis after the first: ``(N, d1, d2, ...)`` -> ``(N, d1*d2*...)``.

    The order is C's (row-major), as PyTorch's ``Flatten``, so a Dense layer after it
    takes weights exported from a PyTorch model (transposed, as Dense's layout says).
    """

    def forward(self, x: Any) -> Any:
        x = self.checked_input(x)
        if x.ndim < 2:
            checks.shape(x, (self, "forward"), ("N", "d1", ...))
        self._x_shape = tuple(x.shape)
        return self.remember_output(namespace(x).reshape(x, (x.shape[0], -1)))

    def backward(self, grad_out: Any) -> Any:
        grad_out = self.checked_gradient(grad_out)
        return namespace(grad_out).reshape(grad_out, self._x_shape)

    def __repr__(self) -> str:
        return "Flatten()"
