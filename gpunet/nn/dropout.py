"""Dropout: randomly zero activations while training (inverted dropout)."""

from __future__ import annotations

from typing import Any

from gpunet import backend
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
        if not 0 <= p < 1:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p!r}")
        self.p = float(p)
        self._mask = None

    def forward(self, x: Any) -> Any:
        if not self.training or self.p == 0:
            self._mask = None
            return x
        xp = namespace(x)
        keep = backend.random_uniform(tuple(x.shape), x.dtype) >= self.p
        self._mask = xp.astype(keep, x.dtype) * (1.0 / (1.0 - self.p))
        return x * self._mask

    def backward(self, grad_out: Any) -> Any:
        if self._mask is None:
            return grad_out
        return grad_out * self._mask

    def __repr__(self) -> str:
        return f"Dropout(p={self.p})"
