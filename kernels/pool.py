"""Pooling kernels: max-pool with its argmax, average-pool, forward and backward.

Max-pool records, for every output, the winning tap ``i*kw + j`` of its window (int32,
the first maximum in row-major tap order, as ``argmax`` over the stacked windows of the
reference), so the backward pass needs no second look at the input. Padding counts as
-inf for max-pool and as zeros in the average (PyTorch's ``count_include_pad=True``).

The CPU kernels give one image plane to each parallel task and scatter within it; the
CUDA kernels use one thread per output element and gather, so neither needs atomics.
The index arithmetic is shared with the convolution kernels.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numba import prange

from .conv import (
    cpu_kernel,
    current_stream,
    geometry,
    input_coord,
    launch,
    output_coord,
    unravel_nchw,
)

_NO_DILATION = (1, 1)


# --------------------------------------------------------------------------- CPU kernels


@cpu_kernel
def _max_forward_cpu(x, y, argmax, kh, kw, sh, sw, ph, pw):
    n_count, c_count, h_count, w_count = x.shape
    oh_count, ow_count = y.shape[2], y.shape[3]
    for task in prange(n_count * c_count):
        n = task // c_count
        c = task - n * c_count
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
                        value = x[n, c, ih, iw]
                        if best_tap < 0 or value > best:
                            best = value
                            best_tap = i * kw + j
                y[n, c, oh, ow] = best
                argmax[n, c, oh, ow] = best_tap


@cpu_kernel
def _max_backward_cpu(grad, argmax, dx, kw, sh, sw, ph, pw):
    n_count, c_count, h_count, w_count = dx.shape
    oh_count, ow_count = grad.shape[2], grad.shape[3]
    for task in prange(n_count * c_count):
        n = task // c_count
        c = task - n * c_count
        for ih in range(h_count):
            for iw in range(w_count):
                dx[n, c, ih, iw] = 0
        for oh in range(oh_count):
            for ow in range(ow_count):
                tap = argmax[n, c, oh, ow]
                ih = input_coord(oh, tap // kw, sh, ph, 1)
                iw = input_coord(ow, tap % kw, sw, pw, 1)
                dx[n, c, ih, iw] += grad[n, c, oh, ow]


@cpu_kernel
def _max2x2_forward_cpu(x, y, argmax):
    # The common case (2x2 windows, stride 2, no padding, even H and W): the windows
    # tile the input, so no bounds checks; taps and tie-breaking as _max_forward_cpu.
    n_count, c_count = x.shape[0], x.shape[1]
    oh_count, ow_count = y.shape[2], y.shape[3]
    for task in prange(n_count * c_count):
        n = task // c_count
        c = task - n * c_count
        for oh in range(oh_count):
            top = x[n, c, 2 * oh]
            bottom = x[n, c, 2 * oh + 1]
            for ow in range(ow_count):
                best = top[2 * ow]
                tap = 0
                if top[2 * ow + 1] > best:
                    best = top[2 * ow + 1]
                    tap = 1
                if bottom[2 * ow] > best:
                    best = bottom[2 * ow]
                    tap = 2
                if bottom[2 * ow + 1] > best:
                    best = bottom[2 * ow + 1]
                    tap = 3
                y[n, c, oh, ow] = best
                argmax[n, c, oh, ow] = tap


@cpu_kernel
def _max2x2_backward_cpu(grad, argmax, dx):
    # Zero the two input rows under an output row while they are in L1, then one store
    # per output at its winning tap: 2.3-2.6x faster than writing all four values of each
    # window through selects (W2's first pool at batch 64: 0.90 ms against 2.2 ms).
    n_count, c_count = dx.shape[0], dx.shape[1]
    oh_count, ow_count = grad.shape[2], grad.shape[3]
    w_count = dx.shape[3]
    for task in prange(n_count * c_count):
        n = task // c_count
        c = task - n * c_count
        for oh in range(oh_count):
            for iw in range(w_count):
                dx[n, c, 2 * oh, iw] = 0
                dx[n, c, 2 * oh + 1, iw] = 0
            for ow in range(ow_count):
                tap = argmax[n, c, oh, ow]
                dx[n, c, 2 * oh + (tap >> 1), 2 * ow + (tap & 1)] = grad[n, c, oh, ow]


@cpu_kernel
def _avg_forward_cpu(x, y, kh, kw, sh, sw, ph, pw):
    n_count, c_count, h_count, w_count = x.shape
    oh_count, ow_count = y.shape[2], y.shape[3]
    scale = 1.0 / (kh * kw)
    for task in prange(n_count * c_count):
        n = task // c_count
        c = task - n * c_count
        for oh in range(oh_count):
            for ow in range(ow_count):
                total = 0.0
                for i in range(kh):
                    ih = input_coord(oh, i, sh, ph, 1)
                    if ih < 0 or ih >= h_count:
                        continue
                    for j in range(kw):
                        iw = input_coord(ow, j, sw, pw, 1)
                        if 0 <= iw < w_count:
                            total += x[n, c, ih, iw]
                y[n, c, oh, ow] = total * scale


@cpu_kernel
def _avg_backward_cpu(grad, dx, kh, kw, sh, sw, ph, pw):
    n_count, c_count, h_count, w_count = dx.shape
    oh_count, ow_count = grad.shape[2], grad.shape[3]
    scale = 1.0 / (kh * kw)
    for task in prange(n_count * c_count):
        n = task // c_count
        c = task - n * c_count
        for ih in range(h_count):
            for iw in range(w_count):
                dx[n, c, ih, iw] = 0
        for oh in range(oh_count):
            for ow in range(ow_count):
                share = grad[n, c, oh, ow] * scale
                for i in range(kh):
                    ih = input_coord(oh, i, sh, ph, 1)
                    if ih < 0 or ih >= h_count:
                        continue
                    for j in range(kw):
                        iw = input_coord(ow, j, sw, pw, 1)
                        if 0 <= iw < w_count:
                            dx[n, c, ih, iw] += share


# --------------------------------------------------------------------------- CPU API


def _output_shape(x_shape, kernel_size, stride, padding):
    oh, ow = geometry(x_shape, kernel_size, stride, padding, _NO_DILATION)
    return (x_shape[0], x_shape[1], oh, ow)


def max_pool2d_forward_cpu(x, kernel_size, stride, padding):
    """Max over each window: ``(y, argmax)``, argmax the int32 tap ``i*kw + j``."""
    shape = _output_shape(x.shape, kernel_size, stride, padding)
    y = np.empty(shape, dtype=x.dtype)
    argmax = np.empty(shape, dtype=np.int32)
    x = np.ascontiguousarray(x)
    if _tiles_by_2x2(x.shape, kernel_size, stride, padding):
        _max2x2_forward_cpu(x.size, x, y, argmax)
    else:
        _max_forward_cpu(x.size, x, y, argmax, *kernel_size, *stride, *padding)
    return y, argmax


def max_pool2d_backward_cpu(grad, argmax, x_shape, kernel_size, stride, padding):
    """The input gradient of max-pool: each output's gradient goes to its argmax."""
    dx = np.empty(tuple(x_shape), dtype=grad.dtype)
    grad = np.ascontiguousarray(grad)
    if _tiles_by_2x2(x_shape, kernel_size, stride, padding):
        _max2x2_backward_cpu(dx.size, grad, argmax, dx)
    else:
        _max_backward_cpu(dx.size, grad, argmax, dx, kernel_size[1], *stride, *padding)
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
    y = np.empty(_output_shape(x.shape, kernel_size, stride, padding), dtype=x.dtype)
    _avg_forward_cpu(x.size, np.ascontiguousarray(x), y, *kernel_size, *stride, *padding)
    return y


def avg_pool2d_backward_cpu(grad, x_shape, kernel_size, stride, padding):
    """The input gradient of average-pool."""
    dx = np.empty(tuple(x_shape), dtype=grad.dtype)
    _avg_backward_cpu(dx.size, np.ascontiguousarray(grad), dx, *kernel_size, *stride, *padding)
    return dx


# --------------------------------------------------------------------------- CUDA


cuda = None  # numba.cuda, imported by cuda_kernels()


@functools.cache
def cuda_kernels():
    """The CUDA pooling kernels, compiled on first use."""
    # A module global, not a local: the CUDA simulator swaps module-level ``cuda``
    # references for its own when it runs a kernel.
    global cuda
    from numba import cuda

    @cuda.jit
    def max_forward(x, y, argmax, kh, kw, sh, sw, ph, pw):
        index = cuda.grid(1)
        n_count, c_count, oh_count, ow_count = y.shape
        if index >= n_count * c_count * oh_count * ow_count:
            return
        n, c, oh, ow = unravel_nchw(index, c_count, oh_count, ow_count)
        best = -math.inf
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
                if best_tap < 0 or value > best:
                    best = value
                    best_tap = i * kw + j
        y[n, c, oh, ow] = best
        argmax[n, c, oh, ow] = best_tap

    @cuda.jit
    def max_backward(grad, argmax, dx, kh, kw, sh, sw, ph, pw):
        index = cuda.grid(1)
        n_count, c_count, h_count, w_count = dx.shape
        if index >= n_count * c_count * h_count * w_count:
            return
        n, c, ih, iw = unravel_nchw(index, c_count, h_count, w_count)
        total = 0.0
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
        n_count, c_count, oh_count, ow_count = y.shape
        if index >= n_count * c_count * oh_count * ow_count:
            return
        n, c, oh, ow = unravel_nchw(index, c_count, oh_count, ow_count)
        total = 0.0
        for i in range(kh):
            ih = input_coord(oh, i, sh, ph, 1)
            if ih < 0 or ih >= x.shape[2]:
                continue
            for j in range(kw):
                iw = input_coord(ow, j, sw, pw, 1)
                if 0 <= iw < x.shape[3]:
                    total += x[n, c, ih, iw]
        y[n, c, oh, ow] = total / (kh * kw)

    @cuda.jit
    def avg_backward(grad, dx, kh, kw, sh, sw, ph, pw):
        index = cuda.grid(1)
        n_count, c_count, h_count, w_count = dx.shape
        if index >= n_count * c_count * h_count * w_count:
            return
        n, c, ih, iw = unravel_nchw(index, c_count, h_count, w_count)
        total = 0.0
        for i in range(kh):
            oh = output_coord(ih, i, sh, ph, 1, grad.shape[2])
            if oh < 0:
                continue
            for j in range(kw):
                ow = output_coord(iw, j, sw, pw, 1, grad.shape[3])
                if ow >= 0:
                    total += grad[n, c, oh, ow]
        dx[n, c, ih, iw] = total / (kh * kw)

    return {
        "max_forward": max_forward,
        "max_backward": max_backward,
        "avg_forward": avg_forward,
        "avg_backward": avg_backward,
    }


def launch_pool(name, size, *args, stream=0):
    """Run pooling kernel ``name`` over ``size`` threads (NumPy arrays under cudasim)."""
    launch(name, size, *args, stream=stream, kernels=cuda_kernels())


def max_pool2d_forward_cuda(x, kernel_size, stride, padding):
    """CUDA max-pool forward on CuPy arrays (see ``max_pool2d_forward_cpu``)."""
    import cupy

    shape = _output_shape(x.shape, kernel_size, stride, padding)
    y = cupy.empty(shape, dtype=x.dtype)
    argmax = cupy.empty(shape, dtype=cupy.int32)
    launch_pool(
        "max_forward",
        y.size,
        cupy.ascontiguousarray(x),
        y,
        argmax,
        *kernel_size,
        *stride,
        *padding,
        stream=current_stream(),
    )
    return y, argmax


def max_pool2d_backward_cuda(grad, argmax, x_shape, kernel_size, stride, padding):
    """CUDA max-pool backward on CuPy arrays."""
    import cupy

    dx = cupy.empty(tuple(x_shape), dtype=grad.dtype)
    launch_pool(
        "max_backward",
        dx.size,
        cupy.ascontiguousarray(grad),
        argmax,
        dx,
        *kernel_size,
        *stride,
        *padding,
        stream=current_stream(),
    )
    return dx


def avg_pool2d_forward_cuda(x, kernel_size, stride, padding):
    """CUDA average-pool forward on CuPy arrays."""
    import cupy

    y = cupy.empty(_output_shape(x.shape, kernel_size, stride, padding), dtype=x.dtype)
    launch_pool(
        "avg_forward",
        y.size,
        cupy.ascontiguousarray(x),
        y,
        *kernel_size,
        *stride,
        *padding,
        stream=current_stream(),
    )
    return y


def avg_pool2d_backward_cuda(grad, x_shape, kernel_size, stride, padding):
    """CUDA average-pool backward on CuPy arrays."""
    import cupy

    dx = cupy.empty(tuple(x_shape), dtype=grad.dtype)
    launch_pool(
        "avg_backward",
        dx.size,
        cupy.ascontiguousarray(grad),
        dx,
        *kernel_size,
        *stride,
        *padding,
        stream=current_stream(),
    )
    return dx
