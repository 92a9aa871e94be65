"""Parameter penalties (Keras' convention): added to the loss, their gradient in backward.

A regularizer is attached to a layer's weight (``Dense(..., regularizer=L2(1e-4))``),
never to its bias. ``penalty(W)`` is the value added to the loss and ``gradient(W)`` its
derivative, which the layer adds to the weight's gradient in backward. The total over a
model is ``gpunet.regularizers.penalty(model)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gpunet import checks
from gpunet.backend import namespace


@dataclass(frozen=True)
class L1L2:
    """``l1 * sum(|W|) + l2 * sum(W**2)``; gradient ``l1 * sign(W) + 2 * l2 * W``.

    Args:
        l1: the L1 factor (default 0).
        l2: the L2 factor (default 0).
    """

    l1: float = 0.0
    l2: float = 0.0

    def __post_init__(self) -> None:
        for label in ("l1", "l2"):
            value = checks.number(getattr(self, label), type(self).__name__, label, 0)
            object.__setattr__(self, label, value)

    def penalty(self, weight: Any) -> Any:
        xp = namespace(weight)
        total = 0.0
        if self.l1:
            total = total + self.l1 * xp.sum(xp.abs(weight))
        if self.l2:
            total = total + self.l2 * xp.sum(weight * weight)
        return total

    def gradient(self, weight: Any) -> Any:
        xp = namespace(weight)
        grad = xp.zeros_like(weight)
        if self.l1:
            grad = grad + self.l1 * xp.sign(weight)
        if self.l2:
            grad = grad + (2 * self.l2) * weight
        return grad


def L1(l: float = 0.01) -> L1L2:  # noqa: N802 - Keras' names
    """The L1 penalty ``l * sum(|W|)`` (sparse weights)."""
    return L1L2(l1=l)


def L2(l: float = 0.01) -> L1L2:  # noqa: N802
    """The L2 penalty ``l * sum(W**2)`` (weight decay)."""
    return L1L2(l2=l)


def check(regularizer: Any, layer: str) -> Any:
    """``regularizer`` if it is None or has ``penalty`` and ``gradient`` methods.

    Raises:
        TypeError: naming ``layer`` and what came instead.
    """
    if regularizer is None or (
        callable(getattr(regularizer, "penalty", None))
        and callable(getattr(regularizer, "gradient", None))
    ):
        return regularizer
    raise TypeError(
        f"{layer}: regularizer must be None or a regularizer such as "
        f"gpunet.regularizers.L2(1e-4) (with penalty and gradient methods), got {regularizer!r}"
    )


def penalty(model: Any) -> Any:
    """The sum of the penalties of every layer of ``model`` (0.0 if it has none)."""
    total = 0.0
    for _, layer in model.layers():
        regularizer = getattr(layer, "regularizer", None)
        if regularizer is not None:
            total = total + regularizer.penalty(layer.weight.data)
    return total
