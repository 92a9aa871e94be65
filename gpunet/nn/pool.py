"""Pooling layers: MaxPool2D, AvgPool2D and GlobalAvgPool2D over NCHW images."""

from __future__ import annotations

from typing import Any

from gpunet import checks
from gpunet.nn.layer import Layer
from gpunet.ops.conv import output_hw, pair
from gpunet.ops.pool import (
    avg_pool2d,
    avg_pool2d_backward,
    global_avg_pool2d,
    global_avg_pool2d_backward,
    max_pool2d,
    max_pool2d_backward,
)


class _Pool2D(Layer):
    """Shared argument checks and shapes of the windowed pooling layers."""

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0):
        name = type(self).__name__
        self.kernel_size = pair(kernel_size, "kernel_size", name, 1)
        self.stride = pair(kernel_size if stride is None else stride, "stride", name, 1)
        self.padding = pair(padding, "padding", name, 0)
        for a in (0, 1):
            if 2 * self.padding[a] > self.kernel_size[a]:
                raise ValueError(
                    f"{name}: padding must be at most half the kernel size, got padding "
                    f"{self.padding} for kernel_size {self.kernel_size}"
                )

    def output_shape(self, x_shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        """The output shape for an input of shape ``x_shape``."""
        oh, ow = output_hw(x_shape[2:], self.kernel_size, self.stride, self.padding, (1, 1))
        return (x_shape[0], x_shape[1], oh, ow)

    def _checked(self, x: Any) -> Any:
        x = self.checked_input(x)
        shape = tuple(x.shape)
        if len(shape) != 4:
            checks.shape(x, (self, "forward"), ("N", "C", "H", "W"))
        padded = tuple(shape[2 + a] + 2 * self.padding[a] for a in (0, 1))
        if self.kernel_size[0] > padded[0] or self.kernel_size[1] > padded[1]:
            raise ValueError(
                f"{type(self).__name__}.forward: kernel {self.kernel_size[0]}x"
                f"{self.kernel_size[1]} is larger than the padded input "
                f"{padded[0]}x{padded[1]}; got input shape {shape} with padding {self.padding}"
            )
        return x

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding})"
        )


class MaxPool2D(_Pool2D):
    """Maximum over each window (PyTorch's ``MaxPool2d``).

    Args:
        kernel_size: int or ``(kh, kw)``.
        stride: int or pair (default None: the kernel size, non-overlapping windows).
        padding: int or pair of -inf rows/columns on each side, at most half the kernel
            (default 0).

    Shapes:
        input ``(N, C, H, W)``; output ``(N, C, OH, OW)``,
        ``OH = floor((H + 2*padding - kh) / stride) + 1`` (same for W).
    """

    def forward(self, x: Any) -> Any:
        x = self._checked(x)
        y, self._cache = max_pool2d(x, self.kernel_size, self.stride, self.padding)
        return self.remember_output(y)

    def backward(self, grad_out: Any) -> Any:
        return max_pool2d_backward(self.checked_gradient(grad_out), self._cache)


class AvgPool2D(_Pool2D):
    """Mean over each window, padded zeros counted (PyTorch's ``AvgPool2d`` defaults).

    Args:
        kernel_size: int or ``(kh, kw)``.
        stride: int or pair (default None: the kernel size).
        padding: int or pair of zero rows/columns on each side, at most half the kernel
            (default 0). Every window divides by ``kh*kw``, padded zeros included.

    Shapes:
        as ``MaxPool2D``.
    """

    def forward(self, x: Any) -> Any:
        x = self._checked(x)
        y, self._cache = avg_pool2d(x, self.kernel_size, self.stride, self.padding)
        return self.remember_output(y)

    def backward(self, grad_out: Any) -> Any:
        return avg_pool2d_backward(self.checked_gradient(grad_out), self._cache)


class GlobalAvgPool2D(Layer):
    """Mean over all of height and width: ``(N, C, H, W)`` -> ``(N, C)``."""

    def forward(self, x: Any) -> Any:
        x = self.checked_input(x)
        if x.ndim != 4:
            checks.shape(x, (self, "forward"), ("N", "C", "H", "W"))
        self._x_shape = tuple(x.shape)
        return self.remember_output(global_avg_pool2d(x))

    def backward(self, grad_out: Any) -> Any:
        return global_avg_pool2d_backward(self.checked_gradient(grad_out), self._x_shape)

    def __repr__(self) -> str:
        return "GlobalAvgPool2D()"
