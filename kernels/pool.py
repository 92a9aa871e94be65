"""Pooling kernels: max-pool with its argmax, average-pool, forward and backward.

Max-pool records, for every output, the winning tap ``i*kw + j`` of its window (int32,
the first maximum in row-major tap order, as ``argmax`` over the stacked windows of the
reference), so the backward pass needs no second look at the input. A NaN in a window
wins it, as in PyTorch. Padding counts as -inf for max-pool and as zeros in the average
(PyTorch's ``count_include_pad=True``).

The CPU kernels give each of gpunet's threads a run of image planes and scatter within
them; the CUDA kernels use one thread per output element and gather, so neither needs
atomics. The index arithmetic is shared with the convolution kernels (``_index``).
"""

from __future__ import annotations

import functools
import math

import numba
import numpy as np

from . import _parallel
from ._cuda import WIDE, array_library, index_builds, index_math, launch_indexed, numba_cuda
from ._geometry import output_hw
from ._index import input_coord
from ._jit import cpu_kernel

# --------------------------------------------------------------------------- CPU kernels


@numba.njit(inline="always")
def _wins(value, best, best_tap):
    """Whether ``value`` takes the window from ``best``: it is the first tap
    (``best_tap < 0``), larger, or the first NaN (a NaN wins, as in PyTorch)."""
    return best_tap < 0 or value > best or (value != value and best == best)


# Each kernel runs every image plane of arrays viewed as (planes, H, W); gpunet's threads
# each take a run of planes (a view). Loops start at 0, so that Numba knows every index
# is non-negative.


@cpu_kernel
def _max_forward_cpu(x, y, argmax, kh, kw, sh, sw, ph, pw):
    h_count, w_count = x.shape[1], x.shape[2]
    oh_count, ow_count = y.shape[1], y.shape[2]
    for plane in range(x.shape[0]):
        for oh in range(oh_count):
            for ow in range(ow_count):
                best = -math.inf
                best_tap = -1
                for i in range(kh):
                    ih = input_coord(oh, i, sh, ph, 1)
                    if ih < 0 or ih >= h_count:
                        continue
                    for j in range(kw):
                        iw = input_coord(ow, j, sw, pw, 1)
                        if iw < 0 or iw >= w_count:
                            continue
                        value = x[plane, ih, iw]
                        if _wins(value, best, best_tap):
                            best = value
                            best_tap = i * kw + j
                y[plane, oh, ow] = best
                argmax[plane, oh, ow] = best_tap


@cpu_kernel
def _max_backward_cpu(grad, argmax, dx, kw, sh, sw, ph, pw):
    oh_count, ow_count = grad.shape[1], grad.shape[2]
    for plane in range(grad.shape[0]):
        dx[plane] = 0
        for oh in range(oh_count):
            for ow in range(ow_count):
                tap = argmax[plane, oh, ow]
                ih = input_coord(oh, tap // kw, sh, ph, 1)
                iw = input_coord(ow, tap % kw, sw, pw, 1)
                dx[plane, ih, iw] += grad[plane, oh, ow]


@numba.njit(inline="always")
def _max4(a, b, c, d):
    """(max, tap) of a 2x2 window read in row-major order: the first maximum, or the first
    NaN. Plain comparisons compile to selects; the rare window with a NaN (its sum is
    NaN) takes the careful path, so the common case stays branch-free."""
    take = b > a
    best, tap = (b if take else a), (1 if take else 0)
    take = c > best
    best, tap = (c if take else best), (2 if take else tap)
    take = d > best
    best, tap = (d if take else best), (3 if take else tap)
    total = a + b + c + d
    if total != total:  # a NaN, or inf - inf
        best, tap = a, 0
        for candidate, index in ((b, 1), (c, 2), (d, 3)):
            if _wins(candidate, best, 0):
                best, tap = candidate, index
    return best, tap


@cpu_kernel
def _max2x2_forward_cpu(x, y, argmax):
    # The common case (2x2 windows, stride 2, no padding, even H and W): the windows
    # tile the input, so no bounds checks; taps and tie-breaking as _max_forward_cpu.
    oh_count, ow_count = y.shape[1], y.shape[2]
    for plane in range(x.shape[0]):
        for oh in range(oh_count):
            for ow in range(ow_count):
                best, tap = _max4(
                    x[plane, 2 * oh, 2 * ow],
                    x[plane, 2 * oh, 2 * ow + 1],
                    x[plane, 2 * oh + 1, 2 * ow],
                    x[plane, 2 * oh + 1, 2 * ow + 1],
                )
                y[plane, oh, ow] = best
                argmax[plane, oh, ow] = tap


@cpu_kernel
def _max2x2_backward_cpu(grad, argmax, dx):
    # Zero the two input rows under an output row while they are in L1, then one store
    # per output at its winning tap, rather than four stores per window through selects.
    oh_count, ow_count = grad.shape[1], grad.shape[2]
    w_count = dx.shape[2]
    for plane in range(grad.shape[0]):
        for oh in range(oh_count):
            for iw in range(w_count):
                dx[plane, 2 * oh, iw] = 0
                dx[plane, 2 * oh + 1, iw] = 0
            for ow in range(ow_count):
                tap = argmax[plane, oh, ow]
                dx[plane, 2 * oh + (tap >> 1), 2 * ow + (tap & 1)] = grad[plane, oh, ow]


@cpu_kernel
def _avg_forward_cpu(x, y, kh, kw, sh, sw, ph, pw):
    h_count, w_count = x.shape[1], x.shape[2]
    oh_count, ow_count = y.shape[1], y.shape[2]
    scale = 1.0 / (kh * kw)
    for plane in range(x.shape[0]):
        for oh in range(oh_count):
            for ow in range(ow_count):
                total = x.dtype.type(0)
                for i in range(kh):
                    ih = input_coord(oh, i, sh, ph, 1)
                    if ih < 0 or ih >= h_count:
                        continue
                    for j in range(kw):
                        iw = input_coord(ow, j, sw, pw, 1)
                        if 0 <= iw < w_count:
                            total += x[plane, ih, iw]
                y[plane, oh, ow] = total * scale


@cpu_kernel
def _avg_backward_cpu(grad, dx, kh, kw, sh, sw, ph, pw):
    h_count, w_count = dx.shape[1], dx.shape[2]
    oh_count, ow_count = grad.shape[1], grad.shape[2]
    scale = 1.0 / (kh * kw)
    for plane in range(grad.shape[0]):
        dx[plane] = 0
        for oh in range(oh_count):
            for ow in range(ow_count):
                share = grad[plane, oh, ow] * scale
                for i in range(kh):
                    ih = input_coord(oh, i, sh, ph, 1)
                    if ih < 0 or ih >= h_count:
                        continue
                    for j in range(kw):
                        iw = input_coord(ow, j, sw, pw, 1)
                        if 0 <= iw < w_count:
                            dx[plane, ih, iw] += share


# --------------------------------------------------------------------------- CPU API


def _output_shape(x_shape, kernel_size, stride, padding):
    oh, ow = output_hw(x_shape[2:], kernel_size, stride, padding)
    return (x_shape[0], x_shape[1], oh, ow)


def _planes(array):
    """A C-contiguous (N*C, H, W) view (or copy) of an (N, C, H, W) array."""
    n, c, h, w = array.shape
    return np.ascontiguousarray(array).reshape(n * c, h, w)


def _over_planes(kernel, arrays, planes, work, *geometry):
    """``kernel(*runs, *geometry)`` over runs of planes of ``arrays``, split by the rule."""
    _parallel.run_rows(
        planes, work, lambda first, last: kernel(*(a[first:last] for a in arrays), *geometry)
    )


def max_pool2d_forward_cpu(x, kernel_size, stride, padding):
    """Max over each window: ``(y, argmax)``, argmax the int32 tap ``i*kw + j``.

    A NaN in a window wins it (the first NaN), as in PyTorch and the reference.
    """
    shape = _output_shape(x.shape, kernel_size, stride, padding)
    y = np.empty(shape, dtype=x.dtype)
    argmax = np.empty(shape, dtype=np.int32)
    planes = shape[0] * shape[1]
    arrays = (_planes(x), _planes(y), _planes(argmax))
    if _tiles_by_2x2(x.shape, kernel_size, stride, padding):
        _over_planes(_max2x2_forward_cpu, arrays, planes, x.size)
    else:
        work = y.size * kernel_size[0] * kernel_size[1]
        geometry = (*kernel_size, *stride, *padding)
        _over_planes(_max_forward_cpu, arrays, planes, work, *geometry)
    return y, argmax


def max_pool2d_backward_cpu(grad, argmax, x_shape, kernel_size, stride, padding):
    """The input gradient of max-pool: each output's gradient goes to its argmax."""
    dx = np.empty(tuple(x_shape), dtype=grad.dtype)
    arrays = (_planes(grad), _planes(argmax), _planes(dx))
    planes = x_shape[0] * x_shape[1]
    if _tiles_by_2x2(x_shape, kernel_size, stride, padding):
        _over_planes(_max2x2_backward_cpu, arrays, planes, dx.size)
    else:
        geometry = (kernel_size[1], *stride, *padding)
        _over_planes(_max_backward_cpu, arrays, planes, dx.size, *geometry)
    return dx


def _tiles_by_2x2(x_shape, kernel_size, stride, padding):
    """2x2 windows at stride 2 without padding over an even-sized input."""
    return (
        tuple(kernel_size) == (2, 2)
        and tuple(stride) == (2, 2)
        and tuple(padding) == (0, 0)
        and x_shape[-2] % 2 == 0
        and x_shape[-1] % 2 == 0
    )


def avg_pool2d_forward_cpu(x, kernel_size, stride, padding):
    """Mean over each window, padded zeros included."""
    shape = _output_shape(x.shape, kernel_size, stride, padding)
    y = np.empty(shape, dtype=x.dtype)
    planes = shape[0] * shape[1]
    work = y.size * kernel_size[0] * kernel_size[1]
    geometry = (*kernel_size, *stride, *padding)
    _over_planes(_avg_forward_cpu, (_planes(x), _planes(y)), planes, work, *geometry)
    return y


def avg_pool2d_backward_cpu(grad, x_shape, kernel_size, stride, padding):
    """The input gradient of average-pool."""
    dx = np.empty(tuple(x_shape), dtype=grad.dtype)
    planes = x_shape[0] * x_shape[1]
    work = grad.size * kernel_size[0] * kernel_size[1]
    geometry = (*kernel_size, *stride, *padding)
    _over_planes(_avg_backward_cpu, (_planes(grad), _planes(dx)), planes, work, *geometry)
    return dx


# --------------------------------------------------------------------------- CUDA
# One thread per output (forward) or per input element (backward, gathering from the
# windows that read it). float32 data stays in float32 (typed constants), and flat
# indices are split by ``_cuda.index_math``: 32-bit division below ``INDEX32_LIMIT``
# elements, 64-bit in the ``_int64`` builds above it.


cuda = None  # numba.cuda, set by cuda_kernels()


def _build_cuda(wide):
    _, unravel_nchw, output_coord = index_math(wide)

    @cuda.jit
    def max_forward(x, y, argmax, kh, kw, sh, sw, ph, pw):
        index = cuda.grid(1)
        if index >= y.size:
            return
        n, c, oh, ow = unravel_nchw(index, y.shape[1], y.shape[2], y.shape[3])
        best = y.dtype.type(-math.inf)
        best_tap = -1
        for i in range(kh):
            ih = input_coord(oh, i, sh, ph, 1)
            if ih < 0 or ih >= x.shape[2]:
                continue
            for j in range(kw):
                iw = input_coord(ow, j, sw, pw, 1)
                if iw < 0 or iw >= x.shape[3]:
                    continue
                value = x[n, c, ih, iw]
                if _wins(value, best, best_tap):
                    best = value
                    best_tap = i * kw + j
        y[n, c, oh, ow] = best
        argmax[n, c, oh, ow] = best_tap

    @cuda.jit
    def max_backward(grad, argmax, dx, kh, kw, sh, sw, ph, pw):
        index = cuda.grid(1)
        if index >= dx.size:
            return
        n, c, ih, iw = unravel_nchw(index, dx.shape[1], dx.shape[2], dx.shape[3])
        total = dx.dtype.type(0)
        for i in range(kh):
            oh = output_coord(ih, i, sh, ph, 1, grad.shape[2])
            if oh < 0:
                continue
            for j in range(kw):
                ow = output_coord(iw, j, sw, pw, 1, grad.shape[3])
                if ow >= 0 and argmax[n, c, oh, ow] == i * kw + j:
                    total += grad[n, c, oh, ow]
        dx[n, c, ih, iw] = total

    @cuda.jit
    def avg_forward(x, y, kh, kw, sh, sw, ph, pw):
        index = cuda.grid(1)
        if index >= y.size:
            return
        n, c, oh, ow = unravel_nchw(index, y.shape[1], y.shape[2], y.shape[3])
        total = y.dtype.type(0)
        for i in range(kh):
            ih = input_coord(oh, i, sh, ph, 1)
            if ih < 0 or ih >= x.shape[2]:
                continue
            for j in range(kw):
                iw = input_coord(ow, j, sw, pw, 1)
                if 0 <= iw < x.shape[3]:
                    total += x[n, c, ih, iw]
        y[n, c, oh, ow] = total / y.dtype.type(kh * kw)

    @cuda.jit
    def avg_backward(grad, dx, kh, kw, sh, sw, ph, pw):
        index = cuda.grid(1)
        if index >= dx.size:
            return
        n, c, ih, iw = unravel_nchw(index, dx.shape[1], dx.shape[2], dx.shape[3])
        total = dx.dtype.type(0)
        for i in range(kh):
            oh = output_coord(ih, i, sh, ph, 1, grad.shape[2])
            if oh < 0:
                continue
            for j in range(kw):
                ow = output_coord(iw, j, sw, pw, 1, grad.shape[3])
                if ow >= 0:
                    total += grad[n, c, oh, ow]
        dx[n, c, ih, iw] = total / dx.dtype.type(kh * kw)

    return {
        "max_forward": max_forward,
        "max_backward": max_backward,
        "avg_forward": avg_forward,
        "avg_backward": avg_backward,
    }


@functools.cache
def cuda_kernels():
    """The CUDA pooling kernels (both index builds, see ``_cuda.index_builds``), compiled
    on first use."""
    # A module global, not a local: the CUDA simulator swaps module-level ``cuda``
    # references for its own when it runs a kernel.
    global cuda
    cuda = numba_cuda()
    return index_builds(_build_cuda)


def cuda_signatures(dtype):
    """The argument types each kernel of ``cuda_kernels()`` is launched with, for float
    dtype ``dtype`` (``numba.types.float32`` or ``float64``)."""
    from numba import types

    t4, taps = dtype[:, :, :, ::1], types.int32[:, :, :, ::1]
    geometry = (types.int64,) * 6  # kh, kw, sh, sw, ph, pw
    signatures = {
        "max_forward": (t4, t4, taps, *geometry),
        "max_backward": (t4, taps, t4, *geometry),
        "avg_forward": (t4, t4, *geometry),
        "avg_backward": (t4, t4, *geometry),
    }
    return {**signatures, **{name + WIDE: found for name, found in signatures.items()}}


# The wrappers take CuPy arrays, or NumPy arrays under the simulator.


def max_pool2d_forward_cuda(x, kernel_size, stride, padding):
    """CUDA max-pool forward: ``(y, argmax)`` (see ``max_pool2d_forward_cpu``)."""
    lib = array_library(x)
    shape = _output_shape(x.shape, kernel_size, stride, padding)
    y = lib.empty(shape, dtype=x.dtype)
    argmax = lib.empty(shape, dtype=lib.int32)
    x = lib.ascontiguousarray(x)
    geometry = (*kernel_size, *stride, *padding)
    launch_indexed(cuda_kernels(), "max_forward", y.size, x, y, argmax, *geometry)
    return y, argmax


def max_pool2d_backward_cuda(grad, argmax, x_shape, kernel_size, stride, padding):
    """CUDA max-pool backward."""
    lib = array_library(grad)
    dx = lib.empty(tuple(x_shape), dtype=grad.dtype)
    grad = lib.ascontiguousarray(grad)
    geometry = (*kernel_size, *stride, *padding)
    launch_indexed(cuda_kernels(), "max_backward", dx.size, grad, argmax, dx, *geometry)
    return dx


def avg_pool2d_forward_cuda(x, kernel_size, stride, padding):
    """CUDA average-pool forward."""
    lib = array_library(x)
    y = lib.empty(_output_shape(x.shape, kernel_size, stride, padding), dtype=x.dtype)
    x = lib.ascontiguousarray(x)
    geometry = (*kernel_size, *stride, *padding)
    launch_indexed(cuda_kernels(), "avg_forward", y.size, x, y, *geometry)
    return y


def avg_pool2d_backward_cuda(grad, x_shape, kernel_size, stride, padding):
    """CUDA average-pool backward."""
    lib = array_library(grad)
    dx = lib.empty(tuple(x_shape), dtype=grad.dtype)
    grad = lib.ascontiguousarray(grad)
    geometry = (*kernel_size, *stride, *padding)
    launch_indexed(cuda_kernels(), "avg_backward", dx.size, grad, dx, *geometry)
    return dx
