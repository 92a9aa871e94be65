"""2-D convolution as im2col + GEMM, forward and backward.

With ``K = C*kh*kw`` and ``P = OH*OW``, the input is unfolded into the column matrix
``col (K, N*P)`` (``im2col``) and the convolution is the single GEMM
``y = weight.reshape(O, K) @ col``, moved to NCHW with the bias added. Backward:

    g = grad_out as (O, N*P)
    d weight = g @ col.T        d bias = sum of g over N*P
    d col    = weight.T @ g     d x    = col2im(d col)   (the adjoint of im2col)

The reference path below is pure array-API code (it runs on array-api-strict) and is the
oracle of the Numba kernels in ``gpunet.kernels.conv`` (ops ``conv2d_forward`` and
``conv2d_backward``), which replace it on NumPy and CuPy. The GEMMs are always the array
library's (BLAS / cuBLAS); on the CPU the kernels unfold and multiply a cache-sized block
of images at a time. ``GPUNET_KERNELS=0`` forces the reference.

The window helpers here (``pad2d``, ``windows``, ``place``) also serve pooling.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

from gpunet import backend, kernels
from gpunet.backend import namespace
from gpunet.kernels._geometry import output_hw

Pair = tuple[int, int]

for _op in ("conv2d_forward", "conv2d_backward"):
    kernels.register(_op, "conv")


def pair(value: Any, what: str, layer: str, minimum: int) -> Pair:
    """``value`` as an ``(h, w)`` pair of ints >= ``minimum``.

    Raises:
        TypeError: for anything but an int or a pair of ints (bools and floats included).
        ValueError: for an int below ``minimum``.
    """
    items = tuple(value) if isinstance(value, list | tuple) else (value, value)
    if len(items) != 2 or not all(_is_int(v) for v in items):
        raise TypeError(f"{layer}: {what} must be an int or a pair of ints, got {value!r}")
    if min(items) < minimum:
        raise ValueError(f"{layer}: {what} must be >= {minimum}, got {value!r}")
    return int(items[0]), int(items[1])


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


# --------------------------------------------------------------------------- windows


def pad2d(x: Any, padding: Pair, value: float = 0.0) -> Any:
    """``x`` (N, C, H, W) with ``padding`` rows and columns of ``value`` on each side."""
    if padding == (0, 0):
        return x
    xp = namespace(x)
    n, c, h, w = x.shape
    ph, pw = padding
    if ph:
        rows = xp.full((n, c, ph, w), value, dtype=x.dtype)
        x = xp.concat([rows, x, rows], axis=2)
    if pw:
        cols = xp.full((n, c, h + 2 * ph, pw), value, dtype=x.dtype)
        x = xp.concat([cols, x, cols], axis=3)
    return x


def windows(padded: Any, kernel_size: Pair, stride: Pair, dilation: Pair, out: Pair) -> Any:
    """The windows of a padded input, tap by tap: ``(N, C, kh*kw, OH, OW)``.

    Entry ``[n, c, i*kw + j, oh, ow]`` is ``padded[n, c, oh*sh + i*dh, ow*sw + j*dw]``.
    """
    xp = namespace(padded)
    taps = []
    for i in range(kernel_size[0]):
        for j in range(kernel_size[1]):
            top, left = i * dilation[0], j * dilation[1]
            taps.append(
                padded[
                    :,
                    :,
                    top : top + stride[0] * (out[0] - 1) + 1 : stride[0],
                    left : left + stride[1] * (out[1] - 1) + 1 : stride[1],
                ]
            )
    return xp.stack(taps, axis=2)


def place(taps: Any, padded_hw: Pair, kernel_size: Pair, stride: Pair, dilation: Pair) -> Any:
    """The adjoint of ``windows``: sums tap blocks back onto the padded input grid.

    Args:
        taps: ``(N, C, kh*kw, OH, OW)``.
        padded_hw: the padded input's ``(H, W)``.

    Returns:
        ``(N, C, H, W)``; each value is the sum of the entries that ``windows`` read
        from that position.
    """
    total = None
    for i in range(kernel_size[0]):
        for j in range(kernel_size[1]):
            block = taps[:, :, i * kernel_size[1] + j, :, :]
            block = _spread(block, stride[0], axis=2)
            block = _spread(block, stride[1], axis=3)
            block = _shift(block, i * dilation[0], padded_hw[0], axis=2)
            block = _shift(block, j * dilation[1], padded_hw[1], axis=3)
            total = block if total is None else total + block
    return total


def _spread(block: Any, stride: int, axis: int) -> Any:
    """Insert ``stride - 1`` zeros between neighbours along ``axis`` (2 or 3)."""
    if stride == 1:
        return block
    xp = namespace(block)
    shape = list(block.shape)
    length = shape[axis]
    expanded = xp.expand_dims(block, axis=axis + 1)
    gap_shape = list(expanded.shape)
    gap_shape[axis + 1] = stride - 1
    gaps = xp.zeros(tuple(gap_shape), dtype=block.dtype)
    spread = xp.concat([expanded, gaps], axis=axis + 1)
    shape[axis] = length * stride
    spread = xp.reshape(spread, tuple(shape))
    keep = stride * (length - 1) + 1
    return spread[:, :, :keep, :] if axis == 2 else spread[:, :, :, :keep]


def _shift(block: Any, before: int, size: int, axis: int) -> Any:
    """Pad ``block`` with zeros along ``axis`` so it starts at ``before`` in ``size``."""
    xp = namespace(block)
    after = size - before - block.shape[axis]
    parts = []
    for width in (before, after):
        shape = list(block.shape)
        shape[axis] = width
        parts.append(xp.zeros(tuple(shape), dtype=block.dtype) if width else None)
    pieces = [p for p in (parts[0], block, parts[1]) if p is not None]
    return pieces[0] if len(pieces) == 1 else xp.concat(pieces, axis=axis)


def crop(padded: Any, padding: Pair, hw: Pair) -> Any:
    """The inner ``(H, W)`` of a padded array (undoes ``pad2d``)."""
    ph, pw = padding
    return padded[:, :, ph : ph + hw[0], pw : pw + hw[1]]


# --------------------------------------------------------------------------- im2col


def im2col(x: Any, kernel_size: Pair, stride: Pair, padding: Pair, dilation: Pair) -> Any:
    """Reference im2col: ``(C*kh*kw, N*OH*OW)``, rows ordered (c, i, j), columns (n, oh, ow)."""
    xp = namespace(x)
    n, c, h, w = x.shape
    out = output_hw((h, w), kernel_size, stride, padding, dilation)
    taps = windows(pad2d(x, padding), kernel_size, stride, dilation, out)
    taps = xp.permute_dims(taps, (1, 2, 0, 3, 4))
    return xp.reshape(taps, (c * kernel_size[0] * kernel_size[1], n * out[0] * out[1]))


def col2im(
    col: Any, x_shape: tuple, kernel_size: Pair, stride: Pair, padding: Pair, dilation: Pair
) -> Any:
    """Reference col2im, the adjoint of ``im2col``: ``(N, C, H, W)``."""
    xp = namespace(col)
    n, c, h, w = x_shape
    out = output_hw((h, w), kernel_size, stride, padding, dilation)
    taps = xp.reshape(col, (c, kernel_size[0] * kernel_size[1], n, out[0], out[1]))
    taps = xp.permute_dims(taps, (2, 0, 1, 3, 4))
    padded_hw = (h + 2 * padding[0], w + 2 * padding[1])
    return crop(place(taps, padded_hw, kernel_size, stride, dilation), padding, (h, w))


# --------------------------------------------------------------------------- conv2d


@dataclass
class ConvCache:
    """What ``conv2d_backward`` needs from the forward pass."""

    saved: Any  # the reference's column matrix, or what the kernel keeps
    x_shape: tuple
    stride: Pair
    padding: Pair
    dilation: Pair
    fast: bool  # the Numba kernels were used


def conv2d(
    x: Any,
    weight: Any,
    bias: Any = None,
    stride: Pair = (1, 1),
    padding: Pair = (0, 0),
    dilation: Pair = (1, 1),
    workspace: dict | None = None,
) -> tuple[Any, ConvCache]:
    """2-D cross-correlation (PyTorch's ``conv2d``) as im2col + GEMM.

    Args:
        x: input ``(N, C, H, W)``.
        weight: ``(O, C, kh, kw)``.
        bias: ``(O,)`` or None.
        stride, padding, dilation: ``(h, w)`` pairs.
        workspace: a dict the caller keeps between calls; the kernel path reuses its
            buffers in it while shapes repeat (default None: no reuse).

    Returns:
        ``(y, cache)``: ``y`` of shape ``(N, O, OH, OW)`` and what backward needs.
    """
    xp = namespace(x, weight)
    fast = backend.kernel("conv2d_forward", xp)
    if fast is not None:
        y, saved = fast(x, weight, bias, stride, padding, dilation, workspace)
    else:
        y, saved = _reference_forward(x, weight, bias, stride, padding, dilation)
    return y, ConvCache(saved, tuple(x.shape), stride, padding, dilation, fast is not None)


def _reference_forward(
    x: Any, weight: Any, bias: Any, stride: Pair, padding: Pair, dilation: Pair
) -> tuple[Any, Any]:
    xp = namespace(x, weight)
    n, _, h, w = x.shape
    o = weight.shape[0]
    kernel_size = (weight.shape[2], weight.shape[3])
    out = output_hw((h, w), kernel_size, stride, padding, dilation)
    w2d = xp.reshape(weight, (o, math.prod(weight.shape[1:])))
    col = im2col(x, kernel_size, stride, padding, dilation)
    y = xp.permute_dims(xp.reshape(w2d @ col, (o, n, out[0] * out[1])), (1, 0, 2))
    if bias is not None:
        y = y + xp.reshape(bias, (1, o, 1))
    return xp.reshape(y, (n, o, out[0], out[1])), col


def conv2d_backward(
    grad_out: Any,
    cache: ConvCache,
    weight: Any,
    input_grad: bool = True,
    workspace: dict | None = None,
) -> tuple[Any, Any, Any]:
    """Gradients of ``conv2d``: ``(d x, d weight, d bias)``.

    Args:
        grad_out: ``(N, O, OH, OW)``.
        cache: from the forward pass.
        weight: the weight used in the forward pass.
        input_grad: compute ``d x`` (default True; False returns None for it and skips
            its GEMM and col2im, as for a network's first layer).
        workspace: as in ``conv2d``.
    """
    xp = namespace(grad_out, weight)
    geometry = (cache.x_shape, cache.stride, cache.padding, cache.dilation)
    if cache.fast:
        fast = backend.kernel("conv2d_backward", xp)
        return fast(grad_out, cache.saved, weight, *geometry, input_grad, workspace)
    n, o = grad_out.shape[0], grad_out.shape[1]
    kernel_size = (weight.shape[2], weight.shape[3])
    grad3 = xp.reshape(grad_out, (n, o, grad_out.shape[2] * grad_out.shape[3]))
    g = xp.reshape(xp.permute_dims(grad3, (1, 0, 2)), (o, -1))
    bias_grad = xp.sum(g, axis=1)
    weight_grad = xp.reshape(g @ xp.matrix_transpose(cache.saved), weight.shape)
    if not input_grad:
        return None, weight_grad, bias_grad
    w2d = xp.reshape(weight, (o, math.prod(weight.shape[1:])))
    col_grad = xp.matrix_transpose(w2d) @ g
    x_shape, stride, padding, dilation = geometry
    return (
        col2im(col_grad, x_shape, kernel_size, stride, padding, dilation),
        weight_grad,
        bias_grad,
    )
