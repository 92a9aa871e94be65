"""Parameter: an array that a layer learns, with its gradient."""

from __future__ import annotations

from typing import Any


class Parameter:
    """A learnable array.

    Args:
        data: the array (on the current backend).
        name: a name for messages and checkpoints (default None; the owning layer's
            attribute name is used in ``state_dict``).

    Attributes:
        data: the current value.
        grad: the accumulated gradient, an array of ``data``'s shape, or None after
            ``zero_grad``.
    """

    __slots__ = ("data", "grad", "name")

    def __init__(self, data: Any, name: str | None = None):
        self.data = data
        self.grad = None
        self.name = name

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    def accumulate(self, grad: Any) -> None:
        """Add ``grad`` to ``.grad`` (the gradient of a backward pass)."""
        if self.grad is None:
            self.grad = grad
        else:
            self.grad = self.grad + grad

    def __repr__(self) -> str:
        return f"Parameter(name={self.name!r}, shape={self.shape}, dtype={self.data.dtype})"
