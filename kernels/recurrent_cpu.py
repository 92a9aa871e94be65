"""Recurrent sequences on the CPU: one compiled call per sequence and direction.

Each kernel runs every time step of a run of batch rows (``first`` to ``last - 1``):
forward, the step's product then the cell's pointwise math (``recurrent_cells``);
backward, the cell's pointwise backward then the product with ``weight_hh`` transposed
that carries the gradient to the previous step. Rows are independent through time, so
gpunet's threads each take a run of rows (``_over_rows``) and run the whole sequence on
it without waiting for one another; the split depends only on the sizes and the thread
count, so results repeat bit for bit.

The forward pass of an RNN or LSTM computes its input projection inside the step: it
writes the row [1, x_t, h_{t-1}] of each batch row into ``rows`` and multiplies those
rows by the stacked weight [b_ih + b_hh; weight_ih; weight_hh], so one product gives the
step's pre-activations, biases included, and the projections of all steps never pass
through memory. The same rows, stacked over the steps, are what the weight gradients
need (``gpunet.ops.bptt``). A GRU keeps the input and recurrent parts of its n gate
apart, so it projects its inputs in one GEMM first and writes the rows as it goes.

The products are Numba's ``np.dot``, which calls the BLAS SciPy exposes to compiled code
(a library of its own, loaded here and added to the BLAS gpunet holds to one thread while
its threads run), or, for products too small to repay a BLAS call, a plain loop
(``step_product``).

Array layouts (C-contiguous, one float dtype; T steps, N rows, I inputs, H units, G
gates): ``x`` (T, N, I) the inputs, time-major; ``weight_ih`` (I, G*H); ``weight_hh``
(H, G*H) and its transpose ``weight_t`` (G*H, H) (the products use both); ``b_ih``,
``b_hh`` (G*H,); ``rows`` (T, N, 1+I+H) the rows [1, x_t, h_{t-1}]; ``states`` (T+1, N,
H) the hidden states h_0 ... h_T (h_0 filled by the caller); ``cells`` (T+1, N, H)
LSTM's cell states; ``saved`` (T, N, 4H) what the backward pass needs (LSTM's activated
gates, GRU's r, z, n and ``h_{t-1} @ W_hn + b_hn``); ``grad_states`` (T, N, H), or (0,
N, H) when the outputs h_1 ... h_T receive no gradient; ``dh`` (N, H) the gradient of
h_T on entry and of h_0 on return (LSTM's ``dc`` likewise for the cell state); ``d_xw``
(T, N, G*H) the gradients of the gate pre-activations, and GRU's ``d_hw``, which
differs in its n block.
"""

from __future__ import annotations

import numba
import numpy as np
import scipy.linalg.cython_blas  # noqa: F401  (the BLAS behind Numba's np.dot)

from . import _parallel
from ._jit import cpu_kernel
from .recurrent_cells import (
    gru_backward_point,
    gru_forward_point,
    lstm_backward_point,
    lstm_forward_point,
    rnn_backward_point,
    rnn_forward_point,
)

_parallel.rescan_blas()  # SciPy's BLAS is now loaded: hold it to one thread as well

# The products of a step: a loop for small ones, else the BLAS. The BLAS handles a product
# of few rows and many columns poorly; below 64 rows it runs faster given the rows of the
# batch as its (column-major) row dimension, out^T = b^T @ a^T, copied back; from 64 rows
# on the plain product is as fast without the copy.
SMALL_PRODUCT = 1 << 15  # multiply-adds
BLAS_ROWS = 8
FLIPPED_ROWS = 64
LARGE_WEIGHT = 1 << 20  # elements: from here on the BLAS, whatever the rows

# --------------------------------------------------------------------------- helpers


@numba.njit(inline="always")
def step_product(a, b, b_t, out, out_t):
    """out = a @ b for C-contiguous 2-D arrays; ``b_t`` is b transposed (contiguous) and
    ``out_t`` a scratch array of out's shape transposed."""
    rows, inner = a.shape
    cols = b.shape[1]
    small = rows * inner * cols <= SMALL_PRODUCT
    if small or (rows < BLAS_ROWS and inner * cols <= LARGE_WEIGHT):
        for n in range(rows):
            for m in range(cols):
                out[n, m] = 0
            for k in range(inner):
                value = a[n, k]
                for m in range(cols):
                    out[n, m] += value * b[k, m]
    elif rows < FLIPPED_ROWS:
        np.dot(b_t, a.T, out_t)
        for n in range(rows):
            for m in range(cols):
                out[n, m] = out_t[m, n]
    else:
        np.dot(a, b, out)


@numba.njit(inline="always")
def _stack_rows(rows, x, states, t, first, last):
    """rows[t, first:last] = [1, x_t, h_{t-1}] for a run of batch rows."""
    features = x.shape[2]
    for row in range(first, last):
        out, x_t, h_prev = rows[t, row], x[t, row], states[t, row]
        out[0] = 1
        for k in range(features):
            out[1 + k] = x_t[k]
        for k in range(h_prev.shape[0]):
            out[1 + features + k] = h_prev[k]


@numba.njit(inline="always")
def _add_gradient(grad_states, t, dh, first, last):
    """dh[first:last] += grad_states[t, first:last], where the outputs have gradients."""
    if grad_states.shape[0] == 0:
        return
    for row in range(first, last):
        for j in range(dh.shape[1]):
            dh[row, j] += grad_states[t, row, j]


@cpu_kernel
def _transpose_into(a, out):
    """out = a.T in tiles of 32 x 32, so that both arrays are walked a cache line at a
    time (NumPy's copy of a transposed view strides through one of them)."""
    rows, cols = a.shape
    for r0 in range(0, rows, 32):
        for c0 in range(0, cols, 32):
            for r in range(r0, min(r0 + 32, rows)):
                for c in range(c0, min(c0 + 32, cols)):
                    out[c, r] = a[r, c]


def _transposed(a):
    """A C-contiguous copy of a 2-D array's transpose."""
    a = np.ascontiguousarray(a)
    out = np.empty((a.shape[1], a.shape[0]), dtype=a.dtype)
    _transpose_into(a, out)
    return out


# --------------------------------------------------------------------------- RNN


@cpu_kernel(fastmath={"contract"})
def _rnn_forward(weight, weight_t, x, rows, states, relu, first, last):
    pre = np.empty((last - first, weight.shape[1]), dtype=x.dtype)
    pre_t = np.empty((weight.shape[1], last - first), dtype=x.dtype)
    for t in range(x.shape[0]):
        _stack_rows(rows, x, states, t, first, last)
        step_product(rows[t, first:last], weight, weight_t, pre, pre_t)
        for n in range(last - first):
            p, h = pre[n], states[t + 1, first + n]
            for j in range(h.shape[0]):
                h[j] = rnn_forward_point(p[j], relu)


@cpu_kernel(fastmath={"contract"})
def _rnn_backward(weight_hh, weight_t, states, grad_states, dh, d_xw, relu, first, last):
    dh_t = np.empty((dh.shape[1], last - first), dtype=dh.dtype)
    for t in range(d_xw.shape[0] - 1, -1, -1):
        _add_gradient(grad_states, t, dh, first, last)
        for row in range(first, last):
            d, h, total = d_xw[t, row], states[t + 1, row], dh[row]
            for j in range(h.shape[0]):
                d[j] = rnn_backward_point(total[j], h[j], relu)
        step_product(d_xw[t, first:last], weight_t, weight_hh, dh[first:last], dh_t)


# --------------------------------------------------------------------------- LSTM
# Staging: LLVM vectorises a cell loop only when it can rule out, with a few run-time
# address checks, that its stores overlap its loads. Where a loop stores into several
# arrays and loads from many, a backward cell writes its results into one scratch array
# first and a second, plain loop copies them out.


@cpu_kernel(fastmath={"contract"})
def _lstm_forward(weight, weight_t, x, rows, states, cells, gates, first, last):
    hidden = states.shape[2]
    h1, h2, h3 = hidden, 2 * hidden, 3 * hidden
    pre = np.empty((last - first, weight.shape[1]), dtype=x.dtype)
    pre_t = np.empty((weight.shape[1], last - first), dtype=x.dtype)
    for t in range(x.shape[0]):
        _stack_rows(rows, x, states, t, first, last)
        step_product(rows[t, first:last], weight, weight_t, pre, pre_t)
        for n in range(last - first):
            row = first + n
            p, kept = pre[n], gates[t, row]
            c_prev, c_new, h_new = cells[t, row], cells[t + 1, row], states[t + 1, row]
            for j in range(hidden):
                i, f, g, o, c, h = lstm_forward_point(
                    p[j], p[j + h1], p[j + h2], p[j + h3], c_prev[j]
                )
                kept[j], kept[j + h1], kept[j + h2], kept[j + h3] = i, f, g, o
                c_new[j], h_new[j] = c, h


@cpu_kernel(fastmath={"contract"})
def _lstm_backward(weight_hh, weight_t, cells, gates, grad_states, dh, dc, d_xw, first, last):
    hidden = dh.shape[1]
    h1, h2, h3 = hidden, 2 * hidden, 3 * hidden
    staged = np.empty((5, hidden), dtype=dh.dtype)  # see the note on staging above
    dh_t = np.empty((dh.shape[1], last - first), dtype=dh.dtype)
    for t in range(d_xw.shape[0] - 1, -1, -1):
        _add_gradient(grad_states, t, dh, first, last)
        for row in range(first, last):
            d, kept, total, carry = d_xw[t, row], gates[t, row], dh[row], dc[row]
            c_prev, c = cells[t, row], cells[t + 1, row]
            for j in range(hidden):
                d_i, d_f, d_g, d_o, dc_prev = lstm_backward_point(
                    total[j], carry[j], c_prev[j], c[j],
                    kept[j], kept[j + h1], kept[j + h2], kept[j + h3],
                )  # fmt: skip
                staged[0, j], staged[1, j], staged[2, j], staged[3, j] = d_i, d_f, d_g, d_o
                staged[4, j] = dc_prev
            for j in range(hidden):
                d[j], d[j + h1] = staged[0, j], staged[1, j]
                d[j + h2], d[j + h3] = staged[2, j], staged[3, j]
                carry[j] = staged[4, j]
        step_product(d_xw[t, first:last], weight_t, weight_hh, dh[first:last], dh_t)


# --------------------------------------------------------------------------- GRU


@cpu_kernel(fastmath={"contract"})
def _gru_forward(xw, weight_hh, weight_t, b_ih, b_hh, x, rows, states, saved, first, last):
    hidden = states.shape[2]
    h1, h2, h3 = hidden, 2 * hidden, 3 * hidden
    bias = b_ih + b_hh
    hw = np.empty((last - first, weight_hh.shape[1]), dtype=xw.dtype)
    hw_t = np.empty((weight_hh.shape[1], last - first), dtype=xw.dtype)
    for t in range(xw.shape[0]):
        _stack_rows(rows, x, states, t, first, last)
        step_product(states[t, first:last], weight_hh, weight_t, hw, hw_t)
        for n in range(last - first):
            row = first + n
            projected, p, kept = xw[t, row], hw[n], saved[t, row]
            h_prev, h_new = states[t, row], states[t + 1, row]
            for j in range(hidden):
                h_n = p[j + h2] + b_hh[j + h2]
                r, z, new_n, h = gru_forward_point(
                    projected[j] + p[j] + bias[j],
                    projected[j + h1] + p[j + h1] + bias[j + h1],
                    projected[j + h2] + b_ih[j + h2],
                    h_n,
                    h_prev[j],
                )
                kept[j], kept[j + h1], kept[j + h2], kept[j + h3] = r, z, new_n, h_n
                h_new[j] = h


@cpu_kernel(fastmath={"contract"})
def _gru_backward(weight_hh, weight_t, states, saved, grad_states, dh, d_xw, d_hw, first, last):
    hidden = dh.shape[1]
    h1, h2, h3 = hidden, 2 * hidden, 3 * hidden
    staged = np.empty((5, hidden), dtype=dh.dtype)  # see the note on staging above
    carried = np.empty((last - first, hidden), dtype=dh.dtype)
    dh_t = np.empty((dh.shape[1], last - first), dtype=dh.dtype)
    for t in range(d_xw.shape[0] - 1, -1, -1):
        _add_gradient(grad_states, t, dh, first, last)
        for n in range(last - first):
            row = first + n
            dx, dw, kept = d_xw[t, row], d_hw[t, row], saved[t, row]
            total, h_prev, carry = dh[row], states[t, row], carried[n]
            for j in range(hidden):
                d_r, d_z, d_xn, d_hn, direct = gru_backward_point(
                    total[j], h_prev[j], kept[j], kept[j + h1], kept[j + h2], kept[j + h3]
                )
                staged[0, j], staged[1, j], staged[2, j], staged[3, j] = d_r, d_z, d_xn, d_hn
                staged[4, j] = direct
            for j in range(hidden):
                dx[j], dx[j + h1], dx[j + h2] = staged[0, j], staged[1, j], staged[2, j]
                dw[j], dw[j + h1], dw[j + h2] = staged[0, j], staged[1, j], staged[3, j]
                carry[j] = staged[4, j]
        step_product(d_hw[t, first:last], weight_t, weight_hh, dh[first:last], dh_t)
        for n in range(last - first):
            for j in range(hidden):
                dh[first + n, j] += carried[n, j]


# --------------------------------------------------------------------------- wrappers
# The ops of ``kernels.recurrent``: forward (x, weight_ih, weight_hh, b_ih, b_hh, states,
# cells, saved, rows) and backward (weight_hh, states, cells, saved, grad_states, dh, dc,
# d_xw, d_hw), the same for every cell (arguments a cell does not use may be None);
# outputs in place.


def _over_rows(n_batch, work, task):
    """``task(first, last)`` for runs of batch rows, one per thread by the rule."""
    parts = _parallel.count(n_batch, work)
    edges = _parallel.bounds(n_batch, parts)
    _parallel.run(parts, lambda part: task(edges[part], edges[part + 1]))


def _forward(kernel, x, weight_ih, weight_hh, b_ih, b_hh, rows, outputs, options=()):
    """``kernel(weight, weight_t, x, rows, *outputs, *options, first, last)``, with the
    stacked weight [b_ih + b_hh; weight_ih; weight_hh] and its transpose."""
    weight = np.concatenate([(b_ih + b_hh)[None, :], weight_ih, weight_hh])
    weight_t = _transposed(weight)
    x = np.ascontiguousarray(x)
    steps, n_batch, _ = x.shape
    work = steps * n_batch * weight.shape[0] * weight.shape[1] / 16
    _over_rows(
        n_batch,
        work,
        lambda first, last: kernel(weight, weight_t, x, rows, *outputs, *options, first, last),
    )


def _backward(kernel, weight_hh, grad_states, dh, before, after, options=()):
    """``kernel(weight_hh, weight_t, *before, grad_states, dh, *after, *options, first,
    last)``."""
    weight_hh, weight_t = np.ascontiguousarray(weight_hh), _transposed(weight_hh)
    if grad_states is None:
        grad_states = np.empty((0, *dh.shape), dtype=dh.dtype)
    grad_states = np.ascontiguousarray(grad_states)
    steps = after[-1].shape[0]
    n_batch, hidden = dh.shape
    work = steps * n_batch * hidden * weight_hh.shape[1] / 16

    def task(first, last):
        kernel(weight_hh, weight_t, *before, grad_states, dh, *after, *options, first, last)

    _over_rows(n_batch, work, task)


def _rnn_ops(relu):
    def forward(x, weight_ih, weight_hh, b_ih, b_hh, states, cells, saved, rows):
        """An RNN over a sequence (``cells`` and ``saved`` unused)."""
        _forward(_rnn_forward, x, weight_ih, weight_hh, b_ih, b_hh, rows, (states,), (relu,))

    def backward(weight_hh, states, cells, saved, grad_states, dh, dc, d_xw, d_hw):
        """An RNN's backward pass over a sequence (``d_hw`` is ``d_xw``)."""
        _backward(_rnn_backward, weight_hh, grad_states, dh, (states,), (d_xw,), (relu,))

    return forward, backward


rnn_tanh_sequence_forward_cpu, rnn_tanh_sequence_backward_cpu = _rnn_ops(relu=False)
rnn_relu_sequence_forward_cpu, rnn_relu_sequence_backward_cpu = _rnn_ops(relu=True)


def lstm_sequence_forward_cpu(x, weight_ih, weight_hh, b_ih, b_hh, states, cells, saved, rows):
    """An LSTM over a sequence."""
    _forward(_lstm_forward, x, weight_ih, weight_hh, b_ih, b_hh, rows, (states, cells, saved))


def lstm_sequence_backward_cpu(weight_hh, states, cells, saved, grad_states, dh, dc, d_xw, d_hw):
    """An LSTM's backward pass over a sequence (``d_hw`` is ``d_xw``)."""
    _backward(_lstm_backward, weight_hh, grad_states, dh, (cells, saved), (dc, d_xw))


def gru_sequence_forward_cpu(x, weight_ih, weight_hh, b_ih, b_hh, states, cells, saved, rows):
    """A GRU over a sequence (``cells`` unused): its projections in one GEMM, then the steps."""
    x = np.ascontiguousarray(x)
    steps, n_batch, features = x.shape
    xw = _parallel.matmul(x.reshape(steps * n_batch, features), np.ascontiguousarray(weight_ih))
    xw = xw.reshape(steps, n_batch, -1)
    weight_t = _transposed(weight_hh)
    inputs = [np.ascontiguousarray(a) for a in (weight_hh, b_ih, b_hh)]
    inputs = (xw, inputs[0], weight_t, *inputs[1:], x, rows)
    work = steps * n_batch * weight_hh.shape[0] * weight_hh.shape[1] / 16
    _over_rows(n_batch, work, lambda first, last: _gru_forward(*inputs, states, saved, first, last))


def gru_sequence_backward_cpu(weight_hh, states, cells, saved, grad_states, dh, dc, d_xw, d_hw):
    """A GRU's backward pass over a sequence (``cells`` and ``dc`` unused)."""
    _backward(_gru_backward, weight_hh, grad_states, dh, (states, saved), (d_xw, d_hw))
