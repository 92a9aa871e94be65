"""2-D pooling, forward and backward: max, average and global average.

Max-pool pads with -inf and remembers, for every output, the tap ``i*kw + j`` of its
window that won (the first maximum), so backward sends each output gradient to that one
input. Average-pool counts padded zeros in the mean (PyTorch's ``count_include_pad=True``):
every input under a window receives ``grad / (kh*kw)``.

The reference path is pure array-API code built on the window helpers of
``gpunet.ops.conv``; the Numba kernels of ``gpunet.kernels.pool`` replace it on NumPy and
CuPy (``GPUNET_KERNELS=0`` forces the reference).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from gpunet import backend, kernels
from gpunet.backend import namespace
from gpunet.ops.conv import Pair, crop, output_hw, pad2d, place, windows

for _op in (
    "max_pool2d_forward",
    "max_pool2d_backward",
    "avg_pool2d_forward",
    "avg_pool2d_backward",
):
    kernels.register(_op, "pool")

_NO_DILATION = (1, 1)


@dataclass
class PoolCache:
    """What a pooling backward needs from its forward pass."""

    x_shape: tuple
    kernel_size: Pair
    stride: Pair
    padding: Pair
    argmax: Any = None  # max-pool only: the winning tap of each window
    fast: bool = False  # the Numba kernels were used


def _padded_hw(cache: PoolCache) -> Pair:
    return (cache.x_shape[2] + 2 * cache.padding[0], cache.x_shape[3] + 2 * cache.padding[1])


def _out_hw(x_shape: tuple, kernel_size: Pair, stride: Pair, padding: Pair) -> Pair:
    return output_hw(x_shape[2:], kernel_size, stride, padding, _NO_DILATION)


def max_pool2d(
    x: Any, kernel_size: Pair, stride: Pair, padding: Pair = (0, 0)
) -> tuple[Any, PoolCache]:
    """Maximum over each window (padding counts as -inf).

    Returns:
        ``(y, cache)`` with ``y`` of shape ``(N, C, OH, OW)``.
    """
    xp = namespace(x)
    kernel = backend.kernel("max_pool2d_forward", xp)
    if kernel is not None and backend.kernel("max_pool2d_backward", xp) is not None:
        y, argmax = kernel(x, kernel_size, stride, padding)
        return y, PoolCache(tuple(x.shape), kernel_size, stride, padding, argmax, True)
    out = _out_hw(x.shape, kernel_size, stride, padding)
    taps = windows(pad2d(x, padding, -math.inf), kernel_size, stride, _NO_DILATION, out)
    y = xp.max(taps, axis=2)
    argmax = xp.argmax(taps, axis=2)
    return y, PoolCache(tuple(x.shape), kernel_size, stride, padding, argmax, False)


def max_pool2d_backward(grad_out: Any, cache: PoolCache) -> Any:
    """Input gradient of ``max_pool2d``: each output's gradient goes to its maximum."""
    xp = namespace(grad_out)
    if cache.fast:
        kernel = backend.kernel("max_pool2d_backward", xp)
        return kernel(
            grad_out, cache.argmax, cache.x_shape, cache.kernel_size, cache.stride, cache.padding
        )
    count = cache.kernel_size[0] * cache.kernel_size[1]
    zero = xp.zeros_like(grad_out)
    taps = xp.stack([xp.where(cache.argmax == k, grad_out, zero) for k in range(count)], axis=2)
    padded = place(taps, _padded_hw(cache), cache.kernel_size, cache.stride, _NO_DILATION)
    return crop(padded, cache.padding, cache.x_shape[2:])


def avg_pool2d(
    x: Any, kernel_size: Pair, stride: Pair, padding: Pair = (0, 0)
) -> tuple[Any, PoolCache]:
    """Mean over each window, padded zeros included.

    Returns:
        ``(y, cache)`` with ``y`` of shape ``(N, C, OH, OW)``.
    """
    xp = namespace(x)
    cache = PoolCache(tuple(x.shape), kernel_size, stride, padding)
    kernel = backend.kernel("avg_pool2d_forward", xp)
    if kernel is not None and backend.kernel("avg_pool2d_backward", xp) is not None:
        cache.fast = True
        return kernel(x, kernel_size, stride, padding), cache
    out = _out_hw(x.shape, kernel_size, stride, padding)
    taps = windows(pad2d(x, padding), kernel_size, stride, _NO_DILATION, out)
    return xp.mean(taps, axis=2), cache


def avg_pool2d_backward(grad_out: Any, cache: PoolCache) -> Any:
    """Input gradient of ``avg_pool2d``."""
    xp = namespace(grad_out)
    if cache.fast:
        kernel = backend.kernel("avg_pool2d_backward", xp)
        return kernel(grad_out, cache.x_shape, cache.kernel_size, cache.stride, cache.padding)
    count = cache.kernel_size[0] * cache.kernel_size[1]
    share = grad_out / count
    taps = xp.stack([share] * count, axis=2)
    padded = place(taps, _padded_hw(cache), cache.kernel_size, cache.stride, _NO_DILATION)
    return crop(padded, cache.padding, cache.x_shape[2:])


def global_avg_pool2d(x: Any) -> Any:
    """Mean over height and width: ``(N, C, H, W)`` -> ``(N, C)``."""
    return namespace(x).mean(x, axis=(2, 3))


def global_avg_pool2d_backward(grad_out: Any, x_shape: tuple) -> Any:
    """Input gradient of ``global_avg_pool2d``: ``grad / (H*W)`` everywhere."""
    xp = namespace(grad_out)
    n, c, h, w = x_shape
    share = xp.reshape(grad_out / (h * w), (n, c, 1, 1))
    return xp.broadcast_to(share, tuple(x_shape)) * 1
