"""Convolution kernels: the unfolding (im2col) around the GEMM, on the CPU and on CUDA.

A convolution is a GEMM of the weight ``(O, K)``, ``K = C*kh*kw``, with the input unfolded
so that each output position sees its window as one vector. The two targets unfold
differently, because their memory differs:

* CPU (``conv2d_forward_cpu``): blocks of images at a time, each block's rows kept in
  cache and multiplied at once, and rebuilt in backward rather than stored (see the
  comment above the CPU kernels); the blocks are split over gpunet's threads
  (``_parallel``).
* CUDA (``conv2d_forward_cuda``): the whole batch's column matrix ``(K, N*OH*OW)``, one
  thread per element (``im2col``), one cuBLAS GEMM, then ``conv_output`` moves the
  ``(O, N*P)`` product to NCHW while adding the bias; backward runs the adjoints, one
  thread per input element gathering its taps (``col2im``), so no atomics are needed.

The index arithmetic is shared with the pooling kernels (``_index``).
"""

from __future__ import annotations

import functools

import numba
import numpy as np

from . import _parallel
from ._cuda import WIDE, array_library, index_builds, index_math, launch_indexed, numba_cuda
from ._geometry import output_hw
from ._index import input_coord
from ._jit import cpu_kernel

# --------------------------------------------------------------------------- CPU kernels
#
# On the CPU the column matrix is built per block of images, in "row" layout: one row per
# output position (n, oh, ow), one column per tap and channel (i, j, c), read from a
# zero-padded NHWC copy of the input. For each (n, oh, ow, i) the taps j and channels c
# of that row are one contiguous run of ``kw*C`` values in both arrays, so the unfolding
# is a sequence of short memcpys rather than one scalar load per element. A block holds
# about ``BLOCK_BYTES`` of rows, stays in cache while its GEMMs read it, and is rebuilt
# in backward from the padded input (small) instead of being kept (large): the whole
# column matrix of a batch is K times the input, and writing it out and reading it back
# twice costs more memory traffic than the GEMMs' own.
#
# Flat indices are unsigned (``uint64``) so Numba emits no negative-index wraparound
# test per element and LLVM can vectorise the copies; every index here is >= 0.

# Bytes of unfolded rows per block: about the L2 cache of one core.
BLOCK_BYTES = 1 << 20


@cpu_kernel
def _pad_nhwc(x, padded, ph, pw):
    n_count, c_count, h_count, w_count = x.shape
    padded[:] = 0
    for n in range(n_count):
        for h in range(h_count):
            for w in range(w_count):
                for c in range(c_count):
                    padded[n, h + ph, w + pw, c] = x[n, c, h, w]


@cpu_kernel
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


@cpu_kernel
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


@cpu_kernel
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


@cpu_kernel
def _output_block(product, bias, out):
    # out (images, O, P) = product (images*P, O) + bias, moved to NCHW
    block, o_count, plane = out.shape
    for b in range(block):
        for o in range(o_count):
            shift = bias[o]
            for p in range(plane):
                out[b, o, p] = product[b * plane + p, o] + shift


@cpu_kernel
def _grad_block(grad, out, bias_grad):
    # out (O, images*P) = grad (images, O, P) moved; bias_grad += its sums
    block, o_count, plane = grad.shape
    for o in range(o_count):
        total = 0.0  # float64 accumulator: a float32 sum over N*P terms would drift
        for b in range(block):
            for p in range(plane):
                value = grad[b, o, p]
                out[o, b * plane + p] = value
                total += value
        bias_grad[o] += total


# --------------------------------------------------------------------------- CPU API


def _scratch(workspace, key, shape, dtype):
    """An uninitialised array of ``shape`` for use within one call, reused from
    ``workspace`` while shapes repeat. Never for what a call returns or saves."""
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


def _over_blocks(n, block, work, task):
    """``task(part, blocks)`` for each part of gpunet's threads: the images are split
    into equal runs, one per part, and each run into ``(first, images)`` blocks of at
    most ``block`` images."""
    parts = _parallel.count(n, work)
    edges = _parallel.bounds(n, parts)

    def run_part(part):
        start, stop = edges[part], edges[part + 1]
        task(part, [(first, min(block, stop - first)) for first in range(start, stop, block)])

    _parallel.run(parts, run_part)


def forward_blocks(x, weight, stride, padding, dilation, workspace, epilogue):
    """The CPU forward's loop: for each block of images, unfold, multiply, then
    ``epilogue(product, span)`` moves the ``(images*P, O)`` product of the images
    ``span`` (a slice of the batch) to the output. Returns the zero-padded NHWC input (a
    new array), which the backward needs."""
    n, c, h, w = x.shape
    o, _, kh, kw = weight.shape
    (ph, pw), dtype = padding, np.result_type(x, weight)  # as NumPy's x @ w would
    oh, ow = output_hw((h, w), (kh, kw), stride, padding, dilation)
    plane, k = oh * ow, kh * kw * c
    padded = np.empty((n, h + 2 * ph, w + 2 * pw, c), dtype=dtype)
    _pad_nhwc(np.ascontiguousarray(x, dtype=dtype), padded, ph, pw)
    weight_rows = np.ascontiguousarray(weight.transpose(0, 2, 3, 1), dtype=dtype).reshape(o, k)
    block = _block_size(n, plane, k, padded.itemsize)

    def run_blocks(part, blocks):
        rows = _scratch(workspace, ("rows", part), (block * plane, k), dtype)
        product = _scratch(workspace, ("product", part), (block * plane, o), dtype)
        for first, images in blocks:
            m = images * plane
            _im2row(padded, first, rows[:m], kh, kw, *stride, *dilation, oh, ow)
            np.matmul(rows[:m], weight_rows.T, out=product[:m])
            epilogue(product[:m], slice(first, first + images))

    _over_blocks(n, block, n * plane * (k * o / 32 + k + o), run_blocks)
    return padded


def backward_blocks(saved, weight, x_shape, out_hw, stride, padding, dilation, input_grad,
                    workspace, fill_grad):  # fmt: skip
    """The CPU backward's loop: for each block of images, ``fill_grad(span, g,
    bias_grad)`` writes the output gradient of the images ``span`` (a slice of the
    batch) as ``g`` ``(O, images*P)`` and adds its sums to ``bias_grad``; the rows are
    rebuilt from
    ``saved`` and the GEMMs give the weight gradient and, with ``input_grad``, the
    scattered input gradient. Returns ``(d x or None, d weight, d bias)``."""
    n, c, h, w = x_shape
    o, _, kh, kw = weight.shape
    (ph, pw), dtype = padding, np.result_type(weight, saved)
    oh, ow = out_hw
    plane, k = oh * ow, kh * kw * c
    saved = saved.astype(dtype, copy=False)
    weight_rows = np.ascontiguousarray(weight.transpose(0, 2, 3, 1), dtype=dtype).reshape(o, k)
    block = _block_size(n, plane, k, saved.itemsize)
    if input_grad:
        padded_grad = np.zeros(saved.shape, dtype=dtype)
    weight_grads, bias_grads = {}, {}

    def run_blocks(part, blocks):
        rows = _scratch(workspace, ("rows", part), (block * plane, k), dtype)
        grad_rows = _scratch(workspace, ("grad_rows", part), (o, block * plane), dtype)
        if input_grad:
            row_grads = _scratch(workspace, ("row_grads", part), (block * plane, k), dtype)
        weight_grad = np.zeros((o, k), dtype=dtype)
        partial = np.empty((o, k), dtype=dtype)
        bias_grad = np.zeros(o, dtype=np.float64)
        for first, images in blocks:
            m = images * plane
            _im2row(saved, first, rows[:m], kh, kw, *stride, *dilation, oh, ow)
            g = _prefix(grad_rows, o, m)
            fill_grad(slice(first, first + images), g, bias_grad)
            np.matmul(g, rows[:m], out=partial)
            weight_grad += partial
            if input_grad:  # each block scatters into its own images: no two parts meet
                np.matmul(g.T, weight_rows, out=row_grads[:m])
                _row2im(row_grads[:m], padded_grad, first, kh, kw, *stride, *dilation, oh, ow)
        weight_grads[part], bias_grads[part] = weight_grad, bias_grad

    _over_blocks(n, block, n * plane * (k * o / 16 + 2 * k + o), run_blocks)
    weight_grad, bias_grad = _parallel.total(weight_grads), _parallel.total(bias_grads)
    weight_grad = np.ascontiguousarray(weight_grad.reshape(o, kh, kw, c).transpose(0, 3, 1, 2))
    dx = None
    if input_grad:
        dx = np.empty(tuple(x_shape), dtype=dtype)
        _crop_nchw(padded_grad, dx, ph, pw)
    return dx, weight_grad, bias_grad.astype(dtype)


def conv2d_forward_cpu(x, weight, bias, stride, padding, dilation, workspace=None):
    """Convolution ``(N, C, H, W) -> (N, O, OH, OW)``, one GEMM per block of images.

    Returns ``(y, saved)``; ``saved`` (the zero-padded NHWC input, a new array) is what
    ``conv2d_backward_cpu`` needs. ``workspace`` (a dict kept by the caller) holds the
    scratch buffers reused while shapes repeat.
    """
    n, o = x.shape[0], weight.shape[0]
    oh, ow = output_hw(x.shape[2:], weight.shape[2:], stride, padding, dilation)
    dtype = np.result_type(x, weight)
    bias = np.zeros(o, dtype=dtype) if bias is None else bias.astype(dtype, copy=False)
    y = np.empty((n, o, oh * ow), dtype=dtype)
    saved = forward_blocks(
        x, weight, stride, padding, dilation, workspace,
        lambda product, span: _output_block(product, bias, y[span]),
    )  # fmt: skip
    return y.reshape(n, o, oh, ow), saved


def conv2d_backward_cpu(
    grad, saved, weight, x_shape, stride, padding, dilation, input_grad=True, workspace=None
):
    """Gradients ``(d x, d weight, d bias)`` of ``conv2d_forward_cpu``.

    The rows of each block are rebuilt from ``saved``; ``d x`` is None when
    ``input_grad`` is False (a network's first layer), which skips its GEMM and scatter.
    """
    n, o, oh, ow = grad.shape
    dtype = np.result_type(grad, weight, saved)
    grad = np.ascontiguousarray(grad, dtype=dtype).reshape(n, o, oh * ow)
    return backward_blocks(
        saved, weight, x_shape, (oh, ow), stride, padding, dilation, input_grad, workspace,
        lambda span, g, bias_grad: _grad_block(grad[span], g, bias_grad),
    )  # fmt: skip


# --------------------------------------------------------------------------- CUDA
# One thread per element; float32 data stays in float32 (typed zeros, no float64
# literals), and flat indices are split by ``_cuda.index_math``: 32-bit division below
# ``INDEX32_LIMIT`` elements, 64-bit in the ``_int64`` builds above it.


cuda = None  # numba.cuda, set by cuda_kernels()


def _build_cuda(wide):
    divide, unravel_nchw, output_coord = index_math(wide)

    @cuda.jit
    def im2col(x, col, kh, kw, sh, sw, ph, pw, dh, dw, oh_count, ow_count):
        index = cuda.grid(1)
        columns = col.shape[1]
        if index >= col.shape[0] * columns:
            return
        row, rest = divide(index, columns)
        n, p = divide(rest, oh_count * ow_count)
        oh, ow = divide(p, ow_count)
        channel_tap, j = divide(row, kw)
        c, i = divide(channel_tap, kh)
        ih = input_coord(oh, i, sh, ph, dh)
        iw = input_coord(ow, j, sw, pw, dw)
        if 0 <= ih < x.shape[2] and 0 <= iw < x.shape[3]:
            col[row, rest] = x[n, c, ih, iw]
        else:
            col[row, rest] = col.dtype.type(0)

    @cuda.jit
    def col2im(col, dx, kh, kw, sh, sw, ph, pw, dh, dw, oh_count, ow_count):
        index = cuda.grid(1)
        if index >= dx.size:
            return
        n, c, ih, iw = unravel_nchw(index, dx.shape[1], dx.shape[2], dx.shape[3])
        total = dx.dtype.type(0)
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
        if index >= out.size:
            return
        rest, p = divide(index, out.shape[2])
        n, o = divide(rest, out.shape[1])
        out[n, o, p] = y[o, n * out.shape[2] + p] + bias[o]

    @cuda.jit
    def conv_grad_output(grad, out):
        index = cuda.grid(1)
        if index >= grad.size:
            return
        rest, p = divide(index, grad.shape[2])
        o, n = divide(rest, grad.shape[0])
        out[o, n * grad.shape[2] + p] = grad[n, o, p]

    return {
        "im2col": im2col,
        "col2im": col2im,
        "conv_output": conv_output,
        "conv_grad_output": conv_grad_output,
    }


@functools.cache
def cuda_kernels():
    """The CUDA kernels (both index builds, see ``_cuda.index_builds``), compiled on first use."""
    # A module global, not a local: the CUDA simulator swaps module-level ``cuda``
    # references for its own when it runs a kernel.
    global cuda
    cuda = numba_cuda()
    return index_builds(_build_cuda)


def cuda_signatures(dtype):
    """The argument types each kernel of ``cuda_kernels()`` is launched with, for float
    dtype ``dtype`` (``numba.types.float32`` or ``float64``)."""
    from numba import types

    matrix, t3, t4 = dtype[:, ::1], dtype[:, :, ::1], dtype[:, :, :, ::1]
    geometry = (types.int64,) * 10  # kh, kw, sh, sw, ph, pw, dh, dw, OH, OW
    signatures = {
        "im2col": (t4, matrix, *geometry),
        "col2im": (matrix, t4, *geometry),
        "conv_output": (matrix, dtype[::1], t3),
        "conv_grad_output": (t3, matrix),
    }
    return {**signatures, **{name + WIDE: found for name, found in signatures.items()}}


def conv2d_forward_cuda(x, weight, bias, stride, padding, dilation, workspace=None):
    """Convolution on CuPy arrays (NumPy arrays under the simulator): im2col of the whole
    batch, one GEMM, then the move to NCHW with the bias added.

    A GPU streams the whole batch's column matrix at hundreds of GB/s, so it is built
    once and multiplied in one cuBLAS GEMM; blocking it, as on the CPU, would only add
    launches. Returns ``(y, col)``; ``col`` (a new array) is what
    ``conv2d_backward_cuda`` needs. ``workspace`` is not used.
    """
    lib, kernels = array_library(x), cuda_kernels()
    n, o = x.shape[0], weight.shape[0]
    kh, kw = weight.shape[2], weight.shape[3]
    oh, ow = output_hw(x.shape[2:], (kh, kw), stride, padding, dilation)
    k = weight.shape[1] * kh * kw
    dtype = lib.result_type(x, weight)
    col = lib.empty((k, n * oh * ow), dtype=dtype)
    x = lib.ascontiguousarray(x, dtype=dtype)
    geometry = (kh, kw, *stride, *padding, *dilation, oh, ow)
    launch_indexed(kernels, "im2col", col.size, x, col, *geometry)
    bias = lib.zeros((o,), dtype=dtype) if bias is None else bias.astype(dtype, copy=False)
    product = lib.ascontiguousarray(weight.reshape(o, k).astype(dtype, copy=False) @ col)
    y = lib.empty((n, o, oh * ow), dtype=dtype)
    launch_indexed(kernels, "conv_output", y.size, product, bias, y)
    return y.reshape(n, o, oh, ow), col


def conv2d_backward_cuda(
    grad, saved, weight, x_shape, stride, padding, dilation, input_grad=True, workspace=None
):
    """Gradients ``(d x or None, d weight, d bias)`` of ``conv2d_forward_cuda``;
    ``saved`` is its column matrix."""
    lib, kernels = array_library(grad), cuda_kernels()
    n, o = grad.shape[0], grad.shape[1]
    oh, ow = grad.shape[2], grad.shape[3]
    kh, kw = weight.shape[2], weight.shape[3]
    dtype = lib.result_type(grad, weight, saved)
    g = lib.empty((o, n * oh * ow), dtype=dtype)
    grad = lib.ascontiguousarray(grad, dtype=dtype).reshape(n, o, oh * ow)
    launch_indexed(kernels, "conv_grad_output", g.size, grad, g)
    weight = weight.astype(dtype, copy=False)
    weight_grad = (g @ saved.T).reshape(weight.shape)
    bias_grad = lib.sum(g, axis=1)
    if not input_grad:
        return None, weight_grad, bias_grad
    col_grad = lib.ascontiguousarray(weight.reshape(o, saved.shape[0]).T @ g)
    dx = lib.empty(tuple(x_shape), dtype=dtype)
    geometry = (kh, kw, *stride, *padding, *dilation, oh, ow)
    launch_indexed(kernels, "col2im", dx.size, col_grad, dx, *geometry)
    return dx, weight_grad, bias_grad
