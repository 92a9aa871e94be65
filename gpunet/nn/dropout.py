"""Dropout: randomly zero activations while training (inverted dropout)."""

from __future__ import annotations

from typing import Any

from gpunet import backend, checks
from gpunet.backend import namespace
from gpunet.nn.layer import Layer


class Dropout(Layer):
    """Inverted dropout: zero each element with probability ``p`` while training.

    The kept elements are scaled by ``1 / (1 - p)``, so the expectation of every output
    equals its input and nothing needs rescaling at inference. In eval mode
    (``model.eval()``) the layer is the identity. The mask is drawn on the device
    (``gpunet.backend.random_uniform``), so no data crosses to the host.

    Args:
        p: probability of zeroing an element (default 0.5, in [0, 1)).

    Shapes:
        any input; the output has the same shape.

    Math:
        ``y = x * m / (1 - p)`` with ``m ~ Bernoulli(1 - p)`` elementwise;
        ``dL/dx = dL/dy * m / (1 - p)``.
    """

    def __init__(self, p: float = 0.5):
        self.p = checks.number(p, "Dropout", "p", 0, 1, high_open=True)
        self._mask = None

    def forward(self, x: Any) -> Any:
        x = self.checked_input(x)
        if not self.training or self.p == 0:
            self._mask = None
            return self.remember_output(x)
        xp = namespace(x)
        keep = backend.random_uniform(tuple(x.shape), x.dtype) >= self.p
        self._mask = xp.astype(keep, x.dtype) * (1.0 / (1.0 - self.p))
        return self.remember_output(x * self._mask)

    def backward(self, grad_out: Any) -> Any:
        grad_out = self.checked_gradient(grad_out)
        if self._mask is None:
            return grad_out
        return grad_out * self._mask

    def __repr__(self) -> str:
        return f"Dropout(p={self.p})"
