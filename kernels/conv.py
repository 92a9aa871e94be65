"""Convolution kernels: the unfolding (im2col) around the GEMM, on the CPU and on CUDA.

A convolution is a GEMM of the weight ``(O, K)``, ``K = C*kh*kw``, with the input unfolded
so that each output position sees its window as one vector. The two targets unfold
differently, because their memory differs:

* CPU (``conv2d_forward_cpu``): blocks of images at a time, each block's rows kept in
  cache and multiplied at once, and rebuilt in backward rather than stored (see the
  comment above the CPU kernels); the blocks are dealt to one share per core
  (``_shares``).
* CUDA (``conv2d_forward_cuda``): the whole batch's column matrix ``(K, N*OH*OW)``, one
  thread per element (``im2col``), one cuBLAS GEMM, then ``conv_output`` moves the
  ``(O, N*P)`` product to NCHW while adding the bias; backward runs the adjoints, one
  thread per input element gathering its taps (``col2im``), so no atomics are needed.

The index arithmetic is written once (``input_coord``, ``output_coord``,
``unravel_nchw``) and shared with the pooling kernels.
"""

from __future__ import annotations

import functools
import math
import warnings

import numba
import numpy as np

from . import _shares
from ._cuda import current_stream, device_arrays

THREADS_PER_BLOCK = 256


# Below this many elements of work (128 Mi, 512 MB of float32) a kernel runs on one
# thread. The array library's BLAS keeps its own threads spinning between GEMMs, and a
# threaded region waits for whichever of its threads shares a core with one: measured on
# 2 cores with the earlier whole-batch im2col kernels, a CNN training step (W2) took 2.2x
# as long with threaded kernels and a batch of inference (W6) 1.6x as long. The pooling
# kernels use this; the convolution's block kernels (``serial_kernel``) are serial.
PARALLEL_MIN_WORK = 1 << 27


def _jit(function, parallel):
    """``@njit(parallel=..., cache=True)``, without the cache where none can be written.

    Numba refuses ``cache=True`` when neither the source folder nor a user cache folder
    is writable (a read-only install); the kernel then compiles on each first use.
    """
    # error_model="numpy": no zero-division checks in the index arithmetic (every
    # divisor is a validated size or stride >= 1), so the inner loops can vectorise.
    # nogil: the serial kernels run on several threads at once (``_shares``).
    options = {"parallel": parallel, "error_model": "numpy", "nogil": not parallel}
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
#
# On the CPU the column matrix is built per block of images, in "row" layout: one row per
# output position (n, oh, ow), one column per tap and channel (i, j, c), read from a
# zero-padded NHWC copy of the input. For each (n, oh, ow, i) the taps j and channels c
# of that row are one contiguous run of ``kw*C`` values in both arrays, so the unfolding
# is a sequence of short memcpys rather than one scalar load per element. A block holds
# about ``BLOCK_BYTES`` of rows, stays in cache while its GEMMs read it, and is rebuilt
# in backward from the padded input (small) instead of being kept (large): at batch 64
# the second convolution of the W2 benchmark has a 20 MB column matrix, and on a machine
# whose copies run at ~3 GB/s, writing it out and reading it back twice cost more than
# the GEMMs themselves.
#
# Flat indices are unsigned (``uint64``) so Numba emits no negative-index wraparound
# test per element and LLVM can vectorise the copies; every index here is >= 0.

# Bytes of unfolded rows per block: 1 MiB, the L2 of one core here (8 MiB of L3 shared).
# With each core on its own blocks (``_shares``), W2's training step at batch 64 took
# 32.7-35.4 ms with 1 MiB blocks, 33.3-34.1 with 768 KiB and 37.1-38.3 with 1.5 MiB (two
# interleaved runs); W6 41.6-43.8, 43.2-43.6 and 42.4-45.5. On one thread, before the
# shares: 512 KiB 23.7 ms, 1.5 MiB 20.1 ms, 3 MiB 22.0 ms for W2's second convolution.
BLOCK_BYTES = 1 << 20


def serial_kernel(function):
    """Decorator: ``function`` as a single-threaded CPU kernel, cached on disk."""
    return _jit(function, parallel=False)


@serial_kernel
def _pad_nhwc(x, padded, ph, pw):
    n_count, c_count, h_count, w_count = x.shape
    padded[:] = 0
    for n in range(n_count):
        for h in range(h_count):
            for w in range(w_count):
                for c in range(c_count):
                    padded[n, h + ph, w + pw, c] = x[n, c, h, w]


@serial_kernel
def _crop_nchw(padded, out, ph, pw):
    n_count, c_count, h_count, w_count = out.shape
    for n in range(n_count):
        for c in range(c_count):
            for h in range(h_count):
                for w in range(w_count):
                    out[n, c, h, w] = padded[n, h + ph, w + pw, c]


@numba.njit(inline="always")
def _source(n, oh, ow, i, sh, sw, dh, hp, wp, c_count):
    """Flat index in a padded NHWC input of tap row ``i`` of window ``(n, oh, ow)``."""
    return numba.uint64(((n * hp + oh * sh + i * dh) * wp + ow * sw) * c_count)


@serial_kernel
def _im2row(padded, first, rows, kh, kw, sh, sw, dh, dw, oh_count, ow_count):
    _, hp, wp, c_count = padded.shape
    source = padded.ravel()
    target = rows.ravel()
    run = numba.uint64(kw * c_count)
    block = rows.shape[0] // (oh_count * ow_count)
    dst = numba.uint64(0)
    for n in range(first, first + block):
        for oh in range(oh_count):
            for ow in range(ow_count):
                for i in range(kh):
                    src = _source(n, oh, ow, i, sh, sw, dh, hp, wp, c_count)
                    if dw == 1:
                        for q in range(run):
                            target[dst + q] = source[src + q]
                        dst += run
                    else:
                        for j in range(kw):
                            tap = src + numba.uint64(j * dw * c_count)
                            for q in range(c_count):
                                target[dst + numba.uint64(q)] = source[tap + numba.uint64(q)]
                            dst += numba.uint64(c_count)


@serial_kernel
def _row2im(rows, padded, first, kh, kw, sh, sw, dh, dw, oh_count, ow_count):
    _, hp, wp, c_count = padded.shape
    source = rows.ravel()
    target = padded.ravel()
    run = numba.uint64(kw * c_count)
    block = rows.shape[0] // (oh_count * ow_count)
    src = numba.uint64(0)
    for n in range(first, first + block):
        for oh in range(oh_count):
            for ow in range(ow_count):
                for i in range(kh):
                    dst = _source(n, oh, ow, i, sh, sw, dh, hp, wp, c_count)
                    if dw == 1:
                        for q in range(run):
                            target[dst + q] += source[src + q]
                        src += run
                    else:
                        for j in range(kw):
                            tap = dst + numba.uint64(j * dw * c_count)
                            for q in range(c_count):
                                target[tap + numba.uint64(q)] += source[src + numba.uint64(q)]
                            src += numba.uint64(c_count)


@serial_kernel
def _output_block(product, bias, out, first):
    _, o_count, plane = out.shape
    block = product.shape[0] // plane
    for b in range(block):
        for o in range(o_count):
            shift = bias[o]
            for p in range(plane):
                out[first + b, o, p] = product[b * plane + p, o] + shift


@serial_kernel
def _grad_block(grad, first, out, bias_grad):
    _, o_count, plane = grad.shape
    block = out.shape[1] // plane
    for o in range(o_count):
        total = 0.0  # float64 accumulator: a float32 sum over N*P terms would drift
        for b in range(block):
            for p in range(plane):
                value = grad[first + b, o, p]
                out[o, b * plane + p] = value
                total += value
        bias_grad[o] += total


# --------------------------------------------------------------------------- CPU API


def _buffer(workspace, key, shape, dtype):
    """An uninitialised array of ``shape``, reused from ``workspace`` when it fits."""
    found = workspace.get(key) if workspace is not None else None
    if found is None or found.shape != shape or found.dtype != dtype:
        found = np.empty(shape, dtype=dtype)
        if workspace is not None:
            workspace[key] = found
    return found


def _block_size(batch, plane, k, itemsize):
    """Images per block: about ``BLOCK_BYTES`` of unfolded rows, at least one image."""
    return max(1, min(batch, BLOCK_BYTES // max(1, plane * k * itemsize)))


def _prefix(buffer, rows, columns):
    """The first ``rows * columns`` elements of ``buffer`` as a C-contiguous matrix."""
    return buffer.reshape(-1)[: rows * columns].reshape(rows, columns)


def conv2d_forward_cpu(x, weight, bias, stride, padding, dilation, workspace=None):
    """Convolution ``(N, C, H, W) -> (N, O, OH, OW)``, one GEMM per block of images.

    Returns ``(y, saved)``; ``saved`` (the zero-padded NHWC input) is what
    ``conv2d_backward_cpu`` needs. ``workspace`` (a dict kept by the caller) holds the
    buffers reused while shapes repeat; ``saved`` lives in it until the next forward.
    """
    n, c, h, w = x.shape
    o, _, kh, kw = weight.shape
    (ph, pw), dtype = padding, np.result_type(x, weight)  # as NumPy's x @ w would
    oh, ow = geometry(x.shape, (kh, kw), stride, padding, dilation)
    plane, k = oh * ow, kh * kw * c
    padded = _buffer(workspace, "padded", (n, h + 2 * ph, w + 2 * pw, c), dtype)
    _pad_nhwc(np.ascontiguousarray(x, dtype=dtype), padded, ph, pw)
    weight_rows = np.ascontiguousarray(weight.transpose(0, 2, 3, 1), dtype=dtype).reshape(o, k)
    bias = np.zeros(o, dtype=dtype) if bias is None else bias.astype(dtype, copy=False)
    block = _block_size(n, plane, k, padded.itemsize)
    y = np.empty((n, o, plane), dtype=dtype)

    def run(share, firsts):
        rows = _buffer(workspace, ("rows", share), (block * plane, k), dtype)
        product = _buffer(workspace, ("product", share), (block * plane, o), dtype)
        for first in firsts:
            m = min(block, n - first) * plane
            _im2row(padded, first, rows[:m], kh, kw, *stride, *dilation, oh, ow)
            np.matmul(rows[:m], weight_rows.T, out=product[:m])
            _output_block(product[:m], bias, y, first)

    _shares.deal(range(0, n, block), run)
    return y.reshape(n, o, oh, ow), padded


def conv2d_backward_cpu(
    grad, saved, weight, x_shape, stride, padding, dilation, input_grad=True, workspace=None
):
    """Gradients ``(d x, d weight, d bias)`` of ``conv2d_forward_cpu``.

    The rows of each block are rebuilt from ``saved``; ``d x`` is None when
    ``input_grad`` is False (a network's first layer), which skips its GEMM and scatter.
    """
    n, c, h, w = x_shape
    o, _, kh, kw = weight.shape
    (ph, pw), dtype = padding, np.result_type(grad, weight, saved)
    oh, ow = grad.shape[2], grad.shape[3]
    plane, k = oh * ow, kh * kw * c
    grad = np.ascontiguousarray(grad, dtype=dtype).reshape(n, o, plane)
    saved = saved.astype(dtype, copy=False)
    weight_rows = np.ascontiguousarray(weight.transpose(0, 2, 3, 1), dtype=dtype).reshape(o, k)
    block = _block_size(n, plane, k, grad.itemsize)
    if input_grad:
        padded_grad = _buffer(workspace, "padded_grad", saved.shape, dtype)
        padded_grad[...] = 0
    weight_grads, bias_grads = {}, {}

    def run(share, firsts):
        rows = _buffer(workspace, ("rows", share), (block * plane, k), dtype)
        grad_rows = _buffer(workspace, ("grad_rows", share), (o, block * plane), dtype)
        if input_grad:
            row_grads = _buffer(workspace, ("row_grads", share), (block * plane, k), dtype)
        weight_grad = np.zeros((o, k), dtype=dtype)
        partial = np.empty((o, k), dtype=dtype)
        bias_grad = np.zeros(o, dtype=np.float64)
        for first in firsts:
            m = min(block, n - first) * plane
            _im2row(saved, first, rows[:m], kh, kw, *stride, *dilation, oh, ow)
            g = _prefix(grad_rows, o, m)
            _grad_block(grad, first, g, bias_grad)
            np.matmul(g, rows[:m], out=partial)
            weight_grad += partial
            if input_grad:  # each block scatters into its own images: no two shares meet
                np.matmul(g.T, weight_rows, out=row_grads[:m])
                _row2im(row_grads[:m], padded_grad, first, kh, kw, *stride, *dilation, oh, ow)
        weight_grads[share], bias_grads[share] = weight_grad, bias_grad

    _shares.deal(range(0, n, block), run)
    weight_grad, bias_grad = _shares.total(weight_grads), _shares.total(bias_grads)
    weight_grad = np.ascontiguousarray(weight_grad.reshape(o, kh, kw, c).transpose(0, 3, 1, 2))
    dx = None
    if input_grad:
        dx = np.empty(tuple(x_shape), dtype=dtype)
        _crop_nchw(padded_grad, dx, ph, pw)
    return dx, weight_grad, bias_grad.astype(dtype)


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


def _device_buffer(lib, workspace, key, shape, dtype):
    found = workspace.get(key) if workspace is not None else None
    if found is None or found.shape != shape or found.dtype != dtype:
        found = lib.empty(shape, dtype=dtype)
        if workspace is not None:
            workspace[key] = found
    return found


def gemm_conv2d_forward(lib, stream, x, weight, bias, stride, padding, dilation, workspace):
    """The CUDA forward on arrays of ``lib``: im2col of the whole batch, then one GEMM.

    ``lib`` is CuPy; the tests pass NumPy with the CUDA simulator and ``stream=0``.
    Returns ``(y, col)``; ``col`` is what ``gemm_conv2d_backward`` needs.
    """
    n, o = x.shape[0], weight.shape[0]
    kernel_size = (weight.shape[2], weight.shape[3])
    oh, ow = geometry(x.shape, kernel_size, stride, padding, dilation)
    k = weight.shape[1] * kernel_size[0] * kernel_size[1]
    dtype = lib.result_type(x, weight)
    col = _device_buffer(lib, workspace, "col", (k, n * oh * ow), dtype)
    x = lib.ascontiguousarray(x, dtype=dtype)
    launch_im2col(x, col, kernel_size, stride, padding, dilation, stream=stream)
    bias = lib.zeros((o,), dtype=dtype) if bias is None else bias.astype(dtype, copy=False)
    product = lib.ascontiguousarray(weight.reshape(o, k).astype(dtype, copy=False) @ col)
    y = lib.empty((n, o, oh * ow), dtype=dtype)
    launch("conv_output", y.size, product, bias, y, stream=stream)
    return y.reshape(n, o, oh, ow), col


def gemm_conv2d_backward(
    lib, stream, grad, col, weight, x_shape, stride, padding, dilation, input_grad, workspace
):
    """Gradients of ``gemm_conv2d_forward``: ``(d x or None, d weight, d bias)``."""
    n, o = grad.shape[0], grad.shape[1]
    plane = grad.shape[2] * grad.shape[3]
    kernel_size = (weight.shape[2], weight.shape[3])
    dtype = lib.result_type(grad, weight, col)
    g = _device_buffer(lib, workspace, "grad", (o, n * plane), dtype)
    launch(
        "conv_grad_output",
        g.size,
        lib.ascontiguousarray(grad, dtype=dtype).reshape(n, o, plane),
        g,
        stream=stream,
    )
    weight = weight.astype(dtype, copy=False)
    weight_grad = (g @ col.T).reshape(weight.shape)
    bias_grad = lib.sum(g, axis=1)
    if not input_grad:
        return None, weight_grad, bias_grad
    col_grad = lib.ascontiguousarray(weight.reshape(o, col.shape[0]).T @ g)
    dx = lib.empty(tuple(x_shape), dtype=dtype)
    launch_col2im(col_grad, dx, kernel_size, stride, padding, dilation, stream=stream)
    return dx, weight_grad, bias_grad


def conv2d_forward_cuda(x, weight, bias, stride, padding, dilation, workspace=None):
    """CUDA convolution on CuPy arrays (see ``gemm_conv2d_forward``).

    A GPU streams the whole batch's column matrix at hundreds of GB/s, so it is built
    once and multiplied in one cuBLAS GEMM; blocking it, as on the CPU, would only add
    launches.
    """
    import cupy

    return gemm_conv2d_forward(
        cupy, current_stream(), x, weight, bias, stride, padding, dilation, workspace
    )


def conv2d_backward_cuda(
    grad, saved, weight, x_shape, stride, padding, dilation, input_grad=True, workspace=None
):
    """Gradients of ``conv2d_forward_cuda`` on CuPy arrays."""
    import cupy

    return gemm_conv2d_backward(
        cupy,
        current_stream(),
        grad,
        saved,
        weight,
        x_shape,
        stride,
        padding,
        dilation,
        input_grad,
        workspace,
    )
