"""Convolution kernels: im2col, col2im and the layout moves around the one GEMM.

A convolution is computed as ``weight (O, K) @ col (K, N*P)`` with ``K = C*kh*kw`` and
``P = OH*OW``. The column matrix is written row by row (one row per input channel and
kernel tap) so each row is a contiguous copy of shifted input rows; the GEMM result
``(O, N*P)`` is moved to NCHW by ``conv_output`` while adding the bias, and the output
gradient is moved back by ``conv_grad_output`` while summing the bias gradient. Each
move reads and writes every element once.

The index arithmetic is written once (``input_coord``, ``valid_outputs``,
``output_coord``) and shared by the CPU kernels (``@njit(parallel=True)``) and the CUDA
kernels (``@cuda.jit``, built on first use). The CPU kernels scatter where a thread owns
a whole image plane; the CUDA kernels gather, one thread per output element, so they
need no atomics.
"""

from __future__ import annotations

import functools
import math
import warnings

import numba
import numpy as np
from numba import prange

from ._cuda import current_stream, device_arrays

THREADS_PER_BLOCK = 256


# Below this many elements of work (128 Mi, 512 MB of float32) a kernel runs on one
# thread. The array library's BLAS keeps its own threads spinning between GEMMs, and a
# threaded region waits for whichever of its threads shares a core with one: measured on
# 2 cores, a CNN training step (W2) took 2.2x as long with threaded kernels and a batch
# of inference (W6, 80 MB columns) 1.6x as long.
PARALLEL_MIN_WORK = 1 << 27


def _jit(function, parallel):
    """``@njit(parallel=..., cache=True)``, without the cache where none can be written.

    Numba refuses ``cache=True`` when neither the source folder nor a user cache folder
    is writable (a read-only install); the kernel then compiles on each first use.
    """
    # error_model="numpy": no zero-division checks in the index arithmetic (every
    # divisor is a validated size or stride >= 1), so the inner loops can vectorise.
    options = {"parallel": parallel, "error_model": "numpy"}
    try:
        return numba.njit(cache=True, **options)(function)
    except RuntimeError:
        return numba.njit(cache=False, **options)(function)


class CpuKernel:
    """A CPU kernel compiled on first use (``parallel=True``, ``prange``), cached on disk.

    Call it as ``kernel(work, *args)`` where ``work`` is the number of elements it
    touches; below ``PARALLEL_MIN_WORK`` it runs on the calling thread alone. (The same
    parallel build on one thread measured faster than a ``parallel=False`` build: W2
    51 ms against 64-71 ms per step on 2 cores.)
    """

    def __init__(self, function):
        self.function = function
        self._build = None

    def __call__(self, work, *args):
        if self._build is None:
            self._build = _jit(self.function, parallel=True)
        if work >= PARALLEL_MIN_WORK:
            return self._build(*args)
        threads = numba.get_num_threads()
        numba.set_num_threads(1)
        try:
            return self._build(*args)
        finally:
            numba.set_num_threads(threads)


def cpu_kernel(function):
    """Decorator: a ``CpuKernel`` of ``function`` (compiled lazily, cached on disk)."""
    return CpuKernel(function)


# --------------------------------------------------------------------------- index math


@numba.njit(inline="always")
def unravel_nchw(index, c_count, h_count, w_count):
    """``(n, c, h, w)`` of flat position ``index`` in a C-ordered (N, C, H, W) array."""
    w = index % w_count
    h = (index // w_count) % h_count
    c = (index // (w_count * h_count)) % c_count
    n = index // (w_count * h_count * c_count)
    return n, c, h, w


@numba.njit(inline="always")
def input_coord(out_index, tap, stride, pad, dilation):
    """The input coordinate that kernel tap ``tap`` of window ``out_index`` reads."""
    return out_index * stride - pad + tap * dilation


@numba.njit(inline="always")
def valid_outputs(tap, stride, pad, dilation, size, out_count):
    """``[lo, hi)``: the windows whose tap ``tap`` falls inside ``[0, size)``."""
    offset = tap * dilation - pad
    lo = 0
    if offset < 0:
        lo = (-offset + stride - 1) // stride
    last = size - 1 - offset
    hi = 0
    if last >= 0:
        hi = min(out_count, last // stride + 1)
    if lo > hi:
        lo = hi
    return lo, hi


@numba.njit(inline="always")
def output_coord(in_index, tap, stride, pad, dilation, out_count):
    """The window whose tap ``tap`` reads input ``in_index``, or -1 if there is none."""
    shifted = in_index + pad - tap * dilation
    if shifted < 0 or shifted % stride != 0:
        return -1
    out_index = shifted // stride
    if out_index >= out_count:
        return -1
    return out_index


def geometry(x_shape, kernel_size, stride, padding, dilation):
    """``(OH, OW)`` of a window sweep over an input of shape ``(..., H, W)``."""
    h, w = x_shape[-2], x_shape[-1]
    return (
        (h + 2 * padding[0] - dilation[0] * (kernel_size[0] - 1) - 1) // stride[0] + 1,
        (w + 2 * padding[1] - dilation[1] * (kernel_size[1] - 1) - 1) // stride[1] + 1,
    )


# --------------------------------------------------------------------------- CPU kernels


@cpu_kernel
def _im2col_cpu(x, col, kh, kw, sh, sw, ph, pw, dh, dw, oh_count, ow_count):
    n_count, _, h_count, w_count = x.shape
    plane = oh_count * ow_count
    rows = col.shape[0]
    for task in prange(rows * n_count):
        row = task // n_count
        n = task - row * n_count
        c = row // (kh * kw)
        i = (row // kw) % kh
        j = row % kw
        lo, hi = valid_outputs(j, sw, pw, dw, w_count, ow_count)
        shift = j * dw - pw
        for oh in range(oh_count):
            start = n * plane + oh * ow_count
            ih = input_coord(oh, i, sh, ph, dh)
            if ih < 0 or ih >= h_count:
                for ow in range(ow_count):
                    col[row, start + ow] = 0
                continue
            for ow in range(lo):
                col[row, start + ow] = 0
            for ow in range(lo, hi):
                col[row, start + ow] = x[n, c, ih, ow * sw + shift]
            for ow in range(hi, ow_count):
                col[row, start + ow] = 0


@cpu_kernel
def _col2im_cpu(col, dx, kh, kw, sh, sw, ph, pw, dh, dw, oh_count, ow_count):
    n_count, c_count, h_count, w_count = dx.shape
    plane = oh_count * ow_count
    # One task owns one (n, c) plane of dx, so the scatter-add needs no atomics.
    for task in prange(n_count * c_count):
        n = task // c_count
        c = task - n * c_count
        for ih in range(h_count):
            for iw in range(w_count):
                dx[n, c, ih, iw] = 0
        for i in range(kh):
            for j in range(kw):
                row = (c * kh + i) * kw + j
                lo, hi = valid_outputs(j, sw, pw, dw, w_count, ow_count)
                shift = j * dw - pw
                for oh in range(oh_count):
                    ih = input_coord(oh, i, sh, ph, dh)
                    if ih < 0 or ih >= h_count:
                        continue
                    start = n * plane + oh * ow_count
                    for ow in range(lo, hi):
                        dx[n, c, ih, ow * sw + shift] += col[row, start + ow]


@cpu_kernel
def _conv_output_cpu(y, bias, out):
    n_count, o_count, plane = out.shape
    for task in prange(n_count * o_count):
        n = task // o_count
        o = task - n * o_count
        b = bias[o]
        start = n * plane
        for p in range(plane):
            out[n, o, p] = y[o, start + p] + b


@cpu_kernel
def _conv_grad_output_cpu(grad, out, bias_grad):
    n_count, o_count, plane = grad.shape
    for o in prange(o_count):
        total = 0.0  # float64 accumulator: a float32 sum over N*P terms would drift
        for n in range(n_count):
            start = n * plane
            for p in range(plane):
                value = grad[n, o, p]
                out[o, start + p] = value
                total += value
        bias_grad[o] = total


# --------------------------------------------------------------------------- CPU API


def _empty(shape, dtype, out):
    if out is not None and out.shape == shape and out.dtype == dtype:
        return out
    return np.empty(shape, dtype=dtype)


def im2col_cpu(x, kernel_size, stride, padding, dilation, out=None):
    """The column matrix ``(C*kh*kw, N*OH*OW)`` of an NCHW array.

    Row ``(c*kh + i)*kw + j`` holds, for every sample and window, the input value under
    tap ``(i, j)`` of channel ``c`` (zero in the padding). ``out`` is reused when its
    shape and dtype fit.
    """
    n, c = x.shape[0], x.shape[1]
    oh, ow = geometry(x.shape, kernel_size, stride, padding, dilation)
    col = _empty((c * kernel_size[0] * kernel_size[1], n * oh * ow), x.dtype, out)
    _im2col_cpu(
        col.size, np.ascontiguousarray(x), col, *kernel_size, *stride, *padding, *dilation, oh, ow
    )
    return col


def col2im_cpu(col, x_shape, kernel_size, stride, padding, dilation, out=None):
    """The adjoint of im2col: adds every column entry back onto its input position."""
    oh, ow = geometry(x_shape, kernel_size, stride, padding, dilation)
    dx = _empty(tuple(x_shape), col.dtype, out)
    _col2im_cpu(
        col.size, np.ascontiguousarray(col), dx, *kernel_size, *stride, *padding, *dilation, oh, ow
    )
    return dx


def conv_output_cpu(y, bias, batch):
    """``(O, N*P)`` GEMM result to ``(N, O, P)``, plus ``bias`` ``(O,)``."""
    o_count, columns = y.shape
    out = np.empty((batch, o_count, columns // batch), dtype=y.dtype)
    _conv_output_cpu(out.size, np.ascontiguousarray(y), bias, out)
    return out


def conv_grad_output_cpu(grad, out=None):
    """``(N, O, P)`` gradient to ``(O, N*P)``, and its sum per channel ``(O,)``."""
    n_count, o_count, plane = grad.shape
    moved = _empty((o_count, n_count * plane), grad.dtype, out)
    bias_grad = np.empty(o_count, dtype=grad.dtype)
    _conv_grad_output_cpu(moved.size, np.ascontiguousarray(grad), moved, bias_grad)
    return moved, bias_grad


# --------------------------------------------------------------------------- CUDA


cuda = None  # numba.cuda, imported by cuda_kernels()


@functools.cache
def cuda_kernels():
    """The CUDA kernels, compiled on first use (importing numba.cuda costs ~0.5 s)."""
    # A module global, not a local: the CUDA simulator swaps module-level ``cuda``
    # references for its own when it runs a kernel.
    global cuda
    from numba import cuda

    @cuda.jit
    def im2col(x, col, kh, kw, sh, sw, ph, pw, dh, dw, oh_count, ow_count):
        index = cuda.grid(1)
        columns = col.shape[1]
        if index >= col.shape[0] * columns:
            return
        row = index // columns
        rest = index - row * columns
        plane = oh_count * ow_count
        n = rest // plane
        p = rest - n * plane
        oh = p // ow_count
        ow = p - oh * ow_count
        c = row // (kh * kw)
        i = (row // kw) % kh
        j = row % kw
        ih = input_coord(oh, i, sh, ph, dh)
        iw = input_coord(ow, j, sw, pw, dw)
        if 0 <= ih < x.shape[2] and 0 <= iw < x.shape[3]:
            col[row, rest] = x[n, c, ih, iw]
        else:
            col[row, rest] = 0

    @cuda.jit
    def col2im(col, dx, kh, kw, sh, sw, ph, pw, dh, dw, oh_count, ow_count):
        index = cuda.grid(1)
        n_count, c_count, h_count, w_count = dx.shape
        if index >= n_count * c_count * h_count * w_count:
            return
        n, c, ih, iw = unravel_nchw(index, c_count, h_count, w_count)
        total = 0.0
        for i in range(kh):
            oh = output_coord(ih, i, sh, ph, dh, oh_count)
            if oh < 0:
                continue
            for j in range(kw):
                ow = output_coord(iw, j, sw, pw, dw, ow_count)
                if ow >= 0:
                    row = (c * kh + i) * kw + j
                    total += col[row, (n * oh_count + oh) * ow_count + ow]
        dx[n, c, ih, iw] = total

    @cuda.jit
    def conv_output(y, bias, out):
        index = cuda.grid(1)
        n_count, o_count, plane = out.shape
        if index >= n_count * o_count * plane:
            return
        p = index % plane
        o = (index // plane) % o_count
        n = index // (plane * o_count)
        out[n, o, p] = y[o, n * plane + p] + bias[o]

    @cuda.jit
    def conv_grad_output(grad, out):
        index = cuda.grid(1)
        n_count, o_count, plane = grad.shape
        if index >= n_count * o_count * plane:
            return
        p = index % plane
        n = (index // plane) % n_count
        o = index // (plane * n_count)
        out[o, n * plane + p] = grad[n, o, p]

    return {
        "im2col": im2col,
        "col2im": col2im,
        "conv_output": conv_output,
        "conv_grad_output": conv_grad_output,
    }


def launch(name, size, *args, stream=0, kernels=None):
    """Run CUDA kernel ``name`` with one thread per element of a ``size``-element output.

    Takes CuPy arrays, or NumPy arrays under the CUDA simulator (which is how the tests
    compare the CUDA kernels with the reference). ``kernels`` is the family's table of
    compiled kernels (default: this module's).
    """
    table = kernels if kernels is not None else cuda_kernels()
    blocks = max(1, math.ceil(size / THREADS_PER_BLOCK))
    with warnings.catch_warnings():
        # Small batches launch few blocks; numba's low-occupancy warning says nothing new.
        warnings.filterwarnings("ignore", message=".*under-utilization")
        table[name][blocks, THREADS_PER_BLOCK, stream](*device_arrays(*args))


def launch_im2col(x, col, kernel_size, stride, padding, dilation, stream=0):
    oh, ow = geometry(x.shape, kernel_size, stride, padding, dilation)
    launch(
        "im2col",
        col.size,
        x,
        col,
        *kernel_size,
        *stride,
        *padding,
        *dilation,
        oh,
        ow,
        stream=stream,
    )


def launch_col2im(col, dx, kernel_size, stride, padding, dilation, stream=0):
    oh, ow = geometry(dx.shape, kernel_size, stride, padding, dilation)
    launch(
        "col2im",
        dx.size,
        col,
        dx,
        *kernel_size,
        *stride,
        *padding,
        *dilation,
        oh,
        ow,
        stream=stream,
    )


def im2col_cuda(x, kernel_size, stride, padding, dilation, out=None):
    """CUDA im2col on CuPy arrays (see ``im2col_cpu``)."""
    import cupy

    n, c = x.shape[0], x.shape[1]
    oh, ow = geometry(x.shape, kernel_size, stride, padding, dilation)
    shape = (c * kernel_size[0] * kernel_size[1], n * oh * ow)
    col = out if out is not None and out.shape == shape and out.dtype == x.dtype else None
    if col is None:
        col = cupy.empty(shape, dtype=x.dtype)
    x = cupy.ascontiguousarray(x)
    launch_im2col(x, col, kernel_size, stride, padding, dilation, stream=current_stream())
    return col


def col2im_cuda(col, x_shape, kernel_size, stride, padding, dilation, out=None):
    """CUDA col2im on CuPy arrays (see ``col2im_cpu``)."""
    import cupy

    dx = out if out is not None and out.shape == tuple(x_shape) else None
    if dx is None or dx.dtype != col.dtype:
        dx = cupy.empty(tuple(x_shape), dtype=col.dtype)
    col = cupy.ascontiguousarray(col)
    launch_col2im(col, dx, kernel_size, stride, padding, dilation, stream=current_stream())
    return dx


def conv_output_cuda(y, bias, batch):
    """CUDA ``conv_output`` on CuPy arrays (see ``conv_output_cpu``)."""
    import cupy

    o_count, columns = y.shape
    out = cupy.empty((batch, o_count, columns // batch), dtype=y.dtype)
    launch("conv_output", out.size, cupy.ascontiguousarray(y), bias, out, stream=current_stream())
    return out


def conv_grad_output_cuda(grad, out=None):
    """CUDA ``conv_grad_output`` on CuPy arrays; the bias gradient is a CuPy sum."""
    import cupy

    n_count, o_count, plane = grad.shape
    shape = (o_count, n_count * plane)
    moved = out if out is not None and out.shape == shape and out.dtype == grad.dtype else None
    if moved is None:
        moved = cupy.empty(shape, dtype=grad.dtype)
    grad = cupy.ascontiguousarray(grad)
    launch("conv_grad_output", moved.size, grad, moved, stream=current_stream())
    return moved, cupy.sum(moved, axis=1)
