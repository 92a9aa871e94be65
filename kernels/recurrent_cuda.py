"""Recurrent sequences on CUDA: one launch per sequence and direction, whatever T is.

Batch rows are independent through time, so each block owns a run of rows and loops
over every time step itself, with ``cuda.syncthreads()`` between the steps: no grid-wide
synchronisation, and it runs under Numba's CUDA simulator. Each thread of a block takes
(row, unit) elements in turn:

* forward, step t: the G pre-activations of its element, ``xw`` plus the biases plus the
  recurrent product of h_{t-1} (written by the block in step t - 1, read back through L1)
  with ``weight_hh`` (read from L2, coalesced across units), then the cell's math
  (``recurrent_cells``), writing h_t and what backward needs;
* backward, step t: the cell's backward for its element, a sync, then its element of
  dh_{t-1} = d_pre_t @ weight_hh^T (``weight_t``, the transpose made contiguous, so that
  these reads are coalesced too), and a sync.

Arrays and their layouts are those of ``recurrent_cpu``; every kernel ends with
``rows_per_block``. Float32 kernels compute in float32 (float32 constants, the float32
``exp`` and ``tanh``); an element's (row, unit) comes from one 32-bit division
(``_cuda.divmod32``: a block's elements are few).

The kernels are built on first use (``cuda_kernels``), never at import: numba.cuda may
not import on a machine, and the CPU path must not need it.
"""

from __future__ import annotations

import functools

import numba
import numpy as np

from ._cuda import divmod32, launch, numba_cuda
from .recurrent_cells import (
    ZERO,
    gru_backward_point,
    gru_forward_point,
    lstm_backward_point,
    lstm_forward_point,
    rnn_backward_point,
    rnn_forward_point,
)

# Elements (row, unit) a block aims at: its rows are this many divided by H.
BLOCK_ELEMENTS = 256
MAX_THREADS = 1024
WARP = 32

cuda = None  # numba.cuda, set by cuda_kernels()


@numba.njit(inline="always")
def _block_span(n_batch, hidden, rows_per_block, block):
    """(first row, elements) of a block: its run of rows and their (row, unit) count."""
    first = block * rows_per_block
    rows = n_batch - first if n_batch - first < rows_per_block else rows_per_block
    return first, rows * hidden


@numba.njit(inline="always")
def _trips(start, stop, stride):
    """How many of ``start, start + stride, ...`` lie below ``stop`` (a 32-bit division,
    where ``range(start, stop, stride)`` would divide in 64 bits)."""
    if start >= stop:
        return 0
    return divmod32(stop - start + stride - 1, stride)[0]


@functools.cache
def cuda_kernels():
    """The CUDA sequence kernels by name, compiled on first use."""
    # A module global, not a local: the CUDA simulator swaps module-level ``cuda``
    # references for its own when it runs a kernel.
    global cuda
    cuda = numba_cuda()
    i32 = numba.int32

    @cuda.jit
    def rnn_forward(xw, weight_hh, b_ih, b_hh, states, relu, rows_per_block):
        steps, hidden = i32(xw.shape[0]), i32(states.shape[2])
        first, elements = _block_span(
            i32(states.shape[1]), hidden, i32(rows_per_block), i32(cuda.blockIdx.x)
        )
        for t in range(steps):
            for i in range(_trips(i32(cuda.threadIdx.x), elements, i32(cuda.blockDim.x))):
                e = i32(cuda.threadIdx.x) + i * i32(cuda.blockDim.x)
                q, j = divmod32(e, hidden)
                row = first + q
                pre = xw[t, row, j] + b_ih[j] + b_hh[j]
                for k in range(hidden):
                    pre += states[t, row, k] * weight_hh[k, j]
                states[t + 1, row, j] = rnn_forward_point(pre, relu)
            cuda.syncthreads()

    @cuda.jit
    def rnn_backward(weight_t, states, grad_states, dh, d_xw, relu, rows_per_block):
        steps, hidden, width = i32(d_xw.shape[0]), i32(dh.shape[1]), i32(d_xw.shape[2])
        first, elements = _block_span(
            i32(dh.shape[0]), hidden, i32(rows_per_block), i32(cuda.blockIdx.x)
        )
        start, stride = i32(cuda.threadIdx.x), i32(cuda.blockDim.x)
        for t in range(steps - 1, -1, -1):
            for i in range(_trips(start, elements, stride)):
                e = start + i * stride
                q, j = divmod32(e, hidden)
                row = first + q
                total = dh[row, j]
                if grad_states.shape[0] > 0:
                    total += grad_states[t, row, j]
                d_xw[t, row, j] = rnn_backward_point(total, states[t + 1, row, j], relu)
            cuda.syncthreads()
            for i in range(_trips(start, elements, stride)):
                e = start + i * stride
                q, k = divmod32(e, hidden)
                row = first + q
                total = ZERO
                for m in range(width):
                    total += d_xw[t, row, m] * weight_t[m, k]
                dh[row, k] = total
            cuda.syncthreads()

    @cuda.jit
    def lstm_forward(xw, weight_hh, b_ih, b_hh, states, cells, gates, rows_per_block):
        steps, hidden = i32(xw.shape[0]), i32(states.shape[2])
        h1, h2, h3 = hidden, 2 * hidden, 3 * hidden
        first, elements = _block_span(
            i32(states.shape[1]), hidden, i32(rows_per_block), i32(cuda.blockIdx.x)
        )
        for t in range(steps):
            for i in range(_trips(i32(cuda.threadIdx.x), elements, i32(cuda.blockDim.x))):
                e = i32(cuda.threadIdx.x) + i * i32(cuda.blockDim.x)
                q, j = divmod32(e, hidden)
                row = first + q
                pre_i = xw[t, row, j] + b_ih[j] + b_hh[j]
                pre_f = xw[t, row, j + h1] + b_ih[j + h1] + b_hh[j + h1]
                pre_g = xw[t, row, j + h2] + b_ih[j + h2] + b_hh[j + h2]
                pre_o = xw[t, row, j + h3] + b_ih[j + h3] + b_hh[j + h3]
                for k in range(hidden):
                    h = states[t, row, k]
                    pre_i += h * weight_hh[k, j]
                    pre_f += h * weight_hh[k, j + h1]
                    pre_g += h * weight_hh[k, j + h2]
                    pre_o += h * weight_hh[k, j + h3]
                i, f, g, o, c, h = lstm_forward_point(pre_i, pre_f, pre_g, pre_o, cells[t, row, j])
                gates[t, row, j] = i
                gates[t, row, j + h1] = f
                gates[t, row, j + h2] = g
                gates[t, row, j + h3] = o
                cells[t + 1, row, j] = c
                states[t + 1, row, j] = h
            cuda.syncthreads()

    @cuda.jit
    def lstm_backward(weight_t, cells, gates, grad_states, dh, dc, d_xw, rows_per_block):
        steps, hidden, width = i32(d_xw.shape[0]), i32(dh.shape[1]), i32(d_xw.shape[2])
        h1, h2, h3 = hidden, 2 * hidden, 3 * hidden
        first, elements = _block_span(
            i32(dh.shape[0]), hidden, i32(rows_per_block), i32(cuda.blockIdx.x)
        )
        start, stride = i32(cuda.threadIdx.x), i32(cuda.blockDim.x)
        for t in range(steps - 1, -1, -1):
            for i in range(_trips(start, elements, stride)):
                e = start + i * stride
                q, j = divmod32(e, hidden)
                row = first + q
                total = dh[row, j]
                if grad_states.shape[0] > 0:
                    total += grad_states[t, row, j]
                d_i, d_f, d_g, d_o, dc_prev = lstm_backward_point(
                    total, dc[row, j], cells[t, row, j], cells[t + 1, row, j],
                    gates[t, row, j], gates[t, row, j + h1],
                    gates[t, row, j + h2], gates[t, row, j + h3],
                )  # fmt: skip
                d_xw[t, row, j] = d_i
                d_xw[t, row, j + h1] = d_f
                d_xw[t, row, j + h2] = d_g
                d_xw[t, row, j + h3] = d_o
                dc[row, j] = dc_prev
            cuda.syncthreads()
            for i in range(_trips(start, elements, stride)):
                e = start + i * stride
                q, k = divmod32(e, hidden)
                row = first + q
                total = ZERO
                for m in range(width):
                    total += d_xw[t, row, m] * weight_t[m, k]
                dh[row, k] = total
            cuda.syncthreads()

    @cuda.jit
    def gru_forward(xw, weight_hh, b_ih, b_hh, states, saved, rows_per_block):
        steps, hidden = i32(xw.shape[0]), i32(states.shape[2])
        h1, h2, h3 = hidden, 2 * hidden, 3 * hidden
        first, elements = _block_span(
            i32(states.shape[1]), hidden, i32(rows_per_block), i32(cuda.blockIdx.x)
        )
        for t in range(steps):
            for i in range(_trips(i32(cuda.threadIdx.x), elements, i32(cuda.blockDim.x))):
                e = i32(cuda.threadIdx.x) + i * i32(cuda.blockDim.x)
                q, j = divmod32(e, hidden)
                row = first + q
                pre_r = xw[t, row, j] + b_ih[j] + b_hh[j]
                pre_z = xw[t, row, j + h1] + b_ih[j + h1] + b_hh[j + h1]
                h_n = b_hh[j + h2]
                for k in range(hidden):
                    h = states[t, row, k]
                    pre_r += h * weight_hh[k, j]
                    pre_z += h * weight_hh[k, j + h1]
                    h_n += h * weight_hh[k, j + h2]
                x_n = xw[t, row, j + h2] + b_ih[j + h2]
                r, z, n, h = gru_forward_point(pre_r, pre_z, x_n, h_n, states[t, row, j])
                saved[t, row, j] = r
                saved[t, row, j + h1] = z
                saved[t, row, j + h2] = n
                saved[t, row, j + h3] = h_n
                states[t + 1, row, j] = h
            cuda.syncthreads()

    @cuda.jit
    def gru_backward(weight_t, states, saved, grad_states, dh, d_xw, d_hw, rows_per_block):
        steps, hidden, width = i32(d_xw.shape[0]), i32(dh.shape[1]), i32(d_xw.shape[2])
        h1, h2, h3 = hidden, 2 * hidden, 3 * hidden
        first, elements = _block_span(
            i32(dh.shape[0]), hidden, i32(rows_per_block), i32(cuda.blockIdx.x)
        )
        start, stride = i32(cuda.threadIdx.x), i32(cuda.blockDim.x)
        for t in range(steps - 1, -1, -1):
            for i in range(_trips(start, elements, stride)):
                e = start + i * stride
                q, j = divmod32(e, hidden)
                row = first + q
                total = dh[row, j]
                if grad_states.shape[0] > 0:
                    total += grad_states[t, row, j]
                d_r, d_z, d_xn, d_hn, direct = gru_backward_point(
                    total, states[t, row, j], saved[t, row, j], saved[t, row, j + h1],
                    saved[t, row, j + h2], saved[t, row, j + h3],
                )  # fmt: skip
                d_xw[t, row, j] = d_r
                d_xw[t, row, j + h1] = d_z
                d_xw[t, row, j + h2] = d_xn
                d_hw[t, row, j] = d_r
                d_hw[t, row, j + h1] = d_z
                d_hw[t, row, j + h2] = d_hn
                dh[row, j] = direct  # the z path; the product below adds the rest
            cuda.syncthreads()
            for i in range(_trips(start, elements, stride)):
                e = start + i * stride
                q, k = divmod32(e, hidden)
                row = first + q
                total = dh[row, k]
                for m in range(width):
                    total += d_hw[t, row, m] * weight_t[m, k]
                dh[row, k] = total
            cuda.syncthreads()

    return {
        "rnn_forward": rnn_forward,
        "rnn_backward": rnn_backward,
        "lstm_forward": lstm_forward,
        "lstm_backward": lstm_backward,
        "gru_forward": gru_forward,
        "gru_backward": gru_backward,
    }


def cuda_signatures(dtype):
    """The argument types each kernel is launched with, for float type ``dtype``."""
    from numba import types

    v, m, t3 = dtype[::1], dtype[:, ::1], dtype[:, :, ::1]
    rows, flag = types.int64, types.boolean
    return {
        "rnn_forward": (t3, m, v, v, t3, flag, rows),
        "rnn_backward": (m, t3, t3, m, t3, flag, rows),
        "lstm_forward": (t3, m, v, v, t3, t3, t3, rows),
        "lstm_backward": (m, t3, t3, t3, m, m, t3, rows),
        "gru_forward": (t3, m, v, v, t3, t3, rows),
        "gru_backward": (m, t3, t3, t3, m, t3, t3, rows),
    }


# --------------------------------------------------------------------------- launching


def _library(array):
    """CuPy for CuPy arrays, NumPy for the simulator's NumPy arrays."""
    if type(array).__module__.startswith("cupy"):
        import cupy

        return cupy
    return np


def _run(name, n_batch, hidden, *args):
    """Launch kernel ``name`` with blocks of whole rows covering the batch."""
    rows_per_block = max(1, min(n_batch, BLOCK_ELEMENTS // hidden))
    blocks = -(-n_batch // rows_per_block)
    threads = min(MAX_THREADS, -(-rows_per_block * hidden // WARP) * WARP)
    launch(cuda_kernels()[name], 0, *args, rows_per_block, threads=threads, blocks=blocks)


def _inputs(*arrays):
    return tuple(_library(a).ascontiguousarray(a) for a in arrays)


def _projected(x, weight_ih, weight_hh, b_ih, b_hh):
    """The kernels' forward inputs: ``x @ weight_ih`` for every step (by the array
    library's GEMM, not a kernel of gpunet's), the recurrent weight and the biases."""
    return _inputs(_library(x).matmul(x, weight_ih), weight_hh, b_ih, b_hh)


def _stack_rows(rows, x, states):
    """rows = [1, x_t, h_{t-1}] for every step, once ``states`` holds h_0 ... h_T."""
    features = x.shape[2]
    rows[..., 0] = 1
    rows[..., 1 : 1 + features] = x
    rows[..., 1 + features :] = states[:-1, ...]


def _backward_inputs(weight_hh, grad_states, dh):
    library = _library(dh)
    weight_t = library.ascontiguousarray(weight_hh.T)
    if grad_states is None:
        grad_states = library.empty((0, *dh.shape), dtype=dh.dtype)
    return weight_t, library.ascontiguousarray(grad_states)


# The ops of ``kernels.recurrent``, on CuPy arrays (or NumPy arrays under the simulator);
# arguments as in ``recurrent_cpu``. The forward kernels take the input projections of
# all steps, made first by one GEMM.


def _rnn_ops(relu):
    def forward(x, weight_ih, weight_hh, b_ih, b_hh, states, cells, saved, rows):
        """An RNN over a sequence, one launch (``cells`` and ``saved`` unused)."""
        inputs = _projected(x, weight_ih, weight_hh, b_ih, b_hh)
        _run("rnn_forward", *states.shape[1:], *inputs, states, relu)
        _stack_rows(rows, x, states)

    def backward(weight_hh, states, cells, saved, grad_states, dh, dc, d_xw, d_hw):
        """An RNN's backward pass over a sequence, one launch (``d_hw`` is ``d_xw``)."""
        weight_t, grad_states = _backward_inputs(weight_hh, grad_states, dh)
        _run("rnn_backward", *dh.shape, weight_t, states, grad_states, dh, d_xw, relu)

    return forward, backward


rnn_tanh_sequence_forward_cuda, rnn_tanh_sequence_backward_cuda = _rnn_ops(relu=False)
rnn_relu_sequence_forward_cuda, rnn_relu_sequence_backward_cuda = _rnn_ops(relu=True)


def lstm_sequence_forward_cuda(x, weight_ih, weight_hh, b_ih, b_hh, states, cells, saved, rows):
    """An LSTM over a sequence, one launch."""
    inputs = _projected(x, weight_ih, weight_hh, b_ih, b_hh)
    _run("lstm_forward", *states.shape[1:], *inputs, states, cells, saved)
    _stack_rows(rows, x, states)


def lstm_sequence_backward_cuda(weight_hh, states, cells, saved, grad_states, dh, dc, d_xw, d_hw):
    """An LSTM's backward pass over a sequence, one launch (``d_hw`` is ``d_xw``)."""
    weight_t, grad_states = _backward_inputs(weight_hh, grad_states, dh)
    _run("lstm_backward", *dh.shape, weight_t, cells, saved, grad_states, dh, dc, d_xw)


def gru_sequence_forward_cuda(x, weight_ih, weight_hh, b_ih, b_hh, states, cells, saved, rows):
    """A GRU over a sequence, one launch (``cells`` unused)."""
    inputs = _projected(x, weight_ih, weight_hh, b_ih, b_hh)
    _run("gru_forward", *states.shape[1:], *inputs, states, saved)
    _stack_rows(rows, x, states)


def gru_sequence_backward_cuda(weight_hh, states, cells, saved, grad_states, dh, dc, d_xw, d_hw):
    """A GRU's backward pass over a sequence, one launch (``cells`` and ``dc`` unused)."""
    weight_t, grad_states = _backward_inputs(weight_hh, grad_states, dh)
    _run("gru_backward", *dh.shape, weight_t, states, saved, grad_states, dh, d_xw, d_hw)
